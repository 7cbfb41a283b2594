//! Finishing a run, after its nodes stopped: the history, plots and diagram written, the
//! checkers run over the history (or the crash reported), results.edn and run.json written,
//! and the exit status decided. [`run_info`] and [`facts`] are plain functions of the run.

use std::time::{SystemTime, UNIX_EPOCH};

use super::runner::{Engine, RunError};
use super::Run;
use crate::analysis::{self, EXIT_UNKNOWN};
use crate::checker::net::ServiceTraffic;
use crate::console::Console;
use crate::edn::Edn;
use crate::facts::RunFacts;
use crate::report;
use crate::store::{RunInfo, ServiceInfo, Store, Validity};

/// A node's clock offsets over time, by node name.
type ClockSeries = Vec<(String, Vec<(u64, f64)>)>;

/// Writes everything the run left and returns its exit status.
pub(super) fn finish_run(
    run: &Run,
    engine: &Engine,
    outcome: Result<(), RunError>,
    wall_at_start: SystemTime,
) -> i32 {
    let console = run.console;
    if let Some(rss) = peak_rss_mib() {
        console.info(
            "runner",
            "workloads.run",
            &format!("Harness peak RSS {rss} MiB"),
        );
    }
    if let Err(e) = run.store.write_history(&engine.history) {
        let why = format!("cannot write the history: {e}");
        console.warn("runner", "workloads.run", &why);
    }
    let harness = analysis::harness_section(run.seed, &engine.problems, engine.net());
    let origin = engine.history_origin();
    let clock_series: ClockSeries = engine
        .clocks
        .as_ref()
        .map(|c| c.series(&run.names, origin))
        .unwrap_or_default();
    let services = if run.several {
        super::cluster::services(&run.launches)
    } else {
        Vec::new()
    };
    let plotted = report::write_all(
        &run.store.dir,
        &engine.history,
        &engine.journal,
        origin,
        &clock_series,
        &services,
    )
    .map(|_| ())
    .map_err(|e| format!("cannot draw the plots: {e}"));
    if let Err(why) = &plotted {
        console.warn("runner", "workloads.run", why);
    }
    let mut info = run_info(run, engine.cluster_workers());
    let status = match outcome {
        Ok(()) => {
            console.info("runner", "workloads.run", "Analyzing...");
            let sections = analysis::RunSections {
                perf: analysis::perf_section(plotted),
                clock: engine
                    .clocks
                    .as_ref()
                    .map(|c| c.summary(&run.names, origin)),
                harness,
            };
            let facts = facts(run, engine, wall_at_start, &clock_series);
            let traffic = run.several.then(|| ServiceTraffic {
                nodes: &facts.nodes,
                services: &facts.services,
                traffic: engine.net().traffic(),
            });
            let results = analysis::results(
                engine.workload(),
                &engine.history,
                &facts,
                (engine.net().counters(), traffic),
                run.args.availability,
                sections,
            );
            info.valid = Validity::of(&results);
            finish(console, run.store, &results, run.seed_line)
        }
        Err(err) => report_crash(run, &err, harness),
    };
    if let Err(e) = run.store.write_run_info(&info) {
        let why = format!("cannot write run.json: {e}");
        console.warn("runner", "workloads.run", &why);
    }
    status
}

/// run.json before the verdict is known.
fn run_info(run: &Run, workers: usize) -> RunInfo {
    RunInfo {
        workload: run.args.workload.clone(),
        nemesis: run
            .args
            .nemesis_kinds()
            .iter()
            .map(|k| k.name().to_string())
            .collect(),
        nodes: run.names.clone(),
        workers,
        seed: run.seed,
        time_limit: run.args.time_limit,
        command: run.args.replay_command(run.seed),
        valid: Validity::Unknown,
        expect: run.args.expect,
        services: if run.several {
            run.launches.iter().map(service_info).collect()
        } else {
            Vec::new()
        },
        worker_nodes: if run.several {
            run.worker_nodes.clone()
        } else {
            Vec::new()
        },
    }
}

/// A service as run.json records it.
fn service_info(launch: &super::cluster::Launch) -> ServiceInfo {
    ServiceInfo {
        name: launch.name.clone(),
        bin: launch.bin.display().to_string(),
        args: launch.args.clone(),
        nodes: launch.nodes.clone(),
    }
}

/// What the checkers may know besides the history: the cluster's shape, the wall clock at
/// history time zero, and every node's clock offsets.
fn facts(run: &Run, engine: &Engine, wall_at_start: SystemTime, clocks: &ClockSeries) -> RunFacts {
    let origin = engine.history_origin();
    let wall_origin_ms = wall_at_start
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64() * 1e3 + origin as f64 / 1e6);
    RunFacts {
        nodes: run.names.clone(),
        workers: engine.cluster_workers(),
        worker_nodes: run.worker_nodes.clone(),
        services: super::cluster::services(&run.launches),
        wall_origin_ms,
        clock_offsets: clocks.iter().map(|(_, s)| s.clone()).collect(),
        // Known once the run's results are put together (`analysis::results`).
        net: None,
    }
}

/// Results of a run that ended without a verdict, said on the console and written.
fn report_crash(run: &Run, err: &RunError, harness: Edn) -> i32 {
    let console = run.console;
    let said = match err {
        RunError::Interrupted(_) => format!("{err}; nodes stopped, history written."),
        _ => format!("{err}"),
    };
    console.log(
        crate::console::Level::Error,
        "runner",
        "workloads.run",
        &said,
    );
    let results = analysis::crashed(&err.to_string(), harness);
    let _ = run.store.write_results(&results);
    let wrote = format!("Wrote {}", run.store.dir.join("results.edn").display());
    console.info("runner", "workloads.run", &wrote);
    console.info("runner", "workloads.run", run.seed_line);
    console.flush();
    eprintln!("\n{err}\n");
    EXIT_UNKNOWN
}

/// Writes and prints the results, then the verdict line; returns the exit status.
fn finish(console: &Console, store: &Store, results: &Edn, seed_line: &str) -> i32 {
    if let Err(e) = store.write_results(results) {
        console.warn(
            "runner",
            "workloads.run",
            &format!("cannot write the results: {e}"),
        );
    }
    console.info("runner", "workloads.run", "Analysis complete");
    console.info(
        "runner",
        "workloads.run",
        &format!("Wrote {}", store.dir.join("results.edn").display()),
    );
    let (line, status) = analysis::verdict(results);
    console.info("runner", "workloads.run", seed_line);
    console.info(
        "runner",
        "workloads.run",
        &format!("{}\n\n{line}", results.to_pretty().trim_end()),
    );
    status
}

/// The harness's own peak resident set (VmHWM), in MiB, where /proc tells it.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.div_ceil(1024))
}
