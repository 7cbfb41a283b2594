//! What the end-to-end tests share: finding the example nodes, a fresh directory per test,
//! and running the real `workloads` binary there.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use maelstrom_core::node_dir::NODE_DIR_ENV;
use workloads::history::History;

/// `target/<profile>/examples/<name>`, found from this test's own executable
/// (`target/<profile>/deps/runs-<hash>`).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo test -p workloads` (it builds the examples; `--test runs` alone does not)",
        path.display()
    );
    path
}

/// `target/<profile>/<name>`: a workspace binary such as `giftid-node`, built by
/// `make test` (`cargo build --workspace --bins`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make test`, or `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A fresh working directory for one test.
pub fn workdir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("workloads-it-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Run {
    pub status: i32,
    pub output: String,
    pub dir: PathBuf,
}

impl Run {
    pub fn results(&self) -> String {
        std::fs::read_to_string(self.dir.join("store/latest/results.edn"))
            .unwrap_or_else(|e| panic!("no results.edn: {e}\n{}", self.output))
    }

    pub fn history(&self) -> History {
        latest_history(&self.dir)
    }

    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("store/latest").join(name))
            .unwrap_or_else(|e| panic!("no {name}: {e}\n{}", self.output))
    }

    /// The integer after `key` in results.edn.
    pub fn count(&self, key: &str) -> i64 {
        let results = self.results();
        self.counted(key)
            .unwrap_or_else(|| panic!("{key} is not followed by an integer:\n{results}"))
    }

    /// The integer after `key` in results.edn, if there are results and it is there.
    pub fn counted(&self, key: &str) -> Option<i64> {
        let results = std::fs::read_to_string(self.dir.join("store/latest/results.edn")).ok()?;
        let at = results.find(key)?;
        results[at + key.len()..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit() && c != '-')
            .next()?
            .parse()
            .ok()
    }

    pub fn expect(&self, status: i32) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected exit status; output:\n{}",
            self.output
        );
        self
    }
}

/// A passing test leaves nothing behind; a failing one keeps its folder to look at.
impl Drop for Run {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs the `workloads` binary in `dir` with `args` and extra environment (an inherited
/// `MAELSTROM_NODE_DIR` removed, so that runs stay apart): its exit status and output.
pub fn harness(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_workloads"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove(NODE_DIR_ENV)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: Output = cmd.output().unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), output)
}

/// The history of the newest run in `dir`'s store.
pub fn latest_history(dir: &Path) -> History {
    let path = dir.join("store/latest/history.edn");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    History::from_edn_lines(&text).expect("history.edn parses")
}

/// Seeds a node broken on purpose is run with, in turn, by [`caught_by_one_of`].
pub const CATCH_SEEDS: [&str; 3] = ["3", "4", "5"];

/// A bug planted on purpose must be caught: runs `run` with each seed of `seeds` in turn
/// (each run in a directory of its own) and returns the first run that `caught` says
/// caught the bug, printing its seed. On a loaded machine one seed's faults can miss the
/// bug (a slowed run does less within its time limit); a checker that never catches it
/// still fails, with every run's results.
pub fn caught_by_one_of(
    seeds: &[&str],
    run: impl Fn(&str) -> Run,
    caught: impl Fn(&Run) -> bool,
) -> Run {
    let mut missed = Vec::new();
    for &seed in seeds {
        let r = run(seed);
        if caught(&r) {
            eprintln!("caught with seed {seed}");
            return r;
        }
        let results = std::fs::read_to_string(r.dir.join("store/latest/results.edn"));
        let shown = results.unwrap_or_else(|_| r.output.clone());
        missed.push(format!("seed {seed}: exit {}\n{shown}", r.status));
    }
    panic!("no seed caught the bug:\n{}", missed.join("\n"));
}

/// Runs the harness in a fresh directory for `test`.
pub fn run(test: &str, args: &[&str]) -> Run {
    let dir = workdir(test);
    let (status, output) = harness(&dir, args, &[]);
    Run {
        status,
        output,
        dir,
    }
}

/// The run a one-process fixture node gets: one node, four workers, 4 s at 100 ops/s.
pub const ONE_NODE_RUN: [&str; 8] = [
    "--node-count",
    "1",
    "--concurrency",
    "4",
    "--time-limit",
    "4",
    "--rate",
    "100",
];

/// Writes `text` to `path` as an executable file (a fixture node or its wrapper).
pub fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The loop the Python fixture nodes share (`from serve import serve`).
const SERVE_PY: &str = include_str!("../fixtures/serve.py");

/// Writes the Python fixture node `text` as the executable `dir/name`, with the loop it
/// imports beside it.
pub fn python_node(dir: &Path, name: &str, text: &str) -> PathBuf {
    assert!(
        Command::new("python3").arg("--version").output().is_ok(),
        "python3 is not installed (`make deps` installs it)"
    );
    std::fs::write(dir.join("serve.py"), SERVE_PY).unwrap();
    let script = dir.join(name);
    write_executable(&script, text);
    script
}

pub fn test_args<'a>(workload: &'a str, bin: &'a Path, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["test", "-w", workload, "--bin", bin.to_str().unwrap()];
    v.extend_from_slice(rest);
    v
}

/// A faulted run: `shape` (node count, rate, …) plus `--nemesis` at a 1 s interval with a
/// fixed seed, and the node's own arguments after `--`.
pub fn run_faulted(
    test: &str,
    workload: &str,
    bin: &Path,
    shape: &[&str],
    nemesis: &str,
    seed: &str,
    node_args: &[&str],
) -> Run {
    let mut rest = shape.to_vec();
    rest.extend_from_slice(&[
        "--nemesis",
        nemesis,
        "--nemesis-interval",
        "1",
        "--seed",
        seed,
    ]);
    if !node_args.is_empty() {
        rest.push("--");
        rest.extend_from_slice(node_args);
    }
    run(test, &test_args(workload, bin, &rest))
}
