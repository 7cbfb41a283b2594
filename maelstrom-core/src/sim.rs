//! A whole cluster in one process, on simulated time: every node runs in its own
//! [`Runtime`] exactly as under the stdin/stdout driver, and every message travels as the
//! JSON line it would be on the wire, through a network with latency, partitions, crashes
//! and restarts. Tests and benchmarks use it to drive real nodes deterministically and far
//! faster than processes allow.
//!
//! A cluster may hold several binaries ([`Cluster::with_services`]): each node gets the
//! `init` a harness gives a cluster of services (`node_ids` of its own service, and
//! `services` naming every service's nodes).
//!
//! Time moves only when [`Cluster::run_for`] or [`Cluster::run_until`] move it: to the next
//! message delivery or node deadline, never in real time.

use std::any::Any;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::io;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::message::RawMessage;
use crate::node::Node;
use crate::runtime::{Now, Output, Runtime};
use crate::storage::{MemStorage, Storage};

/// A node's disk: it outlives the node's crashes.
#[derive(Debug, Clone, Default)]
pub struct SharedStorage(Rc<RefCell<MemStorage>>);

impl Storage for SharedStorage {
    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.0.borrow().load(name)
    }

    fn store(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.0.borrow_mut().store(name, bytes)
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.0.borrow_mut().append(name, bytes)
    }
}

/// A node's runtime whatever its node type, so that one cluster can hold several.
trait Hosted {
    fn handle_line(&mut self, line: &str, now: Now, out: &mut Output);
    fn fire_due(&mut self, now: Now, out: &mut Output);
    fn next_deadline(&self) -> Option<Duration>;
    fn as_any(&self) -> &dyn Any;
}

impl<N: Node + 'static> Hosted for Runtime<N> {
    fn handle_line(&mut self, line: &str, now: Now, out: &mut Output) {
        Runtime::handle_line(self, line, now, out)
    }

    fn fire_due(&mut self, now: Now, out: &mut Output) {
        Runtime::fire_due(self, now, out)
    }

    fn next_deadline(&self) -> Option<Duration> {
        Runtime::next_deadline(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn boot<N: Node + 'static>(disk: SharedStorage) -> Box<dyn Hosted> {
    Box::new(Runtime::<N>::new(Box::new(disk)))
}

/// One service of a cluster of several binaries: its name, how many nodes, and their
/// node type.
pub struct Service {
    name: String,
    count: usize,
    boot: fn(SharedStorage) -> Box<dyn Hosted>,
}

impl Service {
    pub fn of<N: Node + 'static>(name: &str, count: usize) -> Self {
        Service {
            name: name.to_string(),
            count,
            boot: boot::<N>,
        }
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Service({}: {})", self.name, self.count)
    }
}

/// A line in flight, ordered by delivery time and then by sending order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Duration,
    seq: u64,
    dest: String,
    src: String,
    line: String,
}

/// Counts of what the network carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages between nodes.
    pub internal: u64,
    /// Messages from clients to nodes and back.
    pub client: u64,
    pub dropped: u64,
}

/// Decides the fate of one node-to-node message as it leaves its node: `None` for the
/// usual delivery after the cluster's latency, or the delays after which copies of it
/// arrive (none: dropped; two: duplicated). Tests use it to duplicate, delay or lose a
/// chosen message.
pub type WireRule = Box<dyn FnMut(&RawMessage) -> Option<Vec<Duration>>>;

pub struct Cluster<N: Node> {
    names: Vec<String>,
    nodes: Vec<Option<Box<dyn Hosted>>>,
    /// Each node's type, and the `node_ids` of its `init`.
    boots: Vec<fn(SharedStorage) -> Box<dyn Hosted>>,
    node_ids: Vec<Vec<String>>,
    /// `init`'s `services`, when the cluster holds several binaries.
    services: Option<BTreeMap<String, Vec<String>>>,
    disks: Vec<SharedStorage>,
    now: Duration,
    wall_origin: SystemTime,
    /// Each node's wall clock ahead of (positive) or behind the cluster's, in ms.
    skew_ms: Vec<i64>,
    latency: Duration,
    wire: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    /// Pairs of nodes that cannot reach each other.
    cut: HashSet<(String, String)>,
    /// Replies and other messages for clients, in arrival order.
    inbox: Vec<(String, Value)>,
    next_client_msg: u64,
    pub traffic: Traffic,
    /// stderr lines of the nodes, kept when `keep_logs` is set.
    pub logs: Vec<String>,
    pub keep_logs: bool,
    rule: Option<WireRule>,
    _node: std::marker::PhantomData<N>,
}

impl<N: Node + 'static> std::fmt::Debug for Cluster<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("nodes", &self.names)
            .field("now", &self.now)
            .field("in_flight", &self.wire.len())
            .finish()
    }
}

impl<N: Node + 'static> Cluster<N> {
    /// Nodes `n0..n{count}`, initialised, with `latency` on every link.
    pub fn new(count: usize, latency: Duration) -> Self {
        let names: Vec<String> = (0..count).map(|i| format!("n{i}")).collect();
        let boots = vec![boot::<N> as fn(SharedStorage) -> Box<dyn Hosted>; count];
        Self::build(names.clone(), boots, vec![names; count], None, latency)
    }

    /// A cluster of several binaries: node ids run `n0, n1, ...` across the services in
    /// the order given; each node's `init` has its own service's nodes as `node_ids`
    /// and every service's in `services`. [`Cluster::node`] sees the nodes of type `N`,
    /// [`Cluster::node_as`] those of any type.
    pub fn with_services(services: Vec<Service>, latency: Duration) -> Self {
        let (mut names, mut boots, mut node_ids) = (Vec::new(), Vec::new(), Vec::new());
        let mut map = BTreeMap::new();
        for service in services {
            let first = names.len();
            let ids: Vec<String> = (first..first + service.count)
                .map(|i| format!("n{i}"))
                .collect();
            names.extend(ids.iter().cloned());
            boots.extend(std::iter::repeat(service.boot).take(service.count));
            node_ids.extend(std::iter::repeat(ids.clone()).take(service.count));
            map.insert(service.name, ids);
        }
        Self::build(names, boots, node_ids, Some(map), latency)
    }

    fn build(
        names: Vec<String>,
        boots: Vec<fn(SharedStorage) -> Box<dyn Hosted>>,
        node_ids: Vec<Vec<String>>,
        services: Option<BTreeMap<String, Vec<String>>>,
        latency: Duration,
    ) -> Self {
        let count = names.len();
        let mut cluster = Cluster {
            nodes: (0..count).map(|_| None).collect(),
            disks: (0..count).map(|_| SharedStorage::default()).collect(),
            names,
            boots,
            node_ids,
            services,
            now: Duration::ZERO,
            wall_origin: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            skew_ms: vec![0; count],
            latency,
            wire: BinaryHeap::new(),
            seq: 0,
            cut: HashSet::new(),
            inbox: Vec::new(),
            next_client_msg: 0,
            traffic: Traffic::default(),
            logs: Vec::new(),
            keep_logs: false,
            rule: None,
            _node: std::marker::PhantomData,
        };
        for i in 0..count {
            cluster.start(i);
        }
        cluster
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn now(&self) -> Duration {
        self.now
    }

    /// The node, if it is up, initialised and of type `N`.
    pub fn node(&self, i: usize) -> Option<&N> {
        self.node_as::<N>(i)
    }

    /// Node `i` as a node of type `M`, if it is up, initialised and of that type.
    pub fn node_as<M: Node + 'static>(&self, i: usize) -> Option<&M> {
        let runtime = self.nodes[i]
            .as_ref()?
            .as_any()
            .downcast_ref::<Runtime<M>>()?;
        runtime.node()
    }

    /// Sets node `i`'s wall clock `ms` ahead of the others (behind when negative); its
    /// monotonic clock is untouched, as with a skewed machine clock.
    pub fn skew_clock(&mut self, i: usize, ms: i64) {
        self.skew_ms[i] = ms;
    }

    fn clock(&self, i: usize) -> Now {
        let wall = self.wall_origin + self.now;
        let skew = Duration::from_millis(self.skew_ms[i].unsigned_abs());
        Now {
            mono: self.now,
            wall: if self.skew_ms[i] >= 0 {
                wall + skew
            } else {
                wall - skew
            },
        }
    }

    /// Boots node `i` from its disk and sends it `init`.
    fn start(&mut self, i: usize) {
        let mut runtime = (self.boots[i])(self.disks[i].clone());
        let mut body = json!({
            "type": "init", "msg_id": 1, "node_id": self.names[i], "node_ids": self.node_ids[i],
        });
        if let Some(services) = &self.services {
            body["services"] = json!(services);
        }
        let init = json!({"src": "c-init", "dest": self.names[i], "body": body});
        let mut out = Output::default();
        runtime.handle_line(&init.to_string(), self.clock(i), &mut out);
        self.nodes[i] = Some(runtime);
        self.emit(i, out);
        // The init reply is not interesting to anyone.
        self.inbox.retain(|(client, _)| client != "c-init");
    }

    /// Kills node `i`: its memory and the messages it had not yet received are gone; its
    /// disk stays.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].is_none() {
            self.start(i);
        }
    }

    /// Cuts every link between `a` and the other nodes `b` (both directions).
    pub fn isolate(&mut self, i: usize) {
        for j in 0..self.names.len() {
            if i != j {
                self.cut
                    .insert((self.names[i].clone(), self.names[j].clone()));
                self.cut
                    .insert((self.names[j].clone(), self.names[i].clone()));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Sends a client request to node `i`; returns its `msg_id`.
    pub fn request(&mut self, client: &str, i: usize, mut body: Value) -> u64 {
        self.next_client_msg += 1;
        let msg_id = self.next_client_msg;
        if let Some(fields) = body.as_object_mut() {
            fields.insert("msg_id".into(), json!(msg_id));
        }
        let line = json!({"src": client, "dest": self.names[i], "body": body}).to_string();
        self.traffic.client += 1;
        self.post(client.to_string(), self.names[i].clone(), line);
        msg_id
    }

    /// Puts a whole message line on the wire as it is, e.g. one that seems to come from
    /// a node: it arrives after the usual latency.
    pub fn inject(&mut self, line: &str) {
        if let Ok(raw) = RawMessage::parse(line) {
            self.post(raw.src, raw.dest, line.to_string());
        }
    }

    /// Messages that reached clients since the last call: (client, body).
    pub fn take_inbox(&mut self) -> Vec<(String, Value)> {
        std::mem::take(&mut self.inbox)
    }

    /// Sets the rule every node-to-node message passes from now on (see [`WireRule`]).
    pub fn set_wire_rule(
        &mut self,
        rule: impl FnMut(&RawMessage) -> Option<Vec<Duration>> + 'static,
    ) {
        self.rule = Some(Box::new(rule));
    }

    fn post(&mut self, src: String, dest: String, line: String) {
        self.post_after(src, dest, line, self.latency);
    }

    fn post_after(&mut self, src: String, dest: String, line: String, delay: Duration) {
        self.seq += 1;
        self.wire.push(Reverse(InFlight {
            at: self.now + delay,
            seq: self.seq,
            dest,
            src,
            line,
        }));
    }

    /// Routes what node `i` printed.
    fn emit(&mut self, i: usize, out: Output) {
        if self.keep_logs {
            let name = &self.names[i];
            self.logs
                .extend(out.logs.into_iter().map(|l| format!("{name}: {l}")));
        }
        if out.fatal.is_some() {
            self.nodes[i] = None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in text.lines() {
            let Ok(raw) = RawMessage::parse(line) else {
                continue;
            };
            if self.names.contains(&raw.dest) {
                self.traffic.internal += 1;
                if self.cut.contains(&(raw.src.clone(), raw.dest.clone())) {
                    self.traffic.dropped += 1;
                    continue;
                }
                let copies = match self.rule.as_mut().and_then(|rule| rule(&raw)) {
                    Some(delays) => delays,
                    None => vec![self.latency],
                };
                if copies.is_empty() {
                    self.traffic.dropped += 1;
                }
                for delay in copies {
                    self.post_after(raw.src.clone(), raw.dest.clone(), line.to_string(), delay);
                }
            } else {
                self.traffic.client += 1;
                let body: Value = serde_json::from_str(raw.body_json()).unwrap_or(Value::Null);
                self.inbox.push((raw.dest, body));
            }
        }
    }

    /// Handles everything due up to `until`, moving time forward; returns when nothing
    /// more is due by then.
    pub fn run_until(&mut self, until: Duration) {
        loop {
            let next_msg = self.wire.peek().map(|Reverse(m)| m.at);
            let next_timer = self
                .nodes
                .iter()
                .flatten()
                .filter_map(|runtime| runtime.next_deadline())
                .min();
            let next = match (next_msg, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if next_msg == Some(next) {
                let Some(Reverse(msg)) = self.wire.pop() else {
                    break;
                };
                self.deliver(msg);
            } else {
                self.fire_timers();
            }
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, span: Duration) {
        self.run_until(self.now + span);
    }

    fn deliver(&mut self, msg: InFlight) {
        let Some(i) = self.names.iter().position(|n| *n == msg.dest) else {
            return;
        };
        if self.cut.contains(&(msg.src.clone(), msg.dest.clone())) {
            self.traffic.dropped += 1;
            return;
        }
        let clock = self.clock(i);
        let Some(runtime) = self.nodes[i].as_mut() else {
            self.traffic.dropped += 1;
            return;
        };
        let mut out = Output::default();
        runtime.handle_line(&msg.line, clock, &mut out);
        self.emit(i, out);
    }

    fn fire_timers(&mut self) {
        for i in 0..self.nodes.len() {
            let clock = self.clock(i);
            let due = self.nodes[i]
                .as_ref()
                .and_then(|runtime| runtime.next_deadline())
                .is_some_and(|at| at <= self.now);
            if !due {
                continue;
            }
            let mut out = Output::default();
            if let Some(runtime) = self.nodes[i].as_mut() {
                runtime.fire_due(clock, &mut out);
            }
            self.emit(i, out);
        }
    }
}

/// Replies in `inbox` keyed by the request they answer.
pub fn replies_by_request(inbox: &[(String, Value)]) -> HashMap<(String, u64), Value> {
    inbox
        .iter()
        .filter_map(|(client, body)| {
            let id = body.get("in_reply_to")?.as_u64()?;
            Some(((client.clone(), id), body.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::{Context, InitError, Message, Outbox};

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Ask {
        Who,
        WhoOk {
            me: String,
            mine: Vec<String>,
            others: Vec<String>,
        },
    }

    /// Answers `who` with what its `init` said; `others` names the other service.
    #[derive(Debug)]
    struct Teller<const A: bool> {
        ctx: Context,
    }

    impl<const A: bool> Node for Teller<A> {
        type Msg = Ask;
        type Timer = ();
        type Call = ();

        fn init(ctx: &Context, _: &dyn Storage, _: &mut Outbox<Self>) -> Result<Self, InitError> {
            Ok(Teller { ctx: ctx.clone() })
        }

        fn on_message(&mut self, _: &Context, msg: Message<Ask>, out: &mut Outbox<Self>) {
            let other = if A { "b" } else { "a" };
            let reply = Ask::WhoOk {
                me: if A { "a" } else { "b" }.into(),
                mine: self.ctx.node_ids.clone(),
                others: self.ctx.service(other).to_vec(),
            };
            out.reply(&msg, reply);
        }
    }

    #[test]
    fn a_cluster_of_services_gives_each_node_its_service_and_type() {
        let services = vec![
            Service::of::<Teller<true>>("a", 2),
            Service::of::<Teller<false>>("b", 1),
        ];
        let mut cluster =
            Cluster::<Teller<true>>::with_services(services, Duration::from_millis(1));
        assert_eq!(cluster.names(), ["n0", "n1", "n2"]);
        assert!(cluster.node(1).is_some() && cluster.node(2).is_none());
        assert!(cluster.node_as::<Teller<false>>(2).is_some());
        for i in 0..3 {
            cluster.request("c", i, json!({"type": "who"}));
        }
        cluster.run_for(Duration::from_millis(10));
        let mut replies: Vec<Value> = cluster.take_inbox().into_iter().map(|(_, b)| b).collect();
        replies.sort_by_key(|b| b["in_reply_to"].as_u64());
        assert_eq!(replies[0]["me"], "a");
        assert_eq!(replies[0]["mine"], json!(["n0", "n1"]));
        assert_eq!(replies[0]["others"], json!(["n2"]));
        assert_eq!(replies[2]["me"], "b");
        assert_eq!(replies[2]["mine"], json!(["n2"]));
        assert_eq!(replies[2]["others"], json!(["n0", "n1"]));
        cluster.crash(2);
        cluster.restart(2);
        assert!(
            cluster.node_as::<Teller<false>>(2).is_some(),
            "a restart keeps the type"
        );
    }
}
