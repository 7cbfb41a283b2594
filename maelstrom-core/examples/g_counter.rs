//! A grow-only counter as a state-based CRDT.
//!
//! Each node counts the increments it accepted; every node periodically sends its whole
//! vector of per-node counts to every peer, and a node merges by taking the maximum per
//! entry. A read is the sum of the vector. Messages lost to a partition are harmless: the
//! next round carries the same (or larger) counts, so all nodes converge once the network
//! heals.

use std::collections::BTreeMap;
use std::time::Duration;

use maelstrom_core::{Context, InitError, Message, Node, Outbox, Storage};
use serde::{Deserialize, Serialize};

const GOSSIP_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Msg {
    Add { delta: u64 },
    AddOk,
    Read,
    ReadOk { value: u64 },
    Counts { counts: BTreeMap<String, u64> },
}

struct GCounter {
    counts: BTreeMap<String, u64>,
}

impl Node for GCounter {
    type Msg = Msg;
    type Timer = ();
    type Call = ();

    fn init(ctx: &Context, _: &dyn Storage, out: &mut Outbox<Self>) -> Result<Self, InitError> {
        out.set_timer(GOSSIP_EVERY, ());
        let counts = ctx.node_ids.iter().map(|id| (id.clone(), 0)).collect();
        Ok(GCounter { counts })
    }

    fn on_message(&mut self, ctx: &Context, msg: Message<Msg>, out: &mut Outbox<Self>) {
        let (from, payload) = msg.into_parts();
        match payload {
            Msg::Add { delta } => {
                *self.counts.entry(ctx.node_id.clone()).or_default() += delta;
                out.reply(&from, Msg::AddOk);
            }
            Msg::Read => {
                let value = self.counts.values().sum();
                out.reply(&from, Msg::ReadOk { value });
            }
            Msg::Counts { counts } => {
                for (node, count) in counts {
                    let mine = self.counts.entry(node).or_default();
                    *mine = (*mine).max(count);
                }
            }
            Msg::AddOk | Msg::ReadOk { .. } => {}
        }
    }

    fn on_timer(&mut self, ctx: &Context, (): (), out: &mut Outbox<Self>) {
        for peer in ctx.peers() {
            out.send(
                peer,
                Msg::Counts {
                    counts: self.counts.clone(),
                },
            );
        }
        out.set_timer(GOSSIP_EVERY, ());
    }
}

fn main() -> anyhow::Result<()> {
    maelstrom_core::run::<GCounter>()?;
    Ok(())
}
