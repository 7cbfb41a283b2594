//! The deterministic part of running a node: everything between a line of input and the
//! lines of output, with no I/O and no clock of its own.
//!
//! [`Runtime`] owns the node and does for it what every Maelstrom node needs:
//! - answers `init` with `init_ok` (or an error the node chose) and builds the node,
//!   after telling the storage which node it now serves;
//! - holds messages that arrive before `init` (a peer may be initialised and gossiping
//!   first) up to [`HELD_LIMIT`], then handles them in arrival order;
//! - routes replies to outstanding RPCs by `in_reply_to`, and turns a missed deadline into
//!   exactly one timeout;
//! - answers requests it cannot hand to the node: unknown `type` with code 10, a body that
//!   does not fit its type with code 12, a handler panic with code 13;
//! - carries out the node's commands in order: persists (and appends) before it sends.
//!
//! Invariants: a message is never answered on behalf of a sender it did not come from;
//! replies (`in_reply_to` set) and errors are never answered, so two nodes can never
//! ping-pong errors; bad input is logged and skipped, never fatal.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::json;

use crate::error::{ErrorBody, ErrorCode};
use crate::message::{Body, Message, ParseError, RawMessage};
use crate::node::{Command, Context, Node, Outbox, Payload, RpcError, TimerId};
use crate::storage::Storage;

/// How many messages are held while waiting for `init`.
pub const HELD_LIMIT: usize = 4096;

/// How much of an offending line a log entry quotes.
const QUOTE_LIMIT: usize = 512;

/// The time at which an event is handled.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Duration,
    pub wall: SystemTime,
}

/// What the runtime produced while handling events: bytes for stdout (whole lines only)
/// and lines for stderr.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub logs: Vec<String>,
    /// Set when the node can no longer keep its promises (a persist or an append failed);
    /// the driver must stop the process.
    pub fatal: Option<String>,
}

impl Output {
    fn log(&mut self, line: String) {
        self.logs.push(line);
    }
}

enum Deadline {
    Timer(TimerId),
    Rpc(u64),
}

struct Pending<C> {
    call: C,
    deadline: Duration,
}

#[derive(Deserialize)]
struct InitBody {
    node_id: String,
    node_ids: Vec<String>,
    /// Absent in a one-binary cluster; `null` counts as absent.
    #[serde(default)]
    services: Option<BTreeMap<String, Vec<String>>>,
}

/// A node plus the bookkeeping that makes it a Maelstrom node.
pub struct Runtime<N: Node> {
    node: Option<N>,
    ctx: Context,
    storage: Box<dyn Storage>,
    held: VecDeque<String>,
    outbox: Outbox<N>,
    pending: HashMap<u64, Pending<N::Call>>,
    timers: HashMap<TimerId, N::Timer>,
    deadlines: BinaryHeap<Reverse<(Duration, u64, DeadlineKey)>>,
    deadline_seq: u64,
}

/// `Deadline` in an orderable form for the heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DeadlineKey {
    Timer(u64),
    Rpc(u64),
}

impl From<&Deadline> for DeadlineKey {
    fn from(d: &Deadline) -> Self {
        match d {
            Deadline::Timer(id) => DeadlineKey::Timer(id.0),
            Deadline::Rpc(id) => DeadlineKey::Rpc(*id),
        }
    }
}

impl<N: Node> std::fmt::Debug for Runtime<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("node_id", &self.ctx.node_id)
            .field("initialised", &self.node.is_some())
            .field("held", &self.held.len())
            .field("pending_rpcs", &self.pending.len())
            .field("timers", &self.timers.len())
            .finish()
    }
}

impl<N: Node> Runtime<N> {
    pub fn new(storage: Box<dyn Storage>) -> Self {
        Runtime {
            node: None,
            ctx: Context::new(String::new(), Vec::new()),
            storage,
            held: VecDeque::new(),
            outbox: Outbox::new(),
            pending: HashMap::new(),
            timers: HashMap::new(),
            deadlines: BinaryHeap::new(),
            deadline_seq: 0,
        }
    }

    /// The node, once `init` has built it.
    pub fn node(&self) -> Option<&N> {
        self.node.as_ref()
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Messages waiting for `init`.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// When [`Runtime::fire_due`] next has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.deadlines.peek().map(|Reverse((at, _, _))| *at)
    }

    fn set_now(&mut self, now: Now) {
        self.ctx.now = now.mono;
        self.ctx.wall = now.wall;
    }

    /// Handles one line of input.
    pub fn handle_line(&mut self, line: &str, now: Now, out: &mut Output) {
        self.set_now(now);
        let raw = match RawMessage::parse(line) {
            Ok(raw) => raw,
            Err(err) => {
                out.log(format!("skipping input line: {err}; line: {}", quote(line)));
                return;
            }
        };
        if raw.kind == "init" {
            self.handle_init(raw, line, out);
        } else if self.node.is_none() {
            if self.held.len() < HELD_LIMIT {
                self.held.push_back(line.to_string());
            } else {
                out.log(format!(
                    "dropping {} message from {} received before init: {HELD_LIMIT} messages are already held",
                    raw.kind, raw.src
                ));
            }
        } else {
            self.dispatch(raw, line, out);
        }
    }

    fn handle_init(&mut self, raw: RawMessage, line: &str, out: &mut Output) {
        if self.node.is_some() {
            out.log(format!(
                "ignoring a second init from {}: this node is already {}",
                raw.src, self.ctx.node_id
            ));
            return;
        }
        let init: InitBody = match serde_json::from_str(raw.body_json()) {
            Ok(init) => init,
            Err(err) => {
                out.log(format!("malformed init: {err}; line: {}", quote(line)));
                let error = ErrorBody::new(
                    ErrorCode::MalformedRequest,
                    format!("malformed init: {err}"),
                );
                self.send_from(&raw.dest, &raw.src, raw.msg_id, Payload::Error(error), out);
                return;
            }
        };
        if let Err(err) = self.storage.open_node(&init.node_id) {
            let text = format!("cannot keep the files of node {}: {err}", init.node_id);
            out.log(text.clone());
            let error = ErrorBody::new(ErrorCode::Crash, text);
            self.send_from(&raw.dest, &raw.src, raw.msg_id, Payload::Error(error), out);
            return;
        }
        self.ctx.node_id = init.node_id;
        self.ctx.node_ids = init.node_ids;
        self.ctx.services = init.services.unwrap_or_default();
        let ctx = &self.ctx;
        let storage = &*self.storage;
        let outbox = &mut self.outbox;
        let built = panic::catch_unwind(AssertUnwindSafe(|| N::init(ctx, storage, outbox)));
        match built {
            Ok(Ok(node)) => {
                self.node = Some(node);
                let init_ok = Payload::Value(json!({"type": "init_ok"}));
                self.outbox.reply_to(&raw.src, raw.msg_id, init_ok);
                self.flush(out);
                out.log(format!(
                    "initialised as {} of {:?}",
                    self.ctx.node_id, self.ctx.node_ids
                ));
                while let Some(held) = self.held.pop_front() {
                    self.handle_line(
                        &held,
                        Now {
                            mono: self.ctx.now,
                            wall: self.ctx.wall,
                        },
                        out,
                    );
                }
            }
            Ok(Err(refused)) => {
                self.outbox.drain();
                out.log(format!("init refused: {refused}"));
                self.outbox
                    .reply_to(&raw.src, raw.msg_id, Payload::Error(refused.0));
                self.flush(out);
            }
            Err(panic) => {
                self.outbox.drain();
                let text = format!("init panicked: {}", panic_text(&panic));
                out.log(format!("{text}; line: {}", quote(line)));
                self.outbox.reply_to(
                    &raw.src,
                    raw.msg_id,
                    Payload::Error(ErrorBody::new(ErrorCode::Crash, text)),
                );
                self.flush(out);
            }
        }
    }

    fn dispatch(&mut self, raw: RawMessage, line: &str, out: &mut Output) {
        if let Some(in_reply_to) = raw.in_reply_to {
            if let Some(pending) = self.pending.remove(&in_reply_to) {
                let outcome = if raw.kind == "error" {
                    match serde_json::from_str::<ErrorBody>(raw.body_json()) {
                        Ok(body) => Err(RpcError::Remote(body)),
                        Err(err) => Err(RpcError::Remote(ErrorBody::new(
                            ErrorCode::Crash,
                            format!("unreadable error reply: {err}"),
                        ))),
                    }
                } else {
                    Ok(raw)
                };
                self.call_node(line, None, out, |node, ctx, outbox| {
                    node.on_reply(ctx, pending.call, outcome, outbox)
                });
                return;
            }
        }
        // A request wants an answer; replies and errors never get one, whatever happens.
        let answerable = raw.in_reply_to.is_none() && raw.kind != "error";
        let (src, msg_id) = (raw.src.clone(), raw.msg_id);
        match raw.decode::<N::Msg>() {
            Ok(msg) => {
                let requester = answerable.then(|| (msg.src.clone(), msg.body.msg_id));
                self.call_node(line, requester, out, |node, ctx, outbox| {
                    node.on_message(ctx, msg, outbox)
                });
            }
            Err(err) => {
                out.log(format!(
                    "cannot handle message: {err}; line: {}",
                    quote(line)
                ));
                let code = match err {
                    ParseError::UnknownType { .. } => ErrorCode::NotSupported,
                    _ => ErrorCode::MalformedRequest,
                };
                if answerable {
                    let text = err.to_string();
                    self.outbox
                        .reply_to(&src, msg_id, Payload::Error(ErrorBody::new(code, text)));
                    self.flush(out);
                }
            }
        }
    }

    /// Runs a handler, containing a panic: the panic is logged with the offending input,
    /// what the handler recorded before it is discarded, and a request gets code 13.
    fn call_node(
        &mut self,
        input: &str,
        requester: Option<(String, Option<u64>)>,
        out: &mut Output,
        handler: impl FnOnce(&mut N, &Context, &mut Outbox<N>),
    ) {
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let ctx = &self.ctx;
        let outbox = &mut self.outbox;
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| handler(node, ctx, outbox))) {
            self.outbox.drain();
            let text = format!("handler panicked: {}", panic_text(&panic));
            out.log(format!("{text}; input: {}", quote(input)));
            if let Some((src, msg_id)) = requester {
                let error = ErrorBody::new(ErrorCode::Crash, text);
                self.outbox.reply_to(&src, msg_id, Payload::Error(error));
            }
        }
        self.flush(out);
    }

    /// Fires every timer and RPC timeout due at `now`, earliest first.
    pub fn fire_due(&mut self, now: Now, out: &mut Output) {
        self.set_now(now);
        while let Some(Reverse((at, _, key))) = self.deadlines.peek().copied() {
            if at > now.mono {
                break;
            }
            self.deadlines.pop();
            match key {
                DeadlineKey::Timer(id) => {
                    if let Some(timer) = self.timers.remove(&TimerId(id)) {
                        self.call_node("timer", None, out, |node, ctx, outbox| {
                            node.on_timer(ctx, timer, outbox)
                        });
                    }
                }
                DeadlineKey::Rpc(msg_id) => {
                    let expired =
                        matches!(self.pending.get(&msg_id), Some(p) if p.deadline <= now.mono);
                    if expired {
                        let pending = self.pending.remove(&msg_id).expect("checked above");
                        self.call_node("rpc timeout", None, out, |node, ctx, outbox| {
                            node.on_reply(ctx, pending.call, Err(RpcError::Timeout), outbox)
                        });
                    }
                }
            }
        }
    }

    fn push_deadline(&mut self, at: Duration, deadline: Deadline) {
        self.deadline_seq += 1;
        self.deadlines.push(Reverse((
            at,
            self.deadline_seq,
            DeadlineKey::from(&deadline),
        )));
    }

    /// Carries out the recorded commands in order. A failed persist or append stops
    /// everything after it: the node must not speak once it cannot remember what it said.
    fn flush(&mut self, out: &mut Output) {
        let commands: Vec<Command<N>> = self.outbox.drain().collect();
        let src = self.ctx.node_id.clone();
        for command in commands {
            if out.fatal.is_some() {
                return;
            }
            match command {
                Command::Send {
                    dest,
                    msg_id,
                    in_reply_to,
                    payload,
                } => {
                    self.write(&src, dest, Some(msg_id), in_reply_to, payload, out);
                }
                Command::Rpc {
                    dest,
                    msg_id,
                    payload,
                    timeout,
                    call,
                } => {
                    let deadline = self.ctx.now + timeout;
                    self.pending.insert(msg_id, Pending { call, deadline });
                    self.push_deadline(deadline, Deadline::Rpc(msg_id));
                    self.write(&src, dest, Some(msg_id), None, payload, out);
                }
                Command::SetTimer { id, after, timer } => {
                    self.timers.insert(id, timer);
                    self.push_deadline(self.ctx.now + after, Deadline::Timer(id));
                }
                Command::CancelTimer(id) => {
                    self.timers.remove(&id);
                }
                Command::Persist { name, bytes } => {
                    if let Err(err) = self.storage.store(&name, &bytes) {
                        let text = format!("cannot persist {name:?}: {err}");
                        out.log(text.clone());
                        out.fatal = Some(text);
                    }
                }
                Command::Append { name, bytes } => {
                    if let Err(err) = self.storage.append(&name, &bytes) {
                        let text = format!("cannot append to {name:?}: {err}");
                        out.log(text.clone());
                        out.fatal = Some(text);
                    }
                }
            }
        }
    }

    fn send_from(
        &mut self,
        src: &str,
        dest: &str,
        in_reply_to: Option<u64>,
        payload: Payload<N::Msg>,
        out: &mut Output,
    ) {
        if in_reply_to.is_some() {
            self.write(src, dest.to_string(), None, in_reply_to, payload, out);
        }
    }

    fn write(
        &mut self,
        src: &str,
        dest: String,
        msg_id: Option<u64>,
        in_reply_to: Option<u64>,
        payload: Payload<N::Msg>,
        out: &mut Output,
    ) {
        let mut body = Body::new(payload);
        body.msg_id = msg_id;
        body.in_reply_to = in_reply_to;
        let msg = Message {
            src: src.to_string(),
            dest,
            body,
        };
        let start = out.stdout.len();
        match serde_json::to_writer(&mut out.stdout, &msg) {
            Ok(()) => out.stdout.push(b'\n'),
            Err(err) => {
                // A payload that cannot be JSON (a map with non-string keys) is a node bug;
                // writing half a line would corrupt the stream for everyone.
                out.stdout.truncate(start);
                out.log(format!("cannot serialize a message to {}: {err}", msg.dest));
            }
        }
    }
}

fn quote(line: &str) -> String {
    if line.len() <= QUOTE_LIMIT {
        return line.to_string();
    }
    let mut end = QUOTE_LIMIT;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &line[..end], line.len())
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
