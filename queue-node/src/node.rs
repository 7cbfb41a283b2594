//! The queue as a Maelstrom node: Raft groups for the partitions it replicates, routing of
//! every request to its partition's leader, polls that steal work when this node's own
//! partitions are idle, heartbeats and health.
//!
//! A request about one task goes to the leader of the task's partition: handled here when
//! this node leads it, otherwise passed on (at most [`MAX_HOPS`] times) to the leader this
//! node knows of (its own Raft group's, or the one peers announce in heartbeats), or to a
//! replica that will know. Changes are proposed to the partition's Raft log and answered
//! once committed and applied, so an `enqueue_ok` means a majority of replicas hold the
//! task. Leases are part of the replicated state, with their expiry times, so a new leader
//! expires the leases its predecessor handed out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use maelstrom_core::raft::route::Unparked;
use maelstrom_core::raft::{relay_or_decode, Relayed, Route, RouteConfig, Router, Target};
use maelstrom_core::raft::{Answer, Config, Groups, Origin, Outcome as Ended, Role};
use maelstrom_core::{
    Context, ErrorBody, ErrorCode, InitError, Message, Node, Outbox, RawMessage, ReplyTo, RpcError,
    Storage,
};

use serde_json::{json, Value};

use crate::message::{DeadLetter, Health, LeadInfo, Msg, PartitionHealth};
use crate::partition::{Cmd, Depths, Outcome, Partition};
use crate::task::{TaskId, TaskSpec};

const TICK: Duration = Duration::from_millis(10);
/// How long requests gather before one round persists and sends for all of them.
const BATCH: Duration = Duration::from_millis(2);
const HEARTBEAT: Duration = Duration::from_millis(100);
/// A peer silent this long is presumed dead.
const PEER_TIMEOUT_MS: u64 = 1_000;
const FORWARD_TIMEOUT: Duration = Duration::from_millis(1_000);
/// How long a request waits for its partition to elect a leader before it is refused.
const PARK_MS: u64 = 1_000;
/// A request is passed on at most this many times (a non-replica to a replica, a
/// follower to its leader), so stale leader hints cannot make it circle.
pub const MAX_HOPS: u8 = 2;
/// Replicas per partition (all nodes, when fewer).
pub const REPLICAS: usize = 3;
const COMPACT_EVERY: u64 = 20_000;
/// Remote dependencies asked about per lookup.
const LOOKUP_BATCH: usize = 256;

/// How the node is wrong on purpose, for showing that the workload's checker catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flaw {
    #[default]
    None,
    /// Answers `enqueue_ok` as soon as the leader appended the task, before a majority
    /// holds it.
    AckBeforeReplication,
    /// Keeps lease timers only in the leader's memory: a new leader never expires the
    /// leases its predecessor handed out.
    ForgetLeases,
    /// A nack gives the attempt back: the task is handed out again under the same attempt
    /// number and nacks never dead-letter it.
    NackRefund,
}

/// Settings from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// Partitions; the number of nodes when unset.
    pub partitions: Option<u32>,
    pub flaw: Flaw,
}

pub static SETTINGS: OnceLock<Settings> = OnceLock::new();

#[derive(Debug)]
pub enum Timer {
    Tick,
    Flush,
    Heartbeat,
}

/// What an outstanding RPC was for.
#[derive(Debug)]
pub enum Call {
    /// Part of checking an enqueue's remote dependencies.
    EnqueueLookup(u64),
    /// Checking whether remote dependencies of `group`'s tasks completed.
    DepWatch { group: u32, partition: u32 },
    /// One partition's share of a `dlq` request.
    DlqPart(u64),
}

/// Who waits for the answer to a request: its sender (a client, or a peer's RPC), or one
/// entry of a batch a peer forwarded.
#[derive(Debug, Clone)]
enum Waiter {
    Direct(ReplyTo),
    Batched { node: String, tag: u64 },
}

/// What the node keeps about a partition it replicates, beside the group's Raft, store,
/// state machine and waiting requests (in [`Groups`]).
#[derive(Debug, Default)]
struct Extra {
    /// The index of a proposed `Tick` not applied yet: one at a time is enough.
    tick_at: Option<u64>,
    /// Leases granted while leading, kept in memory only (the `forget-leases` flaw).
    granted: HashMap<TaskId, (u32, u64)>,
    was_leader: bool,
}

/// Who waits for a group, and for what.
#[derive(Debug)]
enum Wait {
    /// The outcome of a command.
    Cmd(Waiter),
    /// A linearizable read.
    Read(Waiter, Query),
    /// One partition's share of a `dlq` request gathered here.
    Gather(u64),
}

/// A read served after a read-index round confirmed this node still leads.
#[derive(Debug)]
enum Query {
    Status(TaskId),
    Lookup(Vec<TaskId>),
    DlqPart,
}

/// An enqueue waiting for other partitions to confirm its dependencies.
struct PendingEnqueue {
    from: Waiter,
    origin: Option<Origin>,
    copies: bool,
    task: TaskSpec,
    group: u32,
    waiting: usize,
    found: Vec<(TaskId, bool)>,
}

/// A `dlq` request gathering every partition's dead letters.
struct DlqGather {
    from: ReplyTo,
    waiting: usize,
    tasks: Vec<DeadLetter>,
    failed: Option<String>,
}

/// A `poll` request's fields.
struct PollReq {
    max: u32,
    lease_ms: u64,
    consumer: String,
    partition: Option<u32>,
    origin: Option<Origin>,
}

pub struct QueueNode {
    flaw: Flaw,
    partitions: u32,
    groups: Groups<u32, Partition, Wait>,
    extras: BTreeMap<u32, Extra>,
    /// Leader hints (with each leader's backlog), peers' liveness, parked requests, and
    /// requests passed on in batches. Which requests travel in a batch (the four every
    /// task makes, at thousands a second, and `cancel`, which a producer sends in bursts
    /// for a withdrawn task graph) and the `batch` and `batch_ok` messages stay
    /// the queue's own wire protocol; the router gathers them per leader and keeps the
    /// tags and deadlines that route each answer back.
    router: Router<u32, Msg, Depths>,
    enqueues: HashMap<u64, PendingEnqueue>,
    dlqs: HashMap<u64, DlqGather>,
    next_pending: u64,
    watching: HashSet<(u32, u32)>,
    /// Per (waiting partition, dependency's partition): the last dependency asked about,
    /// where the next lookup goes on from.
    watch_cursor: HashMap<(u32, u32), TaskId>,
    flush_armed: bool,
    stolen: u64,
    forwarded: u64,
}

impl std::fmt::Debug for QueueNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueNode")
            .field("partitions", &self.partitions)
            .field("groups", &self.groups.ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn route_config() -> RouteConfig {
    RouteConfig {
        max_hops: MAX_HOPS,
        park_ms: Some(PARK_MS),
        relay_ms: FORWARD_TIMEOUT.as_millis() as u64,
        peer_timeout_ms: PEER_TIMEOUT_MS,
    }
}

/// The prefix of a partition's Raft files.
fn state_prefix(group: u32) -> String {
    format!("p{group}")
}

/// The nodes that replicate `partition`, in a fixed order every node computes alike.
pub fn replicas(node_ids: &[String], partition: u32) -> Vec<String> {
    maelstrom_core::raft::replicas(node_ids, partition, REPLICAS)
}

/// The remote dependencies partition `p` waits for (`waits`, sorted) to ask about next, by
/// their partition: up to [`LOOKUP_BATCH`] each, in turn from just after the last one asked
/// about (`cursors`), wrapping around. A dependency that may never complete (dead-lettered)
/// is waited for until a replay, so always asking about the first ones in id order would
/// starve every later dependency once a batch's worth of those had gathered.
fn lookup_batches<'a>(
    waits: impl Iterator<Item = &'a TaskId>,
    partitions: u32,
    p: u32,
    cursors: &HashMap<(u32, u32), TaskId>,
) -> BTreeMap<u32, Vec<TaskId>> {
    // Per partition: the ids after its cursor, then the ones from the start.
    let mut split: BTreeMap<u32, (Vec<TaskId>, Vec<TaskId>)> = BTreeMap::new();
    for dep in waits {
        let q = dep.partition(partitions);
        let (after, before) = split.entry(q).or_default();
        let ids = match cursors.get(&(p, q)) {
            Some(cursor) if dep <= cursor => before,
            _ => after,
        };
        if ids.len() < LOOKUP_BATCH {
            ids.push(dep.clone());
        }
    }
    split
        .into_iter()
        .map(|(q, (mut after, before))| {
            let room = LOOKUP_BATCH - after.len();
            after.extend(before.into_iter().take(room));
            (q, after)
        })
        .collect()
}

impl QueueNode {
    fn target(&self, ctx: &Context, partition: u32) -> Target {
        self.router.target(&self.groups, ctx.now_ms(), &partition)
    }

    /// Passes `req` on towards `partition`'s leader, or refuses it when there is nowhere
    /// to go. Gives the request back when it should be handled here.
    fn route(
        &mut self,
        ctx: &Context,
        from: ReplyTo,
        hops: u8,
        partition: u32,
        req: Msg,
        out: &mut Outbox<Self>,
    ) -> Option<(ReplyTo, Msg)> {
        let batchable = matches!(
            req,
            Msg::Enqueue { .. }
                | Msg::Ack { .. }
                | Msg::Nack { .. }
                | Msg::Start { .. }
                | Msg::Cancel { .. }
        );
        let now = ctx.now_ms();
        let route = self
            .router
            .route(&self.groups, now, partition, from, hops, req);
        match route {
            Route::Here { from, req } => return Some((from, req)),
            // The requests every task makes, and cancels, travel in one batch per leader
            // per round.
            Route::Pass(pass) if pass.leader && batchable => {
                self.forwarded += 1;
                self.router.batch(pass.to, pass.from, now, pass.req);
                self.arm_flush(out);
            }
            Route::Pass(pass) => {
                self.forwarded += 1;
                pass.send(out, FORWARD_TIMEOUT, forward);
            }
            Route::Parked => {}
            Route::Refuse { from, req } => {
                let text = format!("no leader known for partition {partition}");
                let copies = self.router.passed_on(&from);
                self.refuse(out, &Waiter::Direct(from), partition, &req, copies, &text);
            }
        }
        None
    }

    /// Takes up parked requests whose partition found a leader; refuses those that
    /// waited too long.
    fn unpark(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        for p in self.router.unpark(&self.groups, ctx.now_ms()) {
            match p {
                Unparked::Ready(p) => self.handle(ctx, p.from, p.hops, p.req, out),
                Unparked::Expired(p) => {
                    let text = format!("no leader known for partition {}", p.group);
                    let copies = self.router.passed_on(&p.from);
                    let to = Waiter::Direct(p.from);
                    self.refuse(out, &to, p.group, &p.req, copies, &text);
                }
            }
        }
    }

    /// Answers with a timeout the requests passed on whose answers did not come back.
    fn expire_relayed(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        for to in self.router.expire_relays(ctx.now_ms()) {
            out.reply_error(
                &to,
                ErrorCode::Timeout,
                "the partition's leader did not answer in time",
            );
        }
    }

    /// Sends an internal request to `partition`'s leader, or says it could not.
    fn ask(
        &mut self,
        ctx: &Context,
        partition: u32,
        req: Msg,
        call: Call,
        out: &mut Outbox<Self>,
    ) -> Result<(), Call> {
        match self.target(ctx, partition) {
            Target::Leader(node) | Target::Node(node) => {
                out.rpc(node, forward(1, req), FORWARD_TIMEOUT, Relayed::Own(call));
                Ok(())
            }
            _ => Err(call),
        }
    }

    fn arm_flush(&mut self, out: &mut Outbox<Self>) {
        if !self.flush_armed {
            self.flush_armed = true;
            out.set_timer(BATCH, Timer::Flush);
        }
    }

    /// Proposes `cmd` to `partition`'s log; `to` hears the outcome once it applies.
    /// `origin` is the client request it carries out; `copies` says whether it came
    /// through another node, so that other copies of it may exist.
    fn propose(
        &mut self,
        partition: u32,
        cmd: Cmd,
        to: Option<Waiter>,
        origin: Option<Origin>,
        copies: bool,
        out: &mut Outbox<Self>,
    ) {
        let early = match (&cmd, self.flaw) {
            (Cmd::Enqueue { task, .. }, Flaw::AckBeforeReplication) => Some(task.id.clone()),
            _ => None,
        };
        let is_tick = matches!(cmd, Cmd::Tick { .. } | Cmd::Expire { .. });
        let (wait, early_to) = match early {
            Some(_) => (None, to),
            None => (to.map(Wait::Cmd), None),
        };
        let proposal = self
            .groups
            .propose(&partition, cmd, origin.clone(), wait, copies);
        match proposal {
            Ok((index, old)) => {
                if is_tick {
                    self.extras.entry(partition).or_default().tick_at = Some(index);
                }
                if let (Some(to), Some(id)) = (early_to, early) {
                    let ok = Msg::EnqueueOk {
                        id,
                        partition,
                        duplicate: false,
                    };
                    self.respond(out, &to, Ok(ok));
                }
                if let Some(old) = old {
                    self.finish(out, old);
                }
            }
            Err((Some(Wait::Cmd(to)), _)) => {
                let text = match self.groups.contains(&partition) {
                    true => format!("lost the leadership of partition {partition}"),
                    false => "not a replica".to_string(),
                };
                self.refuse_origin(out, &to, partition, origin.as_ref(), copies, &text);
            }
            Err(_) => {}
        }
        self.arm_flush(out);
    }

    /// Refuses a request without proposing it. A copy of a request that came through
    /// another node may still take effect elsewhere: unless this replica knows its
    /// outcome, such a refusal is indefinite.
    fn refuse(
        &mut self,
        out: &mut Outbox<Self>,
        to: &Waiter,
        partition: u32,
        req: &Msg,
        copies: bool,
        text: &str,
    ) {
        self.refuse_origin(out, to, partition, req.origin(), copies, text);
    }

    fn refuse_origin(
        &mut self,
        out: &mut Outbox<Self>,
        to: &Waiter,
        partition: u32,
        origin: Option<&Origin>,
        copies: bool,
        text: &str,
    ) {
        let outcome = self.groups.refusal(&partition, origin, copies, text);
        let answer = Answer {
            group: partition,
            to: Wait::Cmd(to.clone()),
            outcome,
        };
        self.finish(out, answer);
    }

    /// Delivers what a group says about a waiting request.
    fn finish(&mut self, out: &mut Outbox<Self>, answer: Answer<u32, Wait, Outcome>) {
        let p = answer.group;
        match (answer.to, answer.outcome) {
            (Wait::Cmd(to), Ended::Applied(outcome)) => self.answer(out, &to, p, outcome),
            (Wait::Cmd(to) | Wait::Read(to, _), Ended::Failed(e)) => {
                let text = e.text.unwrap_or_default();
                self.respond(out, &to, Err((e.code, text)));
            }
            (Wait::Read(to, query), Ended::Read) => {
                let reply = self.query(p, query);
                self.respond(out, &to, reply);
            }
            (Wait::Gather(id), outcome) => {
                let tasks = self.dead_letters(p);
                if let Some(gather) = self.dlqs.get_mut(&id) {
                    gather.waiting -= 1;
                    match outcome {
                        Ended::Failed(e) => gather.failed = Some(e.to_string()),
                        _ => gather.tasks.extend(tasks),
                    }
                }
                self.finish_dlq(id, out);
            }
            (Wait::Cmd(_), Ended::Read) | (Wait::Read(..), Ended::Applied(_)) => {}
        }
    }

    /// Answers a read from `p`'s state, which a read-index round has just confirmed.
    fn query(&self, p: u32, query: Query) -> Result<Msg, (ErrorCode, String)> {
        let Some(sm) = self.groups.get(&p).map(|g| g.sm()) else {
            let text = format!("not a replica of partition {p}");
            return Err((ErrorCode::TemporarilyUnavailable, text));
        };
        match query {
            Query::Status(id) => match sm.status(&id) {
                Some(r) => Ok(Msg::StatusOk {
                    id,
                    status: r.status,
                    attempts: r.attempts,
                    max_attempts: r.max_attempts,
                    blocked_by: r.blocked_by,
                }),
                None => Err((ErrorCode::KeyDoesNotExist, format!("unknown task {id}"))),
            },
            Query::Lookup(ids) => {
                let found = ids
                    .into_iter()
                    .filter_map(|id| sm.lookup(&id).map(|done| (id, done)))
                    .collect();
                Ok(Msg::LookupOk { found })
            }
            Query::DlqPart => Ok(Msg::DlqOk {
                tasks: self.dead_letters(p),
            }),
        }
    }

    /// Serves a read of `p` once this node's leadership is confirmed.
    fn read(&mut self, p: u32, wait: Wait, out: &mut Outbox<Self>) {
        if let Err((wait, _)) = self.groups.read(&p, wait) {
            let text = format!("not the leader of partition {p}");
            let body = ErrorBody::new(ErrorCode::TemporarilyUnavailable, text);
            let answer = Answer {
                group: p,
                to: wait,
                outcome: Ended::Failed(body),
            };
            self.finish(out, answer);
        }
        self.arm_flush(out);
    }

    /// Answers a waiter: straight away to a direct requester, or into the batch of
    /// answers for the peer that forwarded the request.
    fn respond(
        &mut self,
        out: &mut Outbox<Self>,
        to: &Waiter,
        reply: Result<Msg, (ErrorCode, String)>,
    ) {
        match to {
            Waiter::Direct(to) => match reply {
                Ok(msg) => out.reply(to, msg),
                Err((code, text)) => out.reply_error(to, code, text),
            },
            Waiter::Batched { node, tag } => {
                let body = match reply {
                    Ok(msg) => serde_json::to_value(msg).unwrap_or(Value::Null),
                    Err((code, text)) => json!({"type": "error", "code": code, "text": text}),
                };
                self.router.answer_batched(node, *tag, body);
                self.arm_flush(out);
            }
        }
    }

    fn answer(&mut self, out: &mut Outbox<Self>, to: &Waiter, partition: u32, outcome: Outcome) {
        let msg = match outcome {
            Outcome::Enqueued { id, duplicate } => Msg::EnqueueOk {
                id,
                partition,
                duplicate,
            },
            Outcome::Polled(tasks) => {
                self.stolen += tasks.iter().filter(|t| t.stolen).count() as u64;
                Msg::PollOk { tasks }
            }
            Outcome::Started => Msg::StartOk {},
            Outcome::Acked { duplicate } => Msg::AckOk { duplicate },
            Outcome::Nacked { dead_lettered } => Msg::NackOk { dead_lettered },
            Outcome::Replayed => Msg::ReplayOk {},
            Outcome::Cancelled { cancelled } => Msg::CancelOk { cancelled },
            Outcome::Done => return,
            Outcome::Refused(r) => return self.respond(out, to, Err((r.code, r.text))),
        };
        self.respond(out, to, Ok(msg));
    }

    /// Carries out what each group's Raft asks for: persist, send, apply and answer.
    fn drive(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        // Every group's messages to one peer travel together: one message per peer per
        // round, however many partitions the two share. They leave after every group's
        // state is persisted.
        let round = self.groups.drive(out);
        for (p, extra) in self.extras.iter_mut() {
            let leading = self.groups.is_leader(p);
            if leading != extra.was_leader {
                extra.was_leader = leading;
                extra.granted.clear();
                extra.tick_at = None;
            }
            let applied = self.groups.get(p).map_or(0, |g| g.applied());
            if extra.tick_at.is_some_and(|i| i <= applied) {
                extra.tick_at = None;
            }
        }
        if self.flaw == Flaw::ForgetLeases {
            // The flaw's leader remembers only the leases it handed out itself.
            for a in &round.answers {
                if let (Wait::Cmd(_), Ended::Applied(Outcome::Polled(tasks))) = (&a.to, &a.outcome)
                {
                    let extra = self.extras.entry(a.group).or_default();
                    for t in tasks {
                        extra
                            .granted
                            .insert(t.id.clone(), (t.attempt, t.lease_until));
                    }
                }
            }
        }
        for (to, msgs) in round.messages {
            out.send(to, Msg::Raft { msgs });
        }
        for (to, reqs) in self.router.take_batches() {
            out.send(to, Msg::Batch { reqs });
        }
        for answer in round.answers {
            self.finish(out, answer);
        }
        for (to, replies) in self.router.take_batch_answers() {
            out.send(to, Msg::BatchOk { replies });
        }
        let _ = ctx;
    }

    /// Proposes the expiry of leases and deadlines that fell due, where this node leads.
    fn expire_due(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        let now = ctx.wall_ms();
        let mut proposals = Vec::new();
        for (&p, group) in self.groups.iter() {
            let extra = self.extras.entry(p).or_default();
            if !group.raft().is_leader() || extra.tick_at.is_some() {
                continue;
            }
            match self.flaw {
                Flaw::ForgetLeases => {
                    let due: Vec<(TaskId, u32)> = extra
                        .granted
                        .iter()
                        .filter(|(_, (_, until))| *until <= now)
                        .map(|(id, (attempt, _))| (id.clone(), *attempt))
                        .collect();
                    if !due.is_empty() {
                        for (id, _) in &due {
                            extra.granted.remove(id);
                        }
                        proposals.push((p, Cmd::Expire { leases: due }));
                    }
                }
                _ => {
                    if group.sm().next_due().is_some_and(|due| due <= now) {
                        proposals.push((p, Cmd::Tick { now }));
                    }
                }
            }
        }
        for (p, cmd) in proposals {
            self.propose(p, cmd, None, None, false, out);
        }
    }

    /// Asks other partitions whether the dependencies this node's led partitions wait
    /// for have completed.
    fn watch_dependencies(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        let mut asks: Vec<(u32, u32, Vec<TaskId>)> = Vec::new();
        for (&p, group) in self.groups.iter() {
            if !group.raft().is_leader() {
                continue;
            }
            let waits = group.sm().remote_waits();
            for (q, ids) in lookup_batches(waits, self.partitions, p, &self.watch_cursor) {
                if !self.watching.contains(&(p, q)) {
                    asks.push((p, q, ids));
                }
            }
        }
        for (p, q, ids) in asks {
            if let Some(last) = ids.last() {
                self.watch_cursor.insert((p, q), last.clone());
            }
            let done: Option<Vec<TaskId>> = self
                .groups
                .get(&q)
                .filter(|g| g.raft().is_leader())
                .map(|g| {
                    ids.iter()
                        .filter(|id| g.sm().lookup(id) == Some(true))
                        .cloned()
                        .collect()
                });
            match done {
                Some(done) => {
                    if !done.is_empty() {
                        self.propose(p, Cmd::DepsDone { ids: done }, None, None, false, out);
                    }
                }
                None => {
                    let call = Call::DepWatch {
                        group: p,
                        partition: q,
                    };
                    let req = Msg::Lookup { partition: q, ids };
                    if self.ask(ctx, q, req, call, out).is_ok() {
                        self.watching.insert((p, q));
                    }
                }
            }
        }
    }

    fn heartbeat(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        let leads: Vec<LeadInfo> = self
            .groups
            .iter()
            .filter(|(_, g)| g.raft().is_leader())
            .map(|(&p, g)| LeadInfo {
                partition: p,
                term: g.raft().term(),
                depths: g.sm().depths(),
            })
            .collect();
        for peer in ctx.peers() {
            out.send(
                peer,
                Msg::Heartbeat {
                    leads: leads.clone(),
                },
            );
        }
    }

    fn on_heartbeat(&mut self, ctx: &Context, src: &str, leads: Vec<LeadInfo>) {
        let now = ctx.now_ms();
        self.router.heard(src, now);
        for info in leads {
            let (p, term) = (info.partition, info.term);
            self.router.hint(p, src, term, info.depths, now);
        }
    }

    /// Handles a request from a client or passed on by a peer (`hops` times so far).
    fn handle(&mut self, ctx: &Context, from: ReplyTo, hops: u8, req: Msg, out: &mut Outbox<Self>) {
        if let Some(id) = req.task_id() {
            let p = id.partition(self.partitions);
            if let Some((from, req)) = self.route(ctx, from, hops, p, req, out) {
                self.handle_here(ctx, Waiter::Direct(from), p, req, out);
            }
            return;
        }
        match req {
            Msg::Poll {
                max,
                lease_ms,
                consumer,
                partition,
                origin,
            } => {
                let consumer = consumer.unwrap_or_else(|| from.src.clone());
                let poll = PollReq {
                    max,
                    lease_ms,
                    consumer,
                    partition,
                    origin,
                };
                self.poll(ctx, from, hops, poll, out)
            }
            Msg::Dlq {} => self.gather_dlq(ctx, from, out),
            Msg::DlqPart { partition } => {
                let req = Msg::DlqPart { partition };
                if let Some((from, _)) = self.route(ctx, from, hops, partition, req, out) {
                    let wait = Wait::Read(Waiter::Direct(from), Query::DlqPart);
                    self.read(partition, wait, out);
                }
            }
            Msg::Lookup { partition, ids } => {
                let req = Msg::Lookup { partition, ids };
                let here = self.route(ctx, from, hops, partition, req, out);
                if let Some((from, Msg::Lookup { ids, .. })) = here {
                    let wait = Wait::Read(Waiter::Direct(from), Query::Lookup(ids));
                    self.read(partition, wait, out);
                }
            }
            Msg::Health {} => {
                let health = self.health(ctx);
                out.reply(&from, Msg::HealthOk(Box::new(health)));
            }
            other => out.reply_error(
                &from,
                ErrorCode::NotSupported,
                format!("{} is not a request", message_type(&other)),
            ),
        }
    }

    /// A task request for a partition this node leads.
    fn handle_here(
        &mut self,
        ctx: &Context,
        from: Waiter,
        p: u32,
        req: Msg,
        out: &mut Outbox<Self>,
    ) {
        let now = ctx.wall_ms();
        let copies = self.passed_on(ctx, &from);
        let origin = req.origin().cloned();
        let cmd = match req {
            Msg::Enqueue { task, .. } => {
                return self.enqueue(ctx, from, p, task, (origin, copies), out)
            }
            Msg::Status { id } => return self.read(p, Wait::Read(from, Query::Status(id)), out),
            Msg::Start {
                id,
                attempt,
                lease_ms,
                ..
            } => Cmd::Start {
                id,
                attempt,
                now,
                lease_ms,
            },
            Msg::Ack { id, attempt, .. } => Cmd::Ack { id, attempt, now },
            Msg::Nack { id, attempt, .. } if self.flaw == Flaw::NackRefund => {
                Cmd::Refund { id, attempt }
            }
            Msg::Nack { id, attempt, .. } => Cmd::Nack { id, attempt },
            Msg::Replay { id, .. } => Cmd::Replay { id },
            Msg::Cancel { id, .. } => Cmd::Cancel { id },
            _ => return,
        };
        self.propose(p, cmd, Some(from), origin, copies, out);
    }

    /// Whether a request came through another node, so that copies of it may exist.
    fn passed_on(&self, ctx: &Context, from: &Waiter) -> bool {
        match from {
            Waiter::Batched { .. } => true,
            Waiter::Direct(to) => ctx.node_ids.contains(&to.src),
        }
    }

    fn enqueue(
        &mut self,
        ctx: &Context,
        from: Waiter,
        p: u32,
        task: TaskSpec,
        (origin, copies): (Option<Origin>, bool),
        out: &mut Outbox<Self>,
    ) {
        let mut remote: BTreeMap<u32, Vec<TaskId>> = BTreeMap::new();
        for dep in &task.deps {
            let q = dep.partition(self.partitions);
            if q != p {
                remote.entry(q).or_default().push(dep.clone());
            }
        }
        let now = ctx.wall_ms();
        if remote.is_empty() {
            let cmd = Cmd::Enqueue {
                task,
                remote: Vec::new(),
                now,
            };
            return self.propose(p, cmd, Some(from), origin, copies, out);
        }
        let id = self.next_pending;
        self.next_pending += 1;
        let mut pending = PendingEnqueue {
            from,
            origin,
            copies,
            task,
            group: p,
            waiting: 0,
            found: Vec::new(),
        };
        let mut unreachable = None;
        for (q, ids) in remote {
            if let Some(g) = self.groups.get(&q).filter(|g| g.raft().is_leader()) {
                pending.found.extend(
                    ids.iter()
                        .filter_map(|i| g.sm().lookup(i).map(|d| (i.clone(), d))),
                );
                continue;
            }
            let req = Msg::Lookup { partition: q, ids };
            match self.ask(ctx, q, req, Call::EnqueueLookup(id), out) {
                Ok(()) => pending.waiting += 1,
                Err(_) => unreachable = Some(q),
            }
        }
        if let Some(q) = unreachable {
            // Answers to lookups already sent find no pending enqueue and are dropped.
            let text = format!("cannot check dependencies: no leader known for partition {q}");
            let (to, origin) = (&pending.from, pending.origin.as_ref());
            return self.refuse_origin(out, to, p, origin, pending.copies, &text);
        }
        if pending.waiting == 0 {
            self.finish_enqueue(ctx, pending, out);
        } else {
            self.enqueues.insert(id, pending);
        }
    }

    fn finish_enqueue(&mut self, ctx: &Context, pending: PendingEnqueue, out: &mut Outbox<Self>) {
        let cmd = Cmd::Enqueue {
            task: pending.task,
            remote: pending.found,
            now: ctx.wall_ms(),
        };
        let (origin, copies) = (pending.origin, pending.copies);
        self.propose(pending.group, cmd, Some(pending.from), origin, copies, out);
    }

    fn poll(
        &mut self,
        ctx: &Context,
        from: ReplyTo,
        hops: u8,
        poll: PollReq,
        out: &mut Outbox<Self>,
    ) {
        let PollReq {
            max,
            lease_ms,
            consumer,
            partition,
            origin,
        } = poll;
        let now = ctx.wall_ms();
        let max = max.clamp(1, 1_000);
        let source = match partition {
            Some(p) => Some(p),
            None => self.poll_source(ctx, hops),
        };
        let Some(p) = source else {
            return out.reply(&from, Msg::PollOk { tasks: Vec::new() });
        };
        let leads = self.groups.get(&p).is_some_and(|g| g.raft().is_leader());
        if leads {
            let cmd = Cmd::Poll {
                max,
                consumer,
                now,
                lease_ms,
                stolen: hops > 0,
            };
            let copies = ctx.node_ids.contains(&from.src);
            return self.propose(p, cmd, Some(Waiter::Direct(from)), origin, copies, out);
        }
        if partition.is_some() || hops > 0 {
            // Asked to take from a partition this node no longer leads: nothing here,
            // unless a copy of this poll was applied here.
            let known = origin.as_ref().and_then(|o| self.groups.get(&p)?.known(o));
            if let Some(Ended::Applied(outcome)) = known {
                return self.answer(out, &Waiter::Direct(from), p, outcome);
            }
            return out.reply(&from, Msg::PollOk { tasks: Vec::new() });
        }
        let req = Msg::Poll {
            max,
            lease_ms,
            consumer: Some(consumer),
            partition: Some(p),
            origin,
        };
        self.route(ctx, from, hops, p, req, out);
    }

    /// The partition a poll should take from: the one with the most urgent ready work,
    /// this node's own on a tie, and others' (stealing) only when they have more urgent
    /// or any work while this node's partitions are idle.
    fn poll_source(&self, ctx: &Context, hops: u8) -> Option<u32> {
        let local = self
            .groups
            .iter()
            .filter(|(_, g)| g.raft().is_leader())
            .filter_map(|(&p, g)| {
                g.sm()
                    .best_ready()
                    .map(|(prio, n)| ((prio.rank(), 0u8, usize::MAX - n), p))
            });
        let remote = self
            .router
            .fresh_hints(ctx.now_ms())
            .filter(|_| hops == 0)
            .filter(|(p, h)| {
                !self.groups.get(p).is_some_and(|g| g.raft().is_leader()) && h.leader != ctx.node_id
            })
            .filter_map(|(&p, h)| {
                let rank = h.info.best()?;
                Some(((rank, 1u8, usize::MAX - h.info.ready_total() as usize), p))
            });
        local.chain(remote).min().map(|(_, p)| p)
    }

    fn dead_letters(&self, partition: u32) -> Vec<DeadLetter> {
        self.groups
            .get(&partition)
            .map(|g| {
                g.sm()
                    .dead_letters()
                    .into_iter()
                    .map(|(id, attempts, max_attempts)| DeadLetter {
                        id,
                        attempts,
                        max_attempts,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn gather_dlq(&mut self, ctx: &Context, from: ReplyTo, out: &mut Outbox<Self>) {
        let id = self.next_pending;
        self.next_pending += 1;
        let mut waiting = 0;
        let mut failed = None;
        for p in 0..self.partitions {
            // This node's own partitions are read once its leadership is confirmed.
            let asked = if self.groups.is_leader(&p) {
                self.groups.read(&p, Wait::Gather(id)).is_ok()
            } else {
                let req = Msg::DlqPart { partition: p };
                self.ask(ctx, p, req, Call::DlqPart(id), out).is_ok()
            };
            match asked {
                true => waiting += 1,
                false => failed = Some(format!("no leader known for partition {p}")),
            }
        }
        let gather = DlqGather {
            from,
            waiting,
            tasks: Vec::new(),
            failed,
        };
        self.dlqs.insert(id, gather);
        self.arm_flush(out);
        self.finish_dlq(id, out);
    }

    fn finish_dlq(&mut self, id: u64, out: &mut Outbox<Self>) {
        let done = self.dlqs.get(&id).is_some_and(|g| g.waiting == 0);
        if !done {
            return;
        }
        let Some(gather) = self.dlqs.remove(&id) else {
            return;
        };
        match gather.failed {
            Some(why) => out.reply_error(
                &gather.from,
                ErrorCode::TemporarilyUnavailable,
                format!("cannot list the dead-letter queue: {why}"),
            ),
            None => out.reply(
                &gather.from,
                Msg::DlqOk {
                    tasks: gather.tasks,
                },
            ),
        }
    }

    fn health(&self, ctx: &Context) -> Health {
        let partitions = self
            .groups
            .iter()
            .map(|(&p, g)| {
                let commit = g.raft().commit_index();
                let last = g.raft().log().last_index();
                let replica_lag = g
                    .raft()
                    .match_indexes()
                    .into_iter()
                    .map(|(peer, m)| (peer, last.saturating_sub(m)))
                    .collect();
                PartitionHealth {
                    partition: p,
                    role: match g.raft().role() {
                        Role::Leader => "leader",
                        Role::Follower => "follower",
                        _ => "candidate",
                    }
                    .to_string(),
                    leader: g.raft().leader().map(str::to_string),
                    term: g.raft().term(),
                    commit,
                    applied: g.applied(),
                    depths: g.sm().depths(),
                    replica_lag,
                    tasks: g.sm().len(),
                }
            })
            .collect();
        let peers = ctx
            .peers()
            .map(|peer| {
                let state = if self.router.alive(peer, ctx.now_ms()) {
                    "alive"
                } else {
                    "dead"
                };
                (peer.to_string(), state.to_string())
            })
            .collect();
        Health {
            node: ctx.node_id.clone(),
            partitions,
            peers,
            stolen: self.stolen,
            forwarded: self.forwarded,
        }
    }
}

/// A message's `type`, for error texts.
fn message_type(msg: &Msg) -> String {
    serde_json::to_value(msg)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_else(|| "this message".to_string())
}

/// The message passing `req` on, passed on `hops` times so far.
fn forward(hops: u8, req: Msg) -> Msg {
    Msg::Fwd {
        hops,
        req: Box::new(req),
    }
}

impl Node for QueueNode {
    type Msg = Msg;
    type Timer = Timer;
    type Call = Relayed<Call>;

    fn init(
        ctx: &Context,
        storage: &dyn Storage,
        out: &mut Outbox<Self>,
    ) -> Result<Self, InitError> {
        let settings = SETTINGS.get().copied().unwrap_or_default();
        let partitions = settings
            .partitions
            .unwrap_or(ctx.node_ids.len() as u32)
            .max(1);
        let mut groups = Groups::new(COMPACT_EVERY);
        let mut extras = BTreeMap::new();
        let mut placement = BTreeMap::new();
        for p in 0..partitions {
            let members = replicas(&ctx.node_ids, p);
            placement.insert(p, members.clone());
            if !members.contains(&ctx.node_id) {
                continue;
            }
            let seed = ctx.seed(u64::from(p));
            groups
                .add(
                    p,
                    &ctx.node_id,
                    &members,
                    Config::default(),
                    storage,
                    &state_prefix(p),
                    ctx.now_ms(),
                    seed,
                    Partition::new(p, partitions),
                )
                .map_err(|e| {
                    InitError::new(format!("cannot read partition {p}'s Raft state: {e}"))
                })?;
            extras.insert(p, Extra::default());
        }
        out.set_timer(TICK, Timer::Tick);
        out.set_timer(HEARTBEAT, Timer::Heartbeat);
        let mut node = QueueNode {
            flaw: settings.flaw,
            partitions,
            groups,
            extras,
            router: Router::new(&ctx.node_id, &ctx.node_ids, placement, route_config()),
            enqueues: HashMap::new(),
            dlqs: HashMap::new(),
            next_pending: 0,
            watching: HashSet::new(),
            watch_cursor: HashMap::new(),
            flush_armed: false,
            stolen: 0,
            forwarded: 0,
        };
        node.drive(ctx, out);
        Ok(node)
    }

    fn on_message(&mut self, ctx: &Context, msg: Message<Msg>, out: &mut Outbox<Self>) {
        let src = msg.src.clone();
        let (from, payload) = msg.into_parts();
        match payload {
            Msg::Raft { msgs } => {
                self.router.heard(&src, ctx.now_ms());
                self.groups.step_all(ctx.now_ms(), &src, msgs);
                self.arm_flush(out);
            }
            Msg::Heartbeat { leads } => self.on_heartbeat(ctx, &src, leads),
            Msg::Batch { reqs } => {
                for (tag, mut req) in reqs {
                    req.stamp(&ctx.cluster_nodes(), &src, None);
                    let to = Waiter::Batched {
                        node: src.clone(),
                        tag,
                    };
                    let partition = req.task_id().map(|id| id.partition(self.partitions));
                    match partition {
                        Some(p) if self.groups.is_leader(&p) => {
                            self.handle_here(ctx, to, p, req, out)
                        }
                        Some(p) => {
                            let text = "not the leader of the task's partition";
                            self.refuse(out, &to, p, &req, true, text);
                        }
                        None => {
                            let text = "not a request about one task".to_string();
                            self.respond(out, &to, Err((ErrorCode::MalformedRequest, text)));
                        }
                    }
                }
            }
            Msg::BatchOk { replies } => {
                for (tag, body) in replies {
                    if let Some(to) = self.router.relayed(tag) {
                        out.relay_body(&to, body);
                    }
                }
            }
            Msg::Fwd { hops, mut req } => {
                req.stamp(&ctx.cluster_nodes(), &from.src, from.msg_id);
                self.handle(ctx, from, hops, *req, out)
            }
            Msg::EnqueueOk { .. }
            | Msg::PollOk { .. }
            | Msg::StartOk {}
            | Msg::AckOk { .. }
            | Msg::NackOk { .. }
            | Msg::StatusOk { .. }
            | Msg::DlqOk { .. }
            | Msg::ReplayOk {}
            | Msg::CancelOk { .. }
            | Msg::HealthOk(_)
            | Msg::LookupOk { .. } => {}
            mut req => {
                req.stamp(&ctx.cluster_nodes(), &from.src, from.msg_id);
                self.handle(ctx, from, 0, req, out)
            }
        }
    }

    fn on_timer(&mut self, ctx: &Context, timer: Timer, out: &mut Outbox<Self>) {
        match timer {
            Timer::Tick => {
                self.groups.tick(ctx.now_ms());
                self.expire_due(ctx, out);
                self.unpark(ctx, out);
                self.expire_relayed(ctx, out);
                self.drive(ctx, out);
                out.set_timer(TICK, Timer::Tick);
            }
            Timer::Flush => {
                self.flush_armed = false;
                self.drive(ctx, out);
            }
            Timer::Heartbeat => {
                self.heartbeat(ctx, out);
                self.watch_dependencies(ctx, out);
                out.set_timer(HEARTBEAT, Timer::Heartbeat);
            }
        }
    }

    fn on_reply(
        &mut self,
        ctx: &Context,
        call: Relayed<Call>,
        reply: Result<RawMessage, RpcError>,
        out: &mut Outbox<Self>,
    ) {
        let Some((call, reply)) = relay_or_decode(out, call, reply) else {
            return;
        };
        match call {
            Call::EnqueueLookup(id) => {
                let Some(mut pending) = self.enqueues.remove(&id) else {
                    return;
                };
                match reply {
                    Ok(Msg::LookupOk { found }) => {
                        pending.found.extend(found);
                        pending.waiting -= 1;
                        if pending.waiting == 0 {
                            self.finish_enqueue(ctx, pending, out);
                        } else {
                            self.enqueues.insert(id, pending);
                        }
                    }
                    other => {
                        let text = format!("cannot check dependencies: {}", failure(other));
                        let (to, origin) = (&pending.from, pending.origin.as_ref());
                        let p = pending.group;
                        self.refuse_origin(out, to, p, origin, pending.copies, &text);
                    }
                }
            }
            Call::DepWatch { group, partition } => {
                self.watching.remove(&(group, partition));
                if let Ok(Msg::LookupOk { found }) = reply {
                    let done: Vec<TaskId> = found
                        .into_iter()
                        .filter(|(_, completed)| *completed)
                        .map(|(id, _)| id)
                        .collect();
                    let leads = self
                        .groups
                        .get(&group)
                        .is_some_and(|g| g.raft().is_leader());
                    if !done.is_empty() && leads {
                        self.propose(group, Cmd::DepsDone { ids: done }, None, None, false, out);
                    }
                }
            }
            Call::DlqPart(id) => {
                let Some(gather) = self.dlqs.get_mut(&id) else {
                    return;
                };
                gather.waiting -= 1;
                match reply {
                    Ok(Msg::DlqOk { tasks }) => gather.tasks.extend(tasks),
                    other => gather.failed = Some(failure(other)),
                }
                self.finish_dlq(id, out);
            }
        }
    }
}

/// Why an internal request gave no usable answer.
fn failure(reply: Result<Msg, RpcError>) -> String {
    match reply {
        Ok(msg) => format!("unexpected reply {}", message_type(&msg)),
        Err(e) => e.to_string(),
    }
}
