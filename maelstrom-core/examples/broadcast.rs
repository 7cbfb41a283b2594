//! Fault-tolerant broadcast: every message reaches every node despite partitions.
//!
//! A node answers `broadcast` at once, then owes the message to each neighbour in the
//! topology until that neighbour acknowledges it. Owed messages are sent in batches on a
//! timer, each batch as an RPC; a batch that times out (partition, loss) stays owed and is
//! sent again on the next tick. A node that learns messages from a neighbour owes them to
//! its other neighbours. So every message eventually crosses every link of a connected
//! topology once the network heals.
//!
//! Known messages are persisted before they are acknowledged, so a node killed and
//! restarted in the same directory keeps them; having lost track of what its neighbours
//! acknowledged, it owes every known message to every other node again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use maelstrom_core::{Context, InitError, Message, Node, Outbox, RawMessage, RpcError, Storage};
use serde::{Deserialize, Serialize};

const GOSSIP_EVERY: Duration = Duration::from_millis(100);
const GOSSIP_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Msg {
    Topology {
        topology: BTreeMap<String, Vec<String>>,
    },
    TopologyOk,
    Broadcast {
        message: u64,
    },
    BroadcastOk,
    Read,
    ReadOk {
        messages: Vec<u64>,
    },
    Gossip {
        messages: Vec<u64>,
    },
    GossipOk,
}

#[derive(Debug)]
enum Timer {
    Gossip,
}

/// A batch sent to a neighbour, acknowledged or not as a whole.
#[derive(Debug)]
struct Batch {
    peer: String,
    messages: Vec<u64>,
}

struct Broadcast {
    messages: BTreeSet<u64>,
    /// Per neighbour: messages it has not acknowledged yet.
    owed: BTreeMap<String, BTreeSet<u64>>,
    /// Per neighbour: whether a batch is on its way (one at a time keeps batches large).
    in_flight: BTreeSet<String>,
}

impl Broadcast {
    /// Adds messages, owing new ones to every neighbour but the sender, and persists the
    /// set (before any acknowledgement leaves) when it grew.
    fn learn(
        &mut self,
        messages: impl IntoIterator<Item = u64>,
        from: Option<&str>,
        out: &mut Outbox<Self>,
    ) {
        let mut grew = false;
        for message in messages {
            if self.messages.insert(message) {
                grew = true;
                for (peer, owed) in self.owed.iter_mut() {
                    if Some(peer.as_str()) != from {
                        owed.insert(message);
                    }
                }
            }
        }
        if grew {
            let bytes = serde_json::to_vec(&self.messages).expect("a set of integers serializes");
            out.persist(STATE, bytes);
        }
    }
}

/// The file holding the known messages.
const STATE: &str = "messages.json";

impl Node for Broadcast {
    type Msg = Msg;
    type Timer = Timer;
    type Call = Batch;

    fn init(
        ctx: &Context,
        storage: &dyn Storage,
        out: &mut Outbox<Self>,
    ) -> Result<Self, InitError> {
        out.set_timer(GOSSIP_EVERY, Timer::Gossip);
        let messages: BTreeSet<u64> = match storage.load(STATE) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map_err(|e| InitError::new(format!("corrupt {STATE}: {e}")))?,
            Ok(None) => BTreeSet::new(),
            Err(e) => return Err(InitError::new(format!("cannot read {STATE}: {e}"))),
        };
        // Until a topology arrives, every other node is a neighbour.
        let owed = ctx
            .peers()
            .map(|p| (p.to_string(), messages.clone()))
            .collect();
        Ok(Broadcast {
            messages,
            owed,
            in_flight: BTreeSet::new(),
        })
    }

    fn on_message(&mut self, ctx: &Context, msg: Message<Msg>, out: &mut Outbox<Self>) {
        let (from, payload) = msg.into_parts();
        match payload {
            Msg::Topology { mut topology } => {
                if let Some(neighbours) = topology.remove(&ctx.node_id) {
                    let mut owed: BTreeMap<String, BTreeSet<u64>> = neighbours
                        .into_iter()
                        .filter(|n| *n != ctx.node_id)
                        .map(|n| (n, self.messages.clone()))
                        .collect();
                    // Keep what was owed already to neighbours that stay neighbours.
                    for (peer, before) in std::mem::take(&mut self.owed) {
                        if let Some(now) = owed.get_mut(&peer) {
                            now.extend(before);
                        }
                    }
                    self.owed = owed;
                }
                out.reply(&from, Msg::TopologyOk);
            }
            Msg::Broadcast { message } => {
                self.learn([message], None, out);
                out.reply(&from, Msg::BroadcastOk);
            }
            Msg::Read => {
                let messages = self.messages.iter().copied().collect();
                out.reply(&from, Msg::ReadOk { messages });
            }
            Msg::Gossip { messages } => {
                // The sender knows these already; it must not be owed them back.
                let sender = from.src.clone();
                if let Some(owed) = self.owed.get_mut(&sender) {
                    for m in &messages {
                        owed.remove(m);
                    }
                }
                self.learn(messages, Some(&sender), out);
                out.reply(&from, Msg::GossipOk);
            }
            Msg::TopologyOk | Msg::BroadcastOk | Msg::ReadOk { .. } | Msg::GossipOk => {}
        }
    }

    fn on_timer(&mut self, _: &Context, Timer::Gossip: Timer, out: &mut Outbox<Self>) {
        for (peer, owed) in &self.owed {
            if owed.is_empty() || self.in_flight.contains(peer) {
                continue;
            }
            let messages: Vec<u64> = owed.iter().copied().collect();
            let batch = Batch {
                peer: peer.clone(),
                messages: messages.clone(),
            };
            out.rpc(
                peer.clone(),
                Msg::Gossip { messages },
                GOSSIP_TIMEOUT,
                batch,
            );
            self.in_flight.insert(peer.clone());
        }
        out.set_timer(GOSSIP_EVERY, Timer::Gossip);
    }

    fn on_reply(
        &mut self,
        _: &Context,
        batch: Batch,
        reply: Result<RawMessage, RpcError>,
        _: &mut Outbox<Self>,
    ) {
        self.in_flight.remove(&batch.peer);
        if reply.is_ok() {
            if let Some(owed) = self.owed.get_mut(&batch.peer) {
                for m in &batch.messages {
                    owed.remove(m);
                }
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    maelstrom_core::run::<Broadcast>()?;
    Ok(())
}
