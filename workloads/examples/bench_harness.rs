//! Harness benchmark: runs the `workloads` binary built next to this example against the
//! example nodes and prints throughput, routed messages per second, the harness's peak RSS
//! and how long each run took past its time limit; Raft's commits per second and commit
//! latency through real processes (maelstrom-core's `lin-kv` example); and the task
//! queue's tasks per second and messages per task (queue-node); and the Secret Santa
//! matcher's commit latency and messages per committed match (matcher-node).
//!
//! `cargo build --release -p workloads --bins --examples && target/release/examples/bench_harness`
//! (optional argument: seconds per run, default 10).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use workloads::edn::Edn;

/// Requests per second of the secret-santa run (the `secret-santa-*` scenarios use 50).
const SECRET_SANTA_RATE: &str = "50";

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let exe = std::env::current_exe().expect("own path");
    let examples = exe.parent().expect("examples dir").to_path_buf();
    let harness = examples.parent().expect("profile dir").join("workloads");
    assert!(
        harness.is_file(),
        "build the harness first: {}",
        harness.display()
    );
    let work = std::env::temp_dir().join(format!("workloads-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("bench dir");

    let secs_s = secs.to_string();
    let uid = run(
        &harness,
        &work,
        &examples.join("unique_ids_node"),
        &[
            "-w",
            "unique-ids",
            "--node-count",
            "3",
            "--rate",
            "10000",
            "--time-limit",
            &secs_s,
        ],
        secs,
    );
    println!(
        "unique-ids, 3 nodes, --rate 10000: {:.0} ok ops/s; {:.2} s past the time limit; peak RSS {} MiB",
        uid.count(":ok-count") as f64 / secs as f64,
        uid.overrun,
        uid.rss_mib
    );

    for (rate, topology) in [("100", "grid"), ("300", "total")] {
        let b = run(
            &harness,
            &work,
            &examples.join("broadcast_node"),
            &[
                "-w",
                "broadcast",
                "--node-count",
                "25",
                "--rate",
                rate,
                "--topology",
                topology,
                "--time-limit",
                &secs_s,
            ],
            secs,
        );
        println!(
            "broadcast, 25 nodes, --topology {topology}, --rate {rate}: {} messages, {:.0} routed msgs/s \
             over the main phase; peak RSS {} MiB; valid? {}",
            b.count(":send-count"),
            b.routed_per_sec,
            b.rss_mib,
            b.valid
        );
    }
    // Raft through real processes: the lin-kv example of maelstrom-core.
    let lin_kv = examples.join("lin-kv");
    if lin_kv.is_file() {
        for nodes in ["3", "5"] {
            let r = run(
                &harness,
                &work,
                &lin_kv,
                &[
                    "-w",
                    "lin-kv",
                    "--node-count",
                    nodes,
                    "--concurrency",
                    "30n",
                    "--rate",
                    "20000",
                    "--time-limit",
                    &secs_s,
                ],
                secs,
            );
            let (commits, p50, p99) = commit_figures(&work.join("store/latest/history.edn"));
            println!(
                "lin-kv (Raft), {nodes} nodes, --concurrency 30n: {:.0} writes and cas committed/s; \
                 commit latency p50 {p50:.1} ms, p99 {p99:.1} ms; valid? {}",
                commits as f64 / secs as f64,
                r.valid
            );
        }
    } else {
        println!("lin-kv: build maelstrom-core's examples for the Raft figures");
    }
    // The task queue through real processes: queue-node, built next to the harness.
    let queue = examples.parent().expect("profile dir").join("queue-node");
    if queue.is_file() {
        for nodes in ["3", "5"] {
            let r = run(
                &harness,
                &work,
                &queue,
                &[
                    "-w",
                    "task-queue",
                    "--node-count",
                    nodes,
                    "--concurrency",
                    "150n",
                    "--rate",
                    "100000",
                    "--time-limit",
                    &secs_s,
                ],
                secs,
            );
            let acked = main_phase_acks(&work.join("store/latest/history.edn"), secs);
            let completed = r.count(":completed").max(1);
            println!(
                "task-queue (queue-node), {nodes} nodes, --concurrency 150n: {:.0} tasks acked/s in \
                 the main phase; {:.2} messages per completed task (all messages, replication \
                 included); lost {}; valid? {}",
                acked as f64 / secs as f64,
                r.count(":msg-count") as f64 / completed as f64,
                r.count(":lost-count"),
                r.valid
            );
        }
    } else {
        println!("task-queue: build queue-node for the task queue figures");
    }
    secret_santa(&harness, &work, &examples, secs);
    let _ = std::fs::remove_dir_all(&work);
}

/// The matcher through real processes: matcher-node, built next to the harness, on 5
/// nodes with no faults and no simulated latency. The run logs every message sent, so that
/// the two-phase commit's own messages can be counted apart from the rest.
fn secret_santa(harness: &Path, work: &Path, examples: &Path, secs: u64) {
    let matcher = examples.parent().expect("profile dir").join("matcher-node");
    if !matcher.is_file() {
        println!("secret-santa: build matcher-node for the matcher figures");
        return;
    }
    let secs_s = secs.to_string();
    let r = run(
        harness,
        work,
        &matcher,
        &[
            "-w",
            "secret-santa",
            "--node-count",
            "5",
            "--concurrency",
            "2n",
            "--rate",
            SECRET_SANTA_RATE,
            "--time-limit",
            &secs_s,
            "--log-net-send",
        ],
        secs,
    );
    let results = Edn::parse(&r.results).unwrap_or(Edn::Nil);
    let stats = results.get("workload").and_then(|w| w.get("stats"));
    let stat = |key: &str| number(stats.and_then(|s| s.get(key)));
    let commit = stats.and_then(|s| s.get("commit-latency-ms"));
    let quantile = |q: &str| number(commit.and_then(|c| c.get(q)));
    let (matches, splices) = (stat("committed-matches"), stat("committed-splices"));
    let servers = results.get("net").and_then(|n| n.get("servers"));
    let messages = number(servers.and_then(|s| s.get("msg-count")));
    let twopc = two_phase_messages(&r.log);
    let per = |n: f64, d: f64| {
        if d > 0.0 {
            format!("{:.0}", n / d)
        } else {
            "?".into()
        }
    };
    println!(
        "secret-santa (matcher-node), 5 nodes, no faults, --rate {SECRET_SANTA_RATE}: \
         {matches} matches and {splices} splices committed; commit latency (per exchange, first \
         match invoked to first match_ok) p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} \
         exchanges; {} node-to-node messages per committed match ({messages} in the run: Raft \
         heartbeats and replication, node heartbeats, registrations, reads, audits and splices \
         included), of which {} per committed transaction are two-phase commit messages \
         (read_part, prepare, decide and their replies; Raft replication of the logged \
         records not included); valid? {}",
        quantile("p50"),
        quantile("p99"),
        quantile("max"),
        quantile("count"),
        per(messages, matches),
        per(twopc as f64, matches + splices),
        r.valid
    );
}

/// Node-to-node messages of two-phase commit in a `--log-net-send` log: the coordinator's
/// reads of the regions' parts, PREPARE and the decisions, passed on in `fwd` envelopes,
/// and the regions' answers.
fn two_phase_messages(log: &str) -> usize {
    const TYPES: [&str; 6] = [
        "read_part",
        "part_ok",
        "prepare",
        "prepare_ok",
        "decide",
        "decide_ok",
    ];
    log.lines()
        .filter_map(|line| {
            line.split_once(":send {:src \"n")?
                .1
                .split_once(":body ")
                .map(|(_, b)| b)
        })
        .filter_map(|body| {
            let body = body.strip_suffix('}').unwrap_or(body);
            serde_json::from_str::<serde_json::Value>(body).ok()
        })
        .filter(|body| {
            let kind = match body["type"].as_str() {
                Some("fwd") => body["req"]["type"].as_str(),
                kind => kind,
            };
            kind.is_some_and(|k| TYPES.contains(&k))
        })
        .count()
}

/// An EDN number as f64 (0 when absent).
fn number(v: Option<&Edn>) -> f64 {
    match v {
        Some(Edn::Int(n)) => *n as f64,
        Some(Edn::Float(x)) => *x,
        _ => 0.0,
    }
}

/// Tasks completed (first `:ok` ack of each) before the main phase ended.
fn main_phase_acks(history: &Path, secs: u64) -> usize {
    use workloads::history::{History, OpType};
    let text = std::fs::read_to_string(history).unwrap_or_default();
    let Ok(h) = History::from_edn_lines(&text) else {
        return 0;
    };
    h.ops
        .iter()
        .filter(|op| {
            op.op_type == OpType::Ok && op.f == "ack" && op.time_ns <= secs * 1_000_000_000
        })
        .filter(|op| op.value.get("duplicate") == Some(&workloads::edn::Edn::Bool(false)))
        .count()
}

/// Writes and cas operations that went through the log, with their latency quantiles in ms.
fn commit_figures(history: &Path) -> (usize, f64, f64) {
    use workloads::history::{History, OpType};
    let text = std::fs::read_to_string(history).unwrap_or_default();
    let Ok(h) = History::from_edn_lines(&text) else {
        return (0, 0.0, 0.0);
    };
    let mut ms: Vec<f64> = h
        .pairs()
        .into_iter()
        .filter_map(|(inv, done)| {
            // A cas refused by the register (error 20 or 22) went through the log too.
            let applied = |d: &&workloads::history::Op| match d.op_type {
                OpType::Ok => true,
                OpType::Fail => d.error.as_ref().is_some_and(|e| {
                    let e = e.to_compact();
                    e.contains("precondition-failed") || e.contains("key-does-not-exist")
                }),
                _ => false,
            };
            let done = done.filter(|d| d.f != "read" && applied(d))?;
            Some((done.time_ns - inv.time_ns) as f64 / 1e6)
        })
        .collect();
    if ms.is_empty() {
        return (0, 0.0, 0.0);
    }
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() - 1) as f64 * p) as usize];
    (ms.len(), q(0.5), q(0.99))
}

struct Figures {
    results: String,
    /// What the harness printed.
    log: String,
    overrun: f64,
    rss_mib: String,
    routed_per_sec: f64,
    valid: String,
}

impl Figures {
    fn count(&self, key: &str) -> i64 {
        let at = self.results.find(key).unwrap_or(0) + key.len();
        self.results[at..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(-1)
    }
}

/// Runs one test and reads the figures the harness logs at its end.
fn run(harness: &Path, work: &Path, node: &PathBuf, args: &[&str], secs: u64) -> Figures {
    let started = Instant::now();
    let out = Command::new(harness)
        .arg("test")
        .arg("--bin")
        .arg(node)
        .args(args)
        .current_dir(work)
        .output()
        .expect("run the harness");
    let wall = started.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&out.stdout).to_string();
    let results =
        std::fs::read_to_string(work.join("store/latest/results.edn")).unwrap_or_default();
    let after = |marker: &str| -> String {
        log.find(marker)
            .map(|i| {
                log[i + marker.len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_else(|| "?".into())
    };
    // A final phase adds Maelstrom's 10 s recovery wait.
    let final_wait = if log.contains("Waiting for recovery...") {
        10.0
    } else {
        0.0
    };
    Figures {
        overrun: wall - secs as f64 - final_wait,
        rss_mib: after("peak RSS "),
        routed_per_sec: after("routed/s ").parse().unwrap_or(0.0),
        valid: results
            .trim_end()
            .rsplit(":valid? ")
            .next()
            .unwrap_or("?")
            .trim_end_matches('}')
            .to_string(),
        results,
        log,
    }
}
