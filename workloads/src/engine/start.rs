//! Starting a run: the node processes (with libfaketime under the clock nemesis), the
//! seeded random sources and the runner's settings. Only [`start_nodes`] touches processes
//! and files; the rest are plain functions of the options.

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use super::cluster::Launch;
use super::faketime::{self, Clocks};
use super::options::TestOptions;
use super::process::{NodeEvent, NodeProcess, Spawner};
use super::runner::{Rngs, Settings};
use super::{working_dirs, Run};
use crate::nemesis::{Config as NemesisConfig, Kind, Lossy, Pacing};
use crate::workload::Workload;

/// The nodes as started, and why the run cannot go on, if it cannot.
pub(super) struct Started {
    pub nodes: Vec<NodeProcess>,
    pub spawner: Spawner,
    pub clocks: Option<Clocks>,
    /// The engine's clock, from just before the first node started.
    pub clock: Instant,
    /// The wall clock at the same moment.
    pub wall: SystemTime,
    pub error: Option<String>,
}

/// Creates the working directories and clock files, and starts every node; stops at the
/// first failure, which is returned for the run to end with.
pub(super) fn start_nodes(run: &Run, events: mpsc::UnboundedSender<NodeEvent>) -> Started {
    let (args, names, store) = (run.args, &run.names, run.store);
    let clocked = args.nemesis_kinds().contains(&Kind::Clock);
    let (dirs, mut error) = working_dirs(args, store, names, run.console);
    let clock_files: Vec<PathBuf> = names.iter().map(|n| store.clock_file(n)).collect();
    let spawner = Spawner {
        programs: programs(&run.launches),
        log_stderr: args.log_stderr,
        names: names.clone(),
        dirs,
        logs: names.iter().map(|n| store.node_log(n)).collect(),
        env: node_env(clocked, &clock_files),
        events,
        console: run.console.clone(),
    };
    let (clock, wall) = (Instant::now(), SystemTime::now());
    let clocks = match clocked.then(|| Clocks::create(clock_files, 0)) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            error.get_or_insert(format!("Could not write the clock files: {e}"));
            None
        }
        None => None,
    };
    let mut nodes = Vec::new();
    if error.is_none() {
        for (i, name) in names.iter().enumerate() {
            match spawner.spawn(i as u32, 0) {
                Ok(p) => nodes.push(p),
                Err(e) => {
                    let bin = spawner.programs[i].0.display();
                    error = Some(format!("Could not start node {name} ({bin}): {e}"));
                    break;
                }
            }
        }
    }
    let started = format!("Started {} node(s): {}", nodes.len(), names.join(" "));
    run.console.info("runner", "workloads.run", &started);
    Started {
        nodes,
        spawner,
        clocks,
        clock,
        wall,
        error,
    }
}

/// Each node's binary and arguments, from its service.
fn programs(launches: &[Launch]) -> Vec<(PathBuf, Vec<String>)> {
    launches
        .iter()
        .flat_map(|l| l.nodes.iter().map(|_| (l.bin.clone(), l.args.clone())))
        .collect()
}

/// Each node's extra environment: libfaketime's under the clock nemesis, else none.
fn node_env(clocked: bool, clock_files: &[PathBuf]) -> Vec<Vec<(String, String)>> {
    match (clocked, faketime::find_library()) {
        (false, _) => vec![Vec::new(); clock_files.len()],
        (true, Some(lib)) => clock_files
            .iter()
            .map(|f| faketime::environment(&lib, f))
            .collect(),
        (true, None) => unreachable!("check_args refuses the clock nemesis without libfaketime"),
    }
}

/// The network's random source and the others, all drawn from the run's seed in a fixed
/// order, so that a seed replays the same run.
pub(super) fn rngs(seed: u64) -> (StdRng, Rngs) {
    let mut master = StdRng::seed_from_u64(seed);
    let net = StdRng::seed_from_u64(master.gen());
    let rngs = Rngs {
        services: StdRng::seed_from_u64(master.gen()),
        generator: StdRng::seed_from_u64(master.gen()),
        nemesis: StdRng::seed_from_u64(master.gen()),
    };
    (net, rngs)
}

/// The runner's settings: the options in nanoseconds, the workload's reply timeout, the
/// node each worker talks to, and the nemesis's configuration when faults were asked for.
pub(super) fn settings(
    args: &TestOptions,
    workload: &dyn Workload,
    nodes: usize,
    worker_nodes: Vec<usize>,
) -> Settings {
    let kinds = args.nemesis_kinds();
    let time_limit = args.time_limit * 1_000_000_000;
    let client_timeout = workload.client().timeout_ms(args.latency) * 1_000_000;
    Settings {
        time_limit,
        rate: args.rate,
        concurrency: args.concurrency.workers(nodes),
        worker_nodes,
        services_in_init: !args.services.is_empty(),
        client_timeout,
        nemesis: (!kinds.is_empty()).then(|| NemesisConfig {
            kinds: kinds.clone(),
            interval_s: args.nemesis_interval,
            shapes: args.shapes(),
            lossy: Lossy::uniform(args.lossy_rate),
            pacing: Pacing {
                run_ns: time_limit,
                client_timeout_ns: client_timeout,
            },
        }),
        log_net_send: args.log_net_send,
        log_net_recv: args.log_net_recv,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::args;
    use crate::workload::by_name;

    #[test]
    fn settings_follow_the_options_and_the_workload() {
        let lin = by_name("lin-kv").unwrap();
        let s = settings(
            &args(&["--latency", "300", "--time-limit", "7"]),
            lin.as_ref(),
            3,
            Vec::new(),
        );
        assert_eq!((s.time_limit, s.concurrency), (7_000_000_000, 3));
        assert_eq!(s.client_timeout, 3_000_000_000, "lin-kv waits 10 latencies");
        assert!(s.nemesis.is_none());
        let echo = by_name("echo").unwrap();
        let s = settings(
            &args(&["--nemesis", "kill", "--concurrency", "2n"]),
            echo.as_ref(),
            5,
            Vec::new(),
        );
        assert_eq!((s.client_timeout, s.concurrency), (5_000_000_000, 10));
        let nemesis = s.nemesis.expect("kill asked for");
        assert_eq!(nemesis.kinds.into_iter().collect::<Vec<_>>(), [Kind::Kill]);
        assert_eq!(nemesis.pacing.client_timeout_ns, 5_000_000_000);
    }

    #[test]
    fn a_seed_gives_the_same_sources_and_another_seed_others() {
        let draw = |seed| {
            let (mut net, mut r) = rngs(seed);
            [
                net.gen::<u64>(),
                r.services.gen(),
                r.generator.gen(),
                r.nemesis.gen(),
            ]
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let d = draw(7);
        assert!(d.iter().all(|x| d.iter().filter(|y| *y == x).count() == 1));
    }

    #[test]
    fn nodes_get_libfaketime_only_under_the_clock_nemesis() {
        let files = vec![PathBuf::from("a.rc"), PathBuf::from("b.rc")];
        assert_eq!(node_env(false, &files), vec![Vec::new(), Vec::new()]);
    }

    #[test]
    fn each_node_runs_its_own_services_binary_and_arguments() {
        let launch = |name: &str, nodes: &[&str], args: &[&str]| Launch {
            name: name.into(),
            bin: PathBuf::from(format!("/bin/{name}")),
            args: args.iter().map(|s| s.to_string()).collect(),
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
        };
        let p = programs(&[
            launch("a", &["n0"], &["-x"]),
            launch("b", &["n1", "n2"], &[]),
        ]);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0], (PathBuf::from("/bin/a"), vec!["-x".to_string()]));
        assert_eq!(p[1], (PathBuf::from("/bin/b"), Vec::new()));
        assert_eq!(p[2], p[1]);
    }
}
