//! Workloads: what clients ask of the nodes and how the answers are judged. A workload is a
//! generator (the next operation), a client (the request body for an operation, the closed
//! schema of its reply, and the completed value), and a checker (from [`crate::checker`]),
//! all in one module implementing [`Workload`]. The engine knows nothing else about them:
//! adding a workload means adding a module and a line to [`by_name`].
//!
//! One way of generating operations: [`Workload::next`] answers a [`Next`] for one worker
//! in one [`Phase`]. A stateless mix ignores the worker; a workload whose clients have roles
//! and memory (the task queue's producers and consumers) decides by worker, sees every
//! completion in [`Workload::completed`], and may record an event of the client itself
//! with [`Next::Local`].
//!
//! Porting a workload written against the older, larger trait is mechanical:
//! `next_op`/`next_for` become the [`Phase::Main`] arm of `next`; `final_op` becomes
//! `Phase::Final => ask.once(op)` plus `has_final_phase() -> true`; `next_final` becomes the
//! [`Phase::Final`] arm; `uses_with_errors`, `idempotent`, `reusable_client` and
//! `client_timeout_ms` become the fields of [`ClientRules`] returned by
//! [`Workload::client`].

pub mod broadcast;
pub mod echo;
pub mod g_counter;
pub mod g_set;
pub mod gift_ids;
pub mod lin_kv;
pub mod pn_counter;
pub mod santa;
pub mod secret_santa;
pub mod task_queue;
pub mod unique_ids;

use rand::rngs::StdRng;
use serde_json::{Map, Value};

use crate::edn::Edn;
use crate::history::{History, Op};
use crate::schema::Schema;
use crate::topology::Topology;

/// Checkers take the run's facts; workloads hand them on.
pub use crate::facts::RunFacts;

/// Names accepted by `-w`, in the order the help and errors list them.
pub const SUPPORTED: [&str; 11] = [
    "echo",
    "unique-ids",
    "broadcast",
    "g-set",
    "g-counter",
    "pn-counter",
    "lin-kv",
    "gift-ids",
    "task-queue",
    "secret-santa",
    "santa",
];

/// Workloads Maelstrom has that this harness does not run yet.
pub const NOT_YET: [&str; 3] = ["txn-list-append", "txn-rw-register", "kafka"];

/// An operation the generator asks for: Jepsen's `{:f … :value …}`.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOp {
    pub f: &'static str,
    pub value: Edn,
    /// Part of the final phase (`:final? true`).
    pub final_read: bool,
}

impl GenOp {
    pub fn new(f: &'static str, value: Edn) -> Self {
        GenOp {
            f,
            value,
            final_read: false,
        }
    }

    /// The read every worker makes in the final phase.
    pub fn final_read() -> Self {
        GenOp {
            f: "read",
            value: Edn::Nil,
            final_read: true,
        }
    }

    /// The set workloads' mix: half adds of the next unique integer (under `add_f`),
    /// half reads.
    pub fn add_next_or_read(
        rng: &mut rand::rngs::StdRng,
        next: &mut i64,
        add_f: &'static str,
    ) -> Self {
        use rand::Rng;
        if rng.gen_bool(0.5) {
            let v = *next;
            *next += 1;
            GenOp::new(add_f, Edn::Int(v))
        } else {
            GenOp::new("read", Edn::Nil)
        }
    }
}

/// What the workload needs to know about the cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Every node, of every service.
    pub nodes: Vec<String>,
    pub topology: Topology,
    /// Client workers; see [`worker_nodes`] for the node each one talks to.
    pub workers: usize,
    /// The node binary's own arguments (after `--`), for workloads that follow them.
    pub node_args: Vec<String>,
    /// The services and their node ids, in the order given (`--service NAME=BIN:COUNT`);
    /// a run of one binary has one service, `node`, of every node.
    pub services: Vec<(String, Vec<String>)>,
}

/// The name of the one service of a run of one binary (`--bin`).
pub const ONE_SERVICE: &str = "node";

impl Cluster {
    /// The node ids of service `name`.
    pub fn service(&self, name: &str) -> Option<&[String]> {
        self.services
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, nodes)| nodes.as_slice())
    }
}

/// The node (an index into [`Cluster::nodes`]) each worker talks to: for a worker whose
/// [`Workload::service_of`] is `Some(name)`, node `k % len` of that service, `k` being the
/// worker's rank among the workers of the same service; else node `w % nodes.len()`.
/// Refused when a worker names a service the cluster does not have.
pub fn worker_nodes(workload: &dyn Workload, cluster: &Cluster) -> Result<Vec<usize>, String> {
    let missing: Vec<&str> = (workload.services_needed().iter())
        .filter(|name| cluster.service(name).map_or(true, |nodes| nodes.is_empty()))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "workload {} needs the services {}; name each with --service NAME=BIN:COUNT \
             (missing: {})",
            workload.name(),
            workload.services_needed().join(", "),
            missing.join(", ")
        ));
    }
    let mut taken: Vec<usize> = vec![0; cluster.services.len()];
    let mut out = Vec::with_capacity(cluster.workers);
    for w in 0..cluster.workers {
        let Some(name) = workload.service_of(w) else {
            out.push(w % cluster.nodes.len().max(1));
            continue;
        };
        let found = cluster.services.iter().position(|(n, _)| n == name);
        let Some(s) = found.filter(|&s| !cluster.services[s].1.is_empty()) else {
            let known: Vec<&str> = cluster.services.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "workload {} sends worker {w} to service {name:?}, which this run does not have (services: {}); name it with --service {name}=BIN:COUNT",
                workload.name(),
                known.join(", ")
            ));
        };
        let nodes = &cluster.services[s].1;
        let node = &nodes[taken[s] % nodes.len()];
        taken[s] += 1;
        let index = cluster.nodes.iter().position(|n| n == node);
        out.push(index.ok_or_else(|| format!("node {node} of service {name} is not a node"))?);
    }
    Ok(out)
}

/// What a worker does next, as the workload decides it ([`Workload::next`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Send this operation to the worker's node.
    Op(GenOp),
    /// Record this operation as invoked and completed `:ok` at the same instant, with its
    /// value, and send nothing: something the client itself did that the checker must know
    /// of (a consumer dropping a task). [`Workload::completed`] sees it like any other
    /// completion; the worker stays free.
    Local(GenOp),
    /// Nothing for this worker now; do not ask it again for this many milliseconds.
    Wait(u64),
    /// Nothing more for this worker in this phase.
    Done,
}

/// The phase an operation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Operations at `--rate` while the nemesis runs.
    Main,
    /// After healing and the recovery wait: reads and drains, recorded `:final? true`.
    Final,
}

/// A worker asking the workload for its next operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    pub phase: Phase,
    pub worker: usize,
    /// Milliseconds since the history began.
    pub now_ms: u64,
    /// Operations this worker has invoked in the current phase, local ones included.
    pub issued: usize,
}

impl Ask {
    /// `op` if this worker has issued nothing yet in this phase, else [`Next::Done`]: the
    /// one final read per worker of most workloads.
    pub fn once(&self, op: GenOp) -> Next {
        if self.issued == 0 {
            Next::Op(op)
        } else {
            Next::Done
        }
    }

    /// The generator of the workloads with one final read: an op of `mix` in the main
    /// phase, then [`GenOp::final_read`] [`once`](Ask::once) per worker.
    pub fn mix_then_final_read(&self, mix: impl FnOnce() -> GenOp) -> Next {
        match self.phase {
            Phase::Main => Next::Op(mix()),
            Phase::Final => self.once(GenOp::final_read()),
        }
    }
}

/// A request to send to a node, and the reply schema to hold its answer to.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The body without `msg_id` (the engine adds it).
    pub body: Map<String, Value>,
    pub reply: &'a Schema,
}

/// How a workload's clients treat errors, timeouts and their connection
/// ([`Workload::client`]). The default is Maelstrom's usual client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRules {
    /// Errors and timeouts become `:fail`/`:info` with an `:error` (Maelstrom's
    /// `with-errors`), rather than `:info` with an exception.
    pub with_errors: bool,
    /// Operations (`f`s) that may be recorded as `:fail` after an indefinite error or a
    /// timeout, because doing them twice or not at all changes nothing.
    pub idempotent: &'static [&'static str],
    /// A worker keeps its client (and client id) after an `:info`.
    pub reusable: bool,
    /// The reply timeout is `latency_factor × --latency`, and at least `min_timeout_ms`.
    pub latency_factor: u64,
    pub min_timeout_ms: u64,
}

impl Default for ClientRules {
    fn default() -> Self {
        ClientRules {
            with_errors: true,
            idempotent: &[],
            reusable: false,
            latency_factor: 0,
            min_timeout_ms: 5_000,
        }
    }
}

impl ClientRules {
    /// Maelstrom's client without `with-errors`: errors and timeouts are `:info`.
    pub fn without_errors() -> Self {
        ClientRules {
            with_errors: false,
            ..ClientRules::default()
        }
    }

    /// How long a worker waits for a reply, given `--latency`.
    pub fn timeout_ms(&self, latency_ms: u64) -> u64 {
        (self.latency_factor * latency_ms).max(self.min_timeout_ms)
    }

    /// Whether `f` may be recorded as `:fail` after an indefinite error or timeout.
    pub fn is_idempotent(&self, f: &str) -> bool {
        self.idempotent.contains(&f)
    }
}

/// One workload: a generator ([`Workload::next`]), a client ([`Workload::request`],
/// [`Workload::ok_value`], [`Workload::client`]) and a checker ([`Workload::check`]). Only
/// those four and the name must be written; the rest have defaults most workloads keep.
///
/// A stateless workload's generator is a mix for the main phase and, if it has a final
/// read, one per worker:
///
/// ```ignore
/// fn next(&mut self, ask: Ask, rng: &mut StdRng) -> Next {
///     ask.mix_then_final_read(|| GenOp::new("add", Edn::Int(rng.gen_range(0..5))))
/// }
/// fn has_final_phase(&self) -> bool { true }
/// ```
pub trait Workload: Send {
    /// The `-w` name.
    fn name(&self) -> &'static str;

    /// How clients treat errors, timeouts and their connection.
    fn client(&self) -> ClientRules {
        ClientRules::default()
    }

    /// The request the setup client sends to `node` before the test, if any.
    fn setup(&self, _cluster: &Cluster, _node: usize) -> Option<Request<'_>> {
        None
    }

    /// Called once with the run's shape, before [`Workload::service_of`] is asked and
    /// before the nodes start (the shape follows from the options).
    fn begin(&mut self, _cluster: &Cluster) {}

    /// The service whose nodes worker `worker` talks to, for clusters of several binaries;
    /// `None` spreads the worker over all nodes (`worker % nodes.len()`). See
    /// [`worker_nodes`].
    fn service_of(&self, _worker: usize) -> Option<&str> {
        None
    }

    /// Services the run must have (by `--service` name), though no worker talks to them
    /// all; refused at start when one is missing.
    fn services_needed(&self) -> &'static [&'static str] {
        &[]
    }

    /// The generator: what worker `ask.worker` does next in `ask.phase`.
    ///
    /// Main phase: the engine asks only free workers (no request in flight), in turn, one
    /// slot at a time: slots come at `--rate`. On [`Next::Wait`] or [`Next::Done`] it offers
    /// the same slot to the next free worker, and when none takes it the slot passes; a
    /// waiting worker is not asked before its time, a done one not again in the main phase.
    /// A [`Next::Local`] operation uses up the slot.
    ///
    /// Final phase (only if [`Workload::has_final_phase`]): the engine asks every free
    /// worker at once when the phase starts and again whenever it is free, with no rate:
    /// after each completion, after [`Next::Local`] at once, after [`Next::Wait`] when the
    /// wait is over; a worker is finished at [`Next::Done`]. The phase ends when every
    /// worker is finished, or at the engine's limit (60 s),
    /// after which nothing more is issued and the replies still due are awaited. Every
    /// operation of this phase is recorded with `:final? true`.
    fn next(&mut self, ask: Ask, rng: &mut StdRng) -> Next;

    /// Whether the run has a final phase: after the main phase and healing, a recovery
    /// wait, then [`Workload::next`] with [`Phase::Final`] for every worker.
    fn has_final_phase(&self) -> bool {
        false
    }

    /// Sees every completed operation of worker `worker` (`:ok`, `:fail` or `:info`, local
    /// ones included) right after it enters the history: `op` as invoked, `done` as
    /// recorded (its type, value and error).
    fn completed(&mut self, _worker: usize, _op: &GenOp, _done: &Op) {}

    /// The request for an operation.
    fn request(&self, op: &GenOp) -> Request<'_>;

    /// The value of the `:ok` completion, from a reply that fits the schema.
    fn ok_value(&self, op: &GenOp, reply: &Map<String, Value>) -> Edn;

    /// The workload checker's result map (`:workload` in results.edn).
    fn check(&self, history: &History, facts: &RunFacts) -> Edn;
}

/// The workload named `name`, or a message listing the supported ones.
pub fn by_name(name: &str) -> Result<Box<dyn Workload>, String> {
    Ok(match name {
        "echo" => Box::new(echo::Echo::new()),
        "unique-ids" => Box::new(unique_ids::UniqueIds::new()),
        "broadcast" => Box::new(broadcast::Broadcast::new()),
        "g-set" => Box::new(g_set::GSet::new()),
        "g-counter" => Box::new(g_counter::GCounter::new()),
        "pn-counter" => Box::new(pn_counter::PnCounter::new()),
        "gift-ids" => Box::new(gift_ids::GiftIds::new()),
        "lin-kv" => Box::new(lin_kv::LinKv::new()),
        "task-queue" => Box::new(task_queue::TaskQueue::new()),
        "secret-santa" => Box::new(secret_santa::SecretSanta::new()),
        "santa" => Box::new(santa::Santa::new()),
        other => {
            let why = if NOT_YET.contains(&other) {
                format!("Maelstrom's workload {other:?} is not supported by this harness yet")
            } else {
                format!("unknown workload {other:?}")
            };
            return Err(format!(
                "{why}; supported workloads: {}",
                SUPPORTED.join(", ")
            ));
        }
    })
}

/// A body `{…fields, "type": kind}`, keys in the order Maelstrom's clients build them
/// (`assoc`ing `type` onto the workload's fields).
pub(crate) fn body(kind: &str, fields: &[(&str, Value)]) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in fields {
        m.insert(k.to_string(), v.clone());
    }
    m.insert("type".into(), Value::String(kind.into()));
    m
}

/// A body `{"type": kind, …fields}`, for the clients that spell `type` first.
pub(crate) fn body_type_first(kind: &str, fields: &[(&str, Value)]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), Value::String(kind.into()));
    for (k, v) in fields {
        m.insert(k.to_string(), v.clone());
    }
    m
}

/// A field of a checked reply as EDN (nested maps keep string keys, as in Maelstrom).
pub(crate) fn reply_field(reply: &Map<String, Value>, key: &str) -> Edn {
    reply
        .get(key)
        .map(|v| Edn::from_json(v, false))
        .unwrap_or(Edn::Nil)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_name_resolves_and_others_are_refused_clearly() {
        for name in SUPPORTED {
            assert_eq!(by_name(name).map(|w| w.name()).unwrap(), name);
        }
        let err = by_name("kafka").err().unwrap();
        assert!(
            err.contains("not supported") && err.contains("unique-ids"),
            "{err}"
        );
        let err = by_name("nope").err().unwrap();
        assert!(err.contains("unknown workload \"nope\""), "{err}");
    }

    #[test]
    fn default_client_is_maelstroms_and_rules_scale_with_latency() {
        let d = ClientRules::default();
        assert!(d.with_errors && !d.reusable && !d.is_idempotent("read"));
        assert_eq!((d.timeout_ms(0), d.timeout_ms(10_000)), (5_000, 5_000));
        let lin = by_name("lin-kv").unwrap().client();
        assert!(lin.is_idempotent("read") && !lin.is_idempotent("write"));
        assert_eq!((lin.timeout_ms(0), lin.timeout_ms(500)), (1_000, 5_000));
    }

    #[test]
    fn a_stateless_final_phase_is_one_read_per_worker() {
        let mut w = by_name("g-set").unwrap();
        assert!(w.has_final_phase() && !by_name("echo").unwrap().has_final_phase());
        let mut rng = rand::SeedableRng::seed_from_u64(1);
        let ask = |issued| Ask {
            phase: Phase::Final,
            worker: 0,
            now_ms: 0,
            issued,
        };
        assert_eq!(w.next(ask(0), &mut rng), Next::Op(GenOp::final_read()));
        assert_eq!(w.next(ask(1), &mut rng), Next::Done);
    }

    /// Workers 0 and 3 go to service `b`, worker 1 to `a`, the rest anywhere.
    struct Routed(Option<&'static str>);

    impl Workload for Routed {
        fn name(&self) -> &'static str {
            "routed"
        }
        fn service_of(&self, worker: usize) -> Option<&str> {
            match worker {
                0 | 3 => Some("b"),
                1 => Some("a"),
                4 => self.0,
                _ => None,
            }
        }
        fn next(&mut self, _: Ask, _: &mut StdRng) -> Next {
            Next::Done
        }
        fn request(&self, _: &GenOp) -> Request<'_> {
            unreachable!("never asked")
        }
        fn ok_value(&self, _: &GenOp, _: &Map<String, Value>) -> Edn {
            Edn::Nil
        }
        fn check(&self, _: &History, _: &RunFacts) -> Edn {
            Edn::Nil
        }
    }

    #[test]
    fn workers_spread_over_their_service_or_over_every_node() {
        let ids = |r: std::ops::Range<usize>| r.map(|i| format!("n{i}")).collect::<Vec<_>>();
        let cluster = Cluster {
            nodes: ids(0..5),
            topology: Topology::Grid,
            workers: 6,
            node_args: Vec::new(),
            services: vec![("a".into(), ids(0..2)), ("b".into(), ids(2..5))],
        };
        let nodes = worker_nodes(&Routed(Some("b")), &cluster).unwrap();
        assert_eq!(nodes, [2, 0, 2, 3, 4, 0]);
        let plain = worker_nodes(by_name("echo").unwrap().as_ref(), &cluster).unwrap();
        assert_eq!(plain, [0, 1, 2, 3, 4, 0]);
        let why = worker_nodes(&Routed(Some("queue")), &cluster).unwrap_err();
        assert!(
            why.contains("worker 4 to service \"queue\"") && why.contains("services: a, b"),
            "{why}"
        );
        let santa = by_name("santa").unwrap();
        let why = worker_nodes(santa.as_ref(), &cluster).unwrap_err();
        assert!(why.contains("missing: giftid, queue, matcher"), "{why}");
    }
}
