//! End to end: from committed gifts to packaged ones (module documentation of
//! [`super`]).

use std::collections::{BTreeMap, BTreeSet};

use super::facts::{Facts, Task};
use super::{parse_task_id, task_id, STAGES};
use crate::checker::secret_santa::Property;
use crate::checker::task_queue::quantiles;
use crate::edn::Edn;
use crate::history::Outcome;

/// A deadline at most this far after the commit makes a gift express.
const EXPRESS_MS: i64 = 86_400_000;

const KINDS: [&str; 12] = [
    "missing-tasks",
    "unfinished-tasks",
    "out-of-order",
    "wrong-tags",
    "wrong-priority",
    "uncommitted-gift-tasks",
    "replaced-not-cancelled",
    "cancelled-task-lived",
    "cancelled-after-completion",
    "malformed-task-ids",
    "gift-status-mismatch",
    "stage-without-ack",
];

fn example(problem: &str, id: &str, detail: Edn) -> Edn {
    Edn::map([
        ("problem", Edn::kw(problem)),
        ("task", Edn::Str(id.into())),
        ("detail", detail),
    ])
}

/// The priorities the contract allows for gift `g`, the one it prescribes first: express
/// when the exchange's match deadline was within 24 hours, else nice-child when the
/// receiver registered as one, else standard. A splice's gifts may also be judged as if
/// without a deadline: the contract ties the deadline to the match.
pub fn expected_priority(facts: &Facts, g: i64) -> Option<Vec<&'static str>> {
    let gift = facts.gifts.get(&g)?;
    let model = &facts.model;
    let near = model
        .matches
        .iter()
        .filter(|m| m.exchange == gift.exchange)
        .find_map(|m| m.deadline)
        .is_some_and(|(deadline, made)| deadline - made <= EXPRESS_MS);
    let nice = model
        .registration(&gift.exchange, &gift.receiver)
        .is_some_and(|r| r.nice_child);
    let rule = |near: bool| match (near, nice) {
        (true, _) => "express",
        (false, true) => "nice-child",
        (false, false) => "standard",
    };
    let mut allowed = vec![rule(near)];
    if gift.spliced_in && rule(false) != allowed[0] {
        allowed.push(rule(false));
    }
    Some(allowed)
}

/// Every gift to produce has its four tasks, each completed.
fn complete(facts: &Facts, prop: &mut Property) {
    for g in &facts.expected {
        for stage in STAGES {
            let id = task_id(*g, stage);
            let t = facts.tasks.get(&id);
            let detail = || {
                let status = t.and_then(Task::last_status).map_or(Edn::Nil, Edn::kw);
                Edn::map([("gift-id", Edn::Int(*g)), ("last-status", status)])
            };
            match t {
                Some(t) if t.completed() => {}
                Some(t) if t.exists() => {
                    prop.flag("unfinished-tasks", example("not-completed", &id, detail()))
                }
                _ => prop.flag("missing-tasks", example("never-seen", &id, detail())),
            }
        }
    }
}

/// No stage completed before an ack of the stage it depends on was even invoked.
fn order(facts: &Facts, prop: &mut Property) {
    for (id, t) in &facts.tasks {
        let Some((g, stage)) = parse_task_id(id).filter(|(_, s)| *s > 0) else {
            continue;
        };
        let Some(ack) = t.first_ack_ok() else {
            continue;
        };
        let before = task_id(g, STAGES[stage - 1]);
        let prev = facts.tasks.get(&before).and_then(Task::first_possible_ack);
        if !prev.is_some_and(|inv| inv < ack.done) {
            let detail = Edn::map([("before", Edn::Str(before))]);
            prop.flag(
                "out-of-order",
                example("completed-before-dependency", id, detail),
            );
        }
    }
}

/// Each delivery names its gift, stage, exchange and epoch, with the contract's priority.
fn tags(facts: &Facts, prop: &mut Property) {
    for (id, t) in &facts.tasks {
        let Some((g, stage)) = parse_task_id(id) else {
            prop.flag("malformed-task-ids", example("bad-id", id, Edn::Nil));
            continue;
        };
        let gift = facts.gifts.get(&g);
        let allowed = expected_priority(facts, g);
        for d in &t.deliveries {
            let wrong_place = gift.is_some_and(|gift| {
                d.payload_exchange.as_deref() != Some(gift.exchange.as_str())
                    || !d
                        .payload_epoch
                        .is_some_and(|e| (1..=gift.epoch).contains(&e))
            });
            if d.kind.as_deref() != Some(STAGES[stage]) || d.payload_gift != Some(g) || wrong_place
            {
                let detail = Edn::map([
                    ("kind", d.kind.clone().map_or(Edn::Nil, Edn::Str)),
                    ("payload-gift-id", d.payload_gift.map_or(Edn::Nil, Edn::Int)),
                    ("payload-epoch", d.payload_epoch.map_or(Edn::Nil, Edn::Int)),
                ]);
                prop.flag("wrong-tags", example("delivery-mislabelled", id, detail));
            }
            let priority = d.priority.as_deref().unwrap_or("");
            if let Some(allowed) = allowed.as_ref().filter(|a| !a.contains(&priority)) {
                let detail = Edn::map([
                    ("priority", Edn::Str(priority.into())),
                    ("expected", Edn::kw(allowed[0])),
                ]);
                prop.flag("wrong-priority", example("delivery-priority", id, detail));
            }
        }
    }
}

/// How many participants epoch `e` of exchange `x` has, when the history says exactly: a
/// `match_ok` of it lists them, or it is a splice of a known epoch (one more).
fn members(facts: &Facts, x: &str, e: i64) -> Option<usize> {
    let listed = facts
        .model
        .matches
        .iter()
        .filter(|m| m.span.ok() && m.exchange == x && m.epoch == Some(e))
        .find_map(|m| m.participants.as_ref());
    if let Some(p) = listed {
        return Some(p.len());
    }
    let splice = e >= 2 && facts.splices.contains(&(x.to_string(), e));
    splice
        .then(|| members(facts, x, e - 1).map(|n| n + 1))
        .flatten()
}

/// How many gifts of epoch `e` of `x` no read shows: its givers not read in it (their
/// gifts may have been replaced before any read). Zero when the epoch was never
/// acknowledged (nothing of it is committed as far as the history shows), unbounded when
/// its members are unknown.
fn unread(facts: &Facts, x: &str, e: i64) -> usize {
    let acked = facts
        .model
        .acks()
        .iter()
        .any(|(_, ax, ae)| *ax == x && *ae >= e);
    if e < 1 || !acked {
        return 0;
    }
    let Some(members) = members(facts, x, e) else {
        return usize::MAX;
    };
    let read = facts
        .epochs
        .get(&(x.to_string(), e))
        .map_or(0, BTreeMap::len);
    members.saturating_sub(read)
}

/// Tasks of gifts no read shows committed. A gift of a committed epoch that no read shows
/// (replaced by a splice before any read of its epoch, or its giver never read) is
/// allowed, up to that epoch's givers not read in it; every other unknown gift (an aborted
/// transaction's, say) is a violation.
fn uncommitted(facts: &Facts, prop: &mut Property) {
    let mut unknown: BTreeMap<Option<(String, i64)>, BTreeSet<i64>> = BTreeMap::new();
    let mut first_id: BTreeMap<i64, &str> = BTreeMap::new();
    for (id, t) in facts.tasks.iter().filter(|(_, t)| t.exists()) {
        let Some((g, _)) = parse_task_id(id) else {
            continue;
        };
        if facts.gifts.contains_key(&g) {
            continue;
        }
        let place = t
            .deliveries
            .iter()
            .find_map(|d| Some((d.payload_exchange.clone()?, d.payload_epoch?)));
        unknown.entry(place).or_default().insert(g);
        first_id.entry(g).or_insert(id);
    }
    for (place, gifts) in &unknown {
        let allowed = place.as_ref().map_or(0, |(x, e)| unread(facts, x, *e));
        if gifts.len() <= allowed {
            continue;
        }
        for g in gifts {
            let detail = Edn::map([
                ("gift-id", Edn::Int(*g)),
                ("unknown-gifts-of-epoch", Edn::from(gifts.len())),
                ("unread-givers", Edn::from(allowed)),
            ]);
            let id = first_id.get(g).copied().unwrap_or("");
            prop.flag(
                "uncommitted-gift-tasks",
                example("never-committed", id, detail),
            );
        }
    }
}

/// A replaced gift's tasks are cancelled unless started: the matcher cancels them after
/// the splice commits, and the end shows whether the cancel landed: a task of a replaced
/// gift never started (no `start` that may have taken effect) must not still be pending
/// or assigned when last asked. When the splice's answer is in the history,
/// [`replaced_after_answer`] judges more sharply.
fn replaced(facts: &Facts, prop: &mut Property) {
    for g in &facts.replaced {
        for stage in STAGES {
            let id = task_id(*g, stage);
            let Some(t) = facts.tasks.get(&id) else {
                continue;
            };
            let started = t.starts.iter().any(|s| s.outcome != Outcome::Fail);
            let ended = t.last_status();
            if !started && matches!(ended, Some("pending" | "assigned")) {
                let detail = Edn::map([
                    ("gift-id", Edn::Int(*g)),
                    ("last-status", ended.map_or(Edn::Nil, Edn::kw)),
                ]);
                prop.flag(
                    "replaced-not-cancelled",
                    example("never-cancelled", &id, detail),
                );
            }
        }
    }
}

/// The history position at which the splice that replaced gift `g` was acknowledged:
/// the first `register_ok` of the participant its giver gives to in the next epoch that
/// changed the giver's gift. `None` when no such acknowledgement is in the history.
fn splice_acknowledged(facts: &Facts, g: i64) -> Option<usize> {
    let gift = facts.gifts.get(&g)?;
    let (exchange, giver) = (&gift.exchange, &gift.giver);
    let later = facts.epochs.range((exchange.clone(), gift.epoch + 1)..);
    let late = later
        .take_while(|((x, _), _)| x == exchange)
        .find_map(|(_, gifts)| gifts.get(giver).filter(|id| **id != g))
        .and_then(|id| facts.gifts.get(id))
        .map(|next| next.receiver.as_str())?;
    let registered = facts.model.registrations.iter();
    registered
        .filter(|r| r.span.ok() && r.exchange == *exchange && r.participant == late)
        .map(|r| r.span.complete)
        .min()
}

/// The matcher answers a late addition only once the gift it replaced is cancelled at the
/// queue: a task of that gift completes only if an elf started or acknowledged it before
/// the answer, since a start or ack the queue takes after the cancel is refused.
fn replaced_after_answer(facts: &Facts, prop: &mut Property) {
    for g in &facts.replaced {
        let Some(answered) = splice_acknowledged(facts, *g) else {
            continue;
        };
        for stage in STAGES {
            let id = task_id(*g, stage);
            let Some(t) = facts.tasks.get(&id) else {
                continue;
            };
            let touched = (t.starts.iter().chain(&t.acks))
                .any(|x| x.outcome != Outcome::Fail && x.inv < answered);
            if t.first_ack_ok().is_some() && !touched {
                let detail = Edn::map([
                    ("gift-id", Edn::Int(*g)),
                    ("splice-acknowledged-at", Edn::Int(answered as i64)),
                ]);
                prop.flag(
                    "replaced-not-cancelled",
                    example("built-after-splice-answered", &id, detail),
                );
            }
        }
    }
}

/// `cancelled` is final and only for unfinished tasks: once a status said so, the task is
/// never handed out again, acknowledged or seen otherwise, and no task an ack surely
/// completed is reported cancelled.
fn cancellations(facts: &Facts, prop: &mut Property) {
    for (id, t) in &facts.tasks {
        let cancelled = t.statuses.iter().filter(|(_, _, s)| s == "cancelled");
        let Some(seen) = cancelled.clone().map(|(_, done, _)| *done).min() else {
            continue;
        };
        let delivered = t.deliveries.iter().any(|d| d.poll_inv > seen);
        let acked = t
            .acks
            .iter()
            .any(|a| a.outcome == Outcome::Ok && a.inv > seen);
        let revived = t
            .statuses
            .iter()
            .any(|(inv, _, s)| *inv > seen && s != "cancelled");
        if delivered || acked || revived {
            let detail = Edn::map([
                ("delivered", Edn::Bool(delivered)),
                ("acked", Edn::Bool(acked)),
                ("status-after", Edn::Bool(revived)),
            ]);
            prop.flag(
                "cancelled-task-lived",
                example("after-cancelled", id, detail),
            );
        }
        let completed = t.first_ack_ok().map(|a| a.done);
        if cancelled
            .clone()
            .any(|(inv, _, _)| completed.is_some_and(|c| c < *inv))
        {
            let detail = Edn::map([("status", Edn::kw("cancelled"))]);
            prop.flag(
                "cancelled-after-completion",
                example("completed-then-cancelled", id, detail),
            );
        }
    }
}

/// `gift_status` answers: the box opens and agrees with the reply and the reads; every
/// stage it calls done has an ack that may explain it; `cancelled` only for a replaced
/// gift.
fn statuses(facts: &Facts, prop: &mut Property) {
    for s in &facts.statuses {
        let id = format!("{}/{}", s.exchange, s.participant);
        let read = s
            .epoch
            .and_then(|e| facts.epochs.get(&(s.exchange.clone(), e)))
            .and_then(|v| v.get(&s.participant));
        let mismatch = s.box_error.is_some()
            || s.box_gift_id != s.gift_id
            || read.is_some_and(|r| Some(*r) != s.gift_id);
        let g = s.gift_id.unwrap_or(0);
        let stage = s.stage.as_deref().unwrap_or("");
        let done_stages = match stage {
            "packaged" => STAGES.len(),
            "cancelled" | "queued" => 0,
            other => STAGES.iter().position(|k| *k == other).unwrap_or(0),
        };
        let known = stage == "packaged"
            || matches!(stage, "cancelled" | "queued")
            || STAGES.contains(&stage);
        let detail = Edn::map([("gift-id", Edn::Int(g)), ("stage", Edn::Str(stage.into()))]);
        if mismatch || !known || (stage == "cancelled" && !facts.replaced.contains(&g)) {
            prop.flag(
                "gift-status-mismatch",
                example("status-disagrees", &id, detail.clone()),
            );
        }
        let unexplained = STAGES[..done_stages].iter().any(|k| {
            let t = facts.tasks.get(&task_id(g, k));
            !t.and_then(Task::first_possible_ack)
                .is_some_and(|inv| inv < s.done)
        });
        if unexplained {
            prop.flag(
                "stage-without-ack",
                example("stage-ahead-of-acks", &id, detail),
            );
        }
    }
}

pub fn check(facts: &Facts) -> Property {
    let mut prop = Property::new("end-to-end", &KINDS);
    complete(facts, &mut prop);
    order(facts, &mut prop);
    tags(facts, &mut prop);
    uncommitted(facts, &mut prop);
    replaced(facts, &mut prop);
    replaced_after_answer(facts, &mut prop);
    cancellations(facts, &mut prop);
    statuses(facts, &mut prop);
    prop.note("gifts", Edn::from(facts.gifts.len()));
    prop.note("gifts-to-produce", Edn::from(facts.expected.len()));
    prop.note("gifts-replaced", Edn::from(facts.replaced.len()));
    prop.note("gifts-unsure", Edn::from(facts.unsure.len()));
    prop
}

/// Reported: match to last gift packaged per exchange, tasks per gift, counts.
pub fn stats(facts: &Facts) -> Edn {
    let mut latencies = Vec::new();
    for x in facts.model.exchanges() {
        let matched = facts
            .model
            .matches
            .iter()
            .filter(|m| m.exchange == x && m.span.ok())
            .map(|m| m.span.time_ns.1)
            .min();
        let gifts = facts
            .expected
            .iter()
            .filter(|g| facts.gifts.get(g).is_some_and(|gift| gift.exchange == x));
        let packaged: Option<Vec<u64>> = gifts
            .map(|g| {
                let t = facts.tasks.get(&task_id(*g, "packaging"))?;
                Some(t.first_ack_ok()?.done_ns)
            })
            .collect();
        if let (Some(m), Some(p)) = (matched, packaged.filter(|p| !p.is_empty())) {
            let last = p.into_iter().max().unwrap_or(m);
            latencies.push(last.saturating_sub(m));
        }
    }
    let parsed: Vec<(i64, usize)> = facts
        .tasks
        .keys()
        .filter_map(|id| parse_task_id(id))
        .collect();
    let gifts_with_tasks: BTreeSet<i64> = parsed.iter().map(|(g, _)| *g).collect();
    let per_gift = match gifts_with_tasks.len() {
        0 => Edn::Nil,
        n => Edn::Float(parsed.len() as f64 / n as f64),
    };
    let completed = facts.tasks.values().filter(|t| t.completed()).count();
    Edn::map([
        ("match-to-packaged-ms", quantiles(latencies)),
        ("tasks", Edn::from(parsed.len())),
        ("tasks-completed", Edn::from(completed)),
        ("tasks-per-gift", per_gift),
        ("gifts", Edn::from(facts.gifts.len())),
    ])
}
