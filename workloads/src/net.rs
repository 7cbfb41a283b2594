//! The simulated network, as plain data: addresses, per-destination queues ordered by
//! deadline, latency, partitions and message counters. It does no I/O and reads no clock;
//! the caller passes the current time (nanoseconds since the run started) to every call, so
//! every behaviour here is unit-testable and reproducible from a seed.
//!
//! Delivery follows Maelstrom's model exactly: each destination owns a priority queue by
//! deadline (`now + latency`) and one delivery slot, standing for Maelstrom's per-destination
//! delivery thread. A message moves from the queue into the slot as soon as the slot is free,
//! and that is when partitions are checked: a message taken while its (destination ← source)
//! pair is cut is dropped, never delayed or redelivered; one taken before the cut is delivered
//! at its deadline even if the cut is active by then. Messages with a client at either end
//! have no latency, and only node-to-node traffic can be partitioned.
//!
//! While the lossy fault is on, node-to-node messages are also dropped, duplicated (a second
//! copy with its own latency) or held back by up to [`REORDER_MAX`] plus five mean latencies,
//! so later messages overtake them, each with its configured probability.
//!
//! Counters follow Maelstrom's net checker: every accepted send and every delivery counts,
//! split into client traffic (a client at either end) and server traffic (the rest,
//! node↔service included).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::fmt;

use rand::rngs::StdRng;
use rand::Rng;

use crate::checker::net::NodeTraffic;
use crate::nemesis::Lossy;

/// The least extra delay a reordered message may get.
pub const REORDER_MAX: Nanos = 10_000_000;

/// Nanoseconds since the run started.
pub type Nanos = u64;

/// Maelstrom's built-in services, always present and never partitioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceId {
    LinKv,
    SeqKv,
    LwwKv,
    LinTso,
}

impl ServiceId {
    pub const ALL: [ServiceId; 4] = [
        ServiceId::LinKv,
        ServiceId::SeqKv,
        ServiceId::LwwKv,
        ServiceId::LinTso,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ServiceId::LinKv => "lin-kv",
            ServiceId::SeqKv => "seq-kv",
            ServiceId::LwwKv => "lww-kv",
            ServiceId::LinTso => "lin-tso",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Anything a message can come from or go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Addr {
    /// A node, by its position in the node list.
    Node(u32),
    Service(ServiceId),
    /// A client `c<k>`.
    Client(u32),
}

impl Addr {
    pub fn is_client(self) -> bool {
        matches!(self, Addr::Client(_))
    }
}

/// A message in flight. The body is kept as the JSON text it was sent with: the network
/// never looks inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Maelstrom's global message number, written to nodes as the envelope's `id`.
    pub id: u64,
    pub src: Addr,
    pub dest: Addr,
    pub body: Box<str>,
}

/// Why a message was refused at send time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    UnknownSrc,
    UnknownDest,
}

/// The distribution of latencies around their mean (`--latency-dist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyDist {
    Constant,
    Uniform,
    Exponential,
}

impl LatencyDist {
    pub const ALL: [LatencyDist; 3] = [
        LatencyDist::Constant,
        LatencyDist::Uniform,
        LatencyDist::Exponential,
    ];

    /// The option's word for it.
    pub fn name(self) -> &'static str {
        match self {
            LatencyDist::Constant => "constant",
            LatencyDist::Uniform => "uniform",
            LatencyDist::Exponential => "exponential",
        }
    }

    pub fn parse(word: &str) -> Option<LatencyDist> {
        Self::ALL.into_iter().find(|d| d.name() == word)
    }
}

/// How one-way latency is drawn for node↔node and node↔service messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub mean_ms: u64,
    pub dist: LatencyDist,
}

impl Latency {
    pub const ZERO: Latency = Latency {
        mean_ms: 0,
        dist: LatencyDist::Constant,
    };

    /// One draw, in nanoseconds. Uniform draws whole milliseconds in [0, 2×mean], as
    /// Maelstrom's integer distribution; exponential with mean 0 is 0 (Maelstrom would
    /// divide by zero).
    pub fn sample(&self, rng: &mut StdRng) -> Nanos {
        const MS: u64 = 1_000_000;
        match self.dist {
            _ if self.mean_ms == 0 => 0,
            LatencyDist::Constant => self.mean_ms * MS,
            LatencyDist::Uniform => rng.gen_range(0..=2 * self.mean_ms) * MS,
            LatencyDist::Exponential => {
                let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                (-u.ln() * self.mean_ms as f64 * MS as f64) as Nanos
            }
        }
    }
}

/// Send/receive/message counts of one traffic class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub send: u64,
    pub recv: u64,
}

/// Everything the network counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub clients: Counts,
    pub servers: Counts,
    /// Messages taken from a queue while their pair was partitioned.
    pub dropped: u64,
    /// Node-to-node messages the lossy fault dropped, duplicated and held back.
    pub lossy_dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

#[derive(Debug)]
struct Queued {
    deadline: Nanos,
    seq: u64,
    packet: Packet,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

/// One destination: its queue and its delivery slot.
#[derive(Debug, Default)]
struct Inbox {
    open: bool,
    queue: BinaryHeap<Reverse<Queued>>,
    slot: Option<Queued>,
}

/// The network: see the module documentation.
#[derive(Debug)]
pub struct Network {
    node_count: u32,
    /// Indexed by [`Network::slot_of`]: nodes, then services, then clients.
    inboxes: Vec<Inbox>,
    /// Destinations whose slot is full, by the slot's deadline.
    ready: BinaryHeap<Reverse<(Nanos, u64, usize)>>,
    /// `cut[dest][src]`: node `dest` drops messages from node `src`.
    cut: Vec<Vec<bool>>,
    partitioned: bool,
    lossy: Option<Lossy>,
    latency: Latency,
    rng: StdRng,
    next_id: u64,
    next_seq: u64,
    next_client: u32,
    counters: Counters,
    traffic: NodeTraffic,
}

impl Network {
    pub fn new(node_count: u32, latency: Latency, rng: StdRng) -> Self {
        let n = node_count as usize;
        let mut inboxes = Vec::with_capacity(n + ServiceId::ALL.len());
        inboxes.resize_with(n + ServiceId::ALL.len(), || Inbox {
            open: true,
            ..Inbox::default()
        });
        Network {
            node_count,
            inboxes,
            ready: BinaryHeap::new(),
            cut: vec![vec![false; n]; n],
            partitioned: false,
            lossy: None,
            latency,
            rng,
            next_id: 0,
            next_seq: 0,
            next_client: 0,
            counters: Counters::default(),
            traffic: NodeTraffic::new(n),
        }
    }

    pub fn node_count(&self) -> u32 {
        self.node_count
    }

    fn slot_of(&self, addr: Addr) -> usize {
        let n = self.node_count as usize;
        match addr {
            Addr::Node(i) => i as usize,
            Addr::Service(s) => n + s.index(),
            Addr::Client(c) => n + ServiceId::ALL.len() + c as usize,
        }
    }

    /// Whether messages may be sent to or from `addr` now.
    pub fn is_registered(&self, addr: Addr) -> bool {
        match addr {
            Addr::Node(i) => i < self.node_count,
            Addr::Service(_) => true,
            Addr::Client(_) => self
                .inboxes
                .get(self.slot_of(addr))
                .is_some_and(|inbox| inbox.open),
        }
    }

    /// Whether `addr` is a client that existed once and has been closed.
    pub fn is_closed_client(&self, addr: Addr) -> bool {
        matches!(addr, Addr::Client(c) if c < self.next_client && !self.is_registered(addr))
    }

    /// Registers a new client `c<k>`, numbering from 0 as Maelstrom does.
    pub fn open_client(&mut self) -> u32 {
        let id = self.next_client;
        self.next_client += 1;
        let slot = self.slot_of(Addr::Client(id));
        if self.inboxes.len() <= slot {
            self.inboxes.resize_with(slot + 1, Inbox::default);
        }
        self.inboxes[slot].open = true;
        id
    }

    /// Unregisters a client; what was still queued for it is discarded.
    pub fn close_client(&mut self, id: u32) {
        let slot = self.slot_of(Addr::Client(id));
        if let Some(inbox) = self.inboxes.get_mut(slot) {
            inbox.open = false;
            inbox.queue.clear();
            inbox.slot = None;
        }
    }

    /// Accepts a message, counts it, and queues it for delivery. Returns its id.
    pub fn send(
        &mut self,
        now: Nanos,
        src: Addr,
        dest: Addr,
        body: Box<str>,
    ) -> Result<u64, SendError> {
        if !self.is_registered(src) {
            return Err(SendError::UnknownSrc);
        }
        if !self.is_registered(dest) {
            return Err(SendError::UnknownDest);
        }
        let client = src.is_client() || dest.is_client();
        let id = self.next_id;
        self.next_id += 1;
        self.class(client).send += 1;
        count_send(&mut self.traffic, src, dest);
        let mut copies = 1;
        let mut extra = 0;
        if let (Some(lossy), Addr::Node(_), Addr::Node(_)) = (self.lossy, src, dest) {
            if self.rng.gen_bool(lossy.drop) {
                self.counters.lossy_dropped += 1;
                return Ok(id);
            }
            if self.rng.gen_bool(lossy.duplicate) {
                self.counters.duplicated += 1;
                copies = 2;
            }
            if self.rng.gen_bool(lossy.reorder) {
                self.counters.reordered += 1;
                let bound = REORDER_MAX.max(5 * self.latency.mean_ms * 1_000_000);
                extra = self.rng.gen_range(0..=bound);
            }
        }
        let mut body = Some(body);
        for copy in 0..copies {
            let body = if copy + 1 == copies {
                body.take()
            } else {
                body.clone()
            }
            .expect("taken on the last copy only");
            let delay = if client {
                0
            } else {
                self.latency.sample(&mut self.rng)
            };
            let seq = self.next_seq;
            self.next_seq += 1;
            let slot = self.slot_of(dest);
            self.inboxes[slot].queue.push(Reverse(Queued {
                deadline: now + delay + if copy == 0 { extra } else { 0 },
                seq,
                packet: Packet {
                    id,
                    src,
                    dest,
                    body,
                },
            }));
            if self.inboxes[slot].slot.is_none() {
                self.refill(slot);
            }
        }
        Ok(id)
    }

    /// Turns the lossy fault on (`Some`) or off.
    pub fn set_lossy(&mut self, lossy: Option<Lossy>) {
        self.lossy = lossy;
    }

    fn class(&mut self, client: bool) -> &mut Counts {
        if client {
            &mut self.counters.clients
        } else {
            &mut self.counters.servers
        }
    }

    /// Moves the earliest queued message of `slot` into its delivery slot, dropping those
    /// whose pair is cut right now.
    fn refill(&mut self, slot: usize) {
        while let Some(Reverse(next)) = self.inboxes[slot].queue.pop() {
            if self.is_cut(next.packet.src, next.packet.dest) {
                self.counters.dropped += 1;
                continue;
            }
            self.ready.push(Reverse((next.deadline, next.seq, slot)));
            self.inboxes[slot].slot = Some(next);
            return;
        }
    }

    fn is_cut(&self, src: Addr, dest: Addr) -> bool {
        match (self.partitioned, src, dest) {
            (true, Addr::Node(s), Addr::Node(d)) => self.cut[d as usize][s as usize],
            _ => false,
        }
    }

    /// The earliest deadline of a message waiting in a delivery slot.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.ready.peek().map(|Reverse((deadline, _, _))| *deadline)
    }

    /// The next message due at `now`, counted as received.
    pub fn pop_due(&mut self, now: Nanos) -> Option<Packet> {
        loop {
            let &Reverse((deadline, seq, slot)) = self.ready.peek()?;
            if deadline > now {
                return None;
            }
            self.ready.pop();
            let inbox = &mut self.inboxes[slot];
            // A closed client's slot was emptied; its heap entry is stale.
            let Some(queued) = inbox.slot.take_if(|q| q.seq == seq) else {
                continue;
            };
            self.refill(slot);
            let client = queued.packet.src.is_client() || queued.packet.dest.is_client();
            self.class(client).recv += 1;
            if let Addr::Node(d) = queued.packet.dest {
                self.traffic.recv[d as usize] += 1;
            }
            return Some(queued.packet);
        }
    }

    /// Applies a grudge: each receiving node drops messages from the given senders.
    /// Replaces any previous partition.
    pub fn partition(&mut self, grudge: &[(u32, BTreeSet<u32>)]) {
        self.heal();
        for (dest, srcs) in grudge {
            for src in srcs {
                self.cut[*dest as usize][*src as usize] = true;
                self.partitioned = true;
            }
        }
    }

    pub fn heal(&mut self) {
        if self.partitioned {
            for row in &mut self.cut {
                row.fill(false);
            }
            self.partitioned = false;
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Messages by node, sender and receiver.
    pub fn traffic(&self) -> &NodeTraffic {
        &self.traffic
    }

    /// Messages accepted but not delivered yet, over all destinations.
    pub fn in_flight(&self) -> usize {
        self.inboxes
            .iter()
            .map(|i| i.queue.len() + usize::from(i.slot.is_some()))
            .sum()
    }
}

/// Counts a message accepted from `src` to `dest`, when `src` is a node.
fn count_send(traffic: &mut NodeTraffic, src: Addr, dest: Addr) {
    let Addr::Node(s) = src else {
        return;
    };
    let s = s as usize;
    traffic.sent[s] += 1;
    match dest {
        Addr::Node(d) => traffic.to_node[s][d as usize] += 1,
        Addr::Client(_) => traffic.to_clients[s] += 1,
        Addr::Service(_) => traffic.to_services[s] += 1,
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::UnknownSrc => f.write_str("unknown source"),
            SendError::UnknownDest => f.write_str("unknown destination"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const MS: Nanos = 1_000_000;

    fn net(nodes: u32, mean_ms: u64) -> Network {
        let latency = Latency {
            mean_ms,
            dist: LatencyDist::Constant,
        };
        Network::new(nodes, latency, StdRng::seed_from_u64(7))
    }

    fn body(s: &str) -> Box<str> {
        s.into()
    }

    #[test]
    fn node_traffic_waits_for_latency_client_traffic_does_not() {
        let mut net = net(2, 10);
        let c = net.open_client();
        net.send(0, Addr::Node(0), Addr::Node(1), body("a"))
            .unwrap();
        net.send(0, Addr::Client(c), Addr::Node(0), body("b"))
            .unwrap();
        let first = net.pop_due(0).unwrap();
        assert_eq!(first.body.as_ref(), "b");
        assert_eq!(net.pop_due(0), None);
        assert_eq!(net.next_deadline(), Some(10 * MS));
        assert_eq!(net.pop_due(10 * MS).unwrap().body.as_ref(), "a");
        let counters = net.counters();
        assert_eq!(counters.clients, Counts { send: 1, recv: 1 });
        assert_eq!(counters.servers, Counts { send: 1, recv: 1 });
    }

    #[test]
    fn messages_to_one_destination_come_out_by_deadline() {
        let latency = Latency {
            mean_ms: 50,
            dist: LatencyDist::Uniform,
        };
        let mut net = Network::new(3, latency, StdRng::seed_from_u64(1));
        for i in 0..200 {
            net.send(i, Addr::Node(0), Addr::Node(1), body(&i.to_string()))
                .unwrap();
        }
        let mut got = 0;
        let mut now = 0;
        while got < 200 {
            now = net.next_deadline().unwrap().max(now);
            while net.pop_due(now).is_some() {
                got += 1;
            }
        }
        assert!(now <= 200 + 100 * MS);
        assert_eq!(net.in_flight(), 0);
    }

    /// Drains every message, returning the bodies in delivery order.
    fn drain(net: &mut Network) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(at) = net.next_deadline() {
            while let Some(p) = net.pop_due(at) {
                out.push(p.body.to_string());
            }
        }
        out
    }

    #[test]
    fn lossy_drops_duplicates_and_reorders_node_traffic_only() {
        let mut net = net(2, 1);
        net.set_lossy(Some(Lossy::uniform(0.2)));
        let c = net.open_client();
        for i in 0..1000 {
            net.send(i, Addr::Node(0), Addr::Node(1), body(&i.to_string()))
                .unwrap();
        }
        for i in 0..100 {
            net.send(2000, Addr::Client(c), Addr::Node(0), body(&format!("c{i}")))
                .unwrap();
        }
        let got = drain(&mut net);
        let k = net.counters();
        let node_msgs: Vec<u64> = got.iter().filter_map(|b| b.parse().ok()).collect();
        assert_eq!(
            got.len() - node_msgs.len(),
            100,
            "client traffic is never lossy"
        );
        assert_eq!(
            node_msgs.len() as u64,
            1000 - k.lossy_dropped + k.duplicated
        );
        for (count, what) in [
            (k.lossy_dropped, "dropped"),
            (k.duplicated, "duplicated"),
            (k.reordered, "reordered"),
        ] {
            assert!(
                (120..=280).contains(&count),
                "{what}: {count} of 1000 at 20%"
            );
        }
        assert!(node_msgs.windows(2).any(|w| w[1] < w[0]), "some overtaking");
        net.set_lossy(None);
        net.send(0, Addr::Node(0), Addr::Node(1), body("x"))
            .unwrap();
        assert_eq!(drain(&mut net), ["x"]);
    }

    #[test]
    fn partitions_drop_at_dequeue_and_never_delay() {
        let mut net = net(3, 10);
        // Taken into n1's slot at once: delivered although the cut starts before its deadline.
        net.send(0, Addr::Node(0), Addr::Node(1), body("early"))
            .unwrap();
        // Waits in the queue behind it, so it is checked when the slot frees.
        net.send(1, Addr::Node(0), Addr::Node(1), body("late"))
            .unwrap();
        net.partition(&[(1, BTreeSet::from([0]))]);
        assert_eq!(net.pop_due(10 * MS).unwrap().body.as_ref(), "early");
        assert_eq!(net.pop_due(20 * MS), None);
        assert_eq!(net.counters().dropped, 1);
        // The cut is one-way: n1 → n0 still flows, and so does n2 → n1.
        net.send(20 * MS, Addr::Node(1), Addr::Node(0), body("back"))
            .unwrap();
        net.send(20 * MS, Addr::Node(2), Addr::Node(1), body("other"))
            .unwrap();
        assert!(net.pop_due(30 * MS).is_some());
        assert!(net.pop_due(30 * MS).is_some());
        net.heal();
        net.send(30 * MS, Addr::Node(0), Addr::Node(1), body("healed"))
            .unwrap();
        assert_eq!(net.pop_due(40 * MS).unwrap().body.as_ref(), "healed");
        let c = net.counters();
        assert_eq!((c.servers.send, c.servers.recv), (5, 4));
    }

    #[test]
    fn services_and_clients_are_never_partitioned() {
        let mut net = net(2, 0);
        let c = net.open_client();
        net.partition(&[(0, BTreeSet::from([1])), (1, BTreeSet::from([0]))]);
        net.send(0, Addr::Client(c), Addr::Node(0), body("x"))
            .unwrap();
        net.send(0, Addr::Node(0), Addr::Service(ServiceId::SeqKv), body("y"))
            .unwrap();
        net.send(0, Addr::Service(ServiceId::SeqKv), Addr::Node(1), body("z"))
            .unwrap();
        assert_eq!(
            std::iter::from_fn(|| net.pop_due(0)).count(),
            3,
            "nothing dropped"
        );
    }

    #[test]
    fn unknown_and_closed_addresses_are_refused() {
        let mut net = net(2, 0);
        assert_eq!(
            net.send(0, Addr::Node(0), Addr::Node(5), body("x")),
            Err(SendError::UnknownDest)
        );
        assert_eq!(
            net.send(0, Addr::Client(0), Addr::Node(0), body("x")),
            Err(SendError::UnknownSrc)
        );
        let c0 = net.open_client();
        let c1 = net.open_client();
        assert_eq!((c0, c1), (0, 1));
        net.send(0, Addr::Node(0), Addr::Client(c0), body("x"))
            .unwrap();
        net.close_client(c0);
        assert!(net.is_closed_client(Addr::Client(c0)));
        assert!(!net.is_closed_client(Addr::Client(9)));
        assert_eq!(
            net.pop_due(0),
            None,
            "queued messages of a closed client vanish"
        );
        assert_eq!(
            net.send(0, Addr::Node(0), Addr::Client(c0), body("x")),
            Err(SendError::UnknownDest)
        );
        assert_eq!(net.counters().clients, Counts { send: 1, recv: 0 });
    }

    #[test]
    fn latency_distributions_have_the_right_shape() {
        let mut rng = StdRng::seed_from_u64(3);
        let uniform = Latency {
            mean_ms: 10,
            dist: LatencyDist::Uniform,
        };
        let draws: Vec<u64> = (0..2000).map(|_| uniform.sample(&mut rng) / MS).collect();
        assert!(draws.iter().all(|&d| d <= 20));
        assert!(draws.contains(&0) && draws.contains(&20));
        let exp = Latency {
            mean_ms: 10,
            dist: LatencyDist::Exponential,
        };
        let mean =
            (0..20_000).map(|_| exp.sample(&mut rng)).sum::<u64>() as f64 / 20_000.0 / MS as f64;
        assert!((9.0..11.0).contains(&mean), "{mean}");
        let zero = Latency {
            mean_ms: 0,
            dist: LatencyDist::Exponential,
        };
        assert_eq!(zero.sample(&mut rng), 0);
    }

    #[test]
    fn traffic_is_counted_by_sending_and_receiving_node() {
        let mut net = net(3, 0);
        let c = net.open_client();
        for (src, dest) in [
            (Addr::Node(0), Addr::Node(2)),
            (Addr::Node(0), Addr::Node(2)),
            (Addr::Node(2), Addr::Node(1)),
            (Addr::Node(1), Addr::Client(c)),
            (Addr::Node(1), Addr::Service(ServiceId::LinKv)),
            (Addr::Client(c), Addr::Node(0)),
            (Addr::Service(ServiceId::LinKv), Addr::Node(1)),
        ] {
            net.send(0, src, dest, body("x")).unwrap();
        }
        while net.pop_due(0).is_some() {}
        let t = net.traffic();
        assert_eq!(t.sent, [2, 2, 1]);
        assert_eq!(t.recv, [1, 2, 2]);
        assert_eq!(t.to_node, [[0, 0, 2], [0, 0, 0], [0, 1, 0]]);
        assert_eq!(
            (t.to_clients.clone(), t.to_services.clone()),
            (vec![0, 1, 0], vec![0, 1, 0])
        );
    }
}
