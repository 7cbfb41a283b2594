//! Rules judged by counting deliveries in the history rather than by the attempt numbers
//! the queue reports: a task handed out more often than its budget, two deliveries under
//! one attempt number, an attempt number that goes down, and a nack of the last attempt
//! that did not dead-letter the task.
//!
//! Every `:ok` poll that carries a task is one delivery, and one attempt. A `replay` starts
//! a new epoch with a fresh budget; deliveries are compared only within one epoch, and only
//! when no replay (`:ok` or indeterminate) may have taken effect between them.

use std::collections::{BTreeMap, BTreeSet};

use super::{Delivery, Event, Facts, Id, Outcome, Task};
use crate::edn::Edn;

/// The epoch an op spanning history positions `inv..=done` surely falls in (how many
/// replays surely took effect before it), or `None` when a replay may have taken effect
/// while it was in flight.
pub(super) fn epoch(t: &Task, inv: usize, done: usize) -> Option<usize> {
    let mut before = 0;
    for r in t.replays.iter().chain(&t.maybe_replays) {
        if r.effect_end() < inv {
            before += 1;
        } else if r.inv <= done {
            return None;
        }
    }
    Some(before)
}

/// A task's deliveries by surely-known epoch, in history order, and how many fall in no
/// known epoch.
fn by_epoch<'a>(facts: &'a Facts, t: &Task) -> (BTreeMap<usize, Vec<&'a Delivery>>, usize) {
    let mut epochs: BTreeMap<usize, Vec<&Delivery>> = BTreeMap::new();
    let mut unplaced = 0;
    for d in t.deliveries.iter().filter_map(|i| facts.deliveries.get(*i)) {
        match epoch(t, d.poll_inv, d.poll_done) {
            Some(e) => epochs.entry(e).or_default().push(d),
            None => unplaced += 1,
        }
    }
    (epochs, unplaced)
}

/// What counting the deliveries found: examples of each error kind, one per task, and
/// the tasks whose count is uncertain.
#[derive(Default)]
pub(super) struct Counted {
    pub over_budget: Vec<Edn>,
    pub repeated_attempts: Vec<Edn>,
    pub attempt_regressions: Vec<Edn>,
    pub last_nack_not_dead: Vec<Edn>,
    /// Tasks surely within budget by the deliveries seen, that indeterminate polls (or
    /// deliveries that may straddle a replay) could have taken beyond it: with any
    /// indeterminate poll in the history, nearly every task.
    pub uncertain: usize,
}

impl Counted {
    pub fn errors(&self) -> usize {
        self.over_budget.len()
            + self.repeated_attempts.len()
            + self.attempt_regressions.len()
            + self.last_nack_not_dead.len()
    }
}

pub(super) fn count(facts: &Facts) -> Counted {
    let mut c = Counted::default();
    let invisible = facts.maybe_polls_inv.len();
    for (id, t) in &facts.tasks {
        let (epochs, unplaced) = by_epoch(facts, t);
        for ds in epochs.values() {
            if let Some(e) = repeated(id, ds) {
                c.repeated_attempts.push(e);
                break;
            }
        }
        for ds in epochs.values() {
            if let Some(e) = regression(id, ds) {
                c.attempt_regressions.push(e);
                break;
            }
        }
        let Some(budget) = t.spec.as_ref().map(|s| s.max_attempts) else {
            continue;
        };
        let most = epochs.values().map(Vec::len).max().unwrap_or(0);
        // A task whose enqueue was never acknowledged and that nobody saw may not exist.
        let exists = t.enqueue_ok.is_some() || !t.deliveries.is_empty();
        if most as i64 > budget {
            c.over_budget.push(Edn::map([
                ("id", id.to_edn()),
                ("deliveries", Edn::from(most)),
                ("max-attempts", Edn::Int(budget)),
            ]));
        } else if exists && (most + unplaced + invisible) as i64 > budget {
            c.uncertain += 1;
        }
        if let Some(e) = last_nack_kept(id, t, &epochs, budget) {
            c.last_nack_not_dead.push(e);
        }
    }
    c
}

/// Two deliveries of one epoch under the same attempt number.
fn repeated(id: &Id, ds: &[&Delivery]) -> Option<Edn> {
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for d in ds {
        let Some(a) = d.attempt else { continue };
        if let Some(first) = seen.insert(a, d.poll_index) {
            return Some(Edn::map([
                ("id", id.to_edn()),
                ("attempt", Edn::Int(a)),
                (
                    "poll-indexes",
                    Edn::Vector(vec![Edn::from(first), Edn::from(d.poll_index)]),
                ),
            ]));
        }
    }
    None
}

/// A delivery whose attempt number is below that of a delivery of the same epoch that
/// surely came before it.
fn regression(id: &Id, ds: &[&Delivery]) -> Option<Edn> {
    for (i, earlier) in ds.iter().enumerate() {
        let Some(from) = earlier.attempt else {
            continue;
        };
        for later in &ds[i + 1..] {
            let Some(to) = later.attempt else { continue };
            if earlier.poll_done < later.poll_inv && to < from {
                return Some(Edn::map([
                    ("id", id.to_edn()),
                    ("from", Edn::Int(from)),
                    ("to", Edn::Int(to)),
                    ("poll-index", Edn::from(later.poll_index)),
                ]));
            }
        }
    }
    None
}

/// An `:ok` nack answering `dead-lettered false` for the last attempt: by the attempt
/// number the consumer echoed, or because the budget's worth of deliveries of its epoch
/// surely came before it (a nack is refused unless it is of the current attempt).
fn last_nack_kept(
    id: &Id,
    t: &Task,
    epochs: &BTreeMap<usize, Vec<&Delivery>>,
    budget: i64,
) -> Option<Edn> {
    for (n, kept) in t.nacks.iter().zip(&t.nack_kept) {
        if n.outcome != Outcome::Ok || !kept {
            continue;
        }
        let before = epoch(t, n.inv, n.done)
            .and_then(|e| epochs.get(&e))
            .map_or(0, |ds| ds.iter().filter(|d| d.poll_done < n.inv).count());
        if n.attempt.is_some_and(|a| a >= budget) || before as i64 >= budget {
            return Some(Edn::map([
                ("id", id.to_edn()),
                ("attempt", n.attempt.map_or(Edn::Nil, Edn::Int)),
                ("deliveries", Edn::from(before)),
                ("max-attempts", Edn::Int(budget)),
            ]));
        }
    }
    None
}

/// The deliveries `events` (acks, nacks, abandons) were about, in history order: each
/// event's delivery is the latest one before it with the attempt number it echoes, not
/// already claimed by an earlier event, handed to its own process if there is one. The
/// number is only the link between an event and a delivery, so each delivery is claimed
/// at most once however the queue numbers its attempts.
pub(super) fn linked<'e>(
    facts: &Facts,
    t: &Task,
    events: impl IntoIterator<Item = &'e Event>,
) -> BTreeSet<usize> {
    let mut events: Vec<&Event> = events.into_iter().collect();
    events.sort_by_key(|e| e.inv);
    let mut claimed = BTreeSet::new();
    for e in events {
        let candidates = t.deliveries.iter().copied().filter(|i| {
            !claimed.contains(i)
                && facts
                    .deliveries
                    .get(*i)
                    .is_some_and(|d| d.attempt == e.attempt && d.poll_done < e.inv)
        });
        let key = |i: &usize| {
            let d = &facts.deliveries[*i];
            (d.process == e.process, d.poll_done)
        };
        if let Some(i) = candidates.max_by_key(key) {
            claimed.insert(i);
        }
    }
    claimed
}
