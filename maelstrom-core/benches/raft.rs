//! Raft in-process: committed commands per second of real time and commit latency in
//! simulated time, for a 3- and a 5-node group side by side in one run.
//!
//! The network is simulated: every message is serialized to JSON and back (as on the wire)
//! and delivered after `LATENCY_MS` of simulated time; time advances in 1 ms steps. A
//! client keeps `WINDOW` commands outstanding at the leader. Latency is from `propose` to
//! the leader seeing the command committed; throughput counts commands committed on the
//! leader per second of the benchmark's own CPU time (one core).

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use maelstrom_core::raft::{Config, Raft, RaftMsg};

const LATENCY_MS: u64 = 1;
const WINDOW: usize = 256;
const COMMANDS: u64 = 200_000;

type Cmd = u64;

struct Figures {
    committed: u64,
    seconds: f64,
    p50_ms: u64,
    p99_ms: u64,
    messages: u64,
}

fn run(n: usize) -> Figures {
    let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    let mut nodes: Vec<Raft<Cmd>> = (0..n)
        .map(|i| Raft::new(&names[i], &names, Config::default(), None, 0, i as u64))
        .collect();
    // Messages in flight, by delivery time: (to, from, wire bytes).
    let mut wire: BTreeMap<u64, VecDeque<(usize, usize, String)>> = BTreeMap::new();
    let mut proposed_at: BTreeMap<u64, u64> = BTreeMap::new();
    let mut latencies: Vec<u64> = Vec::new();
    let (mut next_cmd, mut messages) = (0u64, 0u64);
    let started = Instant::now();
    let mut now = 0u64;
    while (latencies.len() as u64) < COMMANDS {
        now += 1;
        if let Some(due) = wire.remove(&now) {
            for (to, from, text) in due {
                let msg: RaftMsg<Cmd> = serde_json::from_str(&text).expect("own wire format");
                nodes[to].step(now, &names[from], msg);
            }
        }
        for node in nodes.iter_mut() {
            node.tick(now);
        }
        if let Some(leader) = nodes.iter().position(|r| r.is_leader()) {
            while proposed_at.len() < WINDOW {
                match nodes[leader].propose(next_cmd) {
                    Ok(index) => {
                        proposed_at.insert(index, now);
                        next_cmd += 1;
                    }
                    Err(_) => break,
                }
            }
        }
        for (i, node) in nodes.iter_mut().enumerate() {
            let ready = node.ready();
            if ready.persist {
                std::hint::black_box(node.save());
            }
            let leading = node.is_leader();
            for entry in ready.committed {
                if let (true, Some(t)) = (leading, proposed_at.remove(&entry.index)) {
                    latencies.push(now - t);
                }
            }
            // Compacted as often as the lin-kv node does: persisting the state costs what
            // the log holds.
            if node.commit_index() > node.log().snapshot_index + 1_000 {
                let upto = node.commit_index();
                node.compact(upto, serde_json::Value::Null);
            }
            for (to, msg) in ready.messages {
                let to = names.iter().position(|n| *n == to).expect("a member");
                let text = serde_json::to_string(&msg).expect("serializable");
                wire.entry(now + LATENCY_MS)
                    .or_default()
                    .push_back((to, i, text));
                messages += 1;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    Figures {
        committed: latencies.len() as u64,
        seconds,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        messages,
    }
}

fn main() {
    println!(
        "raft in-process: {COMMANDS} commands, {WINDOW} outstanding, {LATENCY_MS} ms simulated one-way latency"
    );
    let mut rates = Vec::new();
    for n in [3, 5] {
        let f = run(n);
        let rate = f.committed as f64 / f.seconds;
        rates.push(rate);
        println!(
            "  {n} nodes: {:>9.0} commits/s (CPU, one core); commit latency p50 {} ms, p99 {} ms (simulated); {:.2} messages per command",
            rate,
            f.p50_ms,
            f.p99_ms,
            f.messages as f64 / f.committed as f64
        );
    }
    println!("  5 nodes / 3 nodes throughput: {:.2}", rates[1] / rates[0]);
}
