//! Everything on the wire: client requests and replies, and the nodes' own traffic.

use std::collections::BTreeMap;

use maelstrom_core::raft::{GroupMsg, Origin};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::partition::{Delivery, Depths, Partition};
use crate::task::{Status, TaskId, TaskSpec};

fn default_max() -> u32 {
    1
}

fn default_lease_ms() -> u64 {
    5_000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    // Client requests.
    Enqueue {
        task: TaskSpec,
        /// The client that sent it, set by a node passing it on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    Poll {
        #[serde(default = "default_max")]
        max: u32,
        #[serde(default = "default_lease_ms")]
        lease_ms: u64,
        #[serde(default)]
        consumer: Option<String>,
        /// Set by a node stealing from one partition: take from it only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partition: Option<u32>,
        /// The client that sent it, set by a node passing it on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    Start {
        id: TaskId,
        attempt: u32,
        #[serde(default = "default_lease_ms")]
        lease_ms: u64,
        /// The client that sent it, set by a node passing it on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    Ack {
        id: TaskId,
        attempt: u32,
        /// The client that sent it, set by a node passing it on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    Nack {
        id: TaskId,
        attempt: u32,
        /// The client that sent it, set by a node passing it on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    Status {
        id: TaskId,
    },
    Dlq {},
    Replay {
        id: TaskId,
        /// The client that sent it, set by a node passing it on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    /// Withdraws a task nobody started yet.
    Cancel {
        id: TaskId,
        /// The client that sent it, set by a node passing it on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    Health {},

    // Replies.
    EnqueueOk {
        id: TaskId,
        partition: u32,
        duplicate: bool,
    },
    PollOk {
        tasks: Vec<Delivery>,
    },
    StartOk {},
    AckOk {
        duplicate: bool,
    },
    NackOk {
        dead_lettered: bool,
    },
    StatusOk {
        id: TaskId,
        status: Status,
        attempts: u32,
        max_attempts: u32,
        blocked_by: Vec<TaskId>,
    },
    DlqOk {
        tasks: Vec<DeadLetter>,
    },
    ReplayOk {},
    /// `cancelled`: the task was pending or assigned and is now cancelled; false when it
    /// had started or ended already (including an earlier cancel).
    CancelOk {
        cancelled: bool,
    },
    HealthOk(Box<Health>),

    // Between nodes.
    /// A request passed on towards its partition's leader; `hops` bounds the chain.
    Fwd {
        hops: u8,
        req: Box<Msg>,
    },
    /// Requests passed on to a leader together, each tagged by the node passing them on.
    Batch {
        reqs: Vec<(u64, Msg)>,
    },
    /// The leader's answers to a batch's requests, by tag: reply or `error` bodies.
    BatchOk {
        replies: Vec<(u64, Value)>,
    },
    /// Raft traffic for the partitions two nodes share, each message with its group.
    Raft {
        msgs: Vec<(u32, GroupMsg<Partition>)>,
    },
    /// Which partitions the sender leads and how much ready work each has.
    Heartbeat {
        leads: Vec<LeadInfo>,
    },
    /// Whether these tasks of `partition` exist and completed.
    Lookup {
        partition: u32,
        ids: Vec<TaskId>,
    },
    LookupOk {
        /// (id, completed) for each id that exists.
        found: Vec<(TaskId, bool)>,
    },
    /// One partition's dead letters.
    DlqPart {
        partition: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: TaskId,
    pub attempts: u32,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadInfo {
    pub partition: u32,
    pub term: u64,
    pub depths: Depths,
}

/// A node's view of itself and its peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub node: String,
    pub partitions: Vec<PartitionHealth>,
    /// Peer -> "alive" or "dead", by heartbeats.
    pub peers: BTreeMap<String, String>,
    /// Deliveries this node made from partitions it does not lead.
    pub stolen: u64,
    /// Requests passed on to another node.
    pub forwarded: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionHealth {
    pub partition: u32,
    /// "leader", "follower" or "candidate".
    pub role: String,
    pub leader: Option<String>,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    pub depths: Depths,
    /// Leader only: entries each follower is behind.
    pub replica_lag: BTreeMap<String, u64>,
    pub tasks: usize,
}

impl Msg {
    /// The partition a task request is about, if it is about one task.
    pub fn task_id(&self) -> Option<&TaskId> {
        match self {
            Msg::Enqueue { task, .. } => Some(&task.id),
            Msg::Start { id, .. }
            | Msg::Ack { id, .. }
            | Msg::Nack { id, .. }
            | Msg::Status { id }
            | Msg::Replay { id, .. }
            | Msg::Cancel { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The client a request that changes state came from, once a node stamped it.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            Msg::Enqueue { origin, .. }
            | Msg::Poll { origin, .. }
            | Msg::Start { origin, .. }
            | Msg::Ack { origin, .. }
            | Msg::Nack { origin, .. }
            | Msg::Replay { origin, .. }
            | Msg::Cancel { origin, .. } => origin.as_ref(),
            _ => None,
        }
    }

    /// Records the client a request came from: `src` itself when it is a client, or
    /// what the node that passed it on says. A client cannot claim another origin.
    pub fn stamp(&mut self, node_ids: &[String], src: &str, msg_id: Option<u64>) {
        if let Msg::Enqueue { origin, .. }
        | Msg::Poll { origin, .. }
        | Msg::Start { origin, .. }
        | Msg::Ack { origin, .. }
        | Msg::Nack { origin, .. }
        | Msg::Replay { origin, .. }
        | Msg::Cancel { origin, .. } = self
        {
            *origin = Origin::of(node_ids, src, msg_id, origin.take());
        }
    }
}
