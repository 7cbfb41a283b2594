//! A region's replicated state: the registrations of its participants, and for each
//! exchange the committed epoch's sealed boxes of its givers plus at most one prepared
//! slice, which locks the exchange until the coordinator's decision arrives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Sealed, Slice};
use crate::constraints::Participant;

/// Decided transactions remembered per exchange, for answering repeated messages.
const DECIDED_KEPT: usize = 32;

/// One exchange as a region sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RegionExchange {
    pub participants: BTreeMap<String, Participant>,
    /// Moves with every change of `participants`: the coordinator's read is still valid
    /// at PREPARE only if the version did not move.
    pub version: u64,
    /// The newest committed epoch this region applied; 0 before any match.
    pub epoch: u64,
    pub boxes: BTreeMap<String, Sealed>,
    pub directory: BTreeMap<String, u32>,
    pub prepared: Option<Slice>,
    /// Transaction -> committed?, the newest few.
    #[serde(with = "super::pairs")]
    pub decided: BTreeMap<u64, bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionSm {
    pub region: u32,
    /// `read-at-prepare`: a prepared slice is readable at once (wrong on purpose).
    #[serde(skip)]
    pub flaw: bool,
    pub exchanges: BTreeMap<String, RegionExchange>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionCmd {
    Register {
        exchange: String,
        participant: Participant,
    },
    Prepare(Slice),
    Decide {
        exchange: String,
        txn: u64,
        commit: bool,
    },
    /// Prepare and commit at once, skipping the vote (the `no-2pc` flaw).
    Install(Slice),
}

/// A region's vote on a PREPARE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub yes: bool,
    /// The registrations changed since the coordinator read them: worth trying again.
    pub conflict: bool,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionOut {
    Registered {
        epoch: u64,
    },
    /// The exchange is matched and this participant registered with other fields.
    Conflict(String),
    /// A prepared transaction locks the exchange: nothing changed, try again.
    Locked,
    /// A new participant of a matched exchange: a splice must place them.
    Late,
    Voted(Vote),
    Decided,
}

/// A region's registrations of one exchange, as the coordinator reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub region: u32,
    pub exists: bool,
    pub version: u64,
    pub epoch: u64,
    /// A prepared transaction still waiting for its decision.
    pub locked: Option<u64>,
    pub participants: Vec<Participant>,
}

/// What a read of one participant's assignment finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found {
        epoch: u64,
        gift: Sealed,
    },
    /// A prepared slice with no decision yet: resolve it before answering.
    Pending {
        txn: u64,
    },
    /// The participant lives in another region.
    Elsewhere(u32),
    Missing(String),
}

fn yes() -> Vote {
    Vote {
        yes: true,
        conflict: false,
        why: String::new(),
    }
}

fn no(conflict: bool, why: String) -> Vote {
    Vote {
        yes: false,
        conflict,
        why,
    }
}

impl RegionSm {
    pub fn new(region: u32, flaw: bool) -> RegionSm {
        RegionSm {
            region,
            flaw,
            exchanges: BTreeMap::new(),
        }
    }

    pub fn apply(&mut self, cmd: RegionCmd) -> RegionOut {
        match cmd {
            RegionCmd::Register {
                exchange,
                participant,
            } => self.register(exchange, participant),
            RegionCmd::Prepare(slice) => RegionOut::Voted(self.prepare(slice)),
            RegionCmd::Decide {
                exchange,
                txn,
                commit,
            } => {
                self.decide(&exchange, txn, commit);
                RegionOut::Decided
            }
            RegionCmd::Install(slice) => {
                let ex = self.exchanges.entry(slice.exchange.clone()).or_default();
                let txn = slice.txn;
                install(ex, slice);
                remember(ex, txn, true);
                RegionOut::Decided
            }
        }
    }

    fn register(&mut self, exchange: String, p: Participant) -> RegionOut {
        let ex = self.exchanges.entry(exchange).or_default();
        if ex.prepared.is_some() {
            return RegionOut::Locked;
        }
        match ex.participants.get(&p.id) {
            Some(old) if *old == p => return RegionOut::Registered { epoch: ex.epoch },
            Some(_) if ex.epoch > 0 => {
                let why = format!(
                    "{} is already matched (epoch {}) with other fields",
                    p.id, ex.epoch
                );
                return RegionOut::Conflict(why);
            }
            None if ex.epoch > 0 => return RegionOut::Late,
            _ => {}
        }
        ex.participants.insert(p.id.clone(), p);
        ex.version += 1;
        RegionOut::Registered { epoch: ex.epoch }
    }

    fn prepare(&mut self, slice: Slice) -> Vote {
        let flaw = self.flaw;
        let ex = self.exchanges.entry(slice.exchange.clone()).or_default();
        if let Some(&committed) = ex.decided.get(&slice.txn) {
            return match committed {
                true => yes(),
                false => no(false, "the transaction was aborted".into()),
            };
        }
        match &ex.prepared {
            Some(p) if p.txn == slice.txn => return yes(),
            Some(p) => return no(false, format!("locked by transaction {}", p.txn)),
            None => {}
        }
        if slice.epoch != ex.epoch + 1 {
            let why = format!("epoch {} is not next after {}", slice.epoch, ex.epoch);
            return no(true, why);
        }
        if slice.version != ex.version {
            let why = format!(
                "registrations changed (version {} read, now {})",
                slice.version, ex.version
            );
            return no(true, why);
        }
        if flaw {
            install(ex, slice.clone());
        }
        ex.prepared = Some(slice);
        yes()
    }

    fn decide(&mut self, exchange: &str, txn: u64, commit: bool) {
        let Some(ex) = self.exchanges.get_mut(exchange) else {
            return;
        };
        if ex.prepared.as_ref().is_some_and(|p| p.txn == txn) {
            let slice = ex.prepared.take();
            if let (true, Some(slice)) = (commit, slice) {
                install(ex, slice);
            }
        }
        remember(ex, txn, commit);
    }

    /// The part of an exchange the coordinator builds its graph from.
    pub fn part(&self, exchange: &str) -> Part {
        let ex = self.exchanges.get(exchange);
        Part {
            region: self.region,
            exists: ex.is_some(),
            version: ex.map_or(0, |e| e.version),
            epoch: ex.map_or(0, |e| e.epoch),
            locked: ex.and_then(|e| e.prepared.as_ref().map(|p| p.txn)),
            participants: ex.map_or(Vec::new(), |e| e.participants.values().cloned().collect()),
        }
    }

    /// A participant's sealed assignment in the newest committed epoch, if this region
    /// can tell.
    pub fn lookup(&self, exchange: &str, participant: &str) -> Lookup {
        let Some(ex) = self.exchanges.get(exchange) else {
            return Lookup::Missing(format!("unknown exchange {exchange}"));
        };
        if let Some(p) = &ex.prepared {
            if !self.flaw {
                return Lookup::Pending { txn: p.txn };
            }
        }
        if ex.epoch == 0 {
            return Lookup::Missing(format!("exchange {exchange} is not matched"));
        }
        if let Some(gift) = ex.boxes.get(participant) {
            return Lookup::Found {
                epoch: ex.epoch,
                gift: gift.clone(),
            };
        }
        match ex.directory.get(participant) {
            Some(&r) if r != self.region => Lookup::Elsewhere(r),
            _ => Lookup::Missing(format!(
                "{participant} is not in the matching of {exchange}"
            )),
        }
    }

    /// Exchanges holding a prepared slice: (exchange, txn).
    pub fn prepared(&self) -> impl Iterator<Item = (&str, u64)> {
        self.exchanges
            .iter()
            .filter_map(|(name, ex)| ex.prepared.as_ref().map(|p| (name.as_str(), p.txn)))
    }
}

/// Makes a slice the exchange's readable state.
fn install(ex: &mut RegionExchange, slice: Slice) {
    ex.epoch = slice.epoch;
    ex.boxes = slice.boxes;
    ex.directory = slice.directory;
    if !slice.added.is_empty() {
        for p in slice.added {
            ex.participants.insert(p.id.clone(), p);
        }
        ex.version += 1;
    }
}

fn remember(ex: &mut RegionExchange, txn: u64, commit: bool) {
    ex.decided.insert(txn, commit);
    while ex.decided.len() > DECIDED_KEPT {
        ex.decided.pop_first();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, min: u64) -> Participant {
        let mut p = Participant::for_test(id, &[], min, 100);
        p.region = 0;
        p
    }

    fn register(sm: &mut RegionSm, id: &str, min: u64) -> RegionOut {
        sm.apply(RegionCmd::Register {
            exchange: "x".into(),
            participant: person(id, min),
        })
    }

    fn slice(txn: u64, epoch: u64, version: u64) -> Slice {
        let gift = Sealed {
            gift_id: 7,
            sealed: "box".into(),
        };
        Slice {
            txn,
            exchange: "x".into(),
            epoch,
            version,
            boxes: [("a".to_string(), gift)].into(),
            directory: [("a".to_string(), 0), ("b".to_string(), 1)].into(),
            added: Vec::new(),
        }
    }

    fn vote(sm: &mut RegionSm, s: Slice) -> Vote {
        match sm.apply(RegionCmd::Prepare(s)) {
            RegionOut::Voted(v) => v,
            other => panic!("{other:?}"),
        }
    }

    fn decide(sm: &mut RegionSm, txn: u64, commit: bool) {
        let cmd = RegionCmd::Decide {
            exchange: "x".into(),
            txn,
            commit,
        };
        assert_eq!(sm.apply(cmd), RegionOut::Decided);
    }

    #[test]
    fn registrations_move_the_version_only_when_they_change() {
        let mut sm = RegionSm::new(0, false);
        assert_eq!(
            register(&mut sm, "a", 0),
            RegionOut::Registered { epoch: 0 }
        );
        assert_eq!(
            register(&mut sm, "a", 0),
            RegionOut::Registered { epoch: 0 }
        );
        assert_eq!(sm.part("x").version, 1);
        register(&mut sm, "a", 5);
        assert_eq!(sm.part("x").version, 2, "the newer registration wins");
        assert_eq!(sm.part("x").participants[0].budget.min, 5);
        assert!(!sm.part("y").exists);
    }

    #[test]
    fn a_prepared_slice_locks_and_is_unreadable_until_committed() {
        let mut sm = RegionSm::new(0, false);
        register(&mut sm, "a", 0);
        assert!(!vote(&mut sm, slice(9, 1, 0)).yes, "stale version");
        assert!(vote(&mut sm, slice(9, 1, 0)).conflict);
        assert!(vote(&mut sm, slice(10, 1, 1)).yes);
        assert!(vote(&mut sm, slice(10, 1, 1)).yes, "a repeated PREPARE");
        assert!(!vote(&mut sm, slice(11, 1, 1)).yes, "locked by another");
        assert_eq!(register(&mut sm, "b", 0), RegionOut::Locked);
        assert_eq!(sm.lookup("x", "a"), Lookup::Pending { txn: 10 });
        assert_eq!(sm.part("x").locked, Some(10));
        decide(&mut sm, 10, true);
        assert!(matches!(
            sm.lookup("x", "a"),
            Lookup::Found { epoch: 1, .. }
        ));
        assert_eq!(sm.lookup("x", "b"), Lookup::Elsewhere(1));
        assert!(matches!(sm.lookup("x", "zed"), Lookup::Missing(_)));
        assert!(vote(&mut sm, slice(10, 1, 1)).yes, "decided: still yes");
    }

    #[test]
    fn abort_unlocks_and_keeps_the_older_state() {
        let mut sm = RegionSm::new(0, false);
        register(&mut sm, "a", 0);
        assert!(vote(&mut sm, slice(10, 1, 1)).yes);
        decide(&mut sm, 10, false);
        assert!(matches!(sm.lookup("x", "a"), Lookup::Missing(_)));
        assert!(
            !vote(&mut sm, slice(10, 1, 1)).yes,
            "an aborted txn stays aborted"
        );
        assert_eq!(
            register(&mut sm, "b", 0),
            RegionOut::Registered { epoch: 0 }
        );
    }

    #[test]
    fn after_the_match_a_new_participant_is_late_and_a_change_is_refused() {
        let mut sm = RegionSm::new(0, false);
        register(&mut sm, "a", 0);
        vote(&mut sm, slice(10, 1, 1));
        decide(&mut sm, 10, true);
        assert_eq!(
            register(&mut sm, "a", 0),
            RegionOut::Registered { epoch: 1 }
        );
        assert!(matches!(register(&mut sm, "a", 3), RegionOut::Conflict(_)));
        assert_eq!(register(&mut sm, "new", 0), RegionOut::Late);
        let mut late = slice(12, 2, 1);
        late.added = vec![person("new", 0)];
        assert!(vote(&mut sm, late).yes);
        decide(&mut sm, 12, true);
        assert_eq!(
            register(&mut sm, "new", 0),
            RegionOut::Registered { epoch: 2 }
        );
    }

    #[test]
    fn the_read_at_prepare_flaw_shows_an_undecided_slice() {
        let mut sm = RegionSm::new(0, true);
        register(&mut sm, "a", 0);
        vote(&mut sm, slice(10, 1, 1));
        assert!(matches!(
            sm.lookup("x", "a"),
            Lookup::Found { epoch: 1, .. }
        ));
    }
}
