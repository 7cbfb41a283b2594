//! A linearizable key-value store on the Raft module: Maelstrom's `lin-kv` workload.
//!
//! Writes and compare-and-sets go through the log; reads are served by the leader after a
//! read-index round (a quorum confirmed its leadership after the read arrived), so no read
//! is ever stale. Any node accepts any request: a follower forwards it to the leader it
//! knows and relays the answer. Raft's persistent state is written to the working
//! directory (a [`RaftStore`]: only what changed, appended to a log file) before the
//! messages that depend on it leave, and the log is compacted into a snapshot of the map
//! every `COMPACT_EVERY` entries.
//!
//! `--flaw stale-reads|forget-vote|commit-old-terms` makes the node wrong on purpose, for
//! the harness's tests: reads from local state on any node; a vote forgotten on restart;
//! entries of older terms committed by counting replicas.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::time::Duration;

use maelstrom_core::raft::{Config, Flaw, Raft, RaftMsg, RaftStore};
use maelstrom_core::{
    Context, ErrorCode, InitError, Message, Node, Outbox, RawMessage, ReplyTo, RpcError, Storage,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const TICK: Duration = Duration::from_millis(10);
/// How long requests and Raft messages gather before one `ready` persists and sends for
/// all of them: one disk write per batch, not per message.
const BATCH: Duration = Duration::from_millis(1);
const FORWARD_TIMEOUT: Duration = Duration::from_millis(1_000);
const COMPACT_EVERY: u64 = 1_000;
/// Raft's files are `raft.meta`, `raft.snap` and `raft.log`.
const STATE_PREFIX: &str = "raft";

/// How the node is wrong on purpose, from the command line.
static FLAW: OnceLock<NodeFlaw> = OnceLock::new();

#[derive(Debug, Clone, Copy, PartialEq)]
enum NodeFlaw {
    None,
    StaleReads,
    Raft(Flaw),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Msg {
    Read {
        key: Value,
    },
    ReadOk {
        value: Value,
    },
    Write {
        key: Value,
        value: Value,
    },
    WriteOk,
    Cas {
        key: Value,
        from: Value,
        to: Value,
    },
    CasOk,
    /// Raft's own traffic between members.
    Raft {
        raft: RaftMsg<Cmd>,
    },
}

/// A change to the map, as it travels in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Cmd {
    Write { key: Value, value: Value },
    Cas { key: Value, from: Value, to: Value },
}

#[derive(Debug)]
enum Timer {
    Tick,
    Flush,
}

/// A forwarded request, answered when the leader answers.
#[derive(Debug)]
struct Forwarded(ReplyTo);

/// What a committed command did, as the client hears it.
type Outcome = Result<Msg, (ErrorCode, String)>;

struct LinKv {
    raft: Raft<Cmd>,
    store: RaftStore,
    /// The map, keyed by each key's JSON text (keys may be any JSON value).
    kv: BTreeMap<String, Value>,
    applied: u64,
    /// Log index -> (term it was proposed in, who asked).
    proposals: HashMap<u64, (u64, ReplyTo)>,
    /// Read-index id -> (who asked, key).
    reads: HashMap<u64, (ReplyTo, Value)>,
    next_read: u64,
    /// A `Flush` timer is set: what arrives meanwhile joins its batch.
    flush_armed: bool,
    flaw: NodeFlaw,
}

fn key_of(key: &Value) -> String {
    key.to_string()
}

fn millis(ctx: &Context) -> u64 {
    ctx.now.as_millis() as u64
}

impl LinKv {
    fn apply(&mut self, cmd: &Cmd) -> Outcome {
        match cmd {
            Cmd::Write { key, value } => {
                self.kv.insert(key_of(key), value.clone());
                Ok(Msg::WriteOk)
            }
            Cmd::Cas { key, from, to } => match self.kv.get_mut(&key_of(key)) {
                None => Err((
                    ErrorCode::KeyDoesNotExist,
                    format!("key {key} does not exist"),
                )),
                Some(current) if current == from => {
                    *current = to.clone();
                    Ok(Msg::CasOk)
                }
                Some(current) => Err((
                    ErrorCode::PreconditionFailed,
                    format!("expected {from}, but had {current}"),
                )),
            },
        }
    }

    fn read(&self, key: &Value) -> Outcome {
        match self.kv.get(&key_of(key)) {
            Some(value) => Ok(Msg::ReadOk {
                value: value.clone(),
            }),
            None => Err((
                ErrorCode::KeyDoesNotExist,
                format!("key {key} does not exist"),
            )),
        }
    }

    fn answer(out: &mut Outbox<Self>, to: &ReplyTo, outcome: Outcome) {
        match outcome {
            Ok(msg) => out.reply(to, msg),
            Err((code, text)) => out.reply_error(to, code, text),
        }
    }

    /// Carries out what Raft asks for: persist first, then send, apply and answer.
    fn drive(&mut self, out: &mut Outbox<Self>) {
        let ready = self.raft.ready();
        if ready.persist {
            self.store.save(&self.raft, &ready.changes, out);
        }
        for (to, raft) in ready.messages {
            out.send(to, Msg::Raft { raft });
        }
        if let Some((index, data)) = ready.install {
            self.kv = serde_json::from_value(data).unwrap_or_default();
            self.applied = index;
        }
        for entry in ready.committed {
            if entry.index <= self.applied {
                continue;
            }
            self.applied = entry.index;
            let outcome = entry.command.as_ref().map(|cmd| self.apply(cmd));
            if let Some((term, to)) = self.proposals.remove(&entry.index) {
                match outcome {
                    Some(outcome) if term == entry.term => Self::answer(out, &to, outcome),
                    // Another leader's entry took the index: ours never happened.
                    _ => out.reply_error(
                        &to,
                        ErrorCode::TemporarilyUnavailable,
                        "leadership changed before the write committed",
                    ),
                }
            }
        }
        for id in ready.reads {
            if let Some((to, key)) = self.reads.remove(&id) {
                let outcome = self.read(&key);
                Self::answer(out, &to, outcome);
            }
        }
        for id in ready.failed_reads {
            if let Some((to, _)) = self.reads.remove(&id) {
                out.reply_error(&to, ErrorCode::TemporarilyUnavailable, "lost leadership");
            }
        }
        if self.applied >= self.raft.log().snapshot_index + COMPACT_EVERY {
            let data = serde_json::to_value(&self.kv).unwrap_or(Value::Null);
            self.raft.compact(self.applied, data);
        }
    }

    /// Forwards a client's request to the leader, or refuses it when none is known.
    fn forward(&mut self, ctx: &Context, from: ReplyTo, msg: Msg, out: &mut Outbox<Self>) {
        let leader = self.raft.leader().map(str::to_string);
        match leader {
            // A request another node forwarded is not passed on again: no loops.
            Some(leader) if leader != ctx.node_id && !ctx.node_ids.contains(&from.src) => {
                out.rpc(leader, msg, FORWARD_TIMEOUT, Forwarded(from));
            }
            _ => out.reply_error(&from, ErrorCode::TemporarilyUnavailable, "no leader known"),
        }
    }
}

impl Node for LinKv {
    type Msg = Msg;
    type Timer = Timer;
    type Call = Forwarded;

    fn init(
        ctx: &Context,
        storage: &dyn Storage,
        out: &mut Outbox<Self>,
    ) -> Result<Self, InitError> {
        let flaw = *FLAW.get().unwrap_or(&NodeFlaw::None);
        let (store, state) = RaftStore::load::<Cmd>(storage, STATE_PREFIX)
            .map_err(|e| InitError::new(e.to_string()))?;
        let config = Config {
            flaw: match flaw {
                NodeFlaw::Raft(f) => f,
                _ => Flaw::None,
            },
            ..Config::default()
        };
        let seed = ctx.wall_ms() ^ ctx.now.as_nanos() as u64;
        let raft = Raft::new(
            &ctx.node_id,
            &ctx.node_ids,
            config,
            state,
            millis(ctx),
            seed,
        );
        out.set_timer(TICK, Timer::Tick);
        let mut node = LinKv {
            raft,
            store,
            kv: BTreeMap::new(),
            applied: 0,
            proposals: HashMap::new(),
            reads: HashMap::new(),
            next_read: 0,
            flush_armed: false,
            flaw,
        };
        node.drive(out);
        Ok(node)
    }

    fn on_message(&mut self, ctx: &Context, msg: Message<Msg>, out: &mut Outbox<Self>) {
        let src = msg.src.clone();
        let (from, payload) = msg.into_parts();
        match payload {
            Msg::Raft { raft } => self.raft.step(millis(ctx), &src, raft),
            Msg::Read { key } if self.flaw == NodeFlaw::StaleReads => {
                let outcome = self.read(&key);
                Self::answer(out, &from, outcome);
            }
            Msg::Read { key } => {
                self.next_read += 1;
                match self.raft.read_index(self.next_read) {
                    Ok(()) => {
                        self.reads.insert(self.next_read, (from, key));
                    }
                    Err(_) => self.forward(ctx, from, Msg::Read { key }, out),
                }
            }
            Msg::Write { key, value } => self.propose(ctx, from, Cmd::Write { key, value }, out),
            Msg::Cas {
                key,
                from: a,
                to: b,
            } => self.propose(
                ctx,
                from,
                Cmd::Cas {
                    key,
                    from: a,
                    to: b,
                },
                out,
            ),
            Msg::ReadOk { .. } | Msg::WriteOk | Msg::CasOk => {}
        }
        if !self.flush_armed {
            self.flush_armed = true;
            out.set_timer(BATCH, Timer::Flush);
        }
    }

    fn on_timer(&mut self, ctx: &Context, timer: Timer, out: &mut Outbox<Self>) {
        match timer {
            Timer::Tick => {
                self.raft.tick(millis(ctx));
                self.drive(out);
                out.set_timer(TICK, Timer::Tick);
            }
            Timer::Flush => {
                self.flush_armed = false;
                self.drive(out);
            }
        }
    }

    fn on_reply(
        &mut self,
        _ctx: &Context,
        Forwarded(to): Forwarded,
        reply: Result<RawMessage, RpcError>,
        out: &mut Outbox<Self>,
    ) {
        out.relay(&to, reply);
    }
}

impl LinKv {
    fn propose(&mut self, ctx: &Context, from: ReplyTo, cmd: Cmd, out: &mut Outbox<Self>) {
        let term = self.raft.term();
        match self.raft.propose(cmd.clone()) {
            Ok(index) => {
                self.proposals.insert(index, (term, from));
            }
            Err(_) => {
                let msg = match cmd {
                    Cmd::Write { key, value } => Msg::Write { key, value },
                    Cmd::Cas { key, from, to } => Msg::Cas { key, from, to },
                };
                self.forward(ctx, from, msg, out);
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flaw = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => NodeFlaw::None,
        ["--flaw", "stale-reads"] => NodeFlaw::StaleReads,
        ["--flaw", "forget-vote"] => NodeFlaw::Raft(Flaw::ForgetVote),
        ["--flaw", "commit-old-terms"] => NodeFlaw::Raft(Flaw::CommitOldTerms),
        _ => anyhow::bail!(
            "usage: lin-kv [--flaw stale-reads|forget-vote|commit-old-terms]; got {args:?}"
        ),
    };
    let _ = FLAW.set(flaw);
    maelstrom_core::run::<LinKv>()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Whole lin-kv nodes in one process (`sim::Cluster`), with chosen messages
    //! duplicated, delayed or lost on the way between nodes.

    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use maelstrom_core::sim::{replies_by_request, Cluster};
    use serde_json::{json, Value};

    const LATENCY: Duration = Duration::from_millis(1);

    fn body_of(raw: &maelstrom_core::RawMessage) -> Value {
        serde_json::from_str(raw.body_json()).unwrap_or(Value::Null)
    }

    /// Sends `body` from `client` to node `i` and runs until its answer arrives.
    fn call(c: &mut Cluster<super::LinKv>, client: &str, i: usize, body: Value) -> Value {
        let id = c.request(client, i, body);
        let until = c.now() + Duration::from_secs(3);
        while c.now() < until {
            c.run_for(Duration::from_millis(10));
            let inbox = c.take_inbox();
            if let Some(reply) = replies_by_request(&inbox).remove(&(client.to_string(), id)) {
                return reply;
            }
        }
        panic!("no answer to {client}'s request {id}");
    }

    /// The leader, found by the node a write sent to n0 is passed on to.
    fn leader(c: &mut Cluster<super::LinKv>, forwarded_to: &Rc<RefCell<Option<String>>>) -> usize {
        let reply = call(c, "c1", 0, json!({"type": "write", "key": 1, "value": 2}));
        assert_eq!(reply["type"], "write_ok", "{reply}");
        let to = forwarded_to.borrow().clone();
        to.map_or(0, |name| c.names().iter().position(|n| *n == name).unwrap())
    }

    /// Issue 20: a forwarded cas is duplicated, the first copy's answer is lost, and the
    /// second copy reaches the leader after the first applied.
    fn duplicated_forwarded_cas() -> (Value, Value) {
        let mut c: Cluster<super::LinKv> = Cluster::new(3, LATENCY);
        c.run_for(Duration::from_secs(2));
        let forwarded_to = Rc::new(RefCell::new(None));
        let cas_id = Rc::new(RefCell::new(None::<u64>));
        let (fwd, cas) = (forwarded_to.clone(), cas_id.clone());
        c.set_wire_rule(move |raw| {
            let body = body_of(raw);
            match body["type"].as_str() {
                Some("write") => {
                    *fwd.borrow_mut() = Some(raw.dest.clone());
                    None
                }
                // Two copies, the second 50 ms late.
                Some("cas") => {
                    *cas.borrow_mut() = body["msg_id"].as_u64();
                    Some(vec![LATENCY, LATENCY + Duration::from_millis(50)])
                }
                // The first copy's answer is lost.
                _ if body["in_reply_to"].as_u64().is_some()
                    && body["in_reply_to"].as_u64() == *cas.borrow() =>
                {
                    cas.borrow_mut().take();
                    Some(vec![])
                }
                _ => None,
            }
        });
        let leader = leader(&mut c, &forwarded_to);
        let follower = (leader + 1) % 3;
        let cas = json!({"type": "cas", "key": 1, "from": 2, "to": 0});
        let reply = call(&mut c, "c2", follower, cas);
        let read = call(&mut c, "c3", leader, json!({"type": "read", "key": 1}));
        (reply, read)
    }

    #[test]
    fn a_duplicated_forwarded_cas_runs_twice_and_reports_its_own_effect_as_failure() {
        let (reply, read) = duplicated_forwarded_cas();
        assert_eq!(read["value"], 0, "{read}");
        // The lost update: the cas took effect, yet its client hears a definite failure.
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["code"], 22, "{reply}");
    }
}
