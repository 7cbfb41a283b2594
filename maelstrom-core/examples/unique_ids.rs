//! Globally unique IDs without coordination: the node's id plus a local counter.
//!
//! Passes Maelstrom's `unique-ids` workload under any partition, since no message ever
//! crosses the network between nodes.

use maelstrom_core::{Context, InitError, Message, Node, Outbox, Storage};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Msg {
    Generate,
    GenerateOk { id: String },
}

struct UniqueIds {
    node_id: String,
    next: u64,
}

impl Node for UniqueIds {
    type Msg = Msg;
    type Timer = ();
    type Call = ();

    fn init(ctx: &Context, _: &dyn Storage, _: &mut Outbox<Self>) -> Result<Self, InitError> {
        Ok(UniqueIds {
            node_id: ctx.node_id.clone(),
            next: 0,
        })
    }

    fn on_message(&mut self, _: &Context, msg: Message<Msg>, out: &mut Outbox<Self>) {
        if let Msg::Generate = msg.body.payload {
            let id = format!("{}-{}", self.node_id, self.next);
            self.next += 1;
            out.reply(&msg, Msg::GenerateOk { id });
        }
    }
}

fn main() -> anyhow::Result<()> {
    maelstrom_core::run::<UniqueIds>()?;
    Ok(())
}
