//! The matcher as a Maelstrom node: one [`Groups`] host running the Raft groups this node
//! replicates (regions placed by region number like the queue's partitions, and the
//! coordinator over the first min(5, N) nodes), routing every request to its group's
//! leader, the region side of two-phase commit ([`regions`]) and, on the coordinator's
//! leader, the transaction driver ([`twopc`]); in a cluster of services, also the gift ID
//! pool filled from the giftid service ([`ids`]), and the committed gifts' production
//! tasks on the queue service and `gift_status` (`tasks`).
//!
//! Every transaction involves every region, not only those of the participants it
//! changes: the epoch is inside each sealed box, so a splice (epoch e+1) reseals the
//! unchanged gifts of everyone too (same receiver, same gift ID), and a region that took
//! part in every committed transaction knows whether its exchange is matched, which it
//! needs to tell a late addition from a registration.

pub mod ids;
pub mod msg;
mod regions;
mod route;
mod services;
mod tasks;
mod twopc;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::OnceLock;
use std::time::Duration;

use maelstrom_core::raft::{
    relay_or_decode, replicas, Answer, Config, Groups, Origin, Outcome, Relayed, Router,
};
use maelstrom_core::{
    Context, ErrorBody, ErrorCode, InitError, Message, Node, Outbox, RawMessage, ReplyTo, RpcError,
    Storage,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::constraints::Participant;
use crate::sm::{CoordSm, Gid, RegionSm, Sm, TaskMode};
use ids::Ids;
pub use msg::Msg;
use tasks::{ServiceCall, TaskDriver};
use twopc::Driver;

const TICK: Duration = Duration::from_millis(10);
const HEARTBEAT: Duration = Duration::from_millis(100);
/// Replicas per region (all nodes, when fewer).
pub const REGION_REPLICAS: usize = 3;
/// Members of the coordinator group (all nodes, when fewer).
pub const COORDINATORS: usize = 5;
/// Regions when `--regions` is not given (the node count, when fewer).
pub const DEFAULT_REGIONS: u32 = 3;
const COMPACT_EVERY: u64 = 10_000;

/// How the node is wrong on purpose, for showing that the workload's checker catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flaw {
    #[default]
    None,
    /// The coordinator sends COMMIT before its decision is in its log.
    CommitBeforeLog,
    /// A region makes a slice readable at PREPARE.
    ReadAtPrepare,
    /// No two-phase commit: the decision is logged at once and regions install their
    /// slices one after another.
    No2pc,
    /// The coordinator enqueues a transaction's tasks as soon as it logs the
    /// transaction, before PREPARE: aborted transactions leave tasks behind.
    EnqueueBeforeLog,
}

/// Settings from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    pub regions: Option<u32>,
    pub flaw: Flaw,
    /// Seed for sealing; the binary draws it from the operating system so that nobody
    /// can recompute a box's ephemeral key. Unset (tests), it derives from the clock.
    pub seed: Option<[u8; 32]>,
}

pub static SETTINGS: OnceLock<Settings> = OnceLock::new();

#[derive(Debug)]
pub enum Timer {
    Tick,
    Heartbeat,
}

/// Who hears the answer to a request: its sender, or this node itself (a request it
/// made to a group it leads), whose answer goes where an RPC reply would.
#[derive(Debug, Clone)]
pub enum Waiter {
    Direct(ReplyTo),
    Local(Box<Call>),
}

/// What an outstanding request was for.
#[derive(Debug, Clone)]
pub enum Call {
    /// A region's part, for a coordinator job.
    Part { job: u64, region: u32 },
    /// A region's vote, for a coordinator job.
    Vote { job: u64, region: u32 },
    /// A region's acknowledgement of a decision.
    Ack { txn: u64, region: u32 },
    /// The coordinator's answer to a late addition, for its registrant.
    Late(Waiter),
    /// A request to another service (giftid, queue), whose replies are not this node's
    /// messages.
    Service(ServiceCall),
    /// The coordinator's decision on a prepared slice; then answer a read, if any.
    Resolve {
        txn: u64,
        region: u32,
        exchange: String,
        then: Option<Read>,
    },
}

/// A `get_assignment` waiting to be answered.
#[derive(Debug, Clone)]
pub struct Read {
    pub to: Waiter,
    pub exchange: String,
    pub participant: String,
    pub at_region: Option<u32>,
    /// A prepared slice was resolved once already: do not loop.
    pub resolved: bool,
}

/// Who waits for a group, and for what.
#[derive(Debug)]
pub enum Wait {
    /// A registration's outcome.
    Register(Waiter, String, Box<Participant>),
    /// A region's vote on PREPARE.
    Vote(Waiter),
    /// A region's acknowledgement of a decision.
    Ack(Waiter),
    /// A read of a region's part.
    Part(Waiter, String),
    /// A read of an assignment (after a read-index round, or after logging a decision).
    Assign(Read),
    /// A read of the coordinator's state.
    Coord(Waiter, CoordQuery),
    /// A coordinator command a job proposed.
    Job(u64),
    /// A presumed abort logged for a `resolve` of an unknown transaction.
    Resolved(Waiter),
}

/// What a read of the coordinator's state is for.
#[derive(Debug)]
pub enum CoordQuery {
    Match {
        exchange: String,
        no_mutual: bool,
        deadline: Option<u64>,
    },
    GiftStatus(String, String),
    Audit(String),
    Resolve(u64),
    Splice(String, Box<Participant>),
}

pub type Reply = Result<Msg, ErrorBody>;

pub struct MatcherNode {
    flaw: Flaw,
    regions: u32,
    groups: Groups<Gid, Sm, Wait>,
    ids: Ids,
    rng: StdRng,
    router: Router<Gid, Msg>,
    /// Answers to this node's own requests, handled after the current event.
    local: VecDeque<(Call, Result<Msg, RpcError>)>,
    driver: Driver,
    /// Prepared transactions seen at region groups this node leads: txn -> first seen.
    prepared_since: HashMap<u64, u64>,
    resolving: HashSet<u64>,
    /// The queue service's nodes (none: no tasks).
    queue: Vec<String>,
    tasks: TaskDriver,
}

impl std::fmt::Debug for MatcherNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatcherNode")
            .field("regions", &self.regions)
            .field("groups", &self.groups.ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The members of a group, in a fixed order every node computes alike.
pub fn members(node_ids: &[String], group: Gid) -> Vec<String> {
    match group {
        Gid::Region(r) => replicas(node_ids, r, REGION_REPLICAS),
        Gid::Coordinator => node_ids.iter().take(COORDINATORS).cloned().collect(),
    }
}

/// The regions of a cluster of `nodes` nodes given the `--regions` setting.
pub fn region_count(setting: Option<u32>, nodes: usize) -> u32 {
    setting.unwrap_or(DEFAULT_REGIONS.min(nodes as u32)).max(1)
}

fn prefix(group: Gid) -> String {
    match group {
        Gid::Region(r) => format!("region{r}"),
        Gid::Coordinator => "coordinator".to_string(),
    }
}

pub(crate) fn error(code: ErrorCode, text: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, text)
}

impl MatcherNode {
    /// This replica's applied coordinator state, if it is a member (for tests and
    /// health views).
    pub fn coordinator_state(&self) -> Option<&CoordSm> {
        self.coord_sm()
    }

    /// This replica's applied state of region `r`, if it is a member.
    pub fn region_state(&self, r: u32) -> Option<&RegionSm> {
        self.region_sm(Gid::Region(r))
    }

    /// Gift IDs from the giftid service in this node's pool (0 standalone).
    pub fn pooled_ids(&self) -> usize {
        self.ids.pooled()
    }

    pub fn leads(&self, group: Gid) -> bool {
        self.groups.is_leader(&group)
    }

    pub fn regions(&self) -> u32 {
        self.regions
    }

    /// Delivers a reply to whoever waits for it.
    fn respond(&mut self, out: &mut Outbox<Self>, to: &Waiter, reply: Reply) {
        match to {
            Waiter::Direct(to) => match reply {
                Ok(msg) => out.reply(to, msg),
                Err(e) => out.reply_error(to, e.code, e.text.unwrap_or_default()),
            },
            Waiter::Local(call) => {
                let result = reply.map_err(RpcError::Remote);
                self.local.push_back(((**call).clone(), result));
            }
        }
    }

    fn fail(&mut self, out: &mut Outbox<Self>, to: &Waiter, code: ErrorCode, text: &str) {
        self.respond(out, to, Err(error(code, text)));
    }

    /// Carries out what every group's Raft asks for: persist, send, apply and answer.
    fn drive(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        let round = self.groups.drive(out);
        for (to, msgs) in round.messages {
            out.send(to, Msg::Raft { msgs });
        }
        for answer in round.answers {
            self.finish(ctx, out, answer);
        }
        if !self.groups.is_leader(&Gid::Coordinator) {
            self.driver_stepped_down(out);
            self.services_stepped_down();
        }
        self.settle(ctx, out);
    }

    /// Handles the answers to this node's own requests, and what they lead to.
    fn settle(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        let mut rounds = 0;
        while let Some((call, result)) = self.local.pop_front() {
            self.on_answer(ctx, call, result, out);
            rounds += 1;
            if rounds > 10_000 {
                eprintln!("too many local answers in one event");
                break;
            }
        }
    }

    /// Delivers what a group says about a waiting request.
    fn finish(
        &mut self,
        ctx: &Context,
        out: &mut Outbox<Self>,
        answer: Answer<Gid, Wait, crate::sm::Out>,
    ) {
        let group = answer.group;
        match (answer.to, answer.outcome) {
            (Wait::Job(job), outcome) => self.job_outcome(ctx, job, outcome, out),
            (Wait::Coord(to, query), Outcome::Read) => self.coord_read(ctx, to, query, out),
            (Wait::Assign(read), Outcome::Read | Outcome::Applied(_)) => {
                self.answer_read(ctx, group, read, out)
            }
            (Wait::Part(to, exchange), Outcome::Read) => {
                let part = self.region_sm(group).map(|sm| sm.part(&exchange));
                let reply = part
                    .map(|part| Msg::PartOk { part })
                    .ok_or_else(|| error(ErrorCode::TemporarilyUnavailable, "not a replica"));
                self.respond(out, &to, reply);
            }
            (wait, Outcome::Applied(out_)) => self.applied(ctx, group, wait, out_, out),
            (wait, Outcome::Failed(e)) => match wait {
                Wait::Register(to, ..)
                | Wait::Vote(to)
                | Wait::Ack(to)
                | Wait::Part(to, _)
                | Wait::Coord(to, _)
                | Wait::Resolved(to)
                | Wait::Assign(Read { to, .. }) => self.respond(out, &to, Err(e)),
                Wait::Job(_) => {}
            },
            (wait, Outcome::Read) => eprintln!("a read answered a command's waiter: {wait:?}"),
        }
    }

    fn region_sm(&self, group: Gid) -> Option<&RegionSm> {
        match self.groups.get(&group).map(|g| g.sm()) {
            Some(Sm::Region(sm)) => Some(sm),
            _ => None,
        }
    }

    fn coord_sm(&self) -> Option<&CoordSm> {
        match self.groups.get(&Gid::Coordinator).map(|g| g.sm()) {
            Some(Sm::Coord(sm)) => Some(sm),
            _ => None,
        }
    }

    /// Whether a request came through another node, so that copies of it may exist.
    fn passed_on(&self, to: &Waiter) -> bool {
        match to {
            Waiter::Direct(to) => self.router.passed_on(to),
            Waiter::Local(_) => false,
        }
    }

    /// Answers a waiter whose proposal this node could not make (it no longer leads the
    /// group): with the recorded reply if a copy applied, else a definite or indefinite
    /// refusal.
    fn proposal_refused(
        &mut self,
        ctx: &Context,
        out: &mut Outbox<Self>,
        (group, wait): (Gid, Wait),
        origin: Option<&Origin>,
    ) {
        let copies = match &wait {
            Wait::Register(to, ..) | Wait::Vote(to) | Wait::Ack(to) | Wait::Resolved(to) => {
                self.passed_on(to)
            }
            Wait::Assign(read) => self.passed_on(&read.to),
            _ => false,
        };
        let why = format!("not the leader of {group:?} any more");
        let outcome = self.groups.refusal(&group, origin, copies, &why);
        let to = wait;
        self.finish(ctx, out, Answer { group, to, outcome });
    }
}

/// When the coordinator leaves work for the task queue.
fn task_mode(ctx: &Context, flaw: Flaw) -> TaskMode {
    match (ctx.service("queue").is_empty(), flaw) {
        (true, _) => TaskMode::Off,
        (false, Flaw::EnqueueBeforeLog) => TaskMode::AtBegin,
        (false, _) => TaskMode::AfterCommit,
    }
}

/// The message passing `req` for `group` on, passed on `hops` times so far.
fn forward(group: Gid, hops: u8, req: Msg) -> Msg {
    Msg::Fwd {
        hops,
        group,
        req: Box::new(req),
    }
}

impl Node for MatcherNode {
    type Msg = Msg;
    type Timer = Timer;
    type Call = Relayed<Call>;

    fn init(
        ctx: &Context,
        storage: &dyn Storage,
        out: &mut Outbox<Self>,
    ) -> Result<Self, InitError> {
        let settings = SETTINGS.get().copied().unwrap_or_default();
        let regions = region_count(settings.regions, ctx.node_ids.len());
        let mut groups = Groups::new(COMPACT_EVERY);
        let all = (0..regions).map(Gid::Region).chain([Gid::Coordinator]);
        for (i, group) in all.enumerate() {
            let members = members(&ctx.node_ids, group);
            if !members.contains(&ctx.node_id) {
                continue;
            }
            let sm = match group {
                Gid::Region(r) => {
                    Sm::Region(RegionSm::new(r, settings.flaw == Flaw::ReadAtPrepare))
                }
                Gid::Coordinator => Sm::Coord(CoordSm::new(task_mode(ctx, settings.flaw))),
            };
            let seed = ctx.seed(i as u64);
            groups
                .add(
                    group,
                    &ctx.node_id,
                    &members,
                    Config::default(),
                    storage,
                    &prefix(group),
                    ctx.now_ms(),
                    seed,
                    sm,
                )
                .map_err(|e| InitError::new(format!("cannot read {group:?}'s Raft state: {e}")))?;
        }
        let rng = match settings.seed {
            Some(seed) => {
                let mut seed = seed;
                let node = maelstrom_core::stable_hash(ctx.node_id.as_bytes()).to_le_bytes();
                for (s, n) in seed.iter_mut().zip(node) {
                    *s ^= n;
                }
                StdRng::from_seed(seed)
            }
            None => StdRng::seed_from_u64(
                ctx.wall_ms() ^ maelstrom_core::stable_hash(ctx.node_id.as_bytes()),
            ),
        };
        out.set_timer(TICK, Timer::Tick);
        out.set_timer(HEARTBEAT, Timer::Heartbeat);
        let mut node = MatcherNode {
            flaw: settings.flaw,
            regions,
            groups,
            ids: Ids::load(ctx, storage)?,
            rng,
            router: route::router(&ctx.node_id, &ctx.node_ids, regions),
            local: VecDeque::new(),
            driver: Driver::default(),
            prepared_since: HashMap::new(),
            resolving: HashSet::new(),
            queue: ctx.service("queue").to_vec(),
            tasks: TaskDriver::default(),
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
            }
            Msg::Heartbeat { leads } => self.on_heartbeat(ctx, &src, leads),
            Msg::Fwd {
                hops,
                group,
                mut req,
            } => {
                req.stamp(&ctx.node_ids, &from.src, from.msg_id);
                self.route(ctx, Waiter::Direct(from), hops, group, *req, out);
            }
            mut req => {
                req.stamp(&ctx.node_ids, &from.src, from.msg_id);
                self.on_request(ctx, from, req, out);
            }
        }
        // Proposals and reads start now rather than at the next tick.
        self.drive(ctx, out);
    }

    fn on_timer(&mut self, ctx: &Context, timer: Timer, out: &mut Outbox<Self>) {
        match timer {
            Timer::Tick => {
                self.groups.tick(ctx.now_ms());
                self.unpark(ctx, out);
                self.restart_due(ctx, out);
                self.services(ctx, out);
                self.drive(ctx, out);
                out.set_timer(TICK, Timer::Tick);
            }
            Timer::Heartbeat => {
                self.heartbeat(ctx, out);
                self.deliver_decisions(ctx, out);
                self.resolve_stale(ctx, out);
                self.drive(ctx, out);
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
        if let Relayed::Own(Call::Service(call)) = call {
            self.on_service_reply(ctx, call, reply, out);
        } else if let Some((call, reply)) = relay_or_decode(out, call, reply) {
            self.on_answer(ctx, call, reply, out);
        }
        self.drive(ctx, out);
    }
}
