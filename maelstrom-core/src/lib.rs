//! Runtime for Maelstrom nodes.
//!
//! A node is a plain type implementing [`Node`]: a deterministic handler that takes a
//! message or a fired timer (and the current time through [`Context`]) and records what it
//! wants done in an [`Outbox`]. [`Runtime`] adds everything every node needs and no node
//! should rewrite: the `init` handshake, holding early messages, `msg_id` allocation, RPC
//! correlation with timeouts, timers, `error` replies for unknown or malformed requests and
//! panics. [`run`] is the only place with I/O: a tokio driver over stdin/stdout.

pub mod error;
pub mod message;

pub use error::{ErrorBody, ErrorCode};
pub use message::{Body, Message, ParseError, RawMessage};
