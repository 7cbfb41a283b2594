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
//! [`crate::workload::Phase`]; the engine keeps, per worker, what those answers imply: when
//! it may be asked again and whether it is finished with the phase.
//!
//! The engine's work is split by what it does: [`phases`] (the phases, the event loop,
//! stopping the nodes), [`routing`] (node lines into the network, deliveries out of it),
//! [`clients`] (workers, requests, replies, timeouts, the history), [`faults`] (the
//! nemesis's actions) and [`progress_line`].

mod clients;
mod faults;
mod phases;
mod progress_line;
mod routing;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::faketime::Clocks;
use super::process::{NodeEvent, NodeProcess, Spawner};
use super::progress::Progress;
use crate::analysis::Problems;
use crate::console::Console;
use crate::history::History;
use crate::journal::Journal;
use crate::nemesis::Config as NemesisConfig;
use crate::net::{Addr, Nanos, Network, ServiceId};
use crate::services::Services;
use crate::workload::{Cluster, GenOp, Workload};

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
    /// The node each worker talks to ([`crate::workload::worker_nodes`]).
    pub worker_nodes: Vec<usize>,
    /// Whether `init` names the services (a cluster of several binaries).
    pub services_in_init: bool,
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
    /// The nemesis and the faults in force.
    faults: faults::Faults,
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
    /// The progress line's schedule, from the main phase on.
    progress: Option<Progress>,
    phase: Phase,
    next_op_at: Nanos,
    next_worker: usize,
    setup_results: Vec<Option<Result<(), String>>>,
    pub problems: Problems,
    shutting_down: bool,
    signals: phases::Signals,
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
            faults: faults::Faults::new(n, rngs.nemesis),
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
            progress: None,
            phase: Phase::Setup,
            next_op_at: 0,
            next_worker: 0,
            setup_results: vec![None; n],
            problems: Problems::default(),
            shutting_down: false,
            signals: phases::Signals::new(),
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

    /// Engine time (the clock traces' and journal's) at which the history starts.
    pub fn history_origin(&self) -> Nanos {
        self.history_origin
    }

    fn history_time(&self, now: Nanos) -> u64 {
        now.saturating_sub(self.history_origin)
    }
}
