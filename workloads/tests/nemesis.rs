//! Proof that every fault really happens, and that each catches a node that is correct
//! without it: end-to-end runs of the `workloads` binary, plus a direct check that a clock
//! jump reaches a process's own `SystemTime::now()`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{example, run, test_args};
use workloads::engine::faketime::{self as clock, Clocks};
use workloads::history::{History, Op, OpType, Process};
use workloads::nemesis::clock::ClockChange;

/// The nemesis's completed steps named `f`: their times in ns.
fn steps(h: &History, f: &str) -> Vec<u64> {
    let ops: Vec<&Op> = h
        .ops
        .iter()
        .filter(|o| o.process == Process::Nemesis && o.f == f)
        .collect();
    // Each step is recorded twice; the second is what happened.
    ops.chunks(2)
        .map(|pair| pair[pair.len() - 1].time_ns)
        .collect()
}

/// [start, stop) intervals of a fault kind, the last one closed by the end of the history.
fn intervals(h: &History, kind: &str) -> Vec<(u64, u64)> {
    let starts = steps(h, &format!("start-{kind}"));
    let stops = steps(h, &format!("stop-{kind}"));
    let end = h.ops.last().map_or(0, |o| o.time_ns);
    starts
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, stops.get(i).copied().unwrap_or(end)))
        .collect()
}

#[test]
fn a_killed_node_loses_its_memory() {
    // Ids are `<node>-<counter>` with the counter in memory: a restarted node repeats them.
    let bin = example("unique_ids");
    let r = run(
        "kill-memory",
        &test_args(
            "unique-ids",
            &bin,
            &[
                "--node-count",
                "3",
                "--time-limit",
                "8",
                "--rate",
                "200",
                "--nemesis",
                "kill",
                "--nemesis-interval",
                "1",
                "--seed",
                "11",
            ],
        ),
    );
    r.expect(1);
    assert!(r.count(":duplicated-count") > 0, "{}", r.results());
    let text = r.file("history.txt");
    assert!(text.contains(":killed"), "{text}");
    assert!(text.contains(":started"), "{text}");
    assert!(
        r.output.contains("restarted and initialized"),
        "{}",
        r.output
    );
}

#[test]
fn a_killed_node_keeps_its_files() {
    // The broadcast example persists what it knows in a directory of its own under the
    // working directory all nodes share; a restarted node must find the same one.
    let bin = example("broadcast");
    let r = run(
        "kill-files",
        &test_args(
            "broadcast",
            &bin,
            &[
                "--node-count",
                "3",
                "--time-limit",
                "6",
                "--rate",
                "30",
                "--latency",
                "5",
                "--nemesis",
                "kill",
                "--nemesis-interval",
                "1",
                "--seed",
                "4",
                "--node-dir",
                "nodes",
            ],
        ),
    );
    r.expect(0);
    let h = r.history();
    assert!(!steps(&h, "stop-kill").is_empty(), "no restart happened");
    let runs: Vec<_> = std::fs::read_dir(r.dir.join("nodes/maelstrom-node-files"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        runs.len(),
        1,
        "restarts must stay in the run's folder: {runs:?}"
    );
    for node in ["n0", "n1", "n2"] {
        let state = runs[0].join(node).join("messages.json");
        assert!(state.is_file(), "{} is missing", state.display());
    }
    assert_eq!(r.count(":failed-restarts"), 0);
}

#[test]
fn a_paused_node_answers_nothing_while_paused() {
    let bin = example("echo");
    let r = run(
        "pause",
        &test_args(
            "echo",
            &bin,
            &[
                "--node-count",
                "1",
                "--time-limit",
                "8",
                "--rate",
                "50",
                "--nemesis",
                "pause",
                "--nemesis-interval",
                "1",
                "--seed",
                "2",
            ],
        ),
    );
    r.expect(0);
    let h = r.history();
    let pauses = intervals(&h, "pause");
    assert!(!pauses.is_empty());
    let margin = 20_000_000;
    let mut waited = 0;
    for (start, stop) in &pauses {
        for op in h.ops.iter().filter(|o| o.op_type == OpType::Ok) {
            assert!(
                !(op.time_ns > start + margin && op.time_ns < *stop),
                "an answer at {} ns while paused from {start} to {stop}",
                op.time_ns
            );
        }
        // Requests sent during the pause are answered right after it.
        waited += h
            .ops
            .iter()
            .filter(|o| o.op_type == OpType::Ok && o.time_ns >= *stop && o.time_ns < stop + margin)
            .count();
    }
    assert!(waited > 0, "no request waited for a resume: {pauses:?}");
}

#[test]
fn a_clock_jump_is_seen_by_the_nodes_own_system_time() {
    let Some(library) = clock::find_library() else {
        panic!("libfaketime is not installed (Debian: apt-get install libfaketime; `make deps`)");
    };
    let dir = std::env::temp_dir().join(format!("clock-probe-{}", std::process::id()));
    let file = dir.join("n0.rc");
    let mut clocks = Clocks::create(vec![file.clone()], 0).unwrap();
    let mut child = Command::new(example("clock_probe"))
        .envs(clock::environment(&library, &file))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut skew = || {
        stdin.write_all(b"now?\n").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let seen: i64 = line.trim().parse().unwrap();
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        seen - real
    };
    assert!(skew().abs() < 1_000);
    clocks.apply(1, 0, ClockChange::Bump(-30_000)).unwrap();
    let back = skew();
    assert!(
        (-31_000..-29_000).contains(&back),
        "skew after a 30 s jump back: {back} ms"
    );
    clocks.apply(2, 0, ClockChange::Bump(30_001)).unwrap();
    assert!(skew().abs() < 1_000);
    clocks.reset(3).unwrap();
    assert!(skew().abs() < 1_000);
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_clock_nemesis_moves_clocks_and_reports_offsets() {
    let bin = example("g_counter");
    let r = run(
        "clock",
        &test_args(
            "g-counter",
            &bin,
            &[
                "--node-count",
                "3",
                "--time-limit",
                "6",
                "--rate",
                "20",
                "--nemesis",
                "clock",
                "--nemesis-interval",
                "1",
                "--seed",
                "5",
            ],
        ),
    );
    r.expect(0);
    let results = r.results();
    assert!(results.contains(":clock {:valid? true"), "{results}");
    assert!(results.contains(":offsets"), "{results}");
    assert!(!steps(&r.history(), "start-clock").is_empty());
    assert!(r.dir.join("store/latest/clock.svg").is_file());
}

#[test]
fn lossy_networks_catch_a_node_that_forwards_once() {
    let once = example("broadcast_node");
    let args = |bin| {
        test_args(
            "broadcast",
            bin,
            &[
                "--node-count",
                "5",
                "--time-limit",
                "6",
                "--rate",
                "30",
                "--topology",
                "line",
                "--nemesis",
                "lossy",
                "--lossy-rate",
                "0.3",
                "--nemesis-interval",
                "1",
                "--seed",
                "9",
            ],
        )
    };
    let mut broken = args(&once);
    broken.extend(["--", "--once"]);
    let r = run("lossy-once", &broken);
    r.expect(1);
    assert!(r.count(":lost-count") > 0, "{}", r.results());
    assert!(r.count(":lossy-dropped-count") > 0);
    assert!(r.count(":lossy-duplicated-count") > 0);
    assert!(r.count(":lossy-reordered-count") > 0);
    // The retrying node shrugs the same faults off.
    let gossip = example("broadcast");
    run("lossy-gossip", &args(&gossip)).expect(0);
}

#[test]
fn bridge_partitions_are_drawn_when_asked_for() {
    let bin = example("broadcast");
    let r = run(
        "bridge",
        &test_args(
            "broadcast",
            &bin,
            &[
                "--node-count",
                "5",
                "--time-limit",
                "3",
                "--rate",
                "20",
                "--nemesis",
                "partition",
                "--partition-shapes",
                "bridge",
                "--nemesis-interval",
                "1",
                "--seed",
                "1",
            ],
        ),
    );
    r.expect(0);
    assert!(r.file("history.txt").contains(":start-partition\t:bridge"));
}
