//! The coordinator's replicated state: every transaction record and decision, each
//! exchange's audit events, and the committed plaintext assignment (needed to splice in
//! late additions and to finish transactions after a failover). Nothing of it leaves the
//! coordinator group except sealed slices and `match_ok`'s participant list.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Slice;
use crate::constraints::Participant;

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordCmd {
    /// Logs a transaction and its `prepared` event (`event` is the event's gift ID).
    Begin { txn: Box<Txn>, event: u64 },
    /// Logs a decision; the first one for a transaction stands.
    Decide { txn: u64, commit: bool, event: u64 },
    /// Regions that acknowledged a transaction's decision.
    Acked { txn: u64, regions: Vec<u32> },
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
    /// The highest gift ID the command carries (0 if none).
    fn highest_id(&self) -> u64 {
        match self {
            CoordCmd::Begin { txn, event } => {
                let gifts = txn.gifts.values().map(|g| g.gift_id);
                gifts.chain([txn.id, *event]).max().unwrap_or(0)
            }
            CoordCmd::Decide { txn, event, .. } => (*txn).max(*event),
            CoordCmd::Acked { .. } => 0,
        }
    }
}

impl CoordSm {
    pub fn apply(&mut self, cmd: CoordCmd) -> CoordOut {
        self.highest_id = self.highest_id.max(cmd.highest_id());
        match cmd {
            CoordCmd::Begin { txn, event } => self.begin(*txn, event),
            CoordCmd::Decide { txn, commit, event } => self.decide(txn, commit, event),
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

    fn begin(&mut self, txn: Txn, event: u64) -> CoordOut {
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
        self.open.insert(txn.id);
        self.txns.insert(txn.id, txn);
        CoordOut::Begun
    }

    fn decide(&mut self, id: u64, commit: bool, event: u64) -> CoordOut {
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
        if commit {
            ex.epoch = txn.epoch;
            ex.participants = txn.participants.clone();
            ex.gifts = txn.gifts.clone();
            if txn.kind == Kind::Match {
                ex.no_mutual = txn.no_mutual;
            }
        }
        if txn.slices.is_empty() {
            self.open.remove(&id);
        }
        CoordOut::Decided {
            commit,
            epoch: txn.epoch,
        }
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
        })
    }

    fn decide(sm: &mut CoordSm, txn: u64, commit: bool, event: u64) -> CoordOut {
        sm.apply(CoordCmd::Decide { txn, commit, event })
    }

    #[test]
    fn one_transaction_at_a_time_and_the_first_decision_stands() {
        let mut sm = CoordSm::default();
        let begin = |t, event| CoordCmd::Begin { txn: t, event };
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
}
