//! The node abstraction: a deterministic state machine with no I/O.
//!
//! A node sees the world only through its handler arguments: a [`Context`] (who it is, who
//! its peers are, what time it is) and one event (a message, a fired timer or the outcome
//! of an RPC). It answers by recording commands in an [`Outbox`]. Nothing in a node reads a
//! clock, touches stdin or spawns a task, so a unit test or a simulator can drive it
//! directly and replay it exactly.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ErrorBody, ErrorCode};
use crate::message::{Message, RawMessage, ReplyTo};
use crate::storage::Storage;

/// What a node knows about itself and the moment it is handling.
#[derive(Debug, Clone)]
pub struct Context {
    pub node_id: String,
    /// Every node of the cluster, this one included, in Maelstrom's order.
    pub node_ids: Vec<String>,
    /// Every service of a cluster of several binaries, by name, with its nodes in order
    /// (`init`'s optional `services` field); empty when `init` has none, as in a
    /// one-binary cluster.
    pub services: BTreeMap<String, Vec<String>>,
    /// Monotonic time since the runtime started; timers and RPC timeouts use this.
    pub now: Duration,
    /// The wall clock as the node's host reports it (it may jump).
    pub wall: SystemTime,
}

impl Context {
    pub fn new(node_id: impl Into<String>, node_ids: Vec<String>) -> Self {
        Context {
            node_id: node_id.into(),
            node_ids,
            services: BTreeMap::new(),
            now: Duration::ZERO,
            wall: UNIX_EPOCH,
        }
    }

    /// Every node but this one.
    pub fn peers(&self) -> impl Iterator<Item = &str> {
        self.node_ids
            .iter()
            .map(String::as_str)
            .filter(move |id| *id != self.node_id)
    }

    /// Every node of the cluster: this service's and every other service's. A request
    /// from one of them comes from a node, not from a Maelstrom client: a node restarts
    /// and numbers its `msg_id`s from 1 again, so client sessions must not track it.
    pub fn cluster_nodes(&self) -> Vec<String> {
        let others = self.services.values().flatten();
        let mut all: Vec<String> = self.node_ids.iter().chain(others).cloned().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The nodes of service `name` (none when `init` named no such service).
    pub fn service(&self, name: &str) -> &[String] {
        self.services.get(name).map_or(&[], Vec::as_slice)
    }

    /// Milliseconds since the Unix epoch on the wall clock; 0 if the clock is before it.
    pub fn wall_ms(&self) -> u64 {
        self.wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// Milliseconds of the monotonic clock ([`Context::now`]).
    pub fn now_ms(&self) -> u64 {
        self.now.as_millis() as u64
    }

    /// A seed for randomness that differs between nodes' starts and between the `salt`s
    /// one node uses (such as its Raft groups' election timers).
    pub fn seed(&self, salt: u64) -> u64 {
        self.wall_ms() ^ self.now.as_nanos() as u64 ^ salt << 32
    }
}

/// A Maelstrom node's protocol logic.
///
/// `Msg` is the node's message enum, tagged with `#[serde(tag = "type")]`: every request it
/// accepts and every message it sends to peers or clients. `Timer` says what a timer was
/// for and `Call` what an outstanding RPC was for; both come back to the node unchanged.
pub trait Node: Sized {
    type Msg: Serialize + DeserializeOwned + Debug;
    type Timer: Debug;
    type Call: Debug;

    /// Builds the node once `init` has arrived. An error is sent back as the `init` reply
    /// and the node stays uninitialised, waiting for a better `init`.
    fn init(
        ctx: &Context,
        storage: &dyn Storage,
        out: &mut Outbox<Self>,
    ) -> Result<Self, InitError>;

    /// Handles a request or a peer message that is not a reply to one of this node's RPCs.
    fn on_message(&mut self, ctx: &Context, msg: Message<Self::Msg>, out: &mut Outbox<Self>);

    fn on_timer(&mut self, _ctx: &Context, _timer: Self::Timer, _out: &mut Outbox<Self>) {}

    /// The outcome of an RPC made with [`Outbox::rpc`]: the reply, an
    /// `error` reply, or a timeout. Exactly one outcome arrives per call.
    fn on_reply(
        &mut self,
        _ctx: &Context,
        _call: Self::Call,
        _reply: Result<RawMessage, RpcError>,
        _out: &mut Outbox<Self>,
    ) {
    }
}

/// Why `init` was refused; becomes the text of the error reply.
#[derive(Debug, Clone, PartialEq)]
pub struct InitError(pub ErrorBody);

impl InitError {
    pub fn new(text: impl Into<String>) -> Self {
        InitError(ErrorBody::new(ErrorCode::MalformedRequest, text))
    }
}

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for InitError {}

/// Why an RPC produced no ordinary reply.
#[derive(Debug, Clone, PartialEq)]
pub enum RpcError {
    /// No reply within the timeout; the request may or may not have taken effect.
    Timeout,
    /// The peer answered with an `error` body.
    Remote(ErrorBody),
}

impl RpcError {
    /// True when the failure proves the request had no effect.
    pub fn is_definite(&self) -> bool {
        match self {
            RpcError::Timeout => false,
            RpcError::Remote(body) => body.code.is_definite(),
        }
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::Timeout => write!(f, "RPC timed out"),
            RpcError::Remote(body) => std::fmt::Display::fmt(body, f),
        }
    }
}

impl std::error::Error for RpcError {}

/// An RPC's reply decoded as the node's message type `P`; a reply that does not decode is
/// a crash error (13) saying why, as if the peer had answered with it.
pub fn decode_reply<P: DeserializeOwned>(
    reply: Result<RawMessage, RpcError>,
) -> Result<P, RpcError> {
    let raw = reply?;
    raw.decode::<P>().map(|m| m.body.payload).map_err(|e| {
        RpcError::Remote(ErrorBody::new(
            ErrorCode::Crash,
            format!("malformed reply: {e}"),
        ))
    })
}

/// Identifies a timer so that it can be cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);

/// What goes on the wire: a node message, a KV request, or an error.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload<M> {
    Msg(M),
    Error(ErrorBody),
    /// Any JSON object with a `type`, for bodies outside the node's own enum.
    Value(serde_json::Value),
}

impl<M: Serialize> Serialize for Payload<M> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(tag = "type", rename = "error")]
        struct Tagged<'a> {
            #[serde(flatten)]
            error: &'a ErrorBody,
        }
        match self {
            Payload::Msg(msg) => msg.serialize(serializer),
            Payload::Error(error) => Tagged { error }.serialize(serializer),
            Payload::Value(value) => value.serialize(serializer),
        }
    }
}

/// Something that can be answered: who sent it and its `msg_id`.
pub trait Requester {
    fn requester(&self) -> (&str, Option<u64>);
}

impl<P> Requester for Message<P> {
    fn requester(&self) -> (&str, Option<u64>) {
        (&self.src, self.body.msg_id)
    }
}

impl Requester for ReplyTo {
    fn requester(&self) -> (&str, Option<u64>) {
        (&self.src, self.msg_id)
    }
}

/// One thing a handler asked for, in the order it asked.
#[derive(Debug)]
pub enum Command<N: Node> {
    /// Send a message. `msg_id` is already allocated.
    Send {
        dest: String,
        msg_id: u64,
        in_reply_to: Option<u64>,
        payload: Payload<N::Msg>,
    },
    /// Send a request and report its outcome to [`Node::on_reply`] with `call`.
    Rpc {
        dest: String,
        msg_id: u64,
        payload: Payload<N::Msg>,
        timeout: Duration,
        call: N::Call,
    },
    SetTimer {
        id: TimerId,
        after: Duration,
        timer: N::Timer,
    },
    CancelTimer(TimerId),
    /// Durably store `bytes` under `name` before anything recorded after this command is
    /// sent, so that a restarted node keeps the promises its messages made.
    Persist {
        name: String,
        bytes: Vec<u8>,
    },
    /// Durably add `bytes` at the end of the file `name` (creating it) before anything
    /// recorded after this command is sent: a log grows by its new records instead of being
    /// rewritten whole.
    Append {
        name: String,
        bytes: Vec<u8>,
    },
}

/// The commands a handler records, plus the counters that name messages and timers.
///
/// The counters live here, not in the runtime, so that a node driven directly by a test
/// gets the same ids it would get in production.
#[derive(Debug)]
pub struct Outbox<N: Node> {
    commands: Vec<Command<N>>,
    next_msg_id: u64,
    next_timer_id: u64,
}

impl<N: Node> Default for Outbox<N> {
    fn default() -> Self {
        Outbox {
            commands: Vec::new(),
            next_msg_id: 1,
            next_timer_id: 1,
        }
    }
}

impl<N: Node> Outbox<N> {
    pub fn new() -> Self {
        Self::default()
    }

    fn msg_id(&mut self) -> u64 {
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        id
    }

    /// Sends a message that expects no reply.
    pub fn send(&mut self, dest: impl Into<String>, msg: N::Msg) -> u64 {
        let msg_id = self.msg_id();
        self.commands.push(Command::Send {
            dest: dest.into(),
            msg_id,
            in_reply_to: None,
            payload: Payload::Msg(msg),
        });
        msg_id
    }

    /// Answers `request` (a [`Message`] or a [`ReplyTo`] kept from one). A request without
    /// a `msg_id` wants no answer, so none is sent.
    pub fn reply(&mut self, request: &impl Requester, msg: N::Msg) {
        let (src, msg_id) = request.requester();
        self.reply_to(src, msg_id, Payload::Msg(msg));
    }

    /// Answers `request` with an `error` body.
    pub fn reply_error(
        &mut self,
        request: &impl Requester,
        code: ErrorCode,
        text: impl Into<String>,
    ) {
        let (src, msg_id) = request.requester();
        self.reply_to(src, msg_id, Payload::Error(ErrorBody::new(code, text)));
    }

    /// Answers a request known only by its sender and `msg_id`, for replies that are sent
    /// later than the handler that received the request.
    pub fn reply_to(&mut self, dest: &str, in_reply_to: Option<u64>, payload: Payload<N::Msg>) {
        let Some(in_reply_to) = in_reply_to else {
            return;
        };
        let msg_id = self.msg_id();
        self.commands.push(Command::Send {
            dest: dest.to_string(),
            msg_id,
            in_reply_to: Some(in_reply_to),
            payload,
        });
    }

    /// Passes the outcome of a request this node passed on back to the requester it came
    /// from: the reply as it came, the remote error, or a timeout error (indefinite: the
    /// request may still take effect).
    pub fn relay(&mut self, to: &ReplyTo, reply: Result<RawMessage, RpcError>) {
        match reply {
            Ok(raw) => self.relay_body(to, raw.into_value().body.payload),
            Err(RpcError::Remote(error)) => {
                self.reply_to(&to.src, to.msg_id, Payload::Error(error))
            }
            Err(RpcError::Timeout) => self.reply_error(
                to,
                ErrorCode::Timeout,
                "the node this request was passed on to did not answer in time",
            ),
        }
    }

    /// Answers `to` with a reply body another node wrote, under this node's own ids.
    pub fn relay_body(&mut self, to: &ReplyTo, mut body: serde_json::Value) {
        if let Some(fields) = body.as_object_mut() {
            fields.remove("msg_id");
            fields.remove("in_reply_to");
        }
        self.reply_to(&to.src, to.msg_id, Payload::Value(body));
    }

    /// Sends a request whose outcome comes back to [`Node::on_reply`] tagged with `call`.
    pub fn rpc(
        &mut self,
        dest: impl Into<String>,
        msg: N::Msg,
        timeout: Duration,
        call: N::Call,
    ) -> u64 {
        self.rpc_payload(dest.into(), Payload::Msg(msg), timeout, call)
    }

    /// Sends a request whose body is any JSON object with a `type` (a request of another
    /// service's protocol); its outcome comes back to [`Node::on_reply`] with `call`.
    pub fn rpc_value(
        &mut self,
        dest: impl Into<String>,
        body: serde_json::Value,
        timeout: Duration,
        call: N::Call,
    ) -> u64 {
        self.rpc_payload(dest.into(), Payload::Value(body), timeout, call)
    }

    pub(crate) fn rpc_payload(
        &mut self,
        dest: String,
        payload: Payload<N::Msg>,
        timeout: Duration,
        call: N::Call,
    ) -> u64 {
        let msg_id = self.msg_id();
        self.commands.push(Command::Rpc {
            dest,
            msg_id,
            payload,
            timeout,
            call,
        });
        msg_id
    }

    /// Fires `timer` after `after` (measured on [`Context::now`]).
    pub fn set_timer(&mut self, after: Duration, timer: N::Timer) -> TimerId {
        let id = TimerId(self.next_timer_id);
        self.next_timer_id += 1;
        self.commands.push(Command::SetTimer { id, after, timer });
        id
    }

    /// Cancels a timer; cancelling one that already fired is harmless.
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.commands.push(Command::CancelTimer(id));
    }

    /// Stores a small file durably before any later command takes effect.
    pub fn persist(&mut self, name: impl Into<String>, bytes: Vec<u8>) {
        self.commands.push(Command::Persist {
            name: name.into(),
            bytes,
        });
    }

    /// Appends to a file durably before any later command takes effect; a crash may leave
    /// a prefix of `bytes`, so what is appended must be readable when torn.
    pub fn append(&mut self, name: impl Into<String>, bytes: Vec<u8>) {
        self.commands.push(Command::Append {
            name: name.into(),
            bytes,
        });
    }

    /// The recorded commands, leaving the outbox empty (its counters keep counting).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Command<N>> {
        self.commands.drain(..)
    }

    pub fn commands(&self) -> &[Command<N>] {
        &self.commands
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The node messages sent to `dest` so far, for tests that drive a node directly.
    pub fn sent_to(&self, dest: &str) -> Vec<&N::Msg> {
        self.commands
            .iter()
            .filter_map(|command| match command {
                Command::Send {
                    dest: d,
                    payload: Payload::Msg(msg),
                    ..
                }
                | Command::Rpc {
                    dest: d,
                    payload: Payload::Msg(msg),
                    ..
                } if d == dest => Some(msg),
                _ => None,
            })
            .collect()
    }
}
