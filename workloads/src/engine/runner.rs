//! The event loop of one run. It owns the network, the services, the clients, the workers
//! and the history, and reacts to three things: lines and exits from node processes,
//! deadlines (message deliveries, request timeouts, the next operation, the nemesis), and
//! SIGINT/SIGTERM. Everything happens on one task, so no state is shared or locked; node
//! I/O runs in the tasks of [`super::process`].
//!
//! Phases follow Maelstrom: `init` to every node from clients c0…, one setup client per node
//! (broadcast's `topology`), worker clients, the main phase (operations staggered at
//! `--rate`, the nemesis), healing every fault, then for workloads with a final phase: wait
//! 10 s, then final operations (one per worker for most workloads; as many as the workload
//! asks for, within [`FINAL_LIMIT`], for the others). The nemesis's actions are carried out
//! in [`faults`].
//!
//! Which worker runs what is the workload's answer to [`Workload::next`] in each
//! [`workload::Phase`]; the engine keeps, per worker, what those
//! answers imply: when it may be asked again and whether it is finished with the phase.

mod faults;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{Map, Value};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

use super::faketime::Clocks;
use super::outcome::{self, Outcome};
use super::process::{tail_text, LineError, NodeEvent, NodeLine, NodeProcess, Spawner};
use super::progress::Progress;
use crate::analysis::Problems;
use crate::console::Console;
use crate::history::{History, Op, OpType, Process};
use crate::journal::Journal;
use crate::nemesis::{Config as NemesisConfig, Kind, Planner};
use crate::net::{Addr, Nanos, Network, SendError, ServiceId};
use crate::services::Services;
use crate::workload::{self, Ask, Cluster, GenOp, Next, Workload};

const SEC: Nanos = 1_000_000_000;
/// Maelstrom's wait for `init_ok`.
pub const INIT_TIMEOUT: Nanos = 10 * SEC;
/// Maelstrom's client timeout.
pub const CLIENT_TIMEOUT: Nanos = 5 * SEC;
/// The pause between healing and the final operations.
pub const RECOVERY: Nanos = 10 * SEC;
/// How long the final phase may issue operations, so that a node that never lets a
/// workload finish cannot hang the run; replies still due are awaited after it.
pub const FINAL_LIMIT: Nanos = 60 * SEC;
/// Local operations one worker may record back to back before the others get their turn.
const LOCAL_RUN: usize = 64;

/// Why a run stopped without a verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum RunError {
    /// A node exited during the run.
    Crash(String),
    /// `init` (or workload setup) did not complete.
    Setup(String),
    /// SIGINT or SIGTERM.
    Interrupted(&'static str),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Crash(m) | RunError::Setup(m) => f.write_str(m),
            RunError::Interrupted(sig) => write!(f, "Interrupted by {sig}"),
        }
    }
}

/// The knobs of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub time_limit: Nanos,
    pub rate: f64,
    pub concurrency: usize,
    /// How long a worker waits for a reply: the workload's choice.
    pub client_timeout: Nanos,
    pub nemesis: Option<NemesisConfig>,
    pub log_net_send: bool,
    pub log_net_recv: bool,
}

#[derive(Debug)]
enum Role {
    Init(usize),
    /// The `init` of a node restarted by the kill nemesis.
    Reinit(usize),
    Setup(usize),
    Worker(usize),
}

#[derive(Debug)]
struct Pending {
    msg_id: u64,
    deadline: Nanos,
    request: Map<String, Value>,
    /// The operation, for workers.
    op: Option<GenOp>,
}

#[derive(Debug)]
struct ClientState {
    role: Role,
    last_msg_id: u64,
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Worker {
    process: u64,
    node: usize,
    client: u32,
    /// Operations invoked in the current phase.
    issued: usize,
    /// Not to be asked for an operation before this time ([`Next::Wait`]).
    resume_at: Nanos,
    /// Finished with the current phase ([`Next::Done`]).
    done: bool,
}

impl Worker {
    /// A new phase: nothing issued, nothing to wait for.
    fn reset(&mut self) {
        self.issued = 0;
        self.resume_at = 0;
        self.done = false;
    }
}

/// Where the run is: the main phase ends at `end`; the final phase issues operations
/// until `limit`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Setup,
    Main { end: Nanos },
    Quiet,
    Final { limit: Nanos },
}

/// One run in progress. See the module documentation.
pub struct Engine {
    console: Arc<Console>,
    clock: Instant,
    history_origin: Nanos,
    net: Network,
    services: Services,
    nodes: Vec<NodeProcess>,
    spawner: Spawner,
    /// Nodes killed by the nemesis and not restarted yet.
    down: Vec<bool>,
    /// Nodes stopped with SIGSTOP.
    paused: Vec<bool>,
    pub clocks: Option<Clocks>,
    pub journal: Journal,
    names: Vec<String>,
    by_name: HashMap<String, Addr>,
    events: mpsc::UnboundedReceiver<NodeEvent>,
    clients: BTreeMap<u32, ClientState>,
    workers: Vec<Worker>,
    workload: Box<dyn Workload>,
    cluster: Cluster,
    pub history: History,
    settings: Settings,
    gen_rng: StdRng,
    nemesis_rng: Option<StdRng>,
    planner: Option<Planner>,
    /// The partition in force, in words for the progress line.
    partition: Option<String>,
    /// The progress line's schedule, from the main phase on.
    progress: Option<Progress>,
    phase: Phase,
    next_op_at: Nanos,
    next_worker: usize,
    setup_results: Vec<Option<Result<(), String>>>,
    pub problems: Problems,
    shutting_down: bool,
    sigint: Option<Signal>,
    sigterm: Option<Signal>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("nodes", &self.names)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

/// Random sources, one per concern, so that adding a draw in one does not shift the others.
#[derive(Debug)]
pub struct Rngs {
    pub services: StdRng,
    pub generator: StdRng,
    pub nemesis: StdRng,
}

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        console: Arc<Console>,
        nodes: Vec<NodeProcess>,
        spawner: Spawner,
        clocks: Option<Clocks>,
        events: mpsc::UnboundedReceiver<NodeEvent>,
        workload: Box<dyn Workload>,
        cluster: Cluster,
        settings: Settings,
        net: Network,
        rngs: Rngs,
        clock: Instant,
    ) -> Self {
        let names = cluster.nodes.clone();
        let mut by_name: HashMap<String, Addr> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), Addr::Node(i as u32)))
            .collect();
        for s in ServiceId::ALL {
            by_name.insert(s.name().to_string(), Addr::Service(s));
        }
        let n = names.len();
        Engine {
            console,
            clock,
            history_origin: 0,
            net,
            services: Services::new(rngs.services),
            nodes,
            spawner,
            down: vec![false; n],
            paused: vec![false; n],
            clocks,
            journal: Journal::default(),
            names,
            by_name,
            events,
            clients: BTreeMap::new(),
            workers: Vec::new(),
            workload,
            cluster,
            history: History::default(),
            settings,
            gen_rng: rngs.generator,
            nemesis_rng: Some(rngs.nemesis),
            planner: None,
            partition: None,
            progress: None,
            phase: Phase::Setup,
            next_op_at: 0,
            next_worker: 0,
            setup_results: vec![None; n],
            problems: Problems::default(),
            shutting_down: false,
            sigint: signal(SignalKind::interrupt()).ok(),
            sigterm: signal(SignalKind::terminate()).ok(),
        }
    }

    pub fn workload(&self) -> &dyn Workload {
        self.workload.as_ref()
    }

    /// The number of client workers of the run.
    pub fn cluster_workers(&self) -> usize {
        self.cluster.workers
    }

    pub fn net(&self) -> &Network {
        &self.net
    }

    fn now(&self) -> Nanos {
        self.clock.elapsed().as_nanos() as Nanos
    }

    fn log(&self, thread: &str, message: &str) {
        self.console.info(thread, "workloads.run", message);
    }

    /// Runs every phase. History and counters stay readable afterwards, also on error.
    pub async fn run(&mut self) -> Result<(), RunError> {
        self.init_nodes().await?;
        self.setup_nodes().await?;
        for t in 0..self.settings.concurrency {
            let client = self.open_client(Role::Worker(t));
            self.workers.push(Worker {
                process: t as u64,
                node: t % self.names.len(),
                client,
                issued: 0,
                resume_at: 0,
                done: false,
            });
        }
        self.workload.begin(&self.cluster);
        self.main_phase().await?;
        if self.workload.has_final_phase() {
            self.final_phase().await?;
        }
        self.net.heal();
        Ok(())
    }

    fn open_client(&mut self, role: Role) -> u32 {
        let id = self.net.open_client();
        self.clients.insert(
            id,
            ClientState {
                role,
                last_msg_id: 0,
                pending: None,
            },
        );
        id
    }

    async fn init_nodes(&mut self) -> Result<(), RunError> {
        let now = self.now();
        let node_ids: Vec<Value> = self.names.iter().cloned().map(Value::String).collect();
        let mut init_clients = Vec::new();
        for i in 0..self.names.len() {
            let c = self.open_client(Role::Init(i));
            init_clients.push(c);
            let mut body = Map::new();
            body.insert("type".into(), "init".into());
            body.insert("node_id".into(), self.names[i].clone().into());
            body.insert("node_ids".into(), Value::Array(node_ids.clone()));
            self.send_request(now, c, i, body, INIT_TIMEOUT, None);
        }
        self.log(
            "runner",
            &format!("Sent init to {} node(s)", self.names.len()),
        );
        self.pump(None, |e| e.setup_results.iter().all(Option::is_some))
            .await?;
        self.check_setup_results("init")?;
        for c in init_clients {
            self.net.close_client(c);
            self.clients.remove(&c);
        }
        Ok(())
    }

    fn check_setup_results(&mut self, what: &str) -> Result<(), RunError> {
        for (i, r) in self.setup_results.iter().enumerate() {
            if let Some(Err(why)) = r {
                let stderr = tail_text(&self.nodes[i].stderr_tail);
                let stderr = if stderr.is_empty() {
                    "(nothing)".to_string()
                } else {
                    stderr
                };
                return Err(RunError::Setup(format!(
                    "{what} failed on node {}: {why}\n\nIts last lines on STDERR:\n{stderr}",
                    self.names[i]
                )));
            }
        }
        self.setup_results.iter_mut().for_each(|r| *r = None);
        Ok(())
    }

    async fn setup_nodes(&mut self) -> Result<(), RunError> {
        let now = self.now();
        let mut any = false;
        for i in 0..self.names.len() {
            let c = self.open_client(Role::Setup(i));
            match self.workload.setup(&self.cluster, i) {
                Some(req) => {
                    let body = req.body;
                    any = true;
                    self.send_request(now, c, i, body, CLIENT_TIMEOUT, None);
                }
                None => self.setup_results[i] = Some(Ok(())),
            }
        }
        if any {
            self.pump(None, |e| e.setup_results.iter().all(Option::is_some))
                .await?;
        }
        self.check_setup_results("Workload setup")
    }

    async fn main_phase(&mut self) -> Result<(), RunError> {
        let now = self.now();
        self.history_origin = now;
        self.progress = Some(Progress::new(now));
        let end = now + self.settings.time_limit;
        self.phase = Phase::Main { end };
        self.next_op_at = now;
        if let (Some(config), Some(rng)) = (self.settings.nemesis.clone(), self.nemesis_rng.take())
        {
            self.planner = Some(Planner::new(config, now, rng));
        }
        self.log(
            "runner",
            &format!(
                "Running {} for {} s at {} ops/s with {} worker(s)",
                self.workload.name(),
                self.settings.time_limit / SEC,
                self.settings.rate,
                self.workers.len()
            ),
        );
        let sent_before = self.sent();
        self.pump(Some(end), move |e| e.now() >= end).await?;
        // Heal before waiting for the last replies, so that no request outlives the run
        // only because its node is still paused, killed or cut off.
        if self.planner.is_some() {
            self.log("runner", "Healing cluster");
            self.heal(self.now());
        }
        self.pump(None, |e| e.idle()).await?;
        self.phase = Phase::Quiet;
        let secs = (self.now() - now) as f64 / SEC as f64;
        let routed = self.sent() - sent_before;
        self.log(
            "runner",
            &format!(
                "Run complete: the network routed {routed} messages in the main phase, routed/s {:.0}",
                routed as f64 / secs.max(1e-9)
            ),
        );
        Ok(())
    }

    /// After the recovery wait, workers run the workload's final operations (issued by
    /// [`Engine::ask_final`] from `tick`) until every one is finished or [`FINAL_LIMIT`]
    /// passes; then the replies still due are awaited.
    async fn final_phase(&mut self) -> Result<(), RunError> {
        self.log("runner", "Waiting for recovery...");
        let until = self.now() + RECOVERY;
        self.pump(Some(until), move |e| e.now() >= until).await?;
        let limit = self.now() + FINAL_LIMIT;
        self.phase = Phase::Final { limit };
        self.workers.iter_mut().for_each(Worker::reset);
        self.pump(Some(limit), move |e| {
            e.now() >= limit || (e.workers.iter().all(|w| w.done) && e.idle())
        })
        .await?;
        self.phase = Phase::Quiet;
        let unfinished = self.workers.iter().filter(|w| !w.done).count();
        if unfinished > 0 {
            self.console.warn(
                "runner",
                "workloads.run",
                &format!(
                    "The final phase reached its limit of {} s with {unfinished} worker(s) \
                     not finished; issuing nothing more",
                    FINAL_LIMIT / SEC
                ),
            );
        }
        self.pump(None, |e| e.idle()).await
    }

    fn sent(&self) -> u64 {
        let c = self.net.counters();
        c.clients.send + c.servers.send
    }

    /// True when no worker waits for a reply.
    fn idle(&self) -> bool {
        self.workers.iter().all(|w| {
            self.clients
                .get(&w.client)
                .map_or(true, |c| c.pending.is_none())
        })
    }

    /// Processes events and deadlines until `done` holds; `until` is a time at which `done`
    /// may become true without any event.
    async fn pump(
        &mut self,
        until: Option<Nanos>,
        done: impl Fn(&Engine) -> bool,
    ) -> Result<(), RunError> {
        loop {
            let now = self.now();
            self.tick(now);
            self.console.tick();
            if done(self) {
                return Ok(());
            }
            let wake = until.map_or(self.next_wakeup(), |u| u.min(self.next_wakeup()));
            let sleep_for = Duration::from_nanos(wake.saturating_sub(self.now()));
            let event = tokio::select! {
                ev = self.events.recv() => ev,
                _ = tokio::time::sleep(sleep_for) => None,
                _ = recv_signal(&mut self.sigint) => return Err(RunError::Interrupted("SIGINT")),
                _ = recv_signal(&mut self.sigterm) => return Err(RunError::Interrupted("SIGTERM")),
            };
            if let Some(ev) = event {
                self.handle_event(ev).await?;
                // Take whatever else is already queued before looking at the clock again.
                for _ in 0..4096 {
                    match self.events.try_recv() {
                        Ok(ev) => self.handle_event(ev).await?,
                        Err(_) => break,
                    }
                }
            }
        }
    }

    fn next_wakeup(&self) -> Nanos {
        let mut wake = self.now() + SEC;
        if let Some(d) = self.net.next_deadline() {
            wake = wake.min(d);
        }
        for c in self.clients.values() {
            if let Some(p) = &c.pending {
                wake = wake.min(p.deadline);
            }
        }
        match self.phase {
            Phase::Main { end } => {
                wake = wake.min(end);
                if self.settings.rate > 0.0 && self.free_worker().is_some() {
                    wake = wake.min(self.next_op_at);
                }
                if let Some(p) = &self.planner {
                    wake = wake.min(p.next_at());
                }
            }
            Phase::Final { limit } => {
                wake = wake.min(limit);
                for (w, worker) in self.workers.iter().enumerate() {
                    if !worker.done && self.is_free(w) {
                        wake = wake.min(worker.resume_at);
                    }
                }
            }
            Phase::Setup | Phase::Quiet => {}
        }
        if let Some(at) = self.clocks.as_ref().and_then(Clocks::next_tick) {
            wake = wake.min(at);
        }
        if let Some(p) = &self.progress {
            wake = wake.min(p.next_at());
        }
        wake
    }

    async fn handle_event(&mut self, ev: NodeEvent) -> Result<(), RunError> {
        match ev {
            NodeEvent::Line(line) => {
                let now = self.now();
                self.on_line(now, line);
                Ok(())
            }
            NodeEvent::Exited {
                node,
                generation,
                status,
            } => {
                let n = node as usize;
                if self.shutting_down || self.down[n] || generation != self.nodes[n].generation {
                    // A node the nemesis killed, or its predecessor.
                    return Ok(());
                }
                // Let the reader tasks catch the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let n = &self.nodes[node as usize];
                let stdout = tail_text(&n.stdout_tail);
                let stderr = tail_text(&n.stderr_tail);
                Err(RunError::Crash(format!(
                    "Node {} crashed with exit status {status}. Before crashing, it wrote to \
                     STDOUT:\n\n{}\n\nAnd to STDERR:\n\n{}",
                    n.name,
                    if stdout.is_empty() {
                        "(nothing)"
                    } else {
                        &stdout
                    },
                    if stderr.is_empty() {
                        "(nothing)"
                    } else {
                        &stderr
                    },
                )))
            }
        }
    }

    /// Everything due at `now`: deliveries, timeouts, the nemesis, new operations.
    fn tick(&mut self, now: Nanos) {
        while let Some(packet) = self.net.pop_due(now) {
            self.deliver(now, packet);
        }
        self.expire(now);
        self.drift_clocks(now);
        match self.phase {
            Phase::Main { end } if now < end => {
                let n = self.names.len() as u32;
                let action = self.planner.as_mut().and_then(|p| p.poll(now, n));
                if let Some(action) = action {
                    self.nemesis(now, action);
                }
                self.generate(now, end);
            }
            Phase::Final { limit } if now < limit => self.ask_final(now),
            _ => {}
        }
        if matches!(self.phase, Phase::Main { .. } | Phase::Final { .. }) {
            // Deliveries caused by what was just sent (clients have no latency).
            while let Some(packet) = self.net.pop_due(now) {
                self.deliver(now, packet);
            }
        }
        self.report_progress(now);
    }

    /// Logs the progress line when it is due.
    fn report_progress(&mut self, now: Nanos) {
        match &self.progress {
            Some(p) if now >= p.next_at() => {}
            _ => return,
        }
        let faults = self.faults_in_force();
        let elapsed = now.saturating_sub(self.history_origin);
        let Some(progress) = self.progress.as_mut() else {
            return;
        };
        let line = progress.poll(now, elapsed, &self.history.ops, &faults);
        if let Some(mut line) = line {
            match self.phase {
                Phase::Final { .. } => line.push_str(" · final phase"),
                Phase::Quiet => line.push_str(" · main phase over, waiting"),
                Phase::Setup | Phase::Main { .. } => {}
            }
            self.console.info("runner", "workloads.progress", &line);
        }
    }

    /// The faults in force, in words: `partition {n0} | {n1 n2}`, `killed n1`, `lossy`…
    fn faults_in_force(&self) -> Vec<String> {
        let mut faults: Vec<String> = self
            .partition
            .iter()
            .map(|p| format!("partition {p}"))
            .collect();
        for (word, flags) in [("killed", &self.down), ("paused", &self.paused)] {
            let hit: Vec<&str> = (0..self.names.len())
                .filter(|&i| flags[i])
                .map(|i| self.names[i].as_str())
                .collect();
            if !hit.is_empty() {
                faults.push(format!("{word} {}", hit.join(" ")));
            }
        }
        for kind in [Kind::Lossy, Kind::Clock] {
            if self.planner.as_ref().is_some_and(|p| p.is_active(kind)) {
                faults.push(kind.name().to_string());
            }
        }
        faults
    }

    /// Whether worker `w` has no request in flight.
    fn is_free(&self, w: usize) -> bool {
        self.clients
            .get(&self.workers[w].client)
            .is_some_and(|c| c.pending.is_none())
    }

    /// Whether worker `w` may be asked for an operation at `now`.
    fn is_ready(&self, w: usize, now: Nanos) -> bool {
        let worker = &self.workers[w];
        !worker.done && worker.resume_at <= now && self.is_free(w)
    }

    fn free_worker(&self) -> Option<usize> {
        let n = self.workers.len();
        (0..n)
            .map(|k| (self.next_worker + k) % n)
            .find(|&w| self.is_free(w))
    }

    /// Issues the operations due by `now`: one global stagger, each gap uniform in
    /// [0, 2/rate] s, each slot offered to the free workers in turn.
    fn generate(&mut self, now: Nanos, end: Nanos) {
        if self.settings.rate <= 0.0 {
            return;
        }
        let mean_gap = SEC as f64 / self.settings.rate;
        while now >= self.next_op_at && now < end {
            if self.free_worker().is_none() {
                return;
            }
            self.fill_slot(now);
            // Late wake-ups are caught up, but never by more than 10 ms of backlog.
            let base = self.next_op_at.max(now.saturating_sub(10_000_000));
            let gap = self.gen_rng.gen_range(0.0..=2.0 * mean_gap) as Nanos;
            self.next_op_at = base + gap;
        }
    }

    /// Gives the slot due at `now` to the first ready worker, from `next_worker` on, that
    /// has an operation for it; when none has, the slot passes unused.
    fn fill_slot(&mut self, now: Nanos) {
        let n = self.workers.len();
        for k in 0..n {
            let w = (self.next_worker + k) % n;
            if !self.is_ready(w, now) {
                continue;
            }
            let ask = self.ask(workload::Phase::Main, w, now);
            let next = self.workload.next(ask, &mut self.gen_rng);
            if self.carry_out(now, w, next) {
                self.next_worker = (w + 1) % n;
                return;
            }
        }
    }

    /// Asks the workload for the final operations of every ready worker.
    fn ask_final(&mut self, now: Nanos) {
        for w in 0..self.workers.len() {
            for _ in 0..LOCAL_RUN {
                if !self.is_ready(w, now) {
                    break;
                }
                let ask = self.ask(workload::Phase::Final, w, now);
                let next = match self.workload.next(ask, &mut self.gen_rng) {
                    Next::Op(mut op) => {
                        op.final_read = true;
                        Next::Op(op)
                    }
                    Next::Local(mut op) => {
                        op.final_read = true;
                        Next::Local(op)
                    }
                    other => other,
                };
                self.carry_out(now, w, next);
            }
        }
    }

    fn ask(&self, phase: workload::Phase, w: usize, now: Nanos) -> Ask {
        Ask {
            phase,
            worker: w,
            now_ms: self.history_time(now) / 1_000_000,
            issued: self.workers[w].issued,
        }
    }

    /// Does what the workload answered for worker `w`; true if an operation was recorded.
    fn carry_out(&mut self, now: Nanos, w: usize, next: Next) -> bool {
        match next {
            Next::Op(op) => self.invoke(now, w, op),
            Next::Local(op) => self.record_local(now, w, op),
            Next::Wait(ms) => {
                // At least 1 ms, so that a worker asking to wait does wait.
                self.workers[w].resume_at = now + ms.max(1) * 1_000_000;
                return false;
            }
            Next::Done => {
                self.workers[w].done = true;
                return false;
            }
        }
        true
    }

    /// Engine time (the clock traces' and journal's) at which the history starts.
    pub fn history_origin(&self) -> Nanos {
        self.history_origin
    }

    fn history_time(&self, now: Nanos) -> u64 {
        now.saturating_sub(self.history_origin)
    }

    /// Logs an operation as Jepsen does: process, type, f, value (and error), tab-separated.
    fn log_op(&self, op: &Op) {
        let (thread, process) = match op.process {
            Process::Worker(p) => (
                format!("worker {}", p % self.workers.len().max(1) as u64),
                p.to_string(),
            ),
            Process::Nemesis => ("nemesis".to_string(), ":nemesis".to_string()),
        };
        let kind = match op.op_type {
            OpType::Invoke => ":invoke",
            OpType::Ok => ":ok",
            OpType::Fail => ":fail",
            OpType::Info => ":info",
        };
        let mut line = format!("{process}\t{kind}\t:{}\t{}", op.f, op.value.to_compact());
        if let Some(e) = &op.error {
            line.push('\t');
            line.push_str(&e.to_compact());
        }
        self.console.info(&thread, "workloads.op", &line);
    }

    /// Records the invocation of `op` by worker `w`.
    fn record_invoke(&mut self, now: Nanos, w: usize, op: &GenOp) {
        self.workers[w].issued += 1;
        let mut inv = Op::new(
            self.history_time(now),
            OpType::Invoke,
            Process::Worker(self.workers[w].process),
            op.f,
            op.value.clone(),
        );
        inv.final_read = op.final_read;
        self.log_op(&inv);
        self.history.push(inv);
    }

    /// A local operation: invoked and completed `:ok` at `now`, nothing sent.
    fn record_local(&mut self, now: Nanos, w: usize, op: GenOp) {
        self.record_invoke(now, w, &op);
        let value = op.value.clone();
        self.complete(now, w, op, Outcome::Ok(value));
    }

    fn invoke(&mut self, now: Nanos, w: usize, op: GenOp) {
        self.record_invoke(now, w, &op);
        let body = self.workload.request(&op).body;
        let (client, node) = (self.workers[w].client, self.workers[w].node);
        let timeout = self.settings.client_timeout;
        self.send_request(now, client, node, body, timeout, Some(op));
    }

    fn send_request(
        &mut self,
        now: Nanos,
        client: u32,
        node: usize,
        mut body: Map<String, Value>,
        timeout: Nanos,
        op: Option<GenOp>,
    ) {
        let Some(state) = self.clients.get_mut(&client) else {
            return;
        };
        state.last_msg_id += 1;
        let msg_id = state.last_msg_id;
        body.insert("msg_id".into(), msg_id.into());
        let text = Value::Object(body.clone()).to_string();
        state.pending = Some(Pending {
            msg_id,
            deadline: now + timeout,
            request: body,
            op,
        });
        let src = Addr::Client(client);
        let dest = Addr::Node(node as u32);
        if self.settings.log_net_send {
            self.log_message("send", src, dest, &text);
        }
        // Clients and nodes are always registered here.
        if let Ok(id) = self.net.send(now, src, dest, text.as_str().into()) {
            self.journal_sent(id, src, dest, now, &text);
        }
    }

    fn name_of(&self, addr: Addr) -> String {
        match addr {
            Addr::Node(i) => self.names[i as usize].clone(),
            Addr::Service(s) => s.name().to_string(),
            Addr::Client(c) => format!("c{c}"),
        }
    }

    fn resolve(&self, name: &str) -> Option<Addr> {
        if let Some(a) = self.by_name.get(name) {
            return Some(*a);
        }
        let digits = name.strip_prefix('c')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(Addr::Client)
    }

    fn log_message(&self, what: &str, src: Addr, dest: Addr, body: &str) {
        self.console.info(
            "net",
            "workloads.net",
            &format!(
                ":{what} {{:src {:?}, :dest {:?}, :body {body}}}",
                self.name_of(src),
                self.name_of(dest)
            ),
        );
    }

    fn on_line(&mut self, now: Nanos, line: NodeLine) {
        let node = self.names[line.node as usize].clone();
        let thread = format!("{node} stdout");
        let env = match line.parsed {
            Ok(env) => env,
            Err(LineError::NotJson(why)) => {
                self.problems.not_json += 1;
                let msg = format!(
                    "Node {node} printed a line to STDOUT which was not well-formed JSON: {} ({why}). \
                     Log to STDERR instead; STDOUT is for messages only.",
                    line.text
                );
                self.console.warn(&thread, "workloads.net", &msg);
                self.problems
                    .note(format!("{node}: not JSON: {}", line.text));
                return;
            }
            Err(LineError::Malformed(why)) => {
                self.problems.malformed += 1;
                let msg = format!(
                    "Malformed network message from {node}: {} ({why}). A message is exactly \
                     {{\"src\", \"dest\", \"body\"}} (plus an optional integer \"id\").",
                    line.text
                );
                self.console.warn(&thread, "workloads.net", &msg);
                self.problems
                    .note(format!("{node}: malformed: {}", line.text));
                return;
            }
        };
        let src = self.resolve(&env.src);
        let dest = self.resolve(&env.dest);
        let result = match (src, dest) {
            (Some(s), Some(d)) => self.net.send(now, s, d, env.body.get().into()).map(|id| {
                self.journal_sent(id, s, d, now, env.body.get());
                (s, d)
            }),
            (None, _) => Err(SendError::UnknownSrc),
            (_, None) => Err(SendError::UnknownDest),
        };
        match result {
            Ok((s, d)) => {
                if self.settings.log_net_send {
                    self.log_message("send", s, d, env.body.get());
                }
            }
            Err(SendError::UnknownSrc) => {
                self.problems.unknown_src += 1;
                let msg = format!(
                    "Node {node} sent a message from unknown source {:?}; dropped: {}",
                    env.src, line.text
                );
                self.console.warn(&thread, "workloads.net", &msg);
                self.problems
                    .note(format!("{node}: unknown src: {}", line.text));
            }
            Err(SendError::UnknownDest) => {
                self.problems.unknown_dest += 1;
                let why = match dest {
                    Some(d) if self.net.is_closed_client(d) => format!(
                        "client {} is closed (it was an init client, or timed out and was replaced); \
                         reply once per request, only to live clients",
                        env.dest
                    ),
                    _ => format!("{:?} is not a node, client or service", env.dest),
                };
                let msg = format!(
                    "Node {node} sent a message to an unknown destination: {why}; dropped: {}",
                    line.text
                );
                self.console.warn(&thread, "workloads.net", &msg);
                self.problems
                    .note(format!("{node}: unknown dest: {}", line.text));
            }
        }
    }

    fn journal_sent(&mut self, id: u64, src: Addr, dest: Addr, now: Nanos, body: &str) {
        if self.journal.hops.len() < crate::journal::LIMIT {
            let (src, dest) = (self.name_of(src), self.name_of(dest));
            self.journal.sent(id, &src, &dest, now, body);
        } else {
            self.journal.truncated += 1;
        }
    }

    fn deliver(&mut self, now: Nanos, packet: crate::net::Packet) {
        if self.settings.log_net_recv {
            self.log_message("recv", packet.src, packet.dest, &packet.body);
        }
        if let Addr::Node(i) = packet.dest {
            if self.down[i as usize] {
                // A killed process reads nothing: what reaches it is lost.
                self.problems.lost_to_dead_nodes += 1;
                return;
            }
        }
        self.journal.received(packet.id, now);
        match packet.dest {
            Addr::Node(i) => {
                let src = self.name_of(packet.src);
                let dest = &self.names[i as usize];
                let mut line = Vec::with_capacity(packet.body.len() + 64);
                line.extend_from_slice(
                    format!(
                        "{{\"id\":{},\"src\":{},\"dest\":{},\"body\":",
                        packet.id,
                        Value::String(src),
                        Value::String(dest.clone())
                    )
                    .as_bytes(),
                );
                line.extend_from_slice(packet.body.as_bytes());
                line.extend_from_slice(b"}\n");
                self.nodes[i as usize].send(line);
            }
            Addr::Service(s) => {
                let Ok(body) = serde_json::from_str::<Value>(&packet.body) else {
                    return;
                };
                let src = self.name_of(packet.src);
                if let Some(reply) = self.services.handle(s, &src, &body) {
                    let text = reply.to_string();
                    if let Ok(id) =
                        self.net
                            .send(now, packet.dest, packet.src, text.as_str().into())
                    {
                        self.journal_sent(id, packet.dest, packet.src, now, &text);
                    }
                }
            }
            Addr::Client(c) => self.client_received(now, c, &packet.body),
        }
    }

    fn client_received(&mut self, now: Nanos, client: u32, text: &str) {
        let Ok(Value::Object(body)) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(state) = self.clients.get_mut(&client) else {
            return;
        };
        let in_reply_to = body.get("in_reply_to").and_then(Value::as_u64);
        let matches = matches!(&state.pending, Some(p) if Some(p.msg_id) == in_reply_to);
        if !matches {
            // A late reply to a request this client gave up on: Maelstrom ignores it too.
            return;
        }
        let pending = state.pending.take().expect("checked above");
        match state.role {
            Role::Init(i) => {
                let kind = body.get("type").and_then(Value::as_str);
                self.setup_results[i] = Some(if kind == Some("init_ok") {
                    Ok(())
                } else {
                    Err(format!(
                        "init-failed: expected an init_ok reply, got {}",
                        Value::Object(body.clone())
                    ))
                });
            }
            Role::Reinit(i) => {
                let ok = body.get("type").and_then(Value::as_str) == Some("init_ok");
                self.reinit_done(
                    i,
                    client,
                    ok.then_some(())
                        .ok_or_else(|| Value::Object(body.clone()).to_string()),
                );
            }
            Role::Setup(i) => {
                let schema = self
                    .workload
                    .setup(&self.cluster, i)
                    .map(|r| r.reply.clone());
                let result = match schema {
                    _ if body.get("type").and_then(Value::as_str) == Some("error") => Err(format!(
                        "the setup request {} got an error: {}",
                        Value::Object(pending.request.clone()),
                        Value::Object(body.clone())
                    )),
                    Some(schema) => schema.check(&body).map_err(|errs| {
                        crate::schema::malformed_response_message(
                            &self.names[i],
                            &pending.request,
                            &schema,
                            &body,
                            &errs,
                        )
                    }),
                    None => Ok(()),
                };
                self.setup_results[i] = Some(result);
            }
            Role::Worker(w) => {
                let op = pending.op.expect("worker requests carry their op");
                let node = self.names[self.workers[w].node].clone();
                let outcome =
                    outcome::of_reply(self.workload.as_ref(), &op, &node, &pending.request, &body);
                self.complete(now, w, op, outcome);
            }
        }
    }

    fn expire(&mut self, now: Nanos) {
        let expired: Vec<u32> = self
            .clients
            .iter()
            .filter(|(_, c)| c.pending.as_ref().is_some_and(|p| p.deadline <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let Some(state) = self.clients.get_mut(&id) else {
                continue;
            };
            let pending = state.pending.take().expect("filtered on pending");
            match state.role {
                Role::Init(i) => {
                    self.setup_results[i] = Some(Err(format!(
                        "Expected node {} to respond to an init message, but node did not \
                         respond within {} s",
                        self.names[i],
                        INIT_TIMEOUT / SEC
                    )))
                }
                Role::Reinit(i) => self.reinit_done(i, id, Err("no reply".into())),
                Role::Setup(i) => {
                    self.setup_results[i] = Some(Err(format!(
                        "no reply to the setup request {} within {} s",
                        Value::Object(pending.request),
                        CLIENT_TIMEOUT / SEC
                    )))
                }
                Role::Worker(w) => {
                    let op = pending.op.expect("worker requests carry their op");
                    let outcome = outcome::of_timeout(self.workload.as_ref(), &op);
                    self.complete(now, w, op, outcome);
                }
            }
        }
    }

    fn complete(&mut self, now: Nanos, w: usize, op: GenOp, outcome: Outcome) {
        let process = self.workers[w].process;
        let mut done = Op {
            index: 0,
            time_ns: self.history_time(now),
            op_type: OpType::Ok,
            process: Process::Worker(process),
            f: op.f.to_string(),
            value: op.value.clone(),
            error: None,
            final_read: op.final_read,
            extra: Vec::new(),
        };
        let crashed = match outcome {
            Outcome::Ok(v) => {
                done.value = v;
                false
            }
            Outcome::Fail { error } => {
                done.op_type = OpType::Fail;
                done.error = Some(error);
                false
            }
            Outcome::Info { error, exception } => {
                done.op_type = OpType::Info;
                done.error = Some(error);
                if let Some(e) = exception {
                    done.extra.push(("exception".into(), e));
                }
                true
            }
        };
        self.log_op(&done);
        let index = self.history.push(done);
        self.workload.completed(w, &op, &self.history.ops[index]);
        if crashed {
            // Jepsen replaces the process of a thread whose op crashed; Maelstrom also
            // reopens non-reusable clients under a new id.
            self.workers[w].process += self.workers.len() as u64;
            if !self.workload.client().reusable {
                let old = self.workers[w].client;
                self.net.close_client(old);
                self.clients.remove(&old);
                self.workers[w].client = self.open_client(Role::Worker(w));
            }
        }
    }

    /// Closes every node's stdin, then escalates to SIGTERM and SIGKILL for nodes still
    /// running after the grace period. Also called after errors.
    pub async fn shut_down(&mut self) {
        self.shutting_down = true;
        let mut running: Vec<bool> = self.down.iter().map(|d| !d).collect();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if self.paused[i] {
                n.signal(libc::SIGCONT);
            }
            n.close_stdin();
        }
        let grace = Duration::from_millis(500);
        for signal in [None, Some(libc::SIGTERM), Some(libc::SIGKILL)] {
            if let Some(sig) = signal {
                for (i, n) in self.nodes.iter().enumerate() {
                    if running[i] || (sig == libc::SIGKILL && !self.down[i]) {
                        n.signal(sig);
                    }
                }
            }
            let deadline = tokio::time::Instant::now() + grace;
            while running.iter().any(|r| *r) {
                match tokio::time::timeout_at(deadline, self.events.recv()).await {
                    Ok(Some(NodeEvent::Exited {
                        node, generation, ..
                    })) => {
                        if generation == self.nodes[node as usize].generation {
                            running[node as usize] = false;
                        }
                    }
                    Ok(Some(NodeEvent::Line(_))) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
        self.console.flush();
    }
}

async fn recv_signal(sig: &mut Option<Signal>) {
    match sig {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
