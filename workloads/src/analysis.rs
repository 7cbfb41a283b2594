//! Analysis: composes the checkers into the results map, in the order and under the keys
//! of Maelstrom's results.edn — `:perf`, `:timeline`, `:exceptions`, `:stats`,
//! `:availability`, `:net`, `:workload` — then our own `:clock` (under the clock nemesis) and
//! `:harness` sections, then the merged `:valid?`. Also the verdict line, and `analyze`,
//! which re-checks a stored history.
//!
//! `:harness` never invalidates a run; it reports the seed, the lines nodes printed that were
//! not messages (Maelstrom would have stopped reading such a node; we log, count and go on)
//! and messages dropped by partitions.

use std::path::Path;

use crate::checker;
use crate::checker::availability::Availability;
use crate::checker::net::ServiceTraffic;
use crate::edn::Edn;
use crate::history::History;
use crate::net::{Counters, Network};
use crate::store::RunInfo;
use crate::workload::{self, RunFacts, Workload};

/// Exit status for a valid run.
pub const EXIT_VALID: i32 = 0;
/// Exit status for an invalid run: a checker found an anomaly.
pub const EXIT_INVALID: i32 = 1;
/// Exit status when validity is unknown, or the run crashed (Maelstrom uses 255 for the
/// latter; one status for "no verdict" is simpler to script against).
pub const EXIT_UNKNOWN: i32 = 2;
/// Exit status for bad arguments, the same as Maelstrom's.
pub const EXIT_BAD_ARGS: i32 = 254;

pub const VALID_LINE: &str = "Everything looks good! ヽ(‘ー`)ノ";
pub const INVALID_LINE: &str = "Analysis invalid! (ﾉಥ益ಥ）ﾉ ┻━┻";
pub const UNKNOWN_LINE: &str = "Errors occurred during analysis, but no anomalies found. ಠ~ಠ";

/// Problem lines quoted in the results.
const EXAMPLES: usize = 10;

/// Lines from nodes that were not messages, or went nowhere.
#[derive(Debug, Default, Clone)]
pub struct Problems {
    pub not_json: u64,
    pub malformed: u64,
    pub unknown_dest: u64,
    pub unknown_src: u64,
    pub examples: Vec<String>,
    /// Messages that arrived while their destination node was killed.
    pub lost_to_dead_nodes: u64,
    /// Restarted nodes that did not answer `init` with `init_ok`.
    pub failed_restarts: u64,
}

impl Problems {
    pub fn total(&self) -> u64 {
        self.not_json + self.malformed + self.unknown_dest + self.unknown_src
    }

    /// Keeps `example` if fewer than a few are kept.
    pub fn note(&mut self, example: String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(example);
        }
    }
}

/// The `:harness` section.
pub fn harness_section(seed: u64, problems: &Problems, net: &Network) -> Edn {
    let n = |x: u64| Edn::Int(x as i64);
    Edn::map(vec![
        ("valid?", Edn::Bool(true)),
        ("seed", Edn::from(seed)),
        ("not-json-lines", n(problems.not_json)),
        ("malformed-messages", n(problems.malformed)),
        ("unknown-dest-messages", n(problems.unknown_dest)),
        ("unknown-src-messages", n(problems.unknown_src)),
        (
            "examples",
            Edn::Vector(problems.examples.iter().cloned().map(Edn::Str).collect()),
        ),
        ("partition-dropped-count", n(net.counters().dropped)),
        ("lossy-dropped-count", n(net.counters().lossy_dropped)),
        ("lossy-duplicated-count", n(net.counters().duplicated)),
        ("lossy-reordered-count", n(net.counters().reordered)),
        ("lost-to-dead-nodes-count", n(problems.lost_to_dead_nodes)),
        ("failed-restarts", n(problems.failed_restarts)),
    ])
}

fn net_stats(c: Counters) -> checker::net::NetStats {
    use checker::net::{NetCounts, NetStats};
    let counts = |send: u64, recv: u64| NetCounts {
        send,
        recv,
        msg: send,
    };
    NetStats {
        all: counts(
            c.clients.send + c.servers.send,
            c.clients.recv + c.servers.recv,
        ),
        clients: counts(c.clients.send, c.clients.recv),
        servers: counts(c.servers.send, c.servers.recv),
    }
}

/// Sections of the results that come from the run rather than from a checker.
#[derive(Debug)]
pub struct RunSections {
    /// `:perf`: whether the plots were drawn.
    pub perf: Edn,
    /// `:clock`, under the clock nemesis.
    pub clock: Option<Edn>,
    pub harness: Edn,
}

/// `:perf` as Jepsen writes it, or `:unknown` with the reason when the plots failed.
pub fn perf_section(plotted: Result<(), String>) -> Edn {
    match plotted {
        Ok(()) => {
            let ok = || Edn::map(vec![("valid?", Edn::Bool(true))]);
            Edn::map(vec![
                ("latency-graph", ok()),
                ("rate-graph", ok()),
                ("valid?", Edn::Bool(true)),
            ])
        }
        Err(why) => Edn::map(vec![
            ("valid?", Edn::kw("unknown")),
            ("error", Edn::Str(why)),
        ]),
    }
}

/// The full results map of a run that completed; `services` (a cluster of several
/// binaries) adds the per-service message counts to `:net`.
pub fn results(
    workload: &dyn Workload,
    history: &History,
    facts: &RunFacts,
    (net, services): (Counters, Option<ServiceTraffic>),
    availability: Availability,
    sections: RunSections,
) -> Edn {
    let net = checker::net::check(history, &net_stats(net), services);
    let facts = RunFacts {
        net: Some(net.clone()),
        ..facts.clone()
    };
    let mut parts = vec![
        ("perf", sections.perf),
        ("timeline", checker::timeline_result()),
        ("exceptions", checker::exceptions::check(history)),
        ("stats", checker::stats::check(history)),
        (
            "availability",
            checker::availability::check(history, availability.required()),
        ),
        ("net", net),
        ("workload", workload.check(history, &facts)),
    ];
    if let Some(clock) = sections.clock {
        parts.push(("clock", clock));
    }
    parts.push(("harness", sections.harness));
    checker::compose(parts)
}

/// Results of a run that ended without a verdict (crash, init failure, interrupt).
pub fn crashed(error: &str, harness: Edn) -> Edn {
    Edn::map(vec![
        ("valid?", Edn::kw("unknown")),
        ("error", Edn::Str(error.to_string())),
        ("harness", harness),
    ])
}

/// Maelstrom's closing line and our exit status for a results map.
pub fn verdict(results: &Edn) -> (&'static str, i32) {
    match results.get("valid?") {
        Some(Edn::Bool(true)) => (VALID_LINE, EXIT_VALID),
        Some(Edn::Bool(false)) => (INVALID_LINE, EXIT_INVALID),
        _ => (UNKNOWN_LINE, EXIT_UNKNOWN),
    }
}

/// `workloads analyze`: re-checks `<test>/history.edn` with the workload's checkers.
pub fn analyze(test: &Path, workload: Option<&str>, availability: Availability) -> i32 {
    match analyze_dir(test, workload, availability) {
        Ok((results, status)) => {
            println!(
                "{}\n\n{}",
                results.to_pretty().trim_end(),
                verdict(&results).0
            );
            status
        }
        Err(why) => {
            eprintln!("workloads analyze: {why}");
            EXIT_UNKNOWN
        }
    }
}

fn analyze_dir(
    dir: &Path,
    workload: Option<&str>,
    availability: Availability,
) -> Result<(Edn, i32), String> {
    let name = match workload {
        Some(w) => w.to_string(),
        None => {
            // store/<workload>/<stamp>: the folder's parent is named after the workload.
            let real = dir
                .canonicalize()
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            real.parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .map(str::to_string)
                .ok_or("cannot tell the workload; pass -w")?
        }
    };
    let w = workload::by_name(&name)?;
    let path = dir.join("history.edn");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let history = History::from_edn_lines(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    // The stored results hold the network counts; the history does not.
    let net = std::fs::read_to_string(dir.join("results.edn"))
        .ok()
        .and_then(|t| Edn::parse(&t).ok())
        .and_then(|r| r.get("net").cloned());
    let mut parts = vec![
        ("timeline", checker::timeline_result()),
        ("exceptions", checker::exceptions::check(&history)),
        ("stats", checker::stats::check(&history)),
        (
            "availability",
            checker::availability::check(&history, availability.required()),
        ),
    ];
    if let Some(net) = net.clone() {
        parts.push(("net", net));
    }
    // The run's shape, from run.json when the run left one; its clocks are not stored.
    let facts = std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<RunInfo>(&t).ok())
        .map(|info| RunFacts {
            services: if info.services.is_empty() {
                vec![(workload::ONE_SERVICE.to_string(), info.nodes.clone())]
            } else {
                info.services
                    .into_iter()
                    .map(|s| (s.name, s.nodes))
                    .collect()
            },
            nodes: info.nodes,
            workers: info.workers,
            worker_nodes: info.worker_nodes,
            ..RunFacts::default()
        })
        .unwrap_or_default();
    let facts = RunFacts { net, ..facts };
    parts.push(("workload", w.check(&history, &facts)));
    let results = checker::compose(parts);
    let status = verdict(&results).1;
    Ok((results, status))
}
