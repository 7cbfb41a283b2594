//! End-to-end runs of the real `workloads` binary against the example nodes in
//! `workloads/examples/`: exit statuses, verdicts and the reasons in results.edn. Each test
//! runs in its own temporary directory, so each has its own `store/`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{example, harness, run, test_args, workdir};

#[test]
fn echo_is_valid_and_writes_the_store() {
    let bin = example("echo_node");
    let r = run(
        "echo",
        &test_args(
            "echo",
            &bin,
            &[
                "--node-count",
                "1",
                "--time-limit",
                "2",
                "--rate",
                "20",
                "--seed",
                "1",
            ],
        ),
    );
    r.expect(0);
    let results = r.results();
    assert!(results.trim_end().ends_with(":valid? true}"), "{results}");
    for key in [
        ":timeline",
        ":exceptions",
        ":stats",
        ":availability",
        ":net",
        ":workload",
        ":harness",
    ] {
        assert!(results.contains(key), "{key} missing:\n{results}");
    }
    // Init traffic counts: two client messages per op plus init and init_ok.
    let ops = r.count(":count");
    assert!(ops > 5, "{results}");
    assert_eq!(r.count(":msg-count"), 2 * ops + 2, "{results}");
    let history = r.file("history.edn");
    assert!(history.starts_with("{:index 0, :time "), "{history}");
    assert!(
        history.contains(":f :echo, :value \"Please echo "),
        "{history}"
    );
    assert!(!r.file("history.txt").is_empty());
    assert!(!r.file("history.jsonl").is_empty());
    assert!(r.file("results.json").contains("\"valid?\""));
    assert!(r.file("jepsen.log").contains("{GMT}\tINFO\t"));
    assert!(r.dir.join("store/latest/node-logs/n0.log").is_file());
    assert!(r.dir.join("store/echo/latest").exists());
    assert!(
        r.output.contains("Everything looks good! ヽ(‘ー`)ノ"),
        "{}",
        r.output
    );
    assert!(
        r.output.contains("replay with: workloads test -w echo"),
        "{}",
        r.output
    );
    assert!(r.output.contains("--seed 1"), "{}", r.output);
}

#[test]
fn unique_ids_are_valid_on_three_nodes() {
    let bin = example("unique_ids_node");
    let r = run(
        "uid",
        &test_args(
            "unique-ids",
            &bin,
            &["--node-count", "3", "--time-limit", "2", "--rate", "200"],
        ),
    );
    r.expect(0);
    assert_eq!(r.count(":duplicated-count"), 0);
    assert!(r.count(":acknowledged-count") > 100, "{}", r.results());
}

#[test]
fn duplicate_ids_are_invalid() {
    let bin = example("unique_ids_node");
    let r = run(
        "uid-dup",
        &test_args(
            "unique-ids",
            &bin,
            &[
                "--node-count",
                "3",
                "--time-limit",
                "2",
                "--rate",
                "50",
                "--",
                "--from-one",
            ],
        ),
    );
    r.expect(1);
    assert!(r.count(":duplicated-count") > 0, "{}", r.results());
    assert!(
        r.output.contains("Analysis invalid! (ﾉಥ益ಥ）ﾉ ┻━┻"),
        "{}",
        r.output
    );
}

#[test]
fn an_extra_reply_field_is_a_malformed_rpc_response() {
    let bin = example("unique_ids_node");
    let r = run(
        "uid-extra",
        &test_args(
            "unique-ids",
            &bin,
            &[
                "--node-count",
                "1",
                "--time-limit",
                "2",
                "--rate",
                "20",
                "--",
                "--extra-field",
            ],
        ),
    );
    r.expect(1);
    let results = r.results();
    assert!(results.contains("Malformed RPC response"), "{results}");
    assert!(results.contains("{:workshop disallowed-key}"), "{results}");
    assert_eq!(r.count(":ok-count"), 0);
    assert!(r
        .file("history.edn")
        .contains(":type :info, :process 0, :f :generate"));
}

#[test]
fn gossiping_broadcast_survives_partitions() {
    let bin = example("broadcast_node");
    let r = run(
        "bcast",
        &test_args(
            "broadcast",
            &bin,
            &[
                "--node-count",
                "5",
                "--time-limit",
                "4",
                "--rate",
                "20",
                "--nemesis",
                "partition",
                "--nemesis-interval",
                "1",
                "--seed",
                "7",
            ],
        ),
    );
    r.expect(0);
    assert_eq!(r.count(":lost-count"), 0);
    let history = r.file("history.edn");
    assert!(
        history.contains(":type :info, :process :nemesis, :f :start-partition"),
        "{history}"
    );
    assert!(history.contains(":value [:isolated {"), "{history}");
    assert!(history.contains(":value :network-healed"), "{history}");
    assert!(history.contains(":final? true"), "{history}");
    assert!(r.output.contains("Waiting for recovery..."), "{}", r.output);
}

#[test]
fn forwarding_once_loses_messages_under_partitions() {
    let bin = example("broadcast_node");
    let r = run(
        "bcast-once",
        &test_args(
            "broadcast",
            &bin,
            &[
                "--node-count",
                "5",
                "--time-limit",
                "6",
                "--rate",
                "40",
                "--nemesis",
                "partition",
                "--nemesis-interval",
                "1",
                "--seed",
                "3",
                "--topology",
                "total",
                "--",
                "--once",
            ],
        ),
    );
    r.expect(1);
    assert!(r.count(":lost-count") > 0, "{}", r.results());
}

#[test]
fn a_gossiping_g_set_is_valid_under_partitions() {
    let bin = example("broadcast_node");
    let r = run(
        "gset",
        &test_args(
            "g-set",
            &bin,
            &[
                "--node-count",
                "3",
                "--time-limit",
                "3",
                "--rate",
                "30",
                "--nemesis",
                "partition",
                "--nemesis-interval",
                "1",
                "--",
                "--g-set",
            ],
        ),
    );
    r.expect(0);
    assert!(r.file("history.edn").contains(":f :add, :value 0"));
}

#[test]
fn crdt_g_counter_is_valid() {
    let bin = example("g_counter_node");
    let r = run(
        "gc",
        &test_args(
            "g-counter",
            &bin,
            &["--node-count", "3", "--time-limit", "3", "--rate", "30"],
        ),
    );
    r.expect(0);
}

#[test]
fn a_counter_on_the_lin_kv_service_is_valid_under_latency() {
    let bin = example("kv_counter_node");
    let r = run(
        "kv-counter",
        &test_args(
            "g-counter",
            &bin,
            &[
                "--node-count",
                "3",
                "--time-limit",
                "3",
                "--rate",
                "30",
                "--latency",
                "5",
                "--latency-dist",
                "uniform",
            ],
        ),
    );
    r.expect(0);
    // Node↔service traffic is server traffic: each op costs at least two service round trips.
    let servers = r.results();
    assert!(servers.contains(":servers"), "{servers}");
    let history = r.file("history.edn");
    assert!(history.contains(":final? true"), "{history}");
}

#[test]
fn counting_only_local_adds_is_invalid() {
    let bin = example("g_counter_node");
    let r = run(
        "gc-local",
        &test_args(
            "g-counter",
            &bin,
            &[
                "--node-count",
                "3",
                "--time-limit",
                "3",
                "--rate",
                "30",
                "--",
                "--local",
            ],
        ),
    );
    r.expect(1);
    let results = r.results();
    assert!(results.contains(":final-reads"), "{results}");
    assert!(results.contains(":acceptable"), "{results}");
}

#[test]
fn pn_counter_with_negative_deltas_is_valid() {
    let bin = example("g_counter_node");
    let r = run(
        "pn",
        &test_args(
            "pn-counter",
            &bin,
            &["--node-count", "2", "--time-limit", "2", "--rate", "30"],
        ),
    );
    r.expect(0);
    assert!(
        r.file("history.edn").contains(":f :add, :value -"),
        "no negative delta drawn"
    );
}

#[test]
fn garbage_lines_are_counted_and_the_node_keeps_being_read() {
    let bin = example("faulty_echo_node");
    let r = run(
        "garbage",
        &test_args(
            "echo",
            &bin,
            &[
                "--node-count",
                "1",
                "--time-limit",
                "2",
                "--rate",
                "10",
                "--",
                "--garbage",
            ],
        ),
    );
    r.expect(0);
    assert!(r.count(":not-json-lines") > 0, "{}", r.results());
    assert!(r.count(":malformed-messages") > 0, "{}", r.results());
    assert!(r.output.contains("not well-formed JSON"), "{}", r.output);
}

#[test]
fn messages_to_unknown_destinations_are_counted() {
    let bin = example("faulty_echo_node");
    let r = run(
        "unknown-dest",
        &test_args(
            "echo",
            &bin,
            &[
                "--node-count",
                "1",
                "--time-limit",
                "2",
                "--rate",
                "10",
                "--",
                "--unknown-dest",
            ],
        ),
    );
    r.expect(0);
    assert!(r.count(":unknown-dest-messages") > 0, "{}", r.results());
    assert!(r.output.contains("\"n99\" is not a node"), "{}", r.output);
}

#[test]
fn a_crashing_node_ends_the_run_without_a_verdict() {
    let bin = example("faulty_echo_node");
    let started = Instant::now();
    let r = run(
        "crash",
        &test_args(
            "echo",
            &bin,
            &[
                "--node-count",
                "2",
                "--time-limit",
                "30",
                "--rate",
                "20",
                "--",
                "--crash-after",
                "3",
            ],
        ),
    );
    r.expect(2);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the run did not stop at the crash"
    );
    assert!(
        r.output.contains("crashed with exit status 3"),
        "{}",
        r.output
    );
    assert!(
        r.output.contains("crashing on purpose"),
        "stderr tail missing: {}",
        r.output
    );
    assert!(r.results().contains(":valid? :unknown"), "{}", r.results());
    assert!(!r.file("history.edn").is_empty());
}

#[test]
fn a_node_that_never_answers_init_is_named() {
    let bin = example("faulty_echo_node");
    let r = run(
        "no-init",
        &test_args(
            "echo",
            &bin,
            &["--node-count", "2", "--time-limit", "2", "--", "--no-init"],
        ),
    );
    r.expect(2);
    assert!(
        r.output
            .contains("Expected node n0 to respond to an init message"),
        "{}",
        r.output
    );
    assert!(
        r.output.contains("ignoring init on purpose"),
        "{}",
        r.output
    );
}

#[test]
fn a_wrong_init_reply_fails_the_run() {
    let bin = example("faulty_echo_node");
    let r = run(
        "bad-init",
        &test_args(
            "echo",
            &bin,
            &["--node-count", "1", "--time-limit", "2", "--", "--bad-init"],
        ),
    );
    r.expect(2);
    assert!(r.output.contains("init-failed"), "{}", r.output);
}

#[test]
fn a_run_reports_progress_and_ends_with_its_seed_and_results() {
    let bin = example("echo_node");
    let rest = [
        "--node-count",
        "3",
        "--time-limit",
        "6",
        "--rate",
        "20",
        "--nemesis",
        "partition",
        "--nemesis-interval",
        "1",
    ];
    let r = run("progress", &test_args("echo", &bin, &rest));
    r.expect(0);
    let progress: Vec<&str> = r
        .output
        .lines()
        .filter(|l| l.contains("workloads.progress"))
        .collect();
    assert!(!progress.is_empty(), "no progress line:\n{}", r.output);
    let line = progress[0];
    assert!(line.contains("workloads.progress [5."), "{line}");
    let ops: u64 = line
        .split(" s] ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ops > 50, "{line}");
    assert!(
        line.contains(" ok, ") && line.contains(" · faults: "),
        "{line}"
    );
    // Without --seed the harness draws one, and the last line names it and the results.
    let last = r.output.lines().rfind(|l| !l.trim().is_empty()).unwrap();
    assert!(
        last.starts_with("Run ended: valid (exit 0), seed "),
        "{last}"
    );
    let seed = last
        .split("seed ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    assert!(seed.parse::<u64>().is_ok(), "{last}");
    assert!(
        r.output.contains(&format!("Seed {seed}; replay with: ")),
        "{}",
        r.output
    );
    let results = last.split("results ").nth(1).unwrap();
    assert!(
        results.starts_with("store/echo/") && results.ends_with("/results.edn"),
        "{last}"
    );
    assert!(r.dir.join(results).is_file(), "{last}");
}

/// A refused command line: exit 254, the reason said, and nothing started or stored.
fn assert_refused(test: &str, args: &[&str], reason: &str) {
    let r = run(test, args);
    r.expect(254);
    assert!(r.output.contains(reason), "{args:?}: {}", r.output);
    assert!(!r.output.contains("Started"), "{args:?}: {}", r.output);
    assert!(!r.dir.join("store").exists(), "{args:?} created the store");
}

#[test]
fn a_mistyped_option_anywhere_exits_254_with_a_hint() {
    let bin = example("echo_node");
    let typo = ["--node-cout", "1", "--time-limit", "2"];
    assert_refused(
        "typo-after-bin",
        &test_args("echo", &bin, &typo),
        "a similar argument exists: '--node-count'",
    );
    let bin = bin.to_str().unwrap();
    let before = ["test", "-w", "echo", "--node-cout", "1", "--bin", bin];
    assert_refused(
        "typo-before-bin",
        &before,
        "unexpected argument '--node-cout'",
    );
    assert!(!run("typo-before-bin", &before).output.contains("required"));
    let stray = [
        "test",
        "-w",
        "echo",
        "--bin",
        bin,
        "--node-count",
        "1",
        "--once",
    ];
    assert_refused("stray-word", &stray, "unexpected argument '--once'");
}

#[test]
fn node_arguments_after_the_double_dash_reach_the_node() {
    use std::os::unix::fs::PermissionsExt;
    let echo = example("echo_node");
    let dir = workdir("node-args-script");
    let script = dir.join("node.sh");
    let text = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > args.txt\nexec '{}'\n",
        echo.display()
    );
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rest = [
        "--node-count",
        "1",
        "--time-limit",
        "1",
        "--node-dir-per-node",
        "--",
        "--rate",
        "7",
        "two words",
    ];
    let r = run("node-args", &test_args("echo", &script, &rest));
    r.expect(0);
    let args = std::fs::read_to_string(r.dir.join("store/latest/node-dirs/n0/args.txt"));
    assert_eq!(args.unwrap(), "--rate\n7\ntwo words\n");
    assert!(
        r.output.contains("at 5 ops/s"),
        "--rate after -- is the node's: {}",
        r.output
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn values_that_would_check_nothing_are_refused_before_anything_starts() {
    let bin = example("echo_node");
    for (test, extra, reason) in [
        (
            "time-0",
            &["--time-limit", "0"][..],
            "--time-limit must be at least 1 second",
        ),
        (
            "rate-0",
            &["--rate", "0"],
            "--rate must be a number above 0, got 0",
        ),
        (
            "rate-neg",
            &["--rate", "-3"],
            "--rate must be a number above 0, got -3",
        ),
        (
            "interval-0",
            &["--nemesis", "partition", "--nemesis-interval", "0"],
            "--nemesis-interval must be at least 0.1 s, got 0",
        ),
    ] {
        let mut rest = vec!["--node-count", "1"];
        rest.extend_from_slice(extra);
        assert_refused(test, &test_args("echo", &bin, &rest), reason);
    }
}

#[test]
fn a_bin_that_is_a_directory_or_not_executable_is_named_as_such() {
    use std::os::unix::fs::PermissionsExt;
    let dir = workdir("bad-bin-files");
    let plain = dir.join("node.txt");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let rest = ["--node-count", "1", "--time-limit", "1"];
    assert_refused("bin-dir", &test_args("echo", &dir, &rest), "is a directory");
    assert_refused(
        "bin-plain",
        &test_args("echo", &plain, &rest),
        "is not executable",
    );
    let missing = dir.join("absent");
    assert_refused(
        "bin-missing",
        &test_args("echo", &missing, &rest),
        "no such file",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unsupported_workloads_and_bad_options_exit_254() {
    let bin = example("echo_node");
    let r = run("bad-wl", &test_args("kafka", &bin, &["--time-limit", "1"]));
    r.expect(254);
    assert!(
        r.output.contains("supported workloads: echo, unique-ids"),
        "{}",
        r.output
    );
    let r = run(
        "bad-opt",
        &["test", "-w", "echo", "--bin", "x", "--rate", "fast"],
    );
    r.expect(254);
    let r = run("help", &["test", "--help"]);
    r.expect(0);
    for opt in [
        "--workload",
        "--bin",
        "--node-count",
        "--time-limit",
        "--rate",
        "--concurrency",
        "--latency",
        "--latency-dist",
        "--nemesis",
        "--nemesis-interval",
        "--availability",
        "--topology",
        "--log-stderr",
        "--log-net-send",
        "--log-net-recv",
        "--seed",
    ] {
        assert!(r.output.contains(opt), "{opt} undocumented:\n{}", r.output);
    }
}

#[test]
fn interrupting_the_harness_leaves_no_node_behind() {
    let bin = example("echo_node");
    let dir = workdir("sigint");
    let mut child = Command::new(env!("CARGO_BIN_EXE_workloads"))
        .args(test_args(
            "echo",
            &bin,
            &[
                "--node-count",
                "3",
                "--time-limit",
                "60",
                "--node-dir",
                "store/nodes",
            ],
        ))
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let nodes_before = processes_in(&dir);
    assert_eq!(
        nodes_before.len(),
        3,
        "expected 3 node processes in {}",
        dir.display()
    );
    // SIGINT, as Ctrl-C sends.
    Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "harness did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(2));
    assert!(processes_in(&dir).is_empty(), "nodes left behind");
    assert!(dir.join("store/latest/history.edn").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Processes whose working directory is inside `dir/store` (the nodes run in
/// store/nodes; the harness itself runs in `dir`).
fn processes_in(dir: &Path) -> Vec<u32> {
    let dir = dir.join("store").canonicalize().unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) {
            if cwd.starts_with(&dir) {
                found.push(pid);
            }
        }
    }
    found
}

#[test]
fn a_python_script_with_a_shebang_works_as_a_node() {
    assert!(
        Command::new("python3").arg("--version").output().is_ok(),
        "python3 is not installed (`make deps` installs it)"
    );
    let dir = workdir("python-src");
    let script = dir.join("echo.py");
    std::fs::write(
        &script,
        r#"#!/usr/bin/env python3
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    reply = {"in_reply_to": body["msg_id"]}
    if body["type"] == "init":
        reply["type"] = "init_ok"
    else:
        reply.update(type="echo_ok", echo=body["echo"])
    print(json.dumps({"src": msg["dest"], "dest": msg["src"], "body": reply}), flush=True)
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = run(
        "python",
        &test_args(
            "echo",
            &script,
            &["--node-count", "2", "--time-limit", "2", "--rate", "10"],
        ),
    );
    r.expect(0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_same_seed_replays_the_same_operations_and_faults() {
    let bin = example("echo_node");
    let args = [
        "--node-count",
        "3",
        "--time-limit",
        "2",
        "--rate",
        "30",
        "--nemesis",
        "partition",
        "--nemesis-interval",
        "0.3",
        "--seed",
        "42",
    ];
    // Client operations and faults each follow the seed; how the two interleave depends on
    // real time, so they are compared apart.
    let plan = |test: &str| -> (Vec<String>, Vec<String>) {
        let r = run(test, &test_args("echo", &bin, &args));
        r.expect(0);
        let txt = r.file("history.txt");
        let ops = txt
            .lines()
            .filter(|l| l.contains(":invoke"))
            .map(|l| l.split('\t').nth(3).unwrap_or("").to_string());
        let faults = txt
            .lines()
            .filter(|l| l.starts_with(":nemesis"))
            .map(|l| l.split('\t').skip(2).collect::<Vec<_>>().join(" "));
        (ops.collect(), faults.collect())
    };
    let ((a, fa), (b, fb)) = (plan("seed-a"), plan("seed-b"));
    let n = a.len().min(b.len()) * 9 / 10;
    assert!(n > 20, "too few operations: {a:?}");
    assert_eq!(a[..n], b[..n]);
    let m = fa.len().min(fb.len()) * 2 / 3;
    assert!(m >= 2, "too few faults: {fa:?}");
    assert_eq!(fa[..m], fb[..m]);
    let a = fa;
    assert!(a.iter().any(|l| l.contains(":start-partition")), "{a:?}");
}

#[test]
fn analyze_rechecks_stored_runs_ours_and_maelstroms() {
    let bin = example("unique_ids_node");
    let r = run(
        "analyze",
        &test_args(
            "unique-ids",
            &bin,
            &[
                "--node-count",
                "2",
                "--time-limit",
                "1",
                "--rate",
                "50",
                "--",
                "--from-one",
            ],
        ),
    );
    r.expect(1);
    let (status, said) = harness(&r.dir, &["analyze", "-t", "store/latest"], &[]);
    assert_eq!(status, 1);
    assert!(said.contains(":duplicated-count"));

    // Maelstrom's own stored runs, kept in the repository as test data.
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference-runs");
    for (dir, workload, status) in [
        ("echo-valid", "echo", 0),
        ("unique-ids-duplicates-invalid", "unique-ids", 1),
        ("unique-ids-extra-reply-field-invalid", "unique-ids", 1),
        ("g-counter-lost-increments-invalid", "g-counter", 1),
        ("broadcast-lost-under-partition-invalid", "broadcast", 1),
    ] {
        let stored = reference.join(dir);
        let args = ["analyze", "-w", workload, "-t", stored.to_str().unwrap()];
        let (got, said) = harness(&r.dir, &args, &[]);
        assert_eq!(got, status, "{dir}: {said}");
    }
}
