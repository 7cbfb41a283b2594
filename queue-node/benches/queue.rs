//! The queue end to end in one process: whole nodes (Raft groups, partitions, routing) on
//! simulated time over a simulated network of JSON lines, with producers and consumers
//! keeping a window of requests outstanding. Reports tasks enqueued, delivered and acked
//! per second of CPU time on one core, and messages per task, for 3 and 5 nodes side by
//! side.
//!
//! Beside it, the replicated state machines alone: one partition's Raft group and
//! partition state on every replica, Raft messages JSON-encoded as on the wire and
//! delivered a simulated millisecond later, with the client's commands proposed straight
//! at the leader (no client messages, no routing).
//!
//! `cargo bench -p queue-node --bench queue` (or `make bench-queue`).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use maelstrom_core::raft::{Config, Raft, RaftMsg};
use maelstrom_core::sim::Cluster;
use queue::node::QueueNode;
use queue::partition::{Cmd, Outcome, Partition};
use queue::task::{Kind, Priority, TaskId, TaskSpec};
use serde_json::{json, Value};

const TASKS: u64 = 60_000;
/// Enqueues outstanding at once, across all nodes.
const WINDOW: usize = 512;
const POLL_MAX: u32 = 32;
/// Polls outstanding per node.
const POLLERS: usize = 2;

/// Client names, each with one request outstanding at a time as Maelstrom's clients
/// have (client sessions keep only each client's newest request): a name is free again
/// once its answer came.
#[derive(Default)]
struct Clients {
    free: BTreeMap<String, Vec<String>>,
    made: u64,
}

impl Clients {
    fn take(&mut self, prefix: &str) -> String {
        if let Some(name) = self.free.get_mut(prefix).and_then(Vec::pop) {
            return name;
        }
        self.made += 1;
        format!("{prefix}{}", self.made)
    }

    fn give(&mut self, name: &str) {
        if let Some(dot) = name.rfind('.') {
            let prefix = &name[..=dot];
            self.free
                .entry(prefix.to_string())
                .or_default()
                .push(name.to_string());
        }
    }
}

/// The node of a `consumer{node}.{n}` client.
fn consumer_node(client: &str) -> usize {
    let digits = client["consumer".len()..].split('.').next().unwrap_or("0");
    digits.parse().unwrap_or(0)
}

struct Figures {
    tasks: u64,
    seconds: f64,
    messages: u64,
    internal: u64,
}

fn run(n: usize) -> Figures {
    let mut c: Cluster<QueueNode> = Cluster::new(n, Duration::from_millis(1));
    c.run_for(Duration::from_secs(2));
    let started = Instant::now();
    let traffic_before = c.traffic;
    let (mut next_id, mut in_flight_enqueues, mut acked) = (0u64, 0usize, 0u64);
    let mut polls_out = vec![0usize; n];
    let mut to_ack: VecDeque<(usize, Value, Value)> = VecDeque::new();
    let mut acks_out = 0usize;
    let mut clients = Clients::default();
    while acked < TASKS {
        while in_flight_enqueues < WINDOW && next_id < TASKS {
            let node = (next_id % n as u64) as usize;
            let task = json!({"id": next_id, "kind": "assembly", "priority": "standard"});
            let producer = clients.take("producer.");
            c.request(&producer, node, json!({"type": "enqueue", "task": task}));
            next_id += 1;
            in_flight_enqueues += 1;
        }
        for (node, out) in polls_out.iter_mut().enumerate() {
            while *out < POLLERS {
                let body = json!({"type": "poll", "max": POLL_MAX, "lease_ms": 10_000});
                let consumer = clients.take(&format!("consumer{node}."));
                c.request(&consumer, node, body);
                *out += 1;
            }
        }
        while let Some((node, id, attempt)) = to_ack.pop_front() {
            c.request(
                &clients.take("acker."),
                node,
                json!({"type": "ack", "id": id, "attempt": attempt}),
            );
            acks_out += 1;
        }
        c.run_for(Duration::from_millis(1));
        for (client, body) in c.take_inbox() {
            clients.give(&client);
            match body["type"].as_str() {
                Some("enqueue_ok") => in_flight_enqueues -= 1,
                Some("poll_ok") => {
                    let node = consumer_node(&client);
                    polls_out[node] -= 1;
                    for t in body["tasks"].as_array().into_iter().flatten() {
                        to_ack.push_back((node, t["id"].clone(), t["attempt"].clone()));
                    }
                }
                Some("ack_ok") => {
                    acks_out -= 1;
                    acked += 1;
                }
                _ if client.starts_with("producer") => {
                    // A refused enqueue (no leader yet): try that id again later.
                    in_flight_enqueues -= 1;
                }
                _ if client.starts_with("consumer") => {
                    polls_out[consumer_node(&client)] -= 1;
                }
                _ => acks_out -= 1,
            }
        }
    }
    let _ = acks_out;
    let seconds = started.elapsed().as_secs_f64();
    let t = c.traffic;
    Figures {
        tasks: acked,
        seconds,
        messages: (t.internal + t.client) - (traffic_before.internal + traffic_before.client),
        internal: t.internal - traffic_before.internal,
    }
}

/// One partition replicated on `n` nodes: enqueue, poll and ack proposed at the leader.
fn replicated(n: usize) -> Figures {
    let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    let mut rafts: Vec<Raft<Cmd>> = (0..n)
        .map(|i| Raft::new(&names[i], &names, Config::default(), None, 0, i as u64))
        .collect();
    let mut machines: Vec<Partition> = (0..n).map(|_| Partition::new(0, 1)).collect();
    let mut wire: BTreeMap<u64, VecDeque<(usize, usize, String)>> = BTreeMap::new();
    let (mut now, mut next_id, mut acked, mut messages) = (0u64, 0u64, 0u64, 0u64);
    let mut in_flight = 0usize;
    let mut to_ack: Vec<(TaskId, u32)> = Vec::new();
    let started = Instant::now();
    while acked < TASKS {
        now += 1;
        if let Some(due) = wire.remove(&now) {
            for (to, from, text) in due {
                let msg: RaftMsg<Cmd> = serde_json::from_str(&text).expect("own wire format");
                rafts[to].step(now, &names[from], msg);
            }
        }
        for raft in rafts.iter_mut() {
            raft.tick(now);
        }
        if let Some(leader) = rafts.iter().position(|r| r.is_leader()) {
            let raft = &mut rafts[leader];
            for (id, attempt) in to_ack.drain(..) {
                let _ = raft.propose(Cmd::Ack { id, attempt, now });
            }
            while in_flight < WINDOW && next_id < TASKS {
                let task = TaskSpec {
                    id: TaskId::Num(next_id),
                    kind: Kind::Assembly,
                    priority: Priority::Standard,
                    deps: Vec::new(),
                    payload: Value::Null,
                    max_attempts: 3,
                    deadline: None,
                };
                if raft
                    .propose(Cmd::Enqueue {
                        task,
                        remote: Vec::new(),
                        now,
                    })
                    .is_err()
                {
                    break;
                }
                next_id += 1;
                in_flight += 1;
            }
            let poll = Cmd::Poll {
                max: POLL_MAX,
                consumer: "c".into(),
                now,
                lease_ms: 10_000,
                stolen: false,
            };
            let _ = raft.propose(poll);
        }
        for i in 0..n {
            let ready = rafts[i].ready();
            let leading = rafts[i].is_leader();
            for entry in ready.committed {
                let Some(cmd) = entry.command else { continue };
                let outcome = machines[i].apply(cmd);
                if !leading {
                    continue;
                }
                match outcome {
                    Outcome::Polled(tasks) => {
                        to_ack.extend(tasks.into_iter().map(|t| (t.id, t.attempt)));
                    }
                    Outcome::Acked { duplicate: false } => {
                        acked += 1;
                        in_flight -= 1;
                    }
                    _ => {}
                }
            }
            for (to, msg) in ready.messages {
                let to = names.iter().position(|m| *m == to).expect("a member");
                let text = serde_json::to_string(&msg).expect("serializable");
                messages += 1;
                wire.entry(now + 1).or_default().push_back((to, i, text));
            }
        }
    }
    Figures {
        tasks: acked,
        seconds: started.elapsed().as_secs_f64(),
        messages,
        internal: messages,
    }
}

fn main() {
    // `cargo bench … -- replicated` or `-- nodes` runs one half, for profiling.
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wants = |part: &str| only.as_deref().map_or(true, |o| o == part);
    if wants("replicated") {
        replicated_table();
    }
    if wants("nodes") {
        nodes_table();
    }
}

fn replicated_table() {
    println!("queue in-process: one partition's replicated state machines, one core");
    println!(
        "{:>6} {:>10} {:>12} {:>14}",
        "nodes", "tasks", "tasks/s", "messages/task"
    );
    for n in [3, 5] {
        let f = replicated(n);
        println!(
            "{:>6} {:>10} {:>12.0} {:>14.2}",
            n,
            f.tasks,
            f.tasks as f64 / f.seconds,
            f.messages as f64 / f.tasks as f64
        );
    }
    println!();
}

fn nodes_table() {
    println!("queue in-process: whole nodes on a simulated network, one core");
    println!(
        "{:>6} {:>10} {:>12} {:>14} {:>16}",
        "nodes", "tasks", "tasks/s", "messages/task", "node-to-node/task"
    );
    for n in [3, 5] {
        let f = run(n);
        println!(
            "{:>6} {:>10} {:>12.0} {:>14.2} {:>16.2}",
            n,
            f.tasks,
            f.tasks as f64 / f.seconds,
            f.messages as f64 / f.tasks as f64,
            f.internal as f64 / f.tasks as f64
        );
    }
}
