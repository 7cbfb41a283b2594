//! `santa`: the whole Santa system end to end (issue 18 §3). Clients run Secret Santa
//! exchanges on the matcher service as [`super::secret_santa`] does, with `nice_child`
//! registrations, `match` deadlines and `gift_status` reads besides; elves take the
//! production tasks the matcher enqueues for every committed gift from the queue service
//! as [`super::task_queue`]'s consumers do (poll, start, ack, nack, abandon). The checker
//! is [`crate::checker::santa`].
//!
//! Roles: worker `w` is an elf when `w % 3 == 2` (with two workers, worker 1), else a
//! client; [`Workload::service_of`] sends clients to `matcher` and elves to `queue`. A
//! single worker is a client only.
//!
//! Ops and values: the secret-santa ones (`:register` adds `:nice-child true` for about a
//! fifth of participants; `:match` adds `:deadline` and `:deadline-made`, unix ms, for
//! most exchanges, the deadline within 12 hours or beyond 48 hours of the wall clock),
//! `:gift-status` `{:exchange x, :participant p}`, ok adds `:epoch`, `:gift-id` and the
//! opened box as `:status {:gift-id g, :stage s}` or `:box-error`; and the task-queue
//! consumer ones with string task ids `"<gift id>-<stage>"`, deliveries carrying `:kind`
//! and `:payload`.
//!
//! Final phase: clients read every participant's assignment and gift status; elves drain
//! until every task of every gift the clients have read in its exchange's newest epoch is
//! acknowledged, or the task-queue drain's quiet bound; then the elves ask the status of
//! the tasks of each gift a splice replaced (or whose fate the reads do not tell), then of
//! each expected task.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use serde_json::{Map, Value};

use super::secret_santa::SecretSanta;
use super::task_queue::{status_op, TaskQueue, AUDIT_DEADLINE_MS};
use super::{Ask, ClientRules, Cluster, GenOp, Next, Phase, Request, RunFacts, Workload};
use crate::checker::santa::{is_elf, production, task_id, Production, STAGES};
use crate::edn::Edn;
use crate::history::{History, Op, OpType};

/// The client side's operations; everything else goes to the elves.
const CLIENT_OPS: [&str; 5] = ["register", "match", "read", "audit", "gift-status"];

/// How long a drained elf waits for the clients' final reads before asking statuses.
const STATUS_WAIT_MS: u64 = 250;

/// Gifts read: (exchange, epoch) → giver → gift ID.
type Gifts = BTreeMap<(String, i64), BTreeMap<String, i64>>;

#[derive(Debug)]
pub struct Santa {
    clients: SecretSanta,
    elves: TaskQueue,
    /// Per worker: an elf (else a client).
    elf: Vec<bool>,
    gifts: Gifts,
    /// The newest committed epoch acknowledged, per exchange.
    newest: BTreeMap<String, i64>,
    /// Client operations of the final phase in flight.
    client_final_in_flight: usize,
    /// Tasks whose ack was answered `:ok`.
    acked: HashSet<String>,
    /// The expected tasks were handed to the elves' drain.
    expectation_set: bool,
    /// When an elf first asked in the final phase.
    final_from: Option<u64>,
    /// Status requests of the end, shared by the elves once drained.
    statuses: Option<VecDeque<GenOp>>,
}

impl Default for Santa {
    fn default() -> Self {
        Self::new()
    }
}

impl Santa {
    pub fn new() -> Self {
        Santa {
            clients: SecretSanta::for_santa(0),
            elves: TaskQueue::consumers_only(&[]),
            elf: Vec::new(),
            gifts: Gifts::new(),
            newest: BTreeMap::new(),
            client_final_in_flight: 0,
            acked: HashSet::new(),
            expectation_set: false,
            final_from: None,
            statuses: None,
        }
    }

    fn is_client_op(f: &str) -> bool {
        CLIENT_OPS.contains(&f)
    }

    /// The gifts every committed epoch read so far has: those to produce and those a
    /// splice replaced.
    fn plan(&self) -> Production {
        production(
            &self.gifts,
            |x| self.newest.get(x).copied().unwrap_or(0),
            // Epoch 1 is the match; the later ones are splices.
            |_, e| e == 1,
        )
    }

    /// Once the clients' final reads are all answered (or the final phase has gone on for
    /// as long as the task-queue audit waits), the elves wait for exactly the tasks of the
    /// gifts read that are not acknowledged yet.
    fn settle_expectation(&mut self, now_ms: u64) {
        let since = now_ms.saturating_sub(*self.final_from.get_or_insert(now_ms));
        let reads_done =
            self.clients.final_work_left() == Some(false) && self.client_final_in_flight == 0;
        if self.expectation_set || !(reads_done || since >= AUDIT_DEADLINE_MS) {
            return;
        }
        let ids: HashSet<String> = self
            .plan()
            .expected
            .iter()
            .flat_map(|g| STAGES.iter().map(move |s| task_id(*g, s)))
            .filter(|id| !self.acked.contains(id))
            .collect();
        self.elves.await_tasks(ids);
        self.expectation_set = true;
    }

    /// The statuses asked at the end: every task of a replaced gift (or one of unknown
    /// fate), then every task of each gift to produce, those not seen acknowledged first
    /// (the engine's limit may cut the list short).
    fn status_work(&self) -> VecDeque<GenOp> {
        let plan = self.plan();
        let ids = |gifts: &BTreeSet<i64>| -> Vec<String> {
            gifts
                .iter()
                .flat_map(|g| STAGES.iter().map(move |s| task_id(*g, s)))
                .collect()
        };
        let mut first = ids(&plan.replaced);
        first.extend(ids(&plan.unsure));
        let (acked, open): (Vec<String>, Vec<String>) = ids(&plan.expected)
            .into_iter()
            .partition(|id| self.acked.contains(id));
        first.extend(open);
        first.extend(acked);
        first
            .into_iter()
            .map(|id| {
                let mut op = status_op(Edn::Str(id));
                op.final_read = true;
                op
            })
            .collect()
    }

    fn next_elf_final(&mut self, ask: Ask, rng: &mut StdRng) -> Next {
        self.settle_expectation(ask.now_ms);
        if !self.elves.drained(ask.worker) {
            let next = self.elves.next(ask, rng);
            if next != Next::Done {
                return next;
            }
        }
        // Drained: the statuses wait for the clients' reads (bounded by the engine).
        if !self.expectation_set {
            return Next::Wait(STATUS_WAIT_MS);
        }
        if self.statuses.is_none() {
            self.statuses = Some(self.status_work());
        }
        match self.statuses.as_mut().and_then(VecDeque::pop_front) {
            Some(op) => Next::Op(op),
            None => Next::Done,
        }
    }

    /// What a client's completion says about the gifts: an opened assignment of a
    /// committed epoch, or a committed epoch acknowledged.
    fn learn(&mut self, op: &GenOp, done: &Op) {
        if done.op_type != OpType::Ok {
            return;
        }
        let v = &done.value;
        let text = |k: &str| v.get(k).and_then(Edn::as_str).map(str::to_string);
        let (Some(x), Some(e)) = (text("exchange"), v.get("epoch").and_then(Edn::as_i64)) else {
            return;
        };
        if e >= 1 {
            let n = self.newest.entry(x.clone()).or_default();
            *n = (*n).max(e);
        }
        if op.f == "read" {
            let (Some(p), Some(g)) = (text("participant"), v.get("gift-id")) else {
                return;
            };
            if let Some(g) = g.as_i64() {
                self.gifts.entry((x, e)).or_default().insert(p, g);
            }
        }
    }
}

impl Workload for Santa {
    fn name(&self) -> &'static str {
        "santa"
    }

    fn client(&self) -> ClientRules {
        ClientRules {
            idempotent: &["read", "audit", "gift-status", "status", "dlq", "health"],
            ..self.clients.client()
        }
    }

    fn begin(&mut self, cluster: &Cluster) {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.clients = SecretSanta::for_santa(wall);
        let matchers = cluster
            .services
            .iter()
            .find(|(name, _)| name == "matcher")
            .map_or(cluster.nodes.clone(), |(_, nodes)| nodes.clone());
        let mut shape = cluster.clone();
        shape.nodes = matchers;
        self.clients.begin(&shape);
        self.elf = (0..cluster.workers)
            .map(|w| is_elf(w, cluster.workers))
            .collect();
        self.elves = TaskQueue::consumers_only(&self.elf);
    }

    fn service_of(&self, worker: usize) -> Option<&str> {
        Some(match self.elf.get(worker) {
            Some(true) => "queue",
            _ => "matcher",
        })
    }

    /// The matcher draws gift IDs from the giftid service: without it, it would fall back
    /// to its own generator and the run would not test the system.
    fn services_needed(&self) -> &'static [&'static str] {
        &["giftid", "queue", "matcher"]
    }

    fn next(&mut self, ask: Ask, rng: &mut StdRng) -> Next {
        let elf = self.elf.get(ask.worker).copied().unwrap_or(false);
        match (elf, ask.phase) {
            (true, Phase::Main) => self.elves.next(ask, rng),
            (true, Phase::Final) => self.next_elf_final(ask, rng),
            (false, phase) => {
                let next = self.clients.next(ask, rng);
                if phase == Phase::Final && matches!(next, Next::Op(_)) {
                    self.client_final_in_flight += 1;
                }
                next
            }
        }
    }

    fn has_final_phase(&self) -> bool {
        true
    }

    fn completed(&mut self, worker: usize, op: &GenOp, done: &Op) {
        if Self::is_client_op(op.f) {
            if op.final_read {
                self.client_final_in_flight = self.client_final_in_flight.saturating_sub(1);
            }
            self.learn(op, done);
            self.clients.completed(worker, op, done);
        } else {
            let id = op.value.get("id").and_then(Edn::as_str);
            if let (Some(id), "ack", OpType::Ok) = (id, op.f, done.op_type) {
                self.acked.insert(id.to_string());
            }
            self.elves.completed(worker, op, done);
        }
    }

    fn request(&self, op: &GenOp) -> Request<'_> {
        match Self::is_client_op(op.f) {
            true => self.clients.request(op),
            false => self.elves.request(op),
        }
    }

    fn ok_value(&self, op: &GenOp, reply: &Map<String, Value>) -> Edn {
        match Self::is_client_op(op.f) {
            true => self.clients.ok_value(op, reply),
            false => self.elves.ok_value(op, reply),
        }
    }

    fn check(&self, history: &History, facts: &RunFacts) -> Edn {
        crate::checker::santa::check(history, facts)
    }
}

#[cfg(test)]
mod system_tests;
#[cfg(test)]
mod tests;
