//! The smallest useful node: answers `echo` with `echo_ok`, carrying the same value.
//!
//! Run it under the harness with `workloads test -w echo --bin target/release/examples/echo`.

use maelstrom_core::{Context, InitError, Message, Node, Outbox, Storage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Msg {
    Echo { echo: Value },
    EchoOk { echo: Value },
}

struct Echo;

impl Node for Echo {
    type Msg = Msg;
    type Timer = ();
    type Call = ();

    fn init(_: &Context, _: &dyn Storage, _: &mut Outbox<Self>) -> Result<Self, InitError> {
        Ok(Echo)
    }

    fn on_message(&mut self, _: &Context, msg: Message<Msg>, out: &mut Outbox<Self>) {
        let (from, payload) = msg.into_parts();
        match payload {
            Msg::Echo { echo } => out.reply(&from, Msg::EchoOk { echo }),
            // An echo_ok is an answer to nothing this node asked; nothing to do.
            Msg::EchoOk { .. } => {}
        }
    }
}

fn main() -> anyhow::Result<()> {
    maelstrom_core::run::<Echo>()?;
    Ok(())
}
