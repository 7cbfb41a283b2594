//! The `santa` workload's checker: the three services as one (issue 18 §3). It composes
//! the secret-santa checker (audit ids ordered per workshop, since IDs come from several
//! generators) and the task-queue checker (each task the elves saw declared as the matcher
//! would have enqueued it: the previous stage its dependency), and judges, each only
//! where the history proves a violation:
//!
//! - `end_to_end`: every gift of every committed epoch (the gifts the reads show, as the
//!   secret-santa checker derives them) has its four tasks, all completed, no stage before
//!   the one it depends on, each delivered with its gift's ID, stage, exchange and epoch and
//!   the contract's priority; no task exists for a gift never committed; a gift a splice
//!   replaced has its tasks cancelled unless started (none left pending or assigned at
//!   the end); a task seen cancelled is never handed out, acked or seen otherwise again,
//!   and none an ack completed is reported cancelled;
//!   `gift_status` answers agree with the reads and never claim a stage no ack explains;
//! - `ids`: every gift ID anywhere (assignments, gift statuses, task ids and payloads,
//!   audit events and transactions) is a valid 64-bit gift ID, and no ID names two things;
//!
//! and reports the time from `match_ok` to the exchange's last gift packaged, tasks per
//! gift, the gifts' counts and the client operations each service took (`:load`), and,
//! from the run's network figures, the messages the nodes sent per gift produced, in all
//! and by service.

mod end_to_end;
mod facts;
mod ids;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::checker::secret_santa::{self, IdOrder};
use crate::checker::task_queue::{self, Declared};
use crate::edn::Edn;
use crate::facts::RunFacts;
use crate::history::{History, Outcome, Process};

pub use facts::Facts;

/// The production stages, in dependency order.
pub const STAGES: [&str; 4] = ["assembly", "painting", "quality-check", "packaging"];

/// The retry budget the matcher gives every task.
pub const MAX_ATTEMPTS: i64 = 1_000;

/// Whether worker `w` of `workers` is an elf (on the queue service) rather than a client
/// (on the matcher): every third worker, with two workers the second; one worker is a
/// client.
pub fn is_elf(w: usize, workers: usize) -> bool {
    workers >= 2 && (w % 3 == 2 || (workers == 2 && w == 1))
}

/// Client operations by the service of the node they went to (by the worker's role when
/// the run did not record its services): invoked, and answered `:ok`. Nil when the run's
/// worker count is unknown.
fn load(history: &History, run: &RunFacts) -> Edn {
    if run.workers == 0 {
        return Edn::Nil;
    }
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for call in history.calls() {
        let Process::Worker(p) = call.invoke.process else {
            continue;
        };
        let routed = run.node_of(p).and_then(|n| run.service_of_node(n));
        let service = routed.unwrap_or(match is_elf(p as usize % run.workers, run.workers) {
            true => "queue",
            false => "matcher",
        });
        let c = counts.entry(service.to_string()).or_default();
        c.0 += 1;
        c.1 += usize::from(call.outcome() == Outcome::Ok);
    }
    Edn::map(counts.into_iter().map(|(service, (ops, ok))| {
        let entry = Edn::map([("ops", Edn::from(ops)), ("ok", Edn::from(ok))]);
        (service, entry)
    }))
}

/// A task's id: `"<gift id>-<stage>"`.
pub fn task_id(gift: i64, stage: &str) -> String {
    format!("{gift}-{stage}")
}

/// A task id's gift ID and stage index.
pub fn parse_task_id(id: &str) -> Option<(i64, usize)> {
    let (gift, stage) = id.split_once('-')?;
    let stage = STAGES.iter().position(|s| *s == stage)?;
    Some((gift.parse().ok()?, stage))
}

/// Gifts read ((exchange, epoch) → giver → gift ID), each with what must become of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Production {
    /// Still a gift in the newest epoch of its exchange: its tasks must all complete.
    pub expected: BTreeSet<i64>,
    /// Its giver's gift changed in a later epoch, with no match in between: a splice
    /// replaced it.
    pub replaced: BTreeSet<i64>,
    /// Its giver was not read after it, though newer epochs exist: its fate is unknown.
    pub unsure: BTreeSet<i64>,
}

/// What becomes of every gift read: judged at the last epoch its giver was read with it
/// against the giver's next gift read, `newest` the exchange's newest committed epoch
/// known and `is_match` whether an epoch is a new match (which replaces no gift) rather
/// than a splice.
pub fn production(
    epochs: &BTreeMap<(String, i64), BTreeMap<String, i64>>,
    newest: impl Fn(&str) -> i64,
    is_match: impl Fn(&str, i64) -> bool,
) -> Production {
    let mut p = Production::default();
    for ((x, e), givers) in epochs {
        let later = epochs.range((x.clone(), e + 1)..=(x.clone(), i64::MAX));
        for (giver, g) in givers {
            let next = later
                .clone()
                .find_map(|((_, e2), v)| Some((*e2, *v.get(giver)?)));
            match next {
                Some((_, h)) if h == *g => {}
                Some((e2, _)) if ((e + 1)..=e2).any(|k| is_match(x, k)) => {
                    p.expected.insert(*g);
                }
                Some(_) => {
                    p.replaced.insert(*g);
                }
                None if *e >= newest(x) => {
                    p.expected.insert(*g);
                }
                None => {
                    p.unsure.insert(*g);
                }
            }
        }
    }
    p.expected.retain(|g| !p.replaced.contains(g));
    p.unsure
        .retain(|g| !p.replaced.contains(g) && !p.expected.contains(g));
    p
}

/// When the request that committed gift `g`'s epoch was invoked (the match or the late
/// registration acknowledged with it): no enqueue of its tasks comes earlier.
fn committing_ns(facts: &Facts, g: i64) -> u64 {
    let Some(gift) = facts.gifts.get(&g) else {
        return 0;
    };
    let acks = facts.model.acks().into_iter();
    let writes = acks.filter(|(span, x, e)| {
        *x == gift.exchange && *e == gift.epoch && !span.op.as_ref().is_some_and(|o| o.f == "read")
    });
    writes.map(|(span, _, _)| span.time_ns.0).min().unwrap_or(0)
}

/// The tasks the elves saw, declared to the task-queue checker as the matcher enqueues
/// them.
fn declared(facts: &Facts) -> Vec<Declared> {
    let mut out = Vec::new();
    for (id, t) in &facts.tasks {
        let Some((gift, stage)) = parse_task_id(id) else {
            continue;
        };
        let priority = end_to_end::expected_priority(facts, gift)
            .map(|p| p[0].to_string())
            .or_else(|| t.deliveries.iter().find_map(|d| d.priority.clone()))
            .unwrap_or_else(|| "standard".into());
        let deps = match stage {
            0 => Vec::new(),
            s => vec![Edn::Str(task_id(gift, STAGES[s - 1]))],
        };
        out.push(Declared {
            id: Edn::Str(id.clone()),
            deps,
            priority,
            max_attempts: MAX_ATTEMPTS,
            since_ns: committing_ns(facts, gift),
        });
    }
    out
}

/// The checker's result map (`:workload` in results.edn).
pub fn check(history: &History, run: &RunFacts) -> Edn {
    let facts = Facts::read(history);
    let e2e = end_to_end::check(&facts);
    let ids = ids::check(&facts, run);
    let santa = secret_santa::check_with(history, IdOrder::PerWorkshop);
    let queue = task_queue::check_declared(history, &declared(&facts));
    let verdicts = [
        Edn::Bool(e2e.valid()),
        Edn::Bool(ids.valid()),
        santa.get("valid?").cloned().unwrap_or(Edn::Nil),
        queue.get("valid?").cloned().unwrap_or(Edn::Nil),
    ];
    let valid = if verdicts.contains(&Edn::Bool(false)) {
        Edn::Bool(false)
    } else if facts.gifts.is_empty() {
        Edn::kw("unknown")
    } else {
        Edn::Bool(true)
    };
    Edn::map([
        ("valid?", valid),
        ("end-to-end", e2e.to_edn()),
        ("ids", ids.to_edn()),
        ("secret-santa", santa),
        ("task-queue", queue),
        ("stats", with_messages(end_to_end::stats(&facts), run)),
        ("load", load(history, run)),
    ])
}

/// Adds to `stats` the messages the nodes sent per gift (`:messages-per-gift`) and by
/// service (`:messages-per-gift-by-service`), from the run's `:net` figures.
fn with_messages(mut stats: Edn, run: &RunFacts) -> Edn {
    let gifts = stats.get("gifts").and_then(Edn::as_i64).unwrap_or(0);
    let Some(net) = run.net.as_ref().filter(|_| gifts > 0) else {
        return stats;
    };
    let per_gift = |sent: Option<&Edn>| {
        let sent = sent.and_then(Edn::as_i64)?;
        Some(Edn::Float(
            (sent as f64 / gifts as f64 * 10.0).round() / 10.0,
        ))
    };
    let servers = net.get("servers").and_then(|s| s.get("send-count"));
    if let Some(all) = per_gift(servers) {
        stats.insert("messages-per-gift", all);
    }
    if let Some(Edn::Map(services)) = net.get("services") {
        let by = services.iter().filter_map(|(name, s)| {
            let name = name.as_str()?.to_string();
            Some((name, per_gift(s.get("send-count"))?))
        });
        stats.insert("messages-per-gift-by-service", Edn::map(by));
    }
    stats
}
