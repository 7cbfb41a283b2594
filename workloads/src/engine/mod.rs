//! The engine: one `workloads test` run from options to exit status. It resolves the
//! options into a run, creates the store folder, starts the nodes ([`process`]), drives the
//! phases ([`runner`]), shuts every node down, writes the history, runs the checkers
//! ([`crate::analysis`]) and prints Maelstrom's verdict line.
//!
//! Whatever happens after the nodes start — a verdict, a crash, an init failure, Ctrl-C —
//! the nodes are shut down and the history written before the status is returned.
//!
//! Deliberate differences from Maelstrom, each because Maelstrom's behaviour hides the
//! cause of a failure or loses data:
//! * A stdout line that is not JSON, not a valid envelope, or addressed to an unknown or
//!   closed destination is logged, counted under `:harness` in the results, and dropped;
//!   the node keeps being read (Maelstrom's reader dies and the node goes silent).
//! * A node that exits mid-run ends the run at once (Maelstrom notices only at teardown);
//!   like Maelstrom the analysis is skipped, but results.edn is still written, with
//!   `:valid? :unknown` and the crash report under `:error`.
//! * Crashes and harness errors exit 2, not 255; bad arguments exit 254 as in Maelstrom.
//! * Nodes share one working directory, the system's temporary directory as in Maelstrom,
//!   unless `--node-dir DIR` names another; `--node-dir-per-node` starts each in
//!   `store/<workload>/<time>/node-dirs/<node>/`. An inherited `MAELSTROM_NODE_DIR` is
//!   not passed on to the nodes, so that each run keeps its own node files. Blank stdout
//!   lines are ignored.
//! * No `:perf` in the results: this harness draws no plots yet.

pub mod cluster;
pub mod faketime;
mod finish;
pub mod options;
pub mod outcome;
pub mod process;
pub mod progress;
pub mod runner;
mod start;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use maelstrom_core::node_dir::NODE_DIR_ENV;
use rand::Rng;
use tokio::sync::mpsc;

use crate::analysis::{EXIT_BAD_ARGS, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID};
use crate::console::Console;
use crate::nemesis::Kind;
use crate::net::{Latency, Network};
use crate::store::Store;
use crate::workload::{self, Cluster};
use options::TestOptions;
use runner::{Engine, RunError};

/// A refusal of the options, reported with the bad-arguments status.
#[derive(Debug, Clone, PartialEq)]
pub struct BadArgs(pub String);

/// The node list: n0… across the services with --service, n0… with --node-count, else
/// --nodes, else Jepsen's n1…n5.
pub fn node_names(args: &TestOptions) -> Result<Vec<String>, BadArgs> {
    if !args.services.is_empty() {
        return Ok(cluster::service_node_names(args));
    }
    let names: Vec<String> = match args.node_count {
        Some(0) => return Err(BadArgs("--node-count must be at least 1".into())),
        Some(n) => (0..n).map(|i| format!("n{i}")).collect(),
        None if !args.nodes.is_empty() => args.nodes.clone(),
        None => (1..=5).map(|i| format!("n{i}")).collect(),
    };
    for (i, n) in names.iter().enumerate() {
        let clash = n.is_empty()
            || ["lin-kv", "seq-kv", "lww-kv", "lin-tso"].contains(&n.as_str())
            || (n.starts_with('c') && n[1..].bytes().all(|b| b.is_ascii_digit()))
            || names[..i].contains(n);
        if clash {
            return Err(BadArgs(format!(
                "bad node name {n:?}: names must be distinct and not look like a client (c<k>) or a service"
            )));
        }
    }
    Ok(names)
}

/// What the options resolve to: the workload (begun), the cluster it sees, the services
/// with their absolute binaries, and the node each worker talks to.
struct Checked {
    workload: Box<dyn workload::Workload>,
    cluster: Cluster,
    launches: Vec<cluster::Launch>,
    worker_nodes: Vec<usize>,
}

fn check_args(args: &TestOptions) -> Result<Checked, BadArgs> {
    let mut workload = workload::by_name(&args.workload).map_err(BadArgs)?;
    let names = node_names(args)?;
    check_numbers(args)?;
    if !(0.0..=1.0).contains(&args.lossy_rate) {
        return Err(BadArgs(format!(
            "--lossy-rate must be a probability 0–1, got {}",
            args.lossy_rate
        )));
    }
    if args.nemesis_kinds().contains(&Kind::Clock) && faketime::find_library().is_none() {
        return Err(BadArgs(
            "--nemesis clock needs libfaketime (Debian: apt-get install libfaketime), or \
             WORKLOADS_LIBFAKETIME set to the path of libfaketime.so.1"
                .into(),
        ));
    }
    if args.concurrency.workers(names.len()) == 0 {
        return Err(BadArgs(
            "--concurrency must give at least one worker".into(),
        ));
    }
    let launches = cluster::launches(args, &names)?;
    let cluster = Cluster {
        nodes: names.clone(),
        topology: args.topology,
        workers: args.concurrency.workers(names.len()),
        node_args: args.args.clone(),
        services: cluster::services(&launches),
    };
    workload.begin(&cluster);
    let worker_nodes = workload::worker_nodes(workload.as_ref(), &cluster).map_err(BadArgs)?;
    Ok(Checked {
        workload,
        cluster,
        launches,
        worker_nodes,
    })
}

/// The time limit, rate and nemesis interval: values that would make a run check nothing
/// (no operations) or measure only the harness (faults every few microseconds).
fn check_numbers(args: &TestOptions) -> Result<(), BadArgs> {
    if args.time_limit == 0 {
        return Err(BadArgs(
            "--time-limit must be at least 1 second: a run of 0 s has no operations to check"
                .into(),
        ));
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(BadArgs(format!(
            "--rate must be a number above 0, got {}: a run without operations checks nothing",
            args.rate
        )));
    }
    let floor = crate::nemesis::MIN_NEMESIS_INTERVAL_S;
    if !(args.nemesis_interval.is_finite() && args.nemesis_interval >= floor) {
        return Err(BadArgs(format!(
            "--nemesis-interval must be at least {floor} s, got {}: faults changing faster \
             than nodes restart or answer test the harness, not the nodes",
            args.nemesis_interval
        )));
    }
    Ok(())
}

/// A node binary as an absolute path, refused (naming `flag`) unless it is an executable
/// file.
fn check_bin(flag: &str, path: &Path) -> Result<PathBuf, BadArgs> {
    use std::os::unix::fs::PermissionsExt;
    let bad = |why: &str| BadArgs(format!("{flag} {}: {why}", path.display()));
    let bin = std::path::absolute(path).map_err(|e| bad(&e.to_string()))?;
    let meta = match std::fs::metadata(&bin) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad(
                "no such file (paths are relative to the current directory)",
            ))
        }
        Err(e) => return Err(bad(&e.to_string())),
    };
    if meta.is_dir() {
        return Err(bad("is a directory, not a node binary"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(bad("is not executable (chmod +x it, or check the path)"));
    }
    Ok(bin)
}

/// Runs `workloads test`; returns the exit status.
pub async fn run_test(args: TestOptions) -> i32 {
    let checked = match check_args(&args) {
        Ok(x) => x,
        Err(BadArgs(why)) => {
            eprintln!("workloads test: {why}");
            return EXIT_BAD_ARGS;
        }
    };
    // Random seeds stay below 2^48: short enough to read and retype.
    let seed = args
        .seed
        .unwrap_or_else(|| rand::thread_rng().gen_range(0..1 << 48));
    let console = Arc::new(Console::new(true));
    let store = match Store::create(Path::new("store"), checked.workload.name()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("workloads test: cannot create the store folder: {e}");
            return EXIT_UNKNOWN;
        }
    };
    if let Err(e) = console.attach_file(&store.jepsen_log()) {
        console.warn(
            "runner",
            "workloads.run",
            &format!("cannot write jepsen.log: {e}"),
        );
    }
    let _ = store.link_latest();
    let replay = args.replay_command(seed);
    console.info(
        "runner",
        "workloads.run",
        &format!("Seed {seed}; replay with: {replay}"),
    );
    console.info(
        "runner",
        "workloads.run",
        &format!("Store: {}", store.dir.display()),
    );

    let seed_line = format!("Seed {seed}; replay with: {replay}");
    let exit = run_in_store(&args, checked, seed, &seed_line, &console, &store).await;
    let _ = store.link_latest();
    console.flush();
    println!("{}", final_line(exit, seed, &store.dir.join("results.edn")));
    exit
}

/// Each node's working directory, said on the console; if they cannot be made, empty
/// paths and why, for the run to fail with.
fn working_dirs(
    args: &TestOptions,
    store: &Store,
    names: &[String],
    console: &Console,
) -> (Vec<PathBuf>, Option<String>) {
    let (dirs, error) = match create_working_dirs(args, store, names) {
        Ok(dirs) => (dirs, None),
        Err(e) => (vec![PathBuf::new(); names.len()], Some(e)),
    };
    console.info(
        "runner",
        "workloads.run",
        &match dirs.first() {
            Some(d) if !args.node_dir_per_node => format!("Nodes start in {}", d.display()),
            _ => "Nodes start in node-dirs/ of the store".to_string(),
        },
    );
    if std::env::var_os(NODE_DIR_ENV).is_some() {
        console.info(
            "runner",
            "workloads.run",
            &format!(
                "{NODE_DIR_ENV} is set; not passed to the nodes, so runs keep their files apart"
            ),
        );
    }
    (dirs, error)
}

/// Each node's working directory: one shared by all (`--node-dir`, else the system's
/// temporary directory, as Maelstrom), or one each in the store (`--node-dir-per-node`).
fn create_working_dirs(
    args: &TestOptions,
    store: &Store,
    names: &[String],
) -> Result<Vec<PathBuf>, String> {
    if args.node_dir_per_node {
        return names
            .iter()
            .map(|name| {
                store
                    .node_dir(name)
                    .map_err(|e| format!("Could not create the directory of node {name}: {e}"))
            })
            .collect();
    }
    let shared = args.node_dir.clone().unwrap_or_else(std::env::temp_dir);
    // Absolute, because the nodes start in it.
    let shared = std::fs::create_dir_all(&shared)
        .and_then(|()| shared.canonicalize())
        .map_err(|e| {
            format!(
                "Could not create the node directory {}: {e}",
                shared.display()
            )
        })?;
    Ok(vec![shared; names.len()])
}

/// The last line of a run, for scripts to find: the verdict, the seed and the results,
/// `Run ended: valid (exit 0), seed 42, results store/echo/<time>/results.edn`.
pub fn final_line(status: i32, seed: u64, results: &Path) -> String {
    let verdict = match status {
        EXIT_VALID => "valid",
        EXIT_INVALID => "invalid",
        _ => "unknown",
    };
    format!(
        "Run ended: {verdict} (exit {status}), seed {seed}, results {}",
        results.display()
    )
}

/// Everything a run needs that the options and the store decided.
struct Run<'a> {
    args: &'a TestOptions,
    names: Vec<String>,
    launches: Vec<cluster::Launch>,
    /// Whether the nodes run several binaries (`--service`): their `init` names services.
    several: bool,
    worker_nodes: Vec<usize>,
    seed: u64,
    seed_line: &'a str,
    console: &'a Arc<Console>,
    store: &'a Store,
}

/// Starts the nodes, runs every phase, stops the nodes, then writes and judges the run.
async fn run_in_store(
    args: &TestOptions,
    checked: Checked,
    seed: u64,
    seed_line: &str,
    console: &Arc<Console>,
    store: &Store,
) -> i32 {
    let Checked {
        workload,
        cluster,
        launches,
        worker_nodes,
    } = checked;
    let run = Run {
        args,
        names: cluster.nodes.clone(),
        several: !args.services.is_empty(),
        launches,
        worker_nodes,
        seed,
        seed_line,
        console,
        store,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    if run.several {
        console.info("runner", "workloads.run", &cluster::describe(&run.launches));
    }
    let started = start::start_nodes(&run, tx);
    let (net_rng, rngs) = start::rngs(seed);
    let latency = Latency {
        mean_ms: args.latency,
        dist: args.latency_dist,
    };
    let net = Network::new(run.names.len() as u32, latency, net_rng);
    let settings = start::settings(
        args,
        workload.as_ref(),
        run.names.len(),
        run.worker_nodes.clone(),
    );
    let mut engine = Engine::new(
        console.clone(),
        started.nodes,
        started.spawner,
        started.clocks,
        rx,
        workload,
        cluster,
        settings,
        net,
        rngs,
        started.clock,
    );
    let outcome = match started.error {
        Some(e) => Err(RunError::Setup(e)),
        None => engine.run().await,
    };
    console.info("runner", "workloads.run", "Tearing down nodes");
    engine.shut_down().await;
    finish::finish_run(&run, &engine, outcome, started.wall)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli;
    use clap::Parser;

    /// Options as the command line would give them (tests may use the layer above).
    pub(crate) fn args(extra: &[&str]) -> TestOptions {
        let mut argv = vec!["--bin", "node"];
        argv.extend_from_slice(extra);
        args_of(&argv)
    }

    /// Options from exactly these words after `workloads test`.
    pub(crate) fn args_of(words: &[&str]) -> TestOptions {
        let mut argv = vec!["workloads", "test"];
        argv.extend_from_slice(words);
        match cli::Cli::try_parse_from(argv).unwrap().command {
            cli::Command::Test(t) => t.into(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn node_ids_follow_maelstrom() {
        assert_eq!(
            node_names(&args(&["--node-count", "3"])).unwrap(),
            ["n0", "n1", "n2"]
        );
        assert_eq!(
            node_names(&args(&[])).unwrap(),
            ["n1", "n2", "n3", "n4", "n5"],
            "Jepsen's default node list"
        );
        assert_eq!(node_names(&args(&["--nodes", "a,b"])).unwrap(), ["a", "b"]);
        assert!(node_names(&args(&["--node-count", "0"])).is_err());
        assert!(node_names(&args(&["--nodes", "a,c1"])).is_err());
        assert!(node_names(&args(&["--nodes", "a,a"])).is_err());
        assert!(node_names(&args(&["--nodes", "lin-kv"])).is_err());
    }

    #[test]
    fn bad_combinations_are_refused() {
        let err = |extra: &[&str]| check_args(&args(extra)).err().map(|BadArgs(m)| m);
        assert!(err(&["-w", "kafka"])
            .unwrap()
            .contains("supported workloads"));
        assert!(err(&["-w", "echo"]).unwrap().contains("no such file"));
        assert!(err(&["-w", "echo", "--rate", "-1"])
            .unwrap()
            .contains("--rate"));
    }

    #[test]
    fn the_final_line_names_verdict_seed_and_results() {
        let path = Path::new("store/echo/20261203T080000.000+0000/results.edn");
        assert_eq!(
            final_line(1, 42, path),
            "Run ended: invalid (exit 1), seed 42, results store/echo/20261203T080000.000+0000/results.edn"
        );
        assert!(final_line(0, 1, path).starts_with("Run ended: valid (exit 0), seed 1,"));
        assert!(final_line(2, 1, path).starts_with("Run ended: unknown (exit 2)"));
    }

    #[test]
    fn values_that_check_nothing_are_refused_with_the_reason() {
        let err = |extra: &[&str]| {
            let mut argv = vec!["-w", "echo"];
            argv.extend_from_slice(extra);
            check_numbers(&args(&argv)).err().map(|BadArgs(m)| m)
        };
        let said = |extra: &[&str], what: &str| {
            let why = err(extra).unwrap_or_else(|| panic!("{extra:?} accepted"));
            assert!(why.contains(what), "{extra:?}: {why}");
        };
        said(
            &["--time-limit", "0"],
            "--time-limit must be at least 1 second",
        );
        said(&["--rate", "0"], "--rate must be a number above 0, got 0");
        said(&["--rate", "-2"], "--rate must be a number above 0, got -2");
        said(&["--rate", "NaN"], "--rate");
        said(&["--nemesis-interval", "0"], "at least 0.1 s, got 0");
        said(&["--nemesis-interval", "0.05"], "at least 0.1 s, got 0.05");
        said(&["--nemesis-interval", "-1"], "--nemesis-interval");
        assert_eq!(err(&["--time-limit", "1", "--rate", "0.1"]), None);
        assert_eq!(err(&["--nemesis-interval", "0.1"]), None);
    }

    #[test]
    fn a_bin_that_cannot_run_is_named_for_what_it_is() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("workloads-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let why = |p: &Path| {
            check_bin("--bin", p)
                .err()
                .map(|BadArgs(m)| m)
                .unwrap_or_default()
        };
        assert!(
            why(&dir).ends_with("is a directory, not a node binary"),
            "{}",
            why(&dir)
        );
        assert!(why(&plain).contains("is not executable"), "{}", why(&plain));
        assert!(why(&dir.join("absent")).contains("no such file"));
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check_bin("--bin", &plain), Ok(plain.clone()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
