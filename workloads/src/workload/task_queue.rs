//! `task-queue`: an at-least-once distributed task queue (queue-node's protocol). Producers
//! enqueue tasks, some depending on tasks already enqueued; consumers poll, then ack, nack,
//! start or abandon what they were handed; a final drain acks whatever is left and asks
//! the queue what became of every task never seen completed. The checker is
//! [`crate::checker::task_queue`].
//!
//! Roles: with `n` nodes, workers come in rounds of `n` (one per node), alternately
//! producers and consumers: workers `0..n` produce, `n..2n` consume, `2n..3n` produce, and
//! so on, so every node has both and high concurrency scales both. With no more workers
//! than nodes, odd workers consume and even ones produce, so that both roles exist whenever
//! there are two workers (a single worker only produces). Worker 0, always a producer,
//! audits at the end.
//!
//! Ops and values (EDN, keyword keys, ids as integers):
//! - `:enqueue` `{:id i, :priority p, :kind k, :deps [ids], :max-attempts m}`, the same on
//!   completion. Ids are gift IDs (giftid's layout): a synthetic timestamp that grows with
//!   every task, the producer's index as workshop, the producer's own sequence. About 30%
//!   of tasks depend on one or two recent tasks whose enqueue completed `:ok`.
//! - `:poll` `{:max n}`; ok: `[{:id i, :attempt a, :priority p, :partition q, :stolen b} …]`.
//! - `:start`, `:ack`, `:nack` `{:id i, :attempt a}` for a task the consumer holds; an ok
//!   ack adds `:duplicate`, an ok nack `:dead-lettered`.
//! - `:abandon` `{:id i, :attempt a}`: local (invoke and ok at one instant, nothing sent),
//!   the consumer drops the task and will never ack or nack it.
//! - `:dlq` nil; ok: `[{:id i, :attempts a, :max-attempts m} …]`.
//! - `:status` `{:id i}`; ok `{:id i, :status s, :attempts a}`.
//!
//! A consumer holding no task polls (max 1–4, lease 1 s); holding some, it handles the
//! oldest: ack 75%, nack 10%, abandon 7%, start 8% (and ack it next time). Whatever the
//! outcome of an ack or nack, the task is dropped: after a failure its lease runs out.
//!
//! Final phase: consumers poll (max 8) and ack everything, until their polls have come back
//! empty for [`QUIET_MS`] (longer than a lease, so abandoned tasks return first) and no task
//! they know of can still come, or for [`QUIET_CAP_MS`] in any case. Then worker 0 asks
//! for the dead letters and the status of each task enqueued (`:ok` or `:info`) and never
//! seen acknowledged, up to [`MAX_STATUS`] of them.
//!
//! The santa workload reuses the consumers (`TaskQueue::consumers_only`): tasks enqueued
//! by the matcher, string ids, deliveries recorded with `:kind` and `:payload`, and a drain
//! that waits for a given set of tasks (`Awaited`) rather than for its own enqueues.

use std::collections::{HashMap, HashSet, VecDeque};

use giftid::layout::{self, GiftType};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::{body, Ask, ClientRules, Cluster, GenOp, Next, Phase, Request, RunFacts, Workload};
use crate::checker::santa::STAGES as KINDS;
use crate::edn::Edn;
use crate::history::{History, Op, OpType};
use crate::schema::{FieldType, Schema};

/// The lease consumers ask for.
const LEASE_MS: u64 = 1_000;
/// The largest poll of the main phase.
const MAX_POLL: i64 = 4;
/// The poll of the drain.
const DRAIN_POLL: i64 = 8;
/// Share of tasks with dependencies.
const DEPS_SHARE: f64 = 0.3;
/// How many of the latest acknowledged enqueues dependencies are chosen from.
const RECENT: usize = 32;
/// The drain's pause after a poll that brought nothing.
const POLL_PAUSE_MS: u64 = 200;
/// Empty polls for this long end a consumer's drain, once nothing it knows of can come.
pub const QUIET_MS: u64 = 2_500;
/// Empty polls for this long end a consumer's drain whatever it knows.
pub const QUIET_CAP_MS: u64 = 10_000;
/// How often the auditor looks whether the consumers are done.
const AUDIT_PAUSE_MS: u64 = 250;
/// The auditor starts after this much of the final phase even if consumers still drain,
/// so that the audit fits in the engine's limit.
pub(crate) const AUDIT_DEADLINE_MS: u64 = 40_000;
/// Status requests of the audit, at most.
pub const MAX_STATUS: usize = 500;
/// The synthetic timestamp of the first task: 2025-12-24T00:00:00Z, in ms since giftid's
/// epoch.
const FIRST_TIMESTAMP: u64 = 30_844_800_000;
/// The worker that audits at the end.
const AUDITOR: usize = 0;

/// What the workload knows of one task it enqueued.
#[derive(Debug, Clone)]
struct Task {
    id: i64,
    deps: Vec<i64>,
    max_attempts: i64,
    /// The enqueue's completion, `Invoke` while it is in flight.
    enqueued: OpType,
    acked: Acked,
    /// Handed out at its last attempt: it completes or is dead-lettered, never handed out
    /// again (unless replayed).
    exhausted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acked {
    No,
    /// An ack timed out or failed indefinitely: the task may be completed.
    Maybe,
    Yes,
}

/// A task a consumer was handed and has not let go of.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Held {
    /// An integer or a string, as the queue handed it out.
    id: Edn,
    attempt: i64,
    started: bool,
}

#[derive(Debug, Clone, Default)]
struct Consumer {
    /// Oldest first.
    held: VecDeque<Held>,
    /// When the first of the current run of empty polls completed.
    empty_since: Option<u64>,
    /// No poll in the drain before this time.
    poll_after: u64,
    /// Finished draining.
    drained: bool,
}

#[derive(Debug, Clone)]
enum Role {
    Producer {
        workshop: u16,
        sequence: u64,
    },
    Consumer(Consumer),
    /// A worker of another service (the santa workload's clients).
    Elsewhere,
}

/// Which tasks the drain waits for, besides the quiet rule.
#[derive(Debug, Clone)]
pub(crate) enum Awaited {
    /// The tasks this workload's producers enqueued.
    Own,
    /// Tasks enqueued elsewhere, not yet known: something may still come.
    Unknown,
    /// These tasks (by id), until each is acknowledged.
    These(HashSet<String>),
}

#[derive(Debug, Clone)]
enum Audit {
    /// Waiting for the consumers to drain.
    Waiting,
    /// The dead letters were asked for; then the status of each of `ids`.
    Statuses { ids: Vec<i64>, next: usize },
}

#[derive(Debug)]
pub struct TaskQueue {
    enqueue: Schema,
    poll: Schema,
    start: Schema,
    ack: Schema,
    nack: Schema,
    status: Schema,
    dlq: Schema,
    unsupported: Schema,
    roles: Vec<Role>,
    tasks: Vec<Task>,
    by_id: HashMap<i64, usize>,
    /// Ids of the latest tasks whose enqueue completed `:ok`, newest last.
    recent_ok: VecDeque<i64>,
    /// Tasks generated so far: the synthetic timestamp's offset.
    generated: u64,
    /// When the final phase began.
    final_from: Option<u64>,
    audit: Audit,
    awaited: Awaited,
    /// Deliveries are recorded with their kind and payload.
    rich: bool,
    /// What a consumer does with a task it holds, in percent: start it (then ack it),
    /// ack, nack; abandon the rest.
    mix: Mix,
    /// In the drain, a consumer starts each task before it acks it.
    drain_starts: bool,
}

/// Percentages of what a consumer does with a task it holds; abandons take the rest.
#[derive(Debug, Clone, Copy)]
struct Mix {
    start: u32,
    ack: u32,
    nack: u32,
}

/// A consumer's poll completed: it holds what it was handed (returned as (id, attempt),
/// for the tasks' attempt counts), notes an empty queue, and pauses when it holds nothing.
fn polled(c: &mut Consumer, done: &Op, now: u64) -> Vec<(Edn, i64)> {
    let deliveries = match done.op_type {
        OpType::Ok => done.value.elements().unwrap_or_default(),
        _ => &[],
    };
    let mut handed = Vec::new();
    for d in deliveries {
        let id = d
            .get("id")
            .filter(|i| matches!(i, Edn::Int(_) | Edn::Str(_)));
        let attempt = d.get("attempt").and_then(Edn::as_i64);
        if let (Some(id), Some(attempt)) = (id, attempt) {
            c.held.push_back(Held {
                id: id.clone(),
                attempt,
                started: false,
            });
            handed.push((id.clone(), attempt));
        }
    }
    if done.op_type == OpType::Ok && deliveries.is_empty() {
        c.empty_since.get_or_insert(now);
    } else if done.op_type == OpType::Ok {
        c.empty_since = None;
    }
    if c.held.is_empty() {
        c.poll_after = now + POLL_PAUSE_MS;
    }
    handed
}

impl TaskQueue {
    /// A queue workload for one node and one worker, until [`Workload::begin`] gives the
    /// run's shape.
    pub fn new() -> Self {
        let tasks = || FieldType::ListOf(Box::new(FieldType::MapOf(Box::new(FieldType::Any))));
        let mut w = TaskQueue {
            enqueue: Schema::reply(
                "enqueue_ok",
                &[
                    ("id", FieldType::Int),
                    ("partition", FieldType::Int),
                    ("duplicate", FieldType::Any),
                ],
            ),
            poll: Schema::reply("poll_ok", &[("tasks", tasks())]),
            start: Schema::reply("start_ok", &[]),
            ack: Schema::reply("ack_ok", &[("duplicate", FieldType::Any)]),
            nack: Schema::reply("nack_ok", &[("dead_lettered", FieldType::Any)]),
            status: Schema::reply(
                "status_ok",
                &[
                    ("id", FieldType::Int),
                    ("status", FieldType::Str),
                    ("attempts", FieldType::Int),
                    ("max_attempts", FieldType::Int),
                    ("blocked_by", FieldType::ListOf(Box::new(FieldType::Int))),
                ],
            ),
            dlq: Schema::reply("dlq_ok", &[("tasks", tasks())]),
            unsupported: Schema::reply("unsupported", &[]),
            roles: Vec::new(),
            tasks: Vec::new(),
            by_id: HashMap::new(),
            recent_ok: VecDeque::new(),
            generated: 0,
            final_from: None,
            audit: Audit::Waiting,
            awaited: Awaited::Own,
            rich: false,
            mix: Mix {
                start: 8,
                ack: 75,
                nack: 10,
            },
            drain_starts: false,
        };
        w.shape(1, 1);
        w
    }

    /// Assigns the roles for `nodes` nodes and `workers` workers.
    fn shape(&mut self, nodes: usize, workers: usize) {
        let mut producers = 0u16;
        self.roles = (0..workers)
            .map(|w| {
                let consumer = if workers > nodes {
                    (w / nodes) % 2 == 1
                } else {
                    w % 2 == 1
                };
                if consumer {
                    Role::Consumer(Consumer::default())
                } else {
                    producers += 1;
                    Role::Producer {
                        workshop: producers - 1,
                        sequence: 0,
                    }
                }
            })
            .collect();
    }

    fn task_mut(&mut self, id: &Edn) -> Option<&mut Task> {
        let i = *self.by_id.get(&id.as_i64()?)?;
        self.tasks.get_mut(i)
    }

    /// A queue workload whose tasks are enqueued elsewhere, with string ids: `elves[w]`
    /// says whether worker `w` consumes (else it works for another service). Deliveries
    /// are recorded with their kind and payload.
    pub(crate) fn consumers_only(elves: &[bool]) -> Self {
        let mut w = TaskQueue::new();
        let strs = || FieldType::ListOf(Box::new(FieldType::Str));
        w.status = Schema::reply(
            "status_ok",
            &[
                ("id", FieldType::Str),
                ("status", FieldType::Str),
                ("attempts", FieldType::Int),
                ("max_attempts", FieldType::Int),
                ("blocked_by", strs()),
            ],
        );
        w.roles = elves
            .iter()
            .map(|e| match e {
                true => Role::Consumer(Consumer::default()),
                false => Role::Elsewhere,
            })
            .collect();
        w.awaited = Awaited::Unknown;
        w.rich = true;
        // Elves often say they started, as a workshop would (a started task is the one a
        // cancel leaves alone, so both sides of it are tried), and nack often enough that
        // a short run under faults still has nacks that succeed.
        w.mix = Mix {
            start: 45,
            ack: 25,
            nack: 20,
        };
        w.drain_starts = true;
        w
    }

    /// The drain waits for these tasks (by id) until each is acknowledged.
    pub(crate) fn await_tasks(&mut self, ids: HashSet<String>) {
        self.awaited = Awaited::These(ids);
    }

    /// Whether worker `worker` consumes and has finished its drain.
    pub(crate) fn drained(&self, worker: usize) -> bool {
        matches!(self.roles.get(worker), Some(Role::Consumer(c)) if c.drained)
    }

    fn consumer_mut(&mut self, worker: usize) -> Option<&mut Consumer> {
        match self.roles.get_mut(worker) {
            Some(Role::Consumer(c)) => Some(c),
            _ => None,
        }
    }

    /// A new task from producer `worker`.
    fn enqueue_op(&mut self, worker: usize, rng: &mut StdRng) -> Next {
        let Some(Role::Producer { workshop, sequence }) = self.roles.get_mut(worker) else {
            return Next::Done;
        };
        let id = layout::encode(
            FIRST_TIMESTAMP + self.generated,
            *workshop % layout::WORKSHOPS as u16,
            (*sequence % layout::SEQUENCES) as u16,
            GiftType::Toy,
        ) as i64;
        *sequence += 1;
        self.generated += 1;
        let priority = match rng.gen_range(0..100) {
            0..=19 => "express",
            20..=69 => "standard",
            _ => "nice-child",
        };
        let kind = KINDS[rng.gen_range(0..KINDS.len())];
        let mut deps = Vec::new();
        if rng.gen_bool(DEPS_SHARE) && !self.recent_ok.is_empty() {
            let count = rng.gen_range(1..=2).min(self.recent_ok.len());
            for i in rand::seq::index::sample(rng, self.recent_ok.len(), count) {
                deps.push(self.recent_ok[i]);
            }
        }
        let max_attempts = rng.gen_range(1..=4);
        self.by_id.insert(id, self.tasks.len());
        self.tasks.push(Task {
            id,
            deps: deps.clone(),
            max_attempts,
            enqueued: OpType::Invoke,
            acked: Acked::No,
            exhausted: false,
        });
        let value = Edn::map([
            ("id", Edn::Int(id)),
            ("priority", Edn::kw(priority)),
            ("kind", Edn::kw(kind)),
            (
                "deps",
                Edn::Vector(deps.into_iter().map(Edn::Int).collect()),
            ),
            ("max-attempts", Edn::Int(max_attempts)),
        ]);
        Next::Op(GenOp::new("enqueue", value))
    }

    /// Whether some task the workload knows of may still be handed out: enqueued `:ok`,
    /// never (maybe) acknowledged, not at its last attempt, and every dependency (maybe)
    /// acknowledged. Dependencies come first, so one pending dependency already answers.
    fn could_still_come(&self) -> bool {
        match &self.awaited {
            Awaited::Own => {}
            Awaited::Unknown => return true,
            Awaited::These(ids) => return !ids.is_empty(),
        }
        let acked = |id: &i64| {
            self.by_id
                .get(id)
                .is_some_and(|&i| self.tasks[i].acked != Acked::No)
        };
        self.tasks.iter().any(|t| {
            t.enqueued == OpType::Ok
                && t.acked == Acked::No
                && !t.exhausted
                && t.deps.iter().all(acked)
        })
    }

    /// The auditor's next step in the final phase.
    fn audit_next(&mut self, now_ms: u64) -> Next {
        let since_start = now_ms.saturating_sub(self.final_from.unwrap_or(now_ms));
        match &mut self.audit {
            Audit::Waiting => {
                let drained = self.roles.iter().all(|r| match r {
                    Role::Consumer(c) => c.drained,
                    Role::Producer { .. } | Role::Elsewhere => true,
                });
                if !drained && since_start < AUDIT_DEADLINE_MS {
                    return Next::Wait(AUDIT_PAUSE_MS);
                }
                let ids = self
                    .tasks
                    .iter()
                    .filter(|t| matches!(t.enqueued, OpType::Ok | OpType::Info))
                    .filter(|t| t.acked != Acked::Yes)
                    .map(|t| t.id)
                    .take(MAX_STATUS)
                    .collect();
                self.audit = Audit::Statuses { ids, next: 0 };
                Next::Op(GenOp::new("dlq", Edn::Nil))
            }
            Audit::Statuses { ids, next } => match ids.get(*next) {
                Some(&id) => {
                    *next += 1;
                    Next::Op(status_op(Edn::Int(id)))
                }
                None => Next::Done,
            },
        }
    }

    /// A consumer's next step in the final phase: ack what it holds, else poll until the
    /// queue has stayed empty long enough.
    fn drain_next(&mut self, ask: Ask) -> Next {
        let now = ask.now_ms;
        let quiet_enough = |c: &Consumer, could_come: &dyn Fn() -> bool| {
            c.empty_since.is_some_and(|since| {
                let quiet = now.saturating_sub(since);
                quiet >= QUIET_CAP_MS || (quiet >= QUIET_MS && !could_come())
            })
        };
        let Some(Role::Consumer(c)) = self.roles.get(ask.worker) else {
            return Next::Done;
        };
        if let Some(h) = c.held.front() {
            let f = if self.drain_starts && !h.started {
                "start"
            } else {
                "ack"
            };
            return Next::Op(GenOp::new(f, held_value(h)));
        }
        let all_done = matches!(&self.awaited, Awaited::These(ids) if ids.is_empty());
        let drained = all_done || quiet_enough(c, &|| self.could_still_come());
        let poll_after = c.poll_after;
        let c = self.consumer_mut(ask.worker).expect("a consumer");
        if drained {
            c.drained = true;
            return Next::Done;
        }
        if now < poll_after {
            return Next::Wait(poll_after - now);
        }
        Next::Op(poll_op(DRAIN_POLL))
    }

    /// What a consumer learns from one of its operations completing.
    fn consumer_completed(&mut self, worker: usize, op: &GenOp, done: &Op) {
        let now = done.time_ns / 1_000_000;
        let id = op.value.get("id").cloned();
        let attempt = op.value.get("attempt").and_then(Edn::as_i64);
        let held = (id.clone(), attempt);
        let mut exhausted = Vec::new();
        let mut acked = None;
        let Some(c) = self.consumer_mut(worker) else {
            return;
        };
        let drop_held = |c: &mut Consumer| {
            if let Some(i) = c
                .held
                .iter()
                .position(|h| (Some(&h.id), Some(h.attempt)) == (held.0.as_ref(), held.1))
            {
                c.held.remove(i);
            }
        };
        match op.f {
            "poll" => exhausted = polled(c, done, now),
            "start" => {
                if let Some(h) = c
                    .held
                    .iter_mut()
                    .find(|h| (Some(&h.id), Some(h.attempt)) == (held.0.as_ref(), held.1))
                {
                    h.started = true;
                }
            }
            "ack" => {
                drop_held(c);
                acked = match done.op_type {
                    OpType::Ok => Some(Acked::Yes),
                    OpType::Info => Some(Acked::Maybe),
                    _ => None,
                };
            }
            "nack" => {
                drop_held(c);
                let dead = done.op_type == OpType::Ok
                    && done.value.get("dead-lettered") == Some(&Edn::Bool(true));
                if let (true, Some(id)) = (dead, id.clone()) {
                    exhausted.push((id, i64::MAX));
                }
            }
            "abandon" => drop_held(c),
            _ => {}
        }
        for (id, attempt) in exhausted {
            if let Some(t) = self.task_mut(&id) {
                t.exhausted |= attempt >= t.max_attempts;
            }
        }
        if let (Some(Acked::Yes), Some(Awaited::These(ids)), Some(key)) = (
            acked,
            Some(&mut self.awaited),
            id.as_ref().and_then(Edn::as_str),
        ) {
            ids.remove(key);
        }
        if let (Some(how), Some(id)) = (acked, id) {
            if let Some(t) = self.task_mut(&id) {
                if t.acked != Acked::Yes {
                    t.acked = how;
                }
            }
        }
    }
}

impl Default for TaskQueue {
    fn default() -> Self {
        Self::new()
    }
}

fn held_value(h: &Held) -> Edn {
    Edn::map([("id", h.id.clone()), ("attempt", Edn::Int(h.attempt))])
}

fn poll_op(max: i64) -> GenOp {
    GenOp::new("poll", Edn::map([("max", Edn::Int(max))]))
}

/// The status of task `id` (an integer or a string).
pub(crate) fn status_op(id: Edn) -> GenOp {
    GenOp::new("status", Edn::map([("id", id)]))
}

/// A JSON field of a reply object as EDN; strings become keywords when `keyword`.
fn field(obj: &Map<String, Value>, key: &str, keyword: bool) -> Edn {
    match obj.get(key) {
        Some(Value::String(s)) if keyword => Edn::kw(s),
        Some(v) => Edn::from_json(v, false),
        None => Edn::Nil,
    }
}

/// The objects of a reply's list field, each as an EDN map of `keys` (JSON key, EDN key,
/// as keyword).
fn objects(reply: &Map<String, Value>, list: &str, keys: &[(&str, &str, bool)]) -> Edn {
    let items = reply.get(list).and_then(Value::as_array);
    Edn::Vector(
        items
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .map(|o| Edn::map(keys.iter().map(|(j, e, kw)| (*e, field(o, j, *kw)))))
            .collect(),
    )
}

/// `value` with `key` set from the reply's `json_key`.
fn with(value: &Edn, key: &str, reply: &Map<String, Value>, json_key: &str) -> Edn {
    let mut v = value.clone();
    v.insert(key, field(reply, json_key, false));
    v
}

/// A small payload, derived from the id so that the request follows from the op.
fn payload(id: i64) -> Value {
    let parts = layout::decode(id).ok();
    let sequence = parts.map_or(0, |p| p.sequence);
    json!({
        "elf": format!("elf-{}", parts.map_or(0, |p| p.workshop)),
        "items": 1 + sequence % 5,
    })
}

impl TaskQueue {
    /// A producer enqueues; a consumer polls, or acks, nacks, starts or drops what it holds.
    fn next_main(&mut self, ask: Ask, rng: &mut StdRng) -> Next {
        let held = match self.roles.get(ask.worker) {
            None | Some(Role::Elsewhere) => return Next::Done,
            Some(Role::Producer { .. }) => return self.enqueue_op(ask.worker, rng),
            Some(Role::Consumer(c)) => c.held.front().cloned(),
        };
        let Some(h) = held else {
            return Next::Op(poll_op(rng.gen_range(1..=MAX_POLL)));
        };
        let value = held_value(&h);
        if h.started {
            return Next::Op(GenOp::new("ack", value));
        }
        let Mix { start, ack, nack } = self.mix;
        match rng.gen_range(0..100) {
            d if d < start => Next::Op(GenOp::new("start", value)),
            d if d < start + ack => Next::Op(GenOp::new("ack", value)),
            d if d < start + ack + nack => Next::Op(GenOp::new("nack", value)),
            _ => Next::Local(GenOp::new("abandon", value)),
        }
    }

    /// The drain: consumers poll until the queue stays empty; the auditor reads statuses.
    fn next_final(&mut self, ask: Ask) -> Next {
        self.final_from.get_or_insert(ask.now_ms);
        match self.roles.get_mut(ask.worker) {
            None | Some(Role::Elsewhere) => Next::Done,
            Some(Role::Producer { .. }) if ask.worker == AUDITOR => self.audit_next(ask.now_ms),
            Some(Role::Producer { .. }) => Next::Done,
            Some(Role::Consumer(c)) => {
                if ask.issued == 0 {
                    // Empty polls of the main phase say nothing about the drain.
                    c.empty_since = None;
                    c.poll_after = 0;
                }
                self.drain_next(ask)
            }
        }
    }
}

impl Workload for TaskQueue {
    fn name(&self) -> &'static str {
        "task-queue"
    }

    fn client(&self) -> ClientRules {
        ClientRules {
            // Only reads: a repeated or lost status or dead-letter listing changes nothing,
            // and nothing the checker judges depends on whether it happened. Polls lease
            // tasks, enqueues create them, acks, nacks and starts change a task's state: the
            // checker must know those may have happened.
            idempotent: &["status", "dlq", "health"],
            reusable: true,
            latency_factor: 10,
            min_timeout_ms: 1_000,
            ..ClientRules::default()
        }
    }

    fn begin(&mut self, cluster: &Cluster) {
        self.shape(cluster.nodes.len().max(1), cluster.workers);
    }

    fn next(&mut self, ask: Ask, rng: &mut StdRng) -> Next {
        match ask.phase {
            Phase::Main => self.next_main(ask, rng),
            Phase::Final => self.next_final(ask),
        }
    }

    fn has_final_phase(&self) -> bool {
        true
    }

    fn completed(&mut self, worker: usize, op: &GenOp, done: &Op) {
        if op.f == "enqueue" {
            let Some(id) = op.value.get("id").and_then(Edn::as_i64) else {
                return;
            };
            if let Some(t) = self.task_mut(&Edn::Int(id)) {
                t.enqueued = done.op_type;
            }
            if done.op_type == OpType::Ok {
                self.recent_ok.push_back(id);
                if self.recent_ok.len() > RECENT {
                    self.recent_ok.pop_front();
                }
            }
            return;
        }
        self.consumer_completed(worker, op, done);
    }

    fn request(&self, op: &GenOp) -> Request<'_> {
        let v = |key: &str| op.value.get(key).cloned().unwrap_or(Edn::Nil).to_json();
        let (kind, fields, reply) = match op.f {
            "enqueue" => {
                let id = op.value.get("id").and_then(Edn::as_i64).unwrap_or(0);
                let task = json!({
                    "id": id,
                    "kind": v("kind"),
                    "priority": v("priority"),
                    "deps": v("deps"),
                    "payload": payload(id),
                    "max_attempts": v("max-attempts"),
                });
                ("enqueue", vec![("task", task)], &self.enqueue)
            }
            "poll" => (
                "poll",
                vec![("max", v("max")), ("lease_ms", Value::from(LEASE_MS))],
                &self.poll,
            ),
            "start" | "ack" | "nack" => {
                let reply = match op.f {
                    "start" => &self.start,
                    "ack" => &self.ack,
                    _ => &self.nack,
                };
                (
                    op.f,
                    vec![("id", v("id")), ("attempt", v("attempt"))],
                    reply,
                )
            }
            "status" => ("status", vec![("id", v("id"))], &self.status),
            "dlq" => ("dlq", Vec::new(), &self.dlq),
            // Local operations (abandon) are never sent.
            other => (other, Vec::new(), &self.unsupported),
        };
        Request {
            body: body(kind, &fields),
            reply,
        }
    }

    fn ok_value(&self, op: &GenOp, reply: &Map<String, Value>) -> Edn {
        match op.f {
            "poll" => {
                let plain: &[(&str, &str, bool)] = &[
                    ("id", "id", false),
                    ("attempt", "attempt", false),
                    ("priority", "priority", true),
                    ("partition", "partition", false),
                    ("stolen", "stolen", false),
                ];
                let rich: &[(&str, &str, bool)] = &[
                    ("id", "id", false),
                    ("attempt", "attempt", false),
                    ("priority", "priority", true),
                    ("kind", "kind", true),
                    ("payload", "payload", false),
                    ("partition", "partition", false),
                    ("stolen", "stolen", false),
                ];
                objects(reply, "tasks", if self.rich { rich } else { plain })
            }
            "ack" => with(&op.value, "duplicate", reply, "duplicate"),
            "nack" => with(&op.value, "dead-lettered", reply, "dead_lettered"),
            "status" => Edn::map([
                ("id", field(reply, "id", false)),
                ("status", field(reply, "status", true)),
                ("attempts", field(reply, "attempts", false)),
            ]),
            "dlq" => objects(
                reply,
                "tasks",
                &[
                    ("id", "id", false),
                    ("attempts", "attempts", false),
                    ("max_attempts", "max-attempts", false),
                ],
            ),
            _ => op.value.clone(),
        }
    }

    fn check(&self, history: &History, _facts: &RunFacts) -> Edn {
        crate::checker::task_queue::check(history)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashSet};

    use super::*;
    use crate::history::Process;
    use crate::topology::Topology;
    use rand::SeedableRng;

    fn shaped(nodes: usize, workers: usize) -> TaskQueue {
        let mut w = TaskQueue::new();
        w.begin(&Cluster {
            nodes: (0..nodes).map(|i| format!("n{i}")).collect(),
            topology: Topology::Grid,
            workers,
            node_args: Vec::new(),
            services: Vec::new(),
        });
        w
    }

    fn ask(worker: usize, now_ms: u64, issued: usize) -> Ask {
        Ask {
            phase: Phase::Main,
            worker,
            now_ms,
            issued,
        }
    }

    fn final_ask(worker: usize, now_ms: u64, issued: usize) -> Ask {
        Ask {
            phase: Phase::Final,
            ..ask(worker, now_ms, issued)
        }
    }

    fn op_of(next: Next) -> GenOp {
        match next {
            Next::Op(op) => op,
            other => panic!("expected an op, got {other:?}"),
        }
    }

    /// The completion the engine would record (the santa workload's tests use it too).
    pub(in crate::workload) fn done(
        worker: usize,
        op: &GenOp,
        t: OpType,
        value: Edn,
        now_ms: u64,
    ) -> Op {
        let mut o = Op::new(
            now_ms * 1_000_000,
            t,
            Process::Worker(worker as u64),
            op.f,
            value,
        );
        o.final_read = op.final_read;
        o
    }

    fn delivery(id: i64, attempt: i64) -> Edn {
        Edn::map([
            ("id", Edn::Int(id)),
            ("attempt", Edn::Int(attempt)),
            ("priority", Edn::kw("standard")),
            ("partition", Edn::Int(0)),
            ("stolen", Edn::Bool(false)),
        ])
    }

    fn id_of(op: &GenOp) -> i64 {
        op.value.get("id").and_then(Edn::as_i64).unwrap()
    }

    fn roles(nodes: usize, workers: usize) -> String {
        let mut w = shaped(nodes, workers);
        let mut rng = StdRng::seed_from_u64(1);
        (0..workers)
            .map(|k| match op_of(w.next(ask(k, 0, 0), &mut rng)).f {
                "enqueue" => 'P',
                "poll" => 'C',
                other => panic!("{other}"),
            })
            .collect()
    }

    #[test]
    fn producers_talk_to_every_node_and_both_roles_exist() {
        assert_eq!(roles(3, 5), "PPPCC");
        assert_eq!(roles(3, 3), "PCP");
        assert_eq!(roles(5, 2), "PC");
        assert_eq!(roles(2, 8), "PPCCPPCC");
        assert_eq!(roles(1, 1), "P");
    }

    #[test]
    fn ids_are_unique_gift_ids_of_their_producer() {
        let mut w = shaped(3, 6);
        let mut rng = StdRng::seed_from_u64(2);
        let mut seen = HashSet::new();
        let mut per_producer: BTreeMap<u16, u16> = BTreeMap::new();
        let mut last_ts = 0;
        for i in 0..9_000 {
            let producer = i % 3;
            let op = op_of(w.next(ask(producer, 0, 0), &mut rng));
            assert_eq!(op.f, "enqueue");
            let id = id_of(&op);
            assert!(id > 0 && seen.insert(id), "{id} repeated");
            let parts = layout::decode(id).unwrap();
            assert_eq!(usize::from(parts.workshop), producer);
            let seq = per_producer.entry(parts.workshop).or_default();
            assert_eq!(parts.sequence, *seq % layout::SEQUENCES as u16);
            *seq += 1;
            assert!(parts.timestamp > last_ts, "timestamps grow");
            last_ts = parts.timestamp;
            assert_eq!(parts.gift_type, GiftType::Toy);
        }
    }

    #[test]
    fn enqueues_follow_the_spec_and_depend_only_on_tasks_enqueued_ok() {
        let mut w = shaped(2, 4);
        let mut rng = StdRng::seed_from_u64(3);
        let mut outcomes = StdRng::seed_from_u64(4);
        let mut ok = HashSet::new();
        let (mut with_deps, mut total) = (0, 0);
        let mut priorities: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..5_000 {
            let producer = i % 2;
            let op = op_of(w.next(ask(producer, 0, 0), &mut rng));
            let deps: Vec<i64> = op
                .value
                .get("deps")
                .unwrap()
                .elements()
                .unwrap()
                .iter()
                .map(|d| d.as_i64().unwrap())
                .collect();
            assert!(deps.len() <= 2);
            assert_eq!(deps.iter().collect::<BTreeSet<_>>().len(), deps.len());
            for d in &deps {
                assert!(ok.contains(d), "dependency {d} was not enqueued :ok");
            }
            if !ok.is_empty() {
                total += 1;
                with_deps += usize::from(!deps.is_empty());
            }
            let attempts = op.value.get("max-attempts").and_then(Edn::as_i64).unwrap();
            assert!((1..=4).contains(&attempts));
            *priorities
                .entry(op.value.get("priority").unwrap().to_compact())
                .or_default() += 1;
            let keys: Vec<String> = match &op.value {
                Edn::Map(m) => m.iter().map(|(k, _)| k.to_compact()).collect(),
                _ => panic!(),
            };
            assert_eq!(
                keys,
                [":id", ":priority", ":kind", ":deps", ":max-attempts"]
            );
            let t = match outcomes.gen_range(0..4) {
                0 => OpType::Fail,
                1 => OpType::Info,
                _ => OpType::Ok,
            };
            if t == OpType::Ok {
                ok.insert(id_of(&op));
            }
            w.completed(producer, &op, &done(producer, &op, t, op.value.clone(), 0));
        }
        let share = with_deps as f64 / total as f64;
        assert!((0.25..0.35).contains(&share), "{share}");
        let express = priorities[":express"] as f64 / 5_000.0;
        let nice = priorities[":nice-child"] as f64 / 5_000.0;
        assert!((0.17..0.23).contains(&express) && (0.27..0.33).contains(&nice));
        assert_eq!(priorities.len(), 3);
    }

    #[test]
    fn requests_and_values_have_the_protocols_shapes() {
        let mut w = shaped(1, 2);
        let mut rng = StdRng::seed_from_u64(5);
        let enqueue = op_of(w.next(ask(0, 0, 0), &mut rng));
        let req = w.request(&enqueue);
        assert_eq!(req.body["type"], "enqueue");
        let task = &req.body["task"];
        assert_eq!(task["id"], id_of(&enqueue));
        assert!(KINDS.contains(&task["kind"].as_str().unwrap()));
        assert!(task["payload"].is_object() && task["deps"].is_array());
        assert!(task["max_attempts"].is_i64());
        let reply = json!({"type":"enqueue_ok","id":task["id"],"partition":0,"duplicate":false,"in_reply_to":1});
        assert!(req.reply.check(reply.as_object().unwrap()).is_ok());

        let poll = op_of(w.next(ask(1, 0, 0), &mut rng));
        let req = w.request(&poll);
        assert_eq!(req.body["lease_ms"], 1000);
        let max = req.body["max"].as_i64().unwrap();
        assert!((1..=MAX_POLL).contains(&max));
        assert_eq!(poll.value.to_compact(), format!("{{:max {max}}}"));
        let reply = json!({"type":"poll_ok","in_reply_to":1,"tasks":[{"id":7,"kind":"painting",
            "priority":"nice-child","attempt":2,"max_attempts":3,"payload":{"a":1},
            "partition":1,"stolen":true,"lease_until":99}]});
        let reply = reply.as_object().unwrap();
        assert!(req.reply.check(reply).is_ok());
        assert_eq!(
            w.ok_value(&poll, reply).to_compact(),
            "[{:id 7, :attempt 2, :priority :nice-child, :partition 1, :stolen true}]"
        );

        let ack = GenOp::new(
            "ack",
            held_value(&Held {
                id: Edn::Int(7),
                attempt: 2,
                started: false,
            }),
        );
        let req = w.request(&ack);
        assert_eq!(
            Value::Object(req.body.clone()),
            json!({"id":7,"attempt":2,"type":"ack"})
        );
        let reply = json!({"type":"ack_ok","duplicate":true,"in_reply_to":3});
        assert_eq!(
            w.ok_value(&ack, reply.as_object().unwrap()).to_compact(),
            "{:id 7, :attempt 2, :duplicate true}"
        );
        let nack = GenOp::new("nack", ack.value.clone());
        let reply = json!({"type":"nack_ok","dead_lettered":false,"in_reply_to":3});
        assert!(w
            .request(&nack)
            .reply
            .check(reply.as_object().unwrap())
            .is_ok());
        assert_eq!(
            w.ok_value(&nack, reply.as_object().unwrap()).to_compact(),
            "{:id 7, :attempt 2, :dead-lettered false}"
        );

        let status = GenOp::new("status", Edn::map([("id", Edn::Int(7))]));
        let reply = json!({"type":"status_ok","id":7,"status":"in_progress","attempts":2,
            "max_attempts":3,"blocked_by":[],"in_reply_to":4});
        let reply = reply.as_object().unwrap();
        assert!(w.request(&status).reply.check(reply).is_ok());
        assert_eq!(
            w.ok_value(&status, reply).to_compact(),
            "{:id 7, :status :in_progress, :attempts 2}"
        );
        let extra = json!({"type":"status_ok","id":7,"status":"failed","attempts":2,
            "max_attempts":3,"blocked_by":[],"owner":"n1","in_reply_to":4});
        assert!(w
            .request(&status)
            .reply
            .check(extra.as_object().unwrap())
            .is_err());

        let dlq = GenOp::new("dlq", Edn::Nil);
        assert_eq!(Value::Object(w.request(&dlq).body), json!({"type":"dlq"}));
        let reply = json!({"type":"dlq_ok","tasks":[{"id":7,"attempts":3,"max_attempts":3}],"in_reply_to":5});
        assert_eq!(
            w.ok_value(&dlq, reply.as_object().unwrap()).to_compact(),
            "[{:id 7, :attempts 3, :max-attempts 3}]"
        );

        for f in ["status", "dlq"] {
            assert!(w.client().is_idempotent(f), "{f}");
        }
        for f in ["enqueue", "poll", "ack", "nack", "start", "abandon"] {
            assert!(!w.client().is_idempotent(f), "{f}");
        }
        assert_eq!(w.client().timeout_ms(0), 1_000);
        assert_eq!(w.client().timeout_ms(500), 5_000);
    }

    /// One consumer handed two tasks: every op names a held task with its attempt, the
    /// oldest first, a started task is acked next, and the consumer polls again once both
    /// are let go of.
    #[test]
    fn a_consumer_handles_what_it_polled_with_the_right_attempt() {
        let mut kinds = BTreeSet::new();
        for seed in 0..200 {
            let mut w = shaped(1, 2);
            let mut rng = StdRng::seed_from_u64(seed);
            let poll = op_of(w.next(ask(1, 0, 0), &mut rng));
            assert_eq!(poll.f, "poll");
            let tasks = Edn::Vector(vec![delivery(11, 2), delivery(12, 1)]);
            w.completed(1, &poll, &done(1, &poll, OpType::Ok, tasks, 1));
            let mut expect = VecDeque::from([(11, 2), (12, 1)]);
            let mut started = None;
            for _ in 0..10 {
                let next = w.next(ask(1, 0, 0), &mut rng);
                let (op, local) = match next {
                    Next::Op(op) => (op, false),
                    Next::Local(op) => (op, true),
                    other => panic!("{other:?}"),
                };
                let Some(&(id, attempt)) = expect.front() else {
                    assert_eq!(op.f, "poll");
                    break;
                };
                assert_eq!(
                    op.value,
                    held_value(&Held {
                        id: Edn::Int(id),
                        attempt,
                        started: false
                    })
                );
                assert_eq!(local, op.f == "abandon", "{}", op.f);
                if started == Some(id) {
                    assert_eq!(op.f, "ack", "a started task is acked next");
                }
                kinds.insert(op.f);
                match op.f {
                    "start" => started = Some(id),
                    _ => {
                        expect.pop_front();
                    }
                }
                let value = match op.f {
                    "ack" => {
                        let mut v = op.value.clone();
                        v.insert("duplicate", Edn::Bool(false));
                        v
                    }
                    _ => op.value.clone(),
                };
                w.completed(1, &op, &done(1, &op, OpType::Ok, value, 2));
            }
            assert!(expect.is_empty());
        }
        let kinds: Vec<&str> = kinds.into_iter().collect();
        assert_eq!(kinds, ["abandon", "ack", "nack", "start"]);
    }

    #[test]
    fn failed_or_uncertain_acks_and_nacks_drop_the_task() {
        for (f, t) in [
            ("ack", OpType::Fail),
            ("ack", OpType::Info),
            ("nack", OpType::Fail),
            ("nack", OpType::Info),
        ] {
            let mut w = shaped(1, 2);
            let mut rng = StdRng::seed_from_u64(9);
            let poll = op_of(w.next(ask(1, 0, 0), &mut rng));
            let tasks = Edn::Vector(vec![delivery(5, 1)]);
            w.completed(1, &poll, &done(1, &poll, OpType::Ok, tasks, 1));
            let op = GenOp::new(
                f,
                held_value(&Held {
                    id: Edn::Int(5),
                    attempt: 1,
                    started: false,
                }),
            );
            w.completed(1, &op, &done(1, &op, t, op.value.clone(), 2));
            let next = op_of(w.next(ask(1, 0, 0), &mut rng));
            assert_eq!(next.f, "poll", "{f} {t:?}");
        }
    }

    /// A queue for the drain tests: every enqueue is kept except `lost` ones, polls hand
    /// out what is ready, acks complete.
    #[derive(Default)]
    struct Model {
        ready: VecDeque<i64>,
        attempts: HashMap<i64, i64>,
        completed: HashSet<i64>,
        lost: HashSet<i64>,
    }

    impl Model {
        fn answer(&mut self, op: &GenOp) -> (OpType, Edn) {
            let id = op.value.get("id").and_then(Edn::as_i64);
            let mut value = op.value.clone();
            match op.f {
                "enqueue" => {
                    let id = id.unwrap();
                    if !self.lost.contains(&id) {
                        self.ready.push_back(id);
                    }
                }
                "poll" => {
                    let max = op.value.get("max").and_then(Edn::as_i64).unwrap() as usize;
                    let n = max.min(self.ready.len());
                    let tasks = self.ready.drain(..n).map(|id| {
                        let a = self.attempts.entry(id).or_default();
                        *a += 1;
                        delivery(id, *a)
                    });
                    value = Edn::Vector(tasks.collect());
                }
                "ack" => {
                    self.completed.insert(id.unwrap());
                    value.insert("duplicate", Edn::Bool(false));
                }
                "nack" => {
                    self.ready.push_back(id.unwrap());
                    value.insert("dead-lettered", Edn::Bool(false));
                }
                "dlq" => value = Edn::Vector(Vec::new()),
                "status" => {
                    let s = if self.completed.contains(&id.unwrap()) {
                        "completed"
                    } else {
                        "pending"
                    };
                    value.insert("status", Edn::kw(s));
                    value.insert("attempts", Edn::Int(0));
                }
                // An abandoned task comes back when its lease runs out: at once, here.
                "abandon" => self.ready.push_back(id.unwrap()),
                _ => {}
            }
            (OpType::Ok, value)
        }
    }

    /// Drives the final phase as the engine does (each request takes 10 ms) until every
    /// worker is done; returns when each was done, and the ops issued.
    fn drain(w: &mut TaskQueue, workers: usize, model: &mut Model) -> (Vec<u64>, Vec<GenOp>) {
        let mut rng = StdRng::seed_from_u64(0);
        let mut issued = vec![0; workers];
        let mut resume = vec![0u64; workers];
        let mut finished: Vec<Option<u64>> = vec![None; workers];
        let mut in_flight: Vec<Option<(u64, GenOp)>> = vec![None; workers];
        let mut log = Vec::new();
        for t in 0..60_000 {
            for (k, slot) in in_flight.iter_mut().enumerate() {
                if let Some((at, op)) = slot.take_if(|(at, _)| *at <= t) {
                    let (ty, value) = model.answer(&op);
                    w.completed(k, &op, &done(k, &op, ty, value, at));
                }
            }
            if finished.iter().all(Option::is_some) {
                return (finished.into_iter().flatten().collect(), log);
            }
            for k in 0..workers {
                while finished[k].is_none() && in_flight[k].is_none() && resume[k] <= t {
                    match w.next(final_ask(k, t, issued[k]), &mut rng) {
                        Next::Op(op) => {
                            issued[k] += 1;
                            log.push(op.clone());
                            in_flight[k] = Some((t + 10, op));
                        }
                        Next::Local(op) => panic!("no local ops in the drain: {op:?}"),
                        Next::Wait(ms) => resume[k] = t + ms,
                        Next::Done => finished[k] = Some(t),
                    }
                }
            }
        }
        panic!(
            "the drain did not finish in 60 s: {:?}",
            &log[log.len().saturating_sub(5)..]
        );
    }

    /// Main-phase enqueues by worker 0, completed by the model.
    fn enqueue(w: &mut TaskQueue, model: &mut Model, n: usize, rng: &mut StdRng) -> Vec<i64> {
        (0..n)
            .map(|_| {
                let op = op_of(w.next(ask(0, 0, 0), rng));
                let (t, value) = model.answer(&op);
                w.completed(0, &op, &done(0, &op, t, value, 0));
                id_of(&op)
            })
            .collect()
    }

    #[test]
    fn the_drain_acks_everything_stops_when_quiet_and_audits_the_rest() {
        // Workers 1 and 3 consume.
        let mut w = shaped(1, 4);
        let mut model = Model::default();
        let mut rng = StdRng::seed_from_u64(6);
        let ids = enqueue(&mut w, &mut model, 30, &mut rng);
        // A consumer still holds a task from the main phase.
        let poll = op_of(w.next(ask(1, 0, 0), &mut rng));
        let (t, value) = model.answer(&poll);
        w.completed(1, &poll, &done(1, &poll, t, value, 0));
        let (finish, log) = drain(&mut w, 4, &mut model);
        let end = finish[1].max(finish[3]);
        assert!(model.ready.is_empty());
        assert_eq!(model.completed.len(), 30, "every task was acked");
        let polls = log.iter().filter(|o| o.f == "poll").count();
        assert!(log
            .iter()
            .filter(|o| o.f == "poll")
            .all(|o| o.value.get("max") == Some(&Edn::Int(8))));
        assert!(
            polls >= 2 * (QUIET_MS / (POLL_PAUSE_MS + 10)) as usize,
            "{polls}"
        );
        assert!(
            (QUIET_MS..QUIET_MS + 1_000).contains(&end),
            "done soon after {QUIET_MS} ms of empty polls: {end}"
        );
        let audit: Vec<&str> = log
            .iter()
            .filter(|o| matches!(o.f, "dlq" | "status"))
            .map(|o| o.f)
            .collect();
        assert_eq!(audit, ["dlq"], "nothing to ask about: all acked");
        assert!(log.iter().all(|o| matches!(o.f, "poll" | "ack" | "dlq")));
        let _ = ids;
    }

    #[test]
    fn a_task_that_could_still_come_keeps_the_drain_going_but_not_forever() {
        let mut w = shaped(1, 2);
        let mut model = Model::default();
        let mut rng = StdRng::seed_from_u64(7);
        let first = enqueue(&mut w, &mut model, 1, &mut rng)[0];
        model
            .lost
            .insert(layout::encode(FIRST_TIMESTAMP + 1, 0, 1, GiftType::Toy) as i64);
        let ids = enqueue(&mut w, &mut model, 3, &mut rng);
        assert!(model.lost.contains(&ids[0]));
        // An enqueue of unknown outcome is audited too, but nobody waits for it.
        let op = op_of(w.next(ask(0, 0, 0), &mut rng));
        w.completed(0, &op, &done(0, &op, OpType::Info, op.value.clone(), 0));
        let (finish, log) = drain(&mut w, 2, &mut model);
        let end = finish[1];
        assert!(
            (QUIET_CAP_MS..QUIET_CAP_MS + 1_000).contains(&end),
            "the lost task is waited for up to {QUIET_CAP_MS} ms: {end}"
        );
        let statuses: Vec<i64> = log.iter().filter(|o| o.f == "status").map(id_of).collect();
        assert_eq!(statuses, [ids[0], id_of(&op)]);
        assert!(log.iter().all(|o| o.f != "status" || id_of(o) != first));
        let dlq_at = log.iter().position(|o| o.f == "dlq").unwrap();
        assert!(log[dlq_at..]
            .iter()
            .all(|o| matches!(o.f, "dlq" | "status")));
    }

    #[test]
    fn a_dead_task_is_not_waited_for_and_the_audit_is_capped() {
        let mut w = shaped(1, 2);
        let mut model = Model::default();
        let mut rng = StdRng::seed_from_u64(8);
        let ids = enqueue(&mut w, &mut model, MAX_STATUS + 100, &mut rng);
        model.ready.clear();
        // The first task was handed out at its last attempt and never acked: it is
        // dead-lettered, or completed, but cannot come again.
        let max = w.tasks[0].max_attempts;
        let poll = poll_op(1);
        let tasks = Edn::Vector(vec![delivery(ids[0], max)]);
        w.completed(1, &poll, &done(1, &poll, OpType::Ok, tasks, 0));
        let abandon = GenOp::new(
            "abandon",
            held_value(&Held {
                id: Edn::Int(ids[0]),
                attempt: max,
                started: false,
            }),
        );
        w.completed(
            1,
            &abandon,
            &done(1, &abandon, OpType::Ok, abandon.value.clone(), 0),
        );
        // The others were all acked, most of them with no answer.
        for (i, id) in ids.iter().enumerate().skip(1) {
            let ack = GenOp::new(
                "ack",
                held_value(&Held {
                    id: Edn::Int(*id),
                    attempt: 1,
                    started: false,
                }),
            );
            let t = if i % 10 == 0 {
                OpType::Ok
            } else {
                OpType::Info
            };
            w.completed(1, &ack, &done(1, &ack, t, ack.value.clone(), 0));
        }
        let (finish, log) = drain(&mut w, 2, &mut model);
        let end = finish[1];
        assert!(end < QUIET_MS + 1_000, "{end}");
        let statuses: Vec<i64> = log.iter().filter(|o| o.f == "status").map(id_of).collect();
        let unacked: Vec<i64> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| *i == 0 || i % 10 != 0)
            .map(|(_, id)| *id)
            .collect();
        assert!(unacked.len() > MAX_STATUS);
        assert_eq!(statuses, unacked[..MAX_STATUS]);
    }

    #[test]
    fn a_single_worker_only_produces_and_audits() {
        let mut w = shaped(3, 1);
        let mut model = Model::default();
        let mut rng = StdRng::seed_from_u64(10);
        let ids = enqueue(&mut w, &mut model, 3, &mut rng);
        let (finish, log) = drain(&mut w, 1, &mut model);
        let end = finish[0];
        assert!(end < 100, "{end}");
        let fs: Vec<&str> = log.iter().map(|o| o.f).collect();
        assert_eq!(fs, ["dlq", "status", "status", "status"]);
        assert_eq!(log.iter().skip(1).map(id_of).collect::<Vec<_>>(), ids);
    }
}
