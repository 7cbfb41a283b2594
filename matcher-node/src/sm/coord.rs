//! The coordinator's replicated state: every transaction record and decision, each
//! exchange's audit events, and the committed plaintext assignment (needed to splice in
//! late additions and to finish transactions after a failover). Nothing of it leaves the
//! coordinator group except sealed slices and `match_ok`'s participant list.
//!
//! With a task queue, a committed transaction also leaves [`Work`] for the queue in this
//! state (its gifts' production tasks to enqueue, the tasks of gifts a splice replaced to
//! cancel), with each task's content fixed at the commit; the leader carries it out and
//! logs [`CoordCmd::Enqueued`], which drops it, so a new leader redoes what is left.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use giftid::layout::{WORKSHOPS, WORKSHOP_SHIFT};

use super::Slice;
use crate::constraints::Participant;

/// The production stages of a gift, in the order their tasks depend on each other.
pub const STAGES: [&str; 4] = ["assembly", "painting", "quality-check", "packaging"];
/// A deadline at most this long after the commit makes a gift's tasks `express`.
pub const EXPRESS_WITHIN_MS: u64 = 86_400_000;

/// The workshop a gift ID was made in.
pub fn workshop(id: u64) -> u16 {
    ((id >> WORKSHOP_SHIFT) & (WORKSHOPS - 1)) as u16
}

/// A task's priority on the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    Express,
    Standard,
    NiceChild,
}

/// One gift whose four tasks are to be enqueued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiftWork {
    pub gift_id: u64,
    pub priority: Priority,
}

/// What a logged transaction owes the task queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Work {
    pub txn: u64,
    pub exchange: String,
    pub epoch: u64,
    /// Gifts whose tasks to enqueue (a match: all; a splice: the two it adds).
    pub gifts: Vec<GiftWork>,
    /// Gifts a splice replaced: their tasks to cancel.
    pub cancel: Vec<u64>,
}

/// When a transaction leaves work for the queue: never (no queue), once its commit is
/// logged, or (the `enqueue-before-log` flaw) as soon as it is logged at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskMode {
    #[default]
    Off,
    AfterCommit,
    AtBegin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Match,
    Splice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Prepared,
    Committed,
    Aborted,
}

/// One audit event, as `audit_ok` lists it: it names no participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: u64,
    pub txn: u64,
    pub kind: Kind,
    pub event: EventKind,
    pub epoch: u64,
}

/// A gift in plaintext: coordinator state only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gift {
    pub receiver: String,
    pub gift_id: u64,
}

/// A transaction record, as logged before any PREPARE is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub id: u64,
    pub exchange: String,
    pub kind: Kind,
    pub epoch: u64,
    pub no_mutual: bool,
    pub participants: BTreeMap<String, Participant>,
    /// Giver -> gift of the epoch this transaction creates.
    pub gifts: BTreeMap<String, Gift>,
    /// Region -> its slice; emptied once every region acknowledged the decision.
    #[serde(with = "super::pairs")]
    pub slices: BTreeMap<u32, Slice>,
    pub decision: Option<bool>,
    pub acked: BTreeSet<u32>,
    /// When the exchange's gifts are due (unix ms), from its `match`.
    #[serde(default)]
    pub deadline: Option<u64>,
}

/// One exchange's committed state and history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CoordExchange {
    pub epoch: u64,
    pub no_mutual: bool,
    pub participants: BTreeMap<String, Participant>,
    pub gifts: BTreeMap<String, Gift>,
    pub events: Vec<Event>,
    /// The transaction under way, if any: one at a time per exchange.
    pub active: Option<u64>,
    #[serde(default)]
    pub deadline: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CoordSm {
    pub exchanges: BTreeMap<String, CoordExchange>,
    #[serde(with = "super::pairs")]
    pub txns: BTreeMap<u64, Txn>,
    /// Transactions not finished: undecided, or a decision some region has not acked.
    pub open: BTreeSet<u64>,
    /// Transactions aborted with no record (presumed abort): never begun afterwards.
    pub presumed: BTreeSet<u64>,
    /// The highest gift ID any applied command carries: a new leader draws IDs above it,
    /// so audit events stay in the order they happened whatever its clock says.
    #[serde(default)]
    pub highest_id: u64,
    /// The highest gift ID of each workshop in applied commands: IDs from the giftid
    /// service at or below it are never used.
    #[serde(default, with = "super::pairs")]
    pub workshops: BTreeMap<u16, u64>,
    /// Work for the task queue not yet done, by the order it arose in.
    #[serde(default, with = "super::pairs")]
    pub work: BTreeMap<u64, Work>,
    #[serde(default)]
    pub next_work: u64,
    /// A setting of this process, not state.
    #[serde(skip)]
    pub tasks: TaskMode,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordCmd {
    /// Logs a transaction and its `prepared` event (`event` is the event's gift ID);
    /// `at` is the leader's wall clock (unix ms).
    Begin {
        txn: Box<Txn>,
        event: u64,
        #[serde(default)]
        at: u64,
    },
    /// Logs a decision; the first one for a transaction stands.
    Decide {
        txn: u64,
        commit: bool,
        event: u64,
        #[serde(default)]
        at: u64,
    },
    /// Regions that acknowledged a transaction's decision.
    Acked { txn: u64, regions: Vec<u32> },
    /// The queue work of that order is done.
    Enqueued { seq: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordOut {
    Begun,
    /// Not begun: another transaction of the exchange is under way or the epoch moved.
    Refused(String),
    Decided {
        commit: bool,
        epoch: u64,
    },
    Acked,
}

impl CoordCmd {
    /// The gift IDs the command carries.
    fn ids(&self) -> Vec<u64> {
        match self {
            CoordCmd::Begin { txn, event, .. } => {
                let gifts = txn.gifts.values().map(|g| g.gift_id);
                gifts.chain([txn.id, *event]).collect()
            }
            CoordCmd::Decide { txn, event, .. } => vec![*txn, *event],
            CoordCmd::Acked { .. } | CoordCmd::Enqueued { .. } => Vec::new(),
        }
    }
}

impl CoordSm {
    pub fn new(tasks: TaskMode) -> Self {
        CoordSm {
            tasks,
            ..CoordSm::default()
        }
    }

    pub fn apply(&mut self, cmd: CoordCmd) -> CoordOut {
        for id in cmd.ids() {
            self.highest_id = self.highest_id.max(id);
            let top = self.workshops.entry(workshop(id)).or_default();
            *top = (*top).max(id);
        }
        match cmd {
            CoordCmd::Begin { txn, event, at } => self.begin(*txn, event, at),
            CoordCmd::Decide {
                txn,
                commit,
                event,
                at,
            } => self.decide(txn, commit, event, at),
            CoordCmd::Enqueued { seq } => {
                self.work.remove(&seq);
                CoordOut::Acked
            }
            CoordCmd::Acked { txn, regions } => {
                if let Some(t) = self.txns.get_mut(&txn) {
                    t.acked.extend(regions);
                    if t.decision.is_some() && t.slices.keys().all(|r| t.acked.contains(r)) {
                        t.slices.clear();
                        self.open.remove(&txn);
                    }
                }
                CoordOut::Acked
            }
        }
    }

    fn begin(&mut self, txn: Txn, event: u64, at: u64) -> CoordOut {
        if self.txns.contains_key(&txn.id) || self.presumed.contains(&txn.id) {
            return CoordOut::Refused(format!("transaction {} exists", txn.id));
        }
        let ex = self.exchanges.entry(txn.exchange.clone()).or_default();
        if let Some(active) = ex.active {
            return CoordOut::Refused(format!("transaction {active} is under way"));
        }
        if txn.epoch != ex.epoch + 1 {
            let why = format!(
                "the exchange is at epoch {}, not {}",
                ex.epoch,
                txn.epoch - 1
            );
            return CoordOut::Refused(why);
        }
        ex.active = Some(txn.id);
        ex.events.push(Event {
            id: event,
            txn: txn.id,
            kind: txn.kind,
            event: EventKind::Prepared,
            epoch: txn.epoch,
        });
        if self.tasks == TaskMode::AtBegin {
            let work = work_of(&txn, &ex.gifts, at);
            self.add_work(work);
        }
        self.open.insert(txn.id);
        self.txns.insert(txn.id, txn);
        CoordOut::Begun
    }

    fn add_work(&mut self, work: Work) {
        if !work.gifts.is_empty() || !work.cancel.is_empty() {
            self.work.insert(self.next_work, work);
            self.next_work += 1;
        }
    }

    /// Whether the tasks of `gift_id` may not all be enqueued yet.
    pub fn queued(&self, gift_id: u64) -> bool {
        self.work
            .values()
            .any(|w| w.gifts.iter().any(|g| g.gift_id == gift_id))
    }

    fn decide(&mut self, id: u64, commit: bool, event: u64, at: u64) -> CoordOut {
        let Some(txn) = self.txns.get_mut(&id) else {
            // No record: presumed abort, and it may never begin later.
            self.presumed.insert(id);
            return CoordOut::Decided {
                commit: false,
                epoch: 0,
            };
        };
        if let Some(commit) = txn.decision {
            return CoordOut::Decided {
                commit,
                epoch: txn.epoch,
            };
        }
        txn.decision = Some(commit);
        let ex = self.exchanges.entry(txn.exchange.clone()).or_default();
        ex.active = None;
        ex.events.push(Event {
            id: event,
            txn: id,
            kind: txn.kind,
            event: if commit {
                EventKind::Committed
            } else {
                EventKind::Aborted
            },
            epoch: txn.epoch,
        });
        let work =
            (commit && self.tasks == TaskMode::AfterCommit).then(|| work_of(txn, &ex.gifts, at));
        if commit {
            ex.epoch = txn.epoch;
            ex.participants = txn.participants.clone();
            ex.gifts = txn.gifts.clone();
            if txn.kind == Kind::Match {
                ex.no_mutual = txn.no_mutual;
                ex.deadline = txn.deadline;
            }
        }
        if txn.slices.is_empty() {
            self.open.remove(&id);
        }
        let epoch = txn.epoch;
        if let Some(work) = work {
            self.add_work(work);
        }
        CoordOut::Decided { commit, epoch }
    }

    /// An exchange's audit events, ascending by event ID.
    pub fn audit(&self, exchange: &str) -> Option<Vec<Event>> {
        let mut events = self.exchanges.get(exchange)?.events.clone();
        events.sort_by_key(|e| e.id);
        Some(events)
    }

    /// The decision on a transaction: `Some(None)` while undecided, `None` if unknown.
    pub fn decision(&self, txn: u64) -> Option<Option<bool>> {
        if self.presumed.contains(&txn) {
            return Some(Some(false));
        }
        self.txns.get(&txn).map(|t| t.decision)
    }
}

/// What transaction `txn` owes the queue when it takes effect at `at` (unix ms) over the
/// exchange's committed gifts `before`: a match, every gift's tasks; a splice, its new
/// gifts' tasks, and cancelling those of the gifts it replaced.
fn work_of(txn: &Txn, before: &BTreeMap<String, Gift>, at: u64) -> Work {
    let express = txn
        .deadline
        .is_some_and(|d| d <= at.saturating_add(EXPRESS_WITHIN_MS));
    let is_new = |giver: &String, gift: &Gift| {
        txn.kind == Kind::Match || before.get(giver).map(|g| g.gift_id) != Some(gift.gift_id)
    };
    let gifts = txn
        .gifts
        .iter()
        .filter(|(giver, gift)| is_new(giver, gift))
        .map(|(_, gift)| {
            let nice = txn
                .participants
                .get(&gift.receiver)
                .is_some_and(|p| p.nice_child);
            let priority = match (express, nice) {
                (true, _) => Priority::Express,
                (false, true) => Priority::NiceChild,
                (false, false) => Priority::Standard,
            };
            GiftWork {
                gift_id: gift.gift_id,
                priority,
            }
        })
        .collect();
    let cancel = match txn.kind {
        Kind::Match => Vec::new(),
        Kind::Splice => before
            .iter()
            .filter(|(giver, old)| txn.gifts.get(*giver).map(|g| g.gift_id) != Some(old.gift_id))
            .map(|(_, old)| old.gift_id)
            .collect(),
    };
    Work {
        txn: txn.id,
        exchange: txn.exchange.clone(),
        epoch: txn.epoch,
        gifts,
        cancel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(id: u64, epoch: u64) -> Box<Txn> {
        let slice = Slice {
            txn: id,
            exchange: "x".into(),
            epoch,
            version: 1,
            boxes: BTreeMap::new(),
            directory: BTreeMap::new(),
            added: Vec::new(),
        };
        Box::new(Txn {
            id,
            exchange: "x".into(),
            kind: Kind::Match,
            epoch,
            no_mutual: true,
            participants: BTreeMap::new(),
            gifts: [(
                "a".to_string(),
                Gift {
                    receiver: "b".into(),
                    gift_id: 5,
                },
            )]
            .into(),
            slices: [(0, slice.clone()), (1, slice)].into(),
            decision: None,
            acked: BTreeSet::new(),
            deadline: None,
        })
    }

    fn decide(sm: &mut CoordSm, txn: u64, commit: bool, event: u64) -> CoordOut {
        sm.apply(CoordCmd::Decide {
            txn,
            commit,
            event,
            at: 0,
        })
    }

    #[test]
    fn one_transaction_at_a_time_and_the_first_decision_stands() {
        let mut sm = CoordSm::default();
        let begin = |t, event| CoordCmd::Begin {
            txn: t,
            event,
            at: 0,
        };
        assert_eq!(sm.apply(begin(txn(100, 1), 1)), CoordOut::Begun);
        assert!(matches!(
            sm.apply(begin(txn(101, 1), 2)),
            CoordOut::Refused(_)
        ));
        assert_eq!(sm.decision(100), Some(None));
        let committed = CoordOut::Decided {
            commit: true,
            epoch: 1,
        };
        assert_eq!(decide(&mut sm, 100, true, 3), committed);
        assert_eq!(decide(&mut sm, 100, false, 4), committed);
        let ex = &sm.exchanges["x"];
        assert_eq!((ex.epoch, ex.no_mutual, ex.active), (1, true, None));
        assert!(matches!(
            sm.apply(begin(txn(102, 1), 5)),
            CoordOut::Refused(_)
        ));
        let kinds: Vec<EventKind> = sm.audit("x").unwrap().iter().map(|e| e.event).collect();
        assert_eq!(kinds, [EventKind::Prepared, EventKind::Committed]);
    }

    #[test]
    fn an_unknown_transaction_is_presumed_aborted_and_never_begins() {
        let mut sm = CoordSm::default();
        let aborted = CoordOut::Decided {
            commit: false,
            epoch: 0,
        };
        assert_eq!(decide(&mut sm, 200, true, 1), aborted);
        assert_eq!(sm.decision(200), Some(Some(false)));
        let begin = CoordCmd::Begin {
            txn: txn(200, 1),
            event: 2,
            at: 0,
        };
        assert!(matches!(sm.apply(begin), CoordOut::Refused(_)));
        assert!(sm.audit("x").map_or(true, |events| events.is_empty()));
    }

    #[test]
    fn an_abort_changes_nothing_but_the_audit_and_acks_close_the_transaction() {
        let mut sm = CoordSm::default();
        sm.apply(CoordCmd::Begin {
            txn: txn(300, 1),
            event: 9,
            at: 0,
        });
        decide(&mut sm, 300, false, 8);
        assert_eq!(sm.exchanges["x"].epoch, 0);
        let ids: Vec<u64> = sm.audit("x").unwrap().iter().map(|e| e.id).collect();
        assert_eq!(ids, [8, 9], "ascending by event ID");
        assert!(sm.open.contains(&300));
        sm.apply(CoordCmd::Acked {
            txn: 300,
            regions: vec![0],
        });
        assert!(sm.open.contains(&300));
        sm.apply(CoordCmd::Acked {
            txn: 300,
            regions: vec![1],
        });
        assert!(!sm.open.contains(&300) && sm.txns[&300].slices.is_empty());
    }

    fn with_receivers(mut t: Box<Txn>, nice: &str, deadline: Option<u64>) -> Box<Txn> {
        let mut p = Participant::for_test(nice, &[], 0, 10);
        p.nice_child = true;
        t.participants.insert(nice.into(), p);
        t.gifts.insert(
            "c".into(),
            Gift {
                receiver: nice.into(),
                gift_id: 6,
            },
        );
        t.deadline = deadline;
        t
    }

    fn decide_at(sm: &mut CoordSm, txn: u64, commit: bool, at: u64) {
        sm.apply(CoordCmd::Decide {
            txn,
            commit,
            event: 50,
            at,
        });
    }

    #[test]
    fn a_commit_leaves_queue_work_with_priorities_fixed_at_the_commit() {
        let mut sm = CoordSm::new(TaskMode::AfterCommit);
        let t = with_receivers(txn(100, 1), "d", Some(1_000 + EXPRESS_WITHIN_MS + 1));
        sm.apply(CoordCmd::Begin {
            txn: t,
            event: 1,
            at: 0,
        });
        assert!(sm.work.is_empty(), "nothing before the commit");
        decide_at(&mut sm, 100, true, 1_000);
        let work = &sm.work[&0];
        let priorities: Vec<(u64, Priority)> =
            work.gifts.iter().map(|g| (g.gift_id, g.priority)).collect();
        assert_eq!(
            priorities,
            [(5, Priority::Standard), (6, Priority::NiceChild)]
        );
        assert!(sm.queued(6) && work.cancel.is_empty());
        let snapshot = serde_json::to_value(&sm).unwrap();
        let back: CoordSm = serde_json::from_value(snapshot).unwrap();
        assert_eq!(back.work, sm.work, "snapshots carry the work");
        sm.apply(CoordCmd::Enqueued { seq: 0 });
        assert!(sm.work.is_empty() && !sm.queued(6));

        let mut sm = CoordSm::new(TaskMode::AfterCommit);
        let t = with_receivers(txn(100, 1), "d", Some(1_000 + EXPRESS_WITHIN_MS));
        sm.apply(CoordCmd::Begin {
            txn: t,
            event: 1,
            at: 0,
        });
        decide_at(&mut sm, 100, true, 1_000);
        assert!(sm.work[&0]
            .gifts
            .iter()
            .all(|g| g.priority == Priority::Express));
    }

    #[test]
    fn an_abort_leaves_no_work_and_a_splice_cancels_what_it_replaced() {
        let mut sm = CoordSm::new(TaskMode::AfterCommit);
        sm.apply(CoordCmd::Begin {
            txn: txn(100, 1),
            event: 1,
            at: 0,
        });
        decide_at(&mut sm, 100, false, 1);
        assert!(sm.work.is_empty());
        sm.apply(CoordCmd::Begin {
            txn: txn(101, 1),
            event: 2,
            at: 0,
        });
        decide_at(&mut sm, 101, true, 1);
        let mut splice = txn(102, 2);
        splice.kind = Kind::Splice;
        splice.gifts.insert(
            "a".into(),
            Gift {
                receiver: "l".into(),
                gift_id: 7,
            },
        );
        splice.gifts.insert(
            "l".into(),
            Gift {
                receiver: "b".into(),
                gift_id: 8,
            },
        );
        sm.apply(CoordCmd::Begin {
            txn: splice,
            event: 3,
            at: 0,
        });
        decide_at(&mut sm, 102, true, 2);
        let work = &sm.work[&1];
        let new: Vec<u64> = work.gifts.iter().map(|g| g.gift_id).collect();
        assert_eq!((new, work.cancel.clone()), (vec![7, 8], vec![5]));

        let mut broken = CoordSm::new(TaskMode::AtBegin);
        broken.apply(CoordCmd::Begin {
            txn: txn(100, 1),
            event: 1,
            at: 0,
        });
        decide_at(&mut broken, 100, false, 1);
        assert_eq!(
            broken.work.len(),
            1,
            "the flaw: work of an aborted transaction"
        );
    }

    #[test]
    fn every_workshop_keeps_its_highest_id() {
        let mut sm = CoordSm::default();
        let id = |ms: u64, w: u16| giftid::layout::encode(ms, w, 0, giftid::layout::GiftType::Toy);
        sm.apply(CoordCmd::Begin {
            txn: txn(id(9, 1), 1),
            event: id(3, 2),
            at: 0,
        });
        assert_eq!(sm.workshops[&1], id(9, 1));
        assert_eq!(sm.workshops[&2], id(3, 2));
        assert_eq!(sm.highest_id, id(9, 1));
    }
}
