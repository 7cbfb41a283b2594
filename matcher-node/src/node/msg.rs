//! Everything on the wire: the §2 client protocol (field names and reply types are a
//! contract other implementations follow) and the nodes' own traffic.

use maelstrom_core::raft::{GroupMsg, Origin};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::constraints::{Participant, RawBudget, Registration};
use crate::sm::{Event, Gid, Part, Slice, Sm, Vote};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    // Client requests.
    Register {
        exchange: String,
        participant: String,
        #[serde(default)]
        public_key: Option<String>,
        #[serde(default)]
        exclusions: Option<Vec<String>>,
        #[serde(default)]
        budget: Option<RawBudget>,
        /// Kept loose so that a string or a fraction gets a reason, not a parse error.
        #[serde(default)]
        region: Option<Value>,
        #[serde(default)]
        nice_child: Option<bool>,
        /// The client that sent it, set by the node that first received it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    Match {
        exchange: String,
        #[serde(default)]
        no_mutual: Option<bool>,
        /// When the gifts are due (unix ms): within 24 hours of the commit, their tasks
        /// are `express`.
        #[serde(default)]
        deadline: Option<u64>,
    },
    GetAssignment {
        exchange: String,
        participant: String,
        /// Set by a node that learned the participant's region from another region.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_region: Option<u32>,
    },
    Audit {
        exchange: String,
    },
    /// The production stage of `participant`'s gift (they are its giver), sealed to them.
    GiftStatus {
        exchange: String,
        participant: String,
    },

    // Replies to clients.
    RegisterOk {
        epoch: u64,
    },
    MatchOk {
        epoch: u64,
        participants: Vec<String>,
    },
    GetAssignmentOk {
        epoch: u64,
        gift_id: u64,
        sealed: String,
    },
    AuditOk {
        events: Vec<Event>,
    },
    GiftStatusOk {
        epoch: u64,
        gift_id: u64,
        sealed: String,
    },

    // Between nodes.
    /// A request passed on towards `group`'s leader; `hops` bounds the chain.
    Fwd {
        hops: u8,
        group: Gid,
        req: Box<Msg>,
    },
    /// Raft traffic for the groups two nodes share.
    Raft {
        msgs: Vec<(Gid, GroupMsg<Sm>)>,
    },
    /// The groups the sender leads, with their terms.
    Heartbeat {
        leads: Vec<(Gid, u64)>,
    },
    /// A region's registrations of one exchange, read at its leader.
    ReadPart {
        exchange: String,
    },
    PartOk {
        part: Part,
    },
    Prepare {
        slice: Box<Slice>,
    },
    PrepareOk {
        vote: Vote,
    },
    /// The coordinator's logged decision on a transaction.
    Decide {
        exchange: String,
        txn: u64,
        commit: bool,
    },
    /// A slice committed without a vote (the `no-2pc` flaw).
    Install {
        slice: Box<Slice>,
    },
    DecideOk {},
    /// A late addition for the coordinator to splice in; answered with `register_ok`.
    Splice {
        exchange: String,
        participant: Box<Participant>,
    },
    /// What the coordinator decided on a transaction.
    Resolve {
        txn: u64,
    },
    ResolveOk {
        /// None while undecided.
        decision: Option<bool>,
    },
}

impl Msg {
    /// The registration a `register` carries, before validation.
    pub fn registration(&self) -> Option<Registration> {
        match self {
            Msg::Register {
                participant,
                public_key,
                exclusions,
                budget,
                region,
                nice_child,
                ..
            } => Some(Registration {
                participant: participant.clone(),
                public_key: public_key.clone(),
                exclusions: exclusions.clone(),
                budget: *budget,
                region: region.clone(),
                nice_child: *nice_child,
            }),
            _ => None,
        }
    }

    /// Records the client a `register` came from: `src` itself when it is a client, or
    /// what the node that passed it on says. A client cannot claim another origin.
    pub fn stamp(&mut self, node_ids: &[String], src: &str, msg_id: Option<u64>) {
        if let Msg::Register { origin, .. } = self {
            *origin = Origin::of(node_ids, src, msg_id, origin.take());
        }
    }

    pub fn origin(&self) -> Option<&Origin> {
        match self {
            Msg::Register { origin, .. } => origin.as_ref(),
            _ => None,
        }
    }

    /// The message's `type`, for error texts.
    pub fn kind(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
            .unwrap_or_else(|| "this message".to_string())
    }
}
