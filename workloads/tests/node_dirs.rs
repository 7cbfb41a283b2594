//! Nodes share one working directory by default, as in Maelstrom: runs in a row leak
//! nothing to each other, and a node that keeps fixed file names in its working directory
//! is caught.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{example, harness, latest_history, workdir};
use maelstrom_core::node_dir::NODE_DIR_ENV;
use workloads::edn::Edn;
use workloads::history::OpType;

fn ints(value: &Edn) -> Vec<i64> {
    value
        .elements()
        .unwrap_or_default()
        .iter()
        .filter_map(Edn::as_i64)
        .collect()
}

/// Values that reads of the latest run returned although that run never broadcast them.
fn read_but_never_broadcast(cwd: &Path) -> BTreeSet<i64> {
    let h = latest_history(cwd);
    let ok = |f: &str| {
        h.ops
            .iter()
            .filter(move |o| o.op_type == OpType::Ok && o.f == f)
            .cloned()
            .collect::<Vec<_>>()
    };
    let sent: BTreeSet<i64> = h
        .ops
        .iter()
        .filter(|o| o.op_type == OpType::Invoke && o.f == "broadcast")
        .filter_map(|o| o.value.as_i64())
        .collect();
    let reads = ok("read");
    assert!(!reads.is_empty(), "no read succeeded");
    reads
        .iter()
        .flat_map(|o| ints(&o.value))
        .filter(|v| !sent.contains(v))
        .collect()
}

/// Two broadcast runs of `bin` in a row with the nodes in `node_dir`: a long one, then a
/// short one that broadcasts fewer values. Returns what the second read without
/// broadcasting, the working directory and both runs' output.
fn two_broadcast_runs(
    test: &str,
    bin: &Path,
    env: &[(&str, &Path)],
) -> (BTreeSet<i64>, PathBuf, String) {
    let cwd = workdir(test);
    let node_dir = cwd.join("nodes");
    let mut outputs = String::new();
    for rate in ["60", "4"] {
        let args = [
            "test",
            "-w",
            "broadcast",
            "--bin",
            bin.to_str().unwrap(),
            "--node-count",
            "3",
            "--time-limit",
            "2",
            "--rate",
            rate,
            "--node-dir",
            node_dir.to_str().unwrap(),
        ];
        let (status, output) = harness(&cwd, &args, env);
        assert!(status == 0 || status == 1, "run failed:\n{output}");
        outputs.push_str(&output);
    }
    (read_but_never_broadcast(&cwd), cwd, outputs)
}

#[test]
fn two_runs_in_one_directory_share_nothing() {
    let (leaked, cwd, _) = two_broadcast_runs("two-runs", &example("broadcast"), &[]);
    assert!(leaked.is_empty(), "the second run read {leaked:?}");
    let _ = std::fs::remove_dir_all(cwd);
}

/// The check above can fail: with one fixed node directory for both runs (here set by a
/// wrapper that execs the node), the second run starts from the first's messages.
#[test]
fn one_node_directory_for_two_runs_leaks_and_is_seen() {
    let fixed = workdir("fixed-node-dir");
    let wrapper = fixed.join("fixed-dir-node.sh");
    let script = format!(
        "#!/bin/sh\n{NODE_DIR_ENV}='{}' exec '{}' \"$@\"\n",
        fixed.join("files").display(),
        example("broadcast").display()
    );
    std::fs::write(&wrapper, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (leaked, cwd, _) = two_broadcast_runs("two-runs-fixed", &wrapper, &[]);
    assert!(
        !leaked.is_empty(),
        "no leak seen although both runs shared files"
    );
    let _ = std::fs::remove_dir_all(cwd);
    let _ = std::fs::remove_dir_all(fixed);
}

/// A user who exported MAELSTROM_NODE_DIR once does not make every run share one folder:
/// the harness says so and does not pass it on.
#[test]
fn an_exported_node_dir_is_not_passed_to_the_nodes() {
    let fixed = workdir("exported-node-dir");
    let (leaked, cwd, output) = two_broadcast_runs(
        "two-runs-exported",
        &example("broadcast"),
        &[(NODE_DIR_ENV, &fixed)],
    );
    assert!(leaked.is_empty(), "the second run read {leaked:?}");
    let said = format!("{NODE_DIR_ENV} is set; not passed to the nodes");
    assert_eq!(output.matches(&said).count(), 2, "once a run:\n{output}");
    let used: Vec<_> = std::fs::read_dir(&fixed).unwrap().flatten().collect();
    assert!(used.is_empty(), "nodes wrote to {NODE_DIR_ENV}: {used:?}");
    let _ = std::fs::remove_dir_all(cwd);
    let _ = std::fs::remove_dir_all(fixed);
}

/// A unique-ids node that writes its id to `whoami` in its working directory at init and
/// reads it back for every id it makes: right in a directory of its own, wrong in a
/// shared one, where the last node initialised names everybody.
const FIXED_NAME_NODE: &str = r#"#!/usr/bin/env python3
import json, sys
count = 0
for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    if body["type"] == "init":
        with open("whoami", "w") as f:
            f.write(body["node_id"])
        reply = {"type": "init_ok"}
    else:
        with open("whoami") as f:
            me = f.read()
        count += 1
        reply = {"type": "generate_ok", "id": "%s-%d" % (me, count)}
    reply["in_reply_to"] = body["msg_id"]
    print(json.dumps({"src": msg["dest"], "dest": msg["src"], "body": reply}), flush=True)
"#;

#[test]
fn a_node_keeping_fixed_names_in_its_working_directory_is_caught_by_default() {
    assert!(
        Command::new("python3").arg("--version").output().is_ok(),
        "python3 is not installed (`make deps` installs it)"
    );
    let cwd = workdir("fixed-names");
    let script = cwd.join("whoami.py");
    std::fs::write(&script, FIXED_NAME_NODE).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The default settings; the system temporary directory is this test's own.
    let tmp = cwd.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let args = |extra: &'static [&'static str]| {
        let mut v = vec![
            "test",
            "-w",
            "unique-ids",
            "--bin",
            script.to_str().unwrap(),
            "--node-count",
            "3",
            "--time-limit",
            "2",
            "--rate",
            "30",
        ];
        v.extend_from_slice(extra);
        v
    };
    let (status, output) = harness(&cwd, &args(&[]), &[("TMPDIR", &tmp)]);
    assert_eq!(
        status, 1,
        "the shared directory should catch the node:\n{output}"
    );
    assert!(
        tmp.join("whoami").is_file(),
        "the nodes did not start in TMPDIR"
    );
    // In a directory of its own each node is right: the failure above is the sharing.
    let (status, output) = harness(&cwd, &args(&["--node-dir-per-node"]), &[("TMPDIR", &tmp)]);
    assert_eq!(status, 0, "{output}");
    let _ = std::fs::remove_dir_all(cwd);
}
