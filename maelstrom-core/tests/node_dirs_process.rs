//! Node binaries sharing one working directory, as Maelstrom starts them: each keeps its
//! files in a directory of its own, found again after a restart within the test run.

mod common;
use common::example;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use maelstrom_core::node_dir::{RunId, NODE_DIR_ENV, RUNS_DIR};
use serde_json::{json, Value};

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mc-node-dirs-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the broadcast example as `node` in `cwd` (this test process is its parent, so its
/// run): init, broadcast each of `add`, then read. Returns what the read saw.
fn broadcast_node(cwd: &Path, env: &[(&str, &Path)], node: &str, add: &[u64]) -> Vec<u64> {
    broadcast_node_of(Command::new(example("broadcast")), cwd, env, node, add)
}

/// The same, started by a shell of its own that stays its parent: another test run.
fn broadcast_node_in_new_run(cwd: &Path, node: &str, add: &[u64]) -> Vec<u64> {
    let mut shell = Command::new("sh");
    shell
        .args(["-c", "\"$0\"; exit $?"])
        .arg(example("broadcast"));
    broadcast_node_of(shell, cwd, &[], node, add)
}

fn broadcast_node_of(
    mut cmd: Command,
    cwd: &Path,
    env: &[(&str, &Path)],
    node: &str,
    add: &[u64],
) -> Vec<u64> {
    cmd.current_dir(cwd)
        .env_remove(NODE_DIR_ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let init = json!({"type":"init","msg_id":1,"node_id":node,"node_ids":["n0","n1","n2"]});
    let mut lines = vec![json!({"src":"c0","dest":node,"body":init})];
    for (i, m) in add.iter().enumerate() {
        let body = json!({"type":"broadcast","message":m,"msg_id":i + 1});
        lines.push(json!({"src":"c1","dest":node,"body":body}));
    }
    lines.push(json!({"src":"c1","dest":node,"body":{"type":"read","msg_id":99}}));
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{node} failed: {stderr}");
    let read = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|m| m["body"]["type"] == "read_ok")
        .unwrap_or_else(|| panic!("no read_ok from {node}: {stderr}"));
    let mut seen: Vec<u64> = serde_json::from_value(read["body"]["messages"].clone()).unwrap();
    seen.sort();
    seen
}

#[test]
fn nodes_in_one_directory_keep_apart_and_find_their_files_after_a_restart() {
    let cwd = scratch("shared");
    assert_eq!(broadcast_node(&cwd, &[], "n0", &[1, 2]), [1, 2]);
    assert_eq!(broadcast_node(&cwd, &[], "n1", &[3]), [3]);
    // Restarted within the same run (same parent): each finds its own messages only.
    assert_eq!(broadcast_node(&cwd, &[], "n0", &[]), [1, 2]);
    assert_eq!(broadcast_node(&cwd, &[], "n1", &[4]), [3, 4]);
    let run = RunId::of(std::process::id()).unwrap();
    let n0 = cwd.join(RUNS_DIR).join(run.name()).join("n0");
    assert!(n0.join("messages.json").is_file(), "{}", n0.display());
    let top: Vec<_> = std::fs::read_dir(&cwd)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(top, [RUNS_DIR], "nothing else in the shared directory");
    std::fs::remove_dir_all(&cwd).unwrap();
}

#[test]
fn an_explicit_node_dir_holds_one_directory_per_node() {
    let cwd = scratch("explicit");
    let root = cwd.join("this-run");
    let env = [(NODE_DIR_ENV, root.as_path())];
    assert_eq!(broadcast_node(&cwd, &env, "n2", &[7]), [7]);
    assert!(root.join("n2").join("messages.json").is_file());
    assert!(!cwd.join(RUNS_DIR).exists());
    assert_eq!(broadcast_node(&cwd, &env, "n2", &[]), [7]);
    std::fs::remove_dir_all(&cwd).unwrap();
}

#[test]
fn a_new_run_with_the_same_ids_starts_empty_and_sweeps_finished_runs() {
    let cwd = scratch("runs");
    let runs = cwd.join(RUNS_DIR);
    assert_eq!(broadcast_node_in_new_run(&cwd, "n0", &[1]), [1]);
    let first: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(first.len(), 1);
    // The first run's parent is gone: the next run's first write removes its folder.
    assert_eq!(broadcast_node_in_new_run(&cwd, "n0", &[2]), [2]);
    assert!(!first[0].exists(), "{} was not swept", first[0].display());
    // A run whose parent lives on (this test) is never swept by another.
    assert_eq!(broadcast_node(&cwd, &[], "n0", &[3]), [3]);
    assert_eq!(broadcast_node_in_new_run(&cwd, "n0", &[4]), [4]);
    let live = runs.join(RunId::of(std::process::id()).unwrap().name());
    assert!(live.join("n0").join("messages.json").is_file());
    std::fs::remove_dir_all(&cwd).unwrap();
}
