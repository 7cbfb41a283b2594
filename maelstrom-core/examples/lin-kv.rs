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

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use maelstrom_core::raft::{Config, Flaw, GroupMsg, Groups, Origin, Outcome, StateMachine};
use maelstrom_core::raft::{Pass, Route, RouteConfig, Router};
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Msg {
    Read {
        key: Value,
    },
    ReadOk {
        value: Value,
    },
    /// `origin` is set by a node passing the request on: the client that sent it.
    Write {
        key: Value,
        value: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    WriteOk,
    Cas {
        key: Value,
        from: Value,
        to: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    CasOk,
    /// Raft's own traffic between members.
    Raft {
        raft: GroupMsg<Store>,
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
type Reply = Result<Msg, (ErrorCode, String)>;

/// The map, keyed by each key's JSON text (keys may be any JSON value).
#[derive(Debug, Default)]
struct Store(BTreeMap<String, Value>);

fn key_of(key: &Value) -> String {
    key.to_string()
}

impl StateMachine for Store {
    type Cmd = Cmd;
    type Output = Reply;

    fn apply(&mut self, cmd: Cmd) -> Reply {
        match cmd {
            Cmd::Write { key, value } => {
                self.0.insert(key_of(&key), value);
                Ok(Msg::WriteOk)
            }
            Cmd::Cas { key, from, to } => match self.0.get_mut(&key_of(&key)) {
                None => Err((
                    ErrorCode::KeyDoesNotExist,
                    format!("key {key} does not exist"),
                )),
                Some(current) if *current == from => {
                    *current = to;
                    Ok(Msg::CasOk)
                }
                Some(current) => Err((
                    ErrorCode::PreconditionFailed,
                    format!("expected {from}, but had {current}"),
                )),
            },
        }
    }

    fn snapshot(&self) -> Result<Value, String> {
        serde_json::to_value(&self.0).map_err(|e| e.to_string())
    }

    fn restore(&self, data: Value) -> Result<Self, String> {
        serde_json::from_value(data)
            .map(Store)
            .map_err(|e| e.to_string())
    }
}

impl Store {
    fn read(&self, key: &Value) -> Reply {
        match self.0.get(&key_of(key)) {
            Some(value) => Ok(Msg::ReadOk {
                value: value.clone(),
            }),
            None => Err((
                ErrorCode::KeyDoesNotExist,
                format!("key {key} does not exist"),
            )),
        }
    }
}

/// Who waits: the requester, and for a read the key.
type Waiter = (ReplyTo, Option<Value>);

struct LinKv {
    /// One group of all nodes.
    groups: Groups<(), Store, Waiter>,
    /// Where a request this node does not lead goes: the leader it knows, once (a request
    /// another node passed on is not passed on again); never parked.
    router: Router<(), Msg>,
    /// A `Flush` timer is set: what arrives meanwhile joins its batch.
    flush_armed: bool,
    flaw: NodeFlaw,
}

impl LinKv {
    fn answer(out: &mut Outbox<Self>, to: &ReplyTo, reply: Reply) {
        match reply {
            Ok(msg) => out.reply(to, msg),
            Err((code, text)) => out.reply_error(to, code, text),
        }
    }

    fn store(&self) -> &Store {
        self.groups.get(&()).expect("the one group").sm()
    }

    /// Carries out what Raft asks for: persist first, then send, apply and answer.
    fn drive(&mut self, out: &mut Outbox<Self>) {
        let round = self.groups.drive(out);
        for (to, msgs) in round.messages {
            for ((), raft) in msgs {
                out.send(to.clone(), Msg::Raft { raft });
            }
        }
        for answer in round.answers {
            let (to, key) = answer.to;
            match (answer.outcome, key) {
                (Outcome::Applied(reply), _) => Self::answer(out, &to, reply),
                (Outcome::Read, Some(key)) => {
                    let reply = self.store().read(&key);
                    Self::answer(out, &to, reply);
                }
                (Outcome::Read, None) => {}
                (Outcome::Failed(e), _) => out.reply_error(&to, e.code, e.text.unwrap_or_default()),
            }
        }
    }

    /// Forwards a client's request to the leader, or refuses it when none is known.
    fn forward(&mut self, ctx: &Context, from: ReplyTo, msg: Msg, out: &mut Outbox<Self>) {
        let hops = u8::from(self.router.passed_on(&from));
        let route = self
            .router
            .route(&self.groups, ctx.now_ms(), (), from, hops, msg);
        let (from, msg) = match route {
            Route::Pass(Pass { to, from, req, .. }) => {
                out.rpc(to, req, FORWARD_TIMEOUT, Forwarded(from));
                return;
            }
            Route::Here { from, req } | Route::Refuse { from, req } => (from, req),
            Route::Parked => return,
        };
        // A request passed on here may have copies: one may have been proposed here
        // already, or may yet be. Only a client's own request is surely refused.
        let copies = self.router.passed_on(&from);
        match self
            .groups
            .refusal(&(), origin_of(&msg), copies, "no leader known")
        {
            Outcome::Applied(reply) => Self::answer(out, &from, reply),
            Outcome::Failed(e) => out.reply_error(&from, e.code, e.text.unwrap_or_default()),
            Outcome::Read => {}
        }
    }

    fn propose(&mut self, ctx: &Context, from: ReplyTo, msg: Msg, out: &mut Outbox<Self>) {
        let copies = ctx.node_ids.contains(&from.src);
        let origin = origin_of(&msg).cloned();
        let cmd = match msg.clone() {
            Msg::Write { key, value, .. } => Cmd::Write { key, value },
            Msg::Cas { key, from, to, .. } => Cmd::Cas { key, from, to },
            _ => return,
        };
        match self
            .groups
            .propose(&(), cmd, origin, Some((from, None)), copies)
        {
            Ok((_, Some(old))) => {
                let Outcome::Failed(e) = old.outcome else {
                    return;
                };
                out.reply_error(&old.to.0, e.code, e.text.unwrap_or_default());
            }
            Ok((_, None)) => {}
            Err((to, _)) => {
                if let Some((from, _)) = to {
                    self.forward(ctx, from, msg, out);
                }
            }
        }
    }
}

fn origin_of(msg: &Msg) -> Option<&Origin> {
    match msg {
        Msg::Write { origin, .. } | Msg::Cas { origin, .. } => origin.as_ref(),
        _ => None,
    }
}

/// Stamps a write or cas with the client that sent it, as it will be logged.
fn stamp(ctx: &Context, from: &ReplyTo, msg: &mut Msg) {
    if let Msg::Write { origin, .. } | Msg::Cas { origin, .. } = msg {
        *origin = Origin::of(&ctx.node_ids, &from.src, from.msg_id, origin.take());
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
        let config = Config {
            flaw: match flaw {
                NodeFlaw::Raft(f) => f,
                _ => Flaw::None,
            },
            ..Config::default()
        };
        let seed = ctx.seed(0);
        let mut groups = Groups::new(COMPACT_EVERY);
        groups
            .add(
                (),
                &ctx.node_id,
                &ctx.node_ids,
                config,
                storage,
                STATE_PREFIX,
                ctx.now_ms(),
                seed,
                Store::default(),
            )
            .map_err(|e| InitError::new(e.to_string()))?;
        out.set_timer(TICK, Timer::Tick);
        let route = RouteConfig {
            max_hops: 1,
            park_ms: None,
            ..RouteConfig::default()
        };
        let placement = [((), ctx.node_ids.clone())].into();
        let mut node = LinKv {
            groups,
            router: Router::new(&ctx.node_id, &ctx.node_ids, placement, route),
            flush_armed: false,
            flaw,
        };
        node.drive(out);
        Ok(node)
    }

    fn on_message(&mut self, ctx: &Context, msg: Message<Msg>, out: &mut Outbox<Self>) {
        let src = msg.src.clone();
        let (from, mut payload) = msg.into_parts();
        stamp(ctx, &from, &mut payload);
        match payload {
            Msg::Raft { raft } => self.groups.step(&(), ctx.now_ms(), &src, raft),
            Msg::Read { key } if self.flaw == NodeFlaw::StaleReads => {
                let reply = self.store().read(&key);
                Self::answer(out, &from, reply);
            }
            Msg::Read { key } => {
                if let Err(((from, key), _)) = self.groups.read(&(), (from, Some(key))) {
                    let key = key.unwrap_or_default();
                    self.forward(ctx, from, Msg::Read { key }, out);
                }
            }
            msg @ (Msg::Write { .. } | Msg::Cas { .. }) => self.propose(ctx, from, msg, out),
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
                self.groups.tick(ctx.now_ms());
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
    fn a_duplicated_forwarded_cas_takes_effect_once_and_is_answered_ok() {
        let (reply, read) = duplicated_forwarded_cas();
        assert_eq!(read["value"], 0, "{read}");
        // The second copy gets the first copy's reply from the client's session.
        assert_eq!(reply["type"], "cas_ok", "{reply}");
    }

    fn is_leader(c: &Cluster<super::LinKv>, i: usize) -> bool {
        c.node(i)
            .is_some_and(|n| n.groups.get(&()).is_some_and(|g| g.raft().is_leader()))
    }

    fn leader_among(c: &Cluster<super::LinKv>, nodes: &[usize]) -> Option<usize> {
        nodes.iter().copied().find(|&i| is_leader(c, i))
    }

    /// Which links a test cuts, by phase.
    #[derive(Clone, Copy, PartialEq)]
    enum Cut {
        None,
        /// Every link of this node.
        Node(usize),
        /// The link between two nodes, and every link of a third.
        LinkAndNode(usize, usize, usize),
        /// Every link of one node, and vote requests from the other to the first.
        NodeAndVotes(usize, usize, usize),
    }

    fn cut_rule(
        names: Vec<String>,
        cut: Rc<RefCell<Cut>>,
    ) -> impl FnMut(&maelstrom_core::RawMessage) -> Option<Vec<Duration>> {
        move |raw| {
            let at = |i: usize| names[i] == raw.src || names[i] == raw.dest;
            let link = |i: usize, j: usize| at(i) && at(j);
            let drop = match *cut.borrow() {
                Cut::None => false,
                Cut::Node(i) => at(i),
                Cut::LinkAndNode(i, j, k) => link(i, j) || at(k),
                Cut::NodeAndVotes(k, voter, asker) => {
                    let body = body_of(raw);
                    let raft = &body["raft"];
                    let vote = raft.get("vote").is_some() || raft.get("pre_vote").is_some();
                    at(k) || (raw.src == names[asker] && raw.dest == names[voter] && vote)
                }
            };
            drop.then(Vec::new)
        }
    }

    /// A leader proposes three writes while cut off; another leader replaces them; the
    /// first regains leadership and proposes again at the third write's index. Every
    /// write's client is answered.
    #[test]
    fn a_second_proposal_at_the_same_index_leaves_no_request_unanswered() {
        let mut c: Cluster<super::LinKv> = Cluster::new(3, LATENCY);
        c.run_for(Duration::from_secs(2));
        let a = leader_among(&c, &[0, 1, 2]).expect("a leader");
        let cut = Rc::new(RefCell::new(Cut::Node(a)));
        c.set_wire_rule(cut_rule(c.names().to_vec(), cut.clone()));
        let xs: Vec<(String, u64)> = (0..3)
            .map(|i| {
                let client = format!("x{i}");
                let body = json!({"type": "write", "key": 7, "value": i});
                let id = c.request(&client, a, body);
                (client, id)
            })
            .collect();
        c.run_for(Duration::from_secs(3));
        let others: Vec<usize> = (0..3).filter(|&i| i != a).collect();
        let b = leader_among(&c, &others).expect("a leader without a");
        let d = others.into_iter().find(|&i| i != b).expect("a third node");
        // b brings a's log in line with its own; then b is cut off and a leads again.
        *cut.borrow_mut() = Cut::LinkAndNode(a, d, d);
        c.run_for(Duration::from_secs(1));
        *cut.borrow_mut() = Cut::NodeAndVotes(b, a, d);
        let mut inbox = c.take_inbox();
        let until = c.now() + Duration::from_secs(10);
        while !is_leader(&c, a) && c.now() < until {
            c.run_for(Duration::from_millis(50));
        }
        assert!(is_leader(&c, a), "a leads again");
        let y = c.request("y", a, json!({"type": "write", "key": 7, "value": 9}));
        c.run_for(Duration::from_secs(2));
        inbox.extend(c.take_inbox());
        let replies = replies_by_request(&inbox);
        assert_eq!(replies[&("y".to_string(), y)]["type"], "write_ok");
        for x in &xs {
            let reply = replies.get(x).unwrap_or_else(|| panic!("{x:?} unanswered"));
            assert_eq!(reply["type"], "error", "{reply}");
        }
    }

    /// A leader cut off with a waiting write rejoins to find the log compacted past it:
    /// a snapshot replaces its log, and the write's client hears its outcome is unknown.
    #[test]
    fn a_proposal_covered_by_an_installed_snapshot_is_answered() {
        let mut c: Cluster<super::LinKv> = Cluster::new(3, LATENCY);
        c.run_for(Duration::from_secs(2));
        let a = leader_among(&c, &[0, 1, 2]).expect("a leader");
        let cut = Rc::new(RefCell::new(Cut::Node(a)));
        c.set_wire_rule(cut_rule(c.names().to_vec(), cut.clone()));
        let x = c.request("x", a, json!({"type": "write", "key": 7, "value": 1}));
        c.run_for(Duration::from_secs(3));
        let b = (a + 1) % 3;
        for batch in 0..11 {
            for i in 0..100 {
                let body = json!({"type": "write", "key": i, "value": batch});
                c.request(&format!("w{i}"), b, body);
            }
            c.run_for(Duration::from_millis(500));
        }
        let mut inbox = c.take_inbox();
        let oks = inbox
            .iter()
            .filter(|(_, r)| r["type"] == "write_ok")
            .count();
        assert!(
            oks > super::COMPACT_EVERY as usize,
            "{oks} writes committed"
        );
        *cut.borrow_mut() = Cut::None;
        c.run_for(Duration::from_secs(3));
        inbox.extend(c.take_inbox());
        let replies = replies_by_request(&inbox);
        let reply = replies.get(&("x".to_string(), x)).expect("x answered");
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["code"], 0, "indefinite: {reply}");
    }

    /// A client's session outlives a compaction and a restart of every node: a copy of
    /// its cas that arrives afterwards still gets the first reply and changes nothing.
    #[test]
    fn sessions_survive_snapshots_and_restarts() {
        let mut c: Cluster<super::LinKv> = Cluster::new(3, LATENCY);
        c.run_for(Duration::from_secs(2));
        let a = leader_among(&c, &[0, 1, 2]).expect("a leader");
        let w = call(
            &mut c,
            "c1",
            a,
            json!({"type": "write", "key": 1, "value": 2}),
        );
        assert_eq!(w["type"], "write_ok", "{w}");
        let cas = json!({"type": "cas", "key": 1, "from": 2, "to": 0});
        let cas_id = c.request("c2", a, cas.clone());
        c.run_for(Duration::from_millis(200));
        let write_back = json!({"type": "write", "key": 1, "value": 2});
        assert_eq!(call(&mut c, "c1", a, write_back)["type"], "write_ok");
        for batch in 0..11 {
            for i in 0..100 {
                let body = json!({"type": "write", "key": 100 + i, "value": batch});
                c.request(&format!("w{i}"), a, body);
            }
            c.run_for(Duration::from_millis(500));
        }
        for i in 0..3 {
            c.crash(i);
        }
        for i in 0..3 {
            c.restart(i);
        }
        c.run_for(Duration::from_secs(3));
        let leader = leader_among(&c, &[0, 1, 2]).expect("a leader after the restart");
        let peer = c.names()[(leader + 1) % 3].clone();
        // The copy comes from a peer, as a forwarded request does, naming its client.
        let answer = Rc::new(RefCell::new(None));
        let seen = answer.clone();
        c.set_wire_rule(move |raw| {
            let body = body_of(raw);
            if body["in_reply_to"] == json!(777_777) {
                *seen.borrow_mut() = Some(body);
            }
            None
        });
        let mut copy = cas;
        copy["origin"] = json!({"client": "c2", "msg_id": cas_id});
        copy["msg_id"] = json!(777_777);
        let line = json!({"src": peer, "dest": c.names()[leader], "body": copy});
        c.inject(&line.to_string());
        c.run_for(Duration::from_secs(1));
        let answer = answer.borrow().clone().expect("the copy is answered");
        assert_eq!(answer["type"], "cas_ok", "{answer}");
        let read = call(&mut c, "c3", leader, json!({"type": "read", "key": 1}));
        assert_eq!(read["value"], 2, "the copy changed nothing: {read}");
    }
}
