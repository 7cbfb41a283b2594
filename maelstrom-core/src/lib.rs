//! Runtime for Maelstrom nodes.
//!
//! A node is a plain type implementing [`Node`]: a deterministic handler that takes a
//! message or a fired timer (and the current time through [`Context`]) and records what it
//! wants done in an [`Outbox`]. [`Runtime`] adds everything every node needs and no node
//! should rewrite: the `init` handshake, holding early messages, `msg_id` allocation, RPC
//! correlation with timeouts, timers, `error` replies for unknown or malformed requests and
//! panics, persistence before sending. [`run`] is the only place with I/O: a tokio driver
//! over stdin/stdout.
//!
//! ```no_run
//! use maelstrom_core::{Context, InitError, Message, Node, Outbox, Storage};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! #[serde(tag = "type", rename_all = "snake_case")]
//! enum Msg {
//!     Echo { echo: serde_json::Value },
//!     EchoOk { echo: serde_json::Value },
//! }
//!
//! struct Echo;
//!
//! impl Node for Echo {
//!     type Msg = Msg;
//!     type Timer = ();
//!     type Call = ();
//!
//!     fn init(_: &Context, _: &dyn Storage, _: &mut Outbox<Self>) -> Result<Self, InitError> {
//!         Ok(Echo)
//!     }
//!
//!     fn on_message(&mut self, _: &Context, msg: Message<Msg>, out: &mut Outbox<Self>) {
//!         let (from, payload) = msg.into_parts();
//!         if let Msg::Echo { echo } = payload {
//!             out.reply(&from, Msg::EchoOk { echo });
//!         }
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     maelstrom_core::run::<Echo>()
//! }
//! ```

pub mod driver;
pub mod error;
pub mod hash;
pub mod message;
pub mod node;
pub mod node_dir;
pub mod raft;
pub mod runtime;
pub mod sim;
pub mod storage;

pub use driver::{drive, run};
pub use error::{ErrorBody, ErrorCode};
pub use hash::stable_hash;
pub use message::{Body, Message, ParseError, RawMessage, ReplyTo};
pub use node::{
    decode_reply, Command, Context, InitError, Node, Outbox, Payload, Requester, RpcError, TimerId,
};
pub use runtime::{Now, Output, Runtime};
pub use storage::{DirStorage, MemStorage, Storage};
