//! The replicated state machines of the matcher's Raft groups: one per region
//! ([`region::RegionSm`]: registrations and sealed boxes) and the coordinator's
//! ([`coord::CoordSm`]: every transaction record, decision and the plaintext assignment).
//! One [`maelstrom_core::raft::Groups`] host runs both kinds, so they meet in the [`Sm`]
//! enum; a command of one kind sent to the other is refused, never applied.

pub mod coord;
pub mod region;

use std::collections::BTreeMap;

use maelstrom_core::raft::StateMachine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::constraints::Participant;

pub use coord::{
    CoordCmd, CoordExchange, CoordOut, CoordSm, Event, EventKind, Gift, GiftWork, Kind, Priority,
    TaskMode, Txn, Work, STAGES,
};
pub use region::{Lookup, Part, RegionCmd, RegionOut, RegionSm, Vote};

/// A Raft group of the matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gid {
    Region(u32),
    Coordinator,
}

/// One gift as a region holds it: its ID and the box only its giver can open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub gift_id: u64,
    pub sealed: String,
}

/// What one region receives of a transaction. Sealed boxes only: the receivers stay in
/// the coordinator's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slice {
    pub txn: u64,
    pub exchange: String,
    pub epoch: u64,
    /// The region's registrations version the coordinator read.
    pub version: u64,
    /// Giver -> box, for the givers of this region.
    pub boxes: BTreeMap<String, Sealed>,
    /// Every participant of the epoch -> its region, so that a read asked at the wrong
    /// region finds the right one. Who takes part is no secret (`match_ok` lists them).
    pub directory: BTreeMap<String, u32>,
    /// A late addition registered in this region, stored once the splice commits.
    #[serde(default)]
    pub added: Vec<Participant>,
}

/// A state machine of either kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sm {
    Region(RegionSm),
    Coord(CoordSm),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmd {
    Region(RegionCmd),
    Coord(CoordCmd),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Out {
    Region(RegionOut),
    Coord(CoordOut),
    /// A command for the other kind of group.
    WrongGroup,
}

impl StateMachine for Sm {
    type Cmd = Cmd;
    type Output = Out;

    fn apply(&mut self, cmd: Cmd) -> Out {
        match (self, cmd) {
            (Sm::Region(sm), Cmd::Region(cmd)) => Out::Region(sm.apply(cmd)),
            (Sm::Coord(sm), Cmd::Coord(cmd)) => Out::Coord(sm.apply(cmd)),
            _ => Out::WrongGroup,
        }
    }

    fn snapshot(&self) -> Result<Value, String> {
        serde_json::to_value(self).map_err(|e| e.to_string())
    }

    fn restore(&self, data: Value) -> Result<Self, String> {
        let restored: Sm = serde_json::from_value(data).map_err(|e| e.to_string())?;
        // Flaws are settings of this process, not state.
        Ok(match (self, restored) {
            (Sm::Region(now), Sm::Region(mut sm)) => {
                sm.flaw = now.flaw;
                Sm::Region(sm)
            }
            (Sm::Coord(now), Sm::Coord(mut sm)) => {
                sm.tasks = now.tasks;
                Sm::Coord(sm)
            }
            (_, sm) => sm,
        })
    }
}

/// A map with number keys as a list of pairs: messages travel inside internally tagged
/// enums, whose buffering cannot read a JSON object's keys back as numbers.
pub(crate) mod pairs {
    use std::collections::BTreeMap;

    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K, V, S>(map: &BTreeMap<K, V>, ser: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize,
        V: Serialize,
        S: Serializer,
    {
        ser.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(de: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: DeserializeOwned + Ord,
        V: DeserializeOwned,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(de)?.into_iter().collect())
    }
}
