//! The command line: Maelstrom's `test` options under the same names, meanings and defaults,
//! plus `--seed`, and an `analyze` subcommand.
//!
//! Parsing only turns strings into typed options, and those are defined where they are used
//! (the engine's [`TestOptions`], the nemesis's kinds and shapes, the network's latency
//! distribution): the command line sits above the engine, never under the model. Whether a
//! combination makes sense (a workload we support, a node binary that exists) is decided by
//! [`crate::engine`], so that every refusal, from clap or from us, leaves with Maelstrom's
//! bad-arguments status.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use crate::checker::availability::Availability;
use crate::engine::options::{self, Concurrency, ServiceSpec, TestOptions};
use crate::nemesis::partition::Shape;
use crate::nemesis::Kind;
use crate::net::LatencyDist;
use crate::scenario::Listing;
use crate::topology::Topology;

const AFTER_HELP: &str = "\
Exit status: 0 valid, 1 invalid (an anomaly was found), 2 unknown validity, a node crash, an \
init failure or any harness error (Maelstrom reports a crash as 255), 254 bad arguments (as \
Maelstrom).

Results go to store/<workload>/<yyyyMMdd'T'HHmmss.SSS+ZZZZ>/ under the current directory; \
store/latest and store/<workload>/latest point to the newest run.";

/// A Maelstrom-compatible test harness: runs any Maelstrom node binary under a simulated
/// network, records the history, checks it and writes Jepsen-style results.
#[derive(Debug, Parser)]
#[command(name = "workloads", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a test: start the nodes, drive a workload against them, check the history.
    Test(TestArgs),
    /// Re-check a stored run's history.edn and print the verdict.
    Analyze(AnalyzeArgs),
    /// Print the fault scenarios, or the Makefile targets / CI matrix generated from them.
    Scenarios(ScenariosArgs),
    /// Serve the store as web pages: every run, its results, plots and logs.
    Serve(crate::serve::ServeArgs),
}

/// Options of `workloads scenarios`.
#[derive(Debug, Clone, Args)]
pub struct ScenariosArgs {
    /// Print scenarios.mk, the Makefile targets of every scenario.
    #[arg(long, conflicts_with = "ci_matrix")]
    pub makefile: bool,
    /// Print the scenario line of the CI workflow's matrix.
    #[arg(long)]
    pub ci_matrix: bool,
}

/// Options of `workloads test`, named as Maelstrom names them.
/// A repeated option takes its last value, as in Maelstrom, so a scenario can refine the
/// options of its fault.
#[derive(Debug, Clone, Args)]
#[command(after_help = AFTER_HELP, args_override_self = true)]
pub struct TestArgs {
    /// The workload to run: echo, unique-ids, broadcast, g-set, g-counter, pn-counter.
    /// The default is Maelstrom's (lin-kv), which this harness does not run yet.
    #[arg(short = 'w', long, default_value = "lin-kv")]
    pub workload: String,

    /// The node binary (any executable: a compiled program, or a script with a shebang).
    /// Relative paths are resolved against the current directory. Its own arguments go
    /// after `--`, at the end of the command line.
    #[arg(long, value_name = "FILE", required_unless_present = "service")]
    pub bin: Option<PathBuf>,

    /// A service of a cluster of several binaries, instead of --bin: COUNT nodes running
    /// BIN. Repeatable; node ids run n0, n1, … across the services in the order given, and
    /// each node's init names its own service's nodes in `node_ids` and every service's in
    /// an extra field `services`. The arguments after `--` go to every binary. Not a
    /// Maelstrom option.
    #[arg(
        long,
        value_name = "NAME=BIN:COUNT",
        value_parser = parse_service,
        conflicts_with_all = ["bin", "node_count", "nodes"]
    )]
    pub service: Vec<ServiceSpec>,

    /// Arguments for one service's binary only, appended after those after `--`, split as
    /// a shell splits words: `--service-args matcher="--broken enqueue-before-log"`.
    /// Repeatable. Not a Maelstrom option.
    #[arg(
        long,
        value_name = "NAME=ARGS",
        value_parser = parse_service_args,
        conflicts_with = "bin"
    )]
    pub service_args: Vec<(String, Vec<String>)>,

    /// Run N nodes named n0 … n(N-1). Without it (and without --nodes) the nodes are
    /// n1 … n5, Jepsen's default list.
    #[arg(long, value_name = "N")]
    pub node_count: Option<usize>,

    /// Comma-separated node names, instead of the default n1 … n5 (--node-count wins).
    #[arg(long, value_name = "A,B,…", value_delimiter = ',')]
    pub nodes: Vec<String>,

    /// Seconds of client operations (the main phase), at least 1.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub time_limit: u64,

    /// Client requests per second, over all clients (float, above 0). Maelstrom takes 0 for
    /// a run without client operations; here that is refused, since such a run checks
    /// nothing and would still be reported valid.
    #[arg(
        long,
        value_name = "R",
        default_value_t = 5.0,
        allow_negative_numbers = true
    )]
    pub rate: f64,

    /// Number of client workers: an integer, or Kn for K times the node count.
    #[arg(long, value_name = "N|Kn", default_value = "1n")]
    pub concurrency: Concurrency,

    /// Mean one-way latency in milliseconds between non-client peers (nodes, services).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency: u64,

    /// How latencies are drawn around --latency.
    #[arg(long, default_value = "constant", value_parser = latency_dist_parser())]
    pub latency_dist: LatencyDist,

    /// Faults to inject, comma-separated and freely combined: partition, kill (SIGKILL and
    /// restart in the same directory), pause (SIGSTOP/SIGCONT), clock (wall-clock jumps and
    /// drift through libfaketime), lossy (dropped, duplicated, reordered messages), or all.
    #[arg(long, value_name = "KINDS", value_delimiter = ',', value_parser = parse_kind)]
    pub nemesis: Vec<NemesisChoice>,

    /// Partition shapes to draw from, comma-separated: one, minority-third, majority (alias
    /// halves), majorities-ring, bridge. Default: Maelstrom's first four.
    #[arg(long, value_name = "SHAPES", value_delimiter = ',', value_parser = parse_shape)]
    pub partition_shapes: Vec<Shape>,

    /// Probability that the lossy fault drops, duplicates or reorders a node-to-node
    /// message (each, independently).
    #[arg(
        long,
        value_name = "P",
        default_value_t = 0.1,
        allow_negative_numbers = true
    )]
    pub lossy_rate: f64,

    /// Mean seconds between nemesis operations, at least 0.1.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    pub nemesis_interval: f64,

    /// Availability requirement: nil (no check), total (every op ok), or a fraction 0–1 of
    /// invocations that must succeed.
    #[arg(long, value_name = "nil|total|FRACTION", default_value = "nil")]
    pub availability: Availability,

    /// Broadcast topology sent to the nodes at setup.
    #[arg(long, default_value = "grid", value_parser = topology_parser())]
    pub topology: Topology,

    /// The working directory every node starts in, shared by all of them (created if
    /// missing). Default: the system's temporary directory, as Maelstrom (the JVM's
    /// java.io.tmpdir). Not a Maelstrom option.
    #[arg(long, value_name = "DIR", conflicts_with = "node_dir_per_node")]
    pub node_dir: Option<PathBuf>,

    /// Start each node in a working directory of its own, store/…/node-dirs/NODE/, instead
    /// of one shared by all. Not a Maelstrom option.
    #[arg(long)]
    pub node_dir_per_node: bool,

    /// Copy each node's stderr to the console and the run log (it always goes to
    /// node-logs/NODE.log).
    #[arg(long)]
    pub log_stderr: bool,

    /// Log every message sent through the network.
    #[arg(long)]
    pub log_net_send: bool,

    /// Log every message delivered by the network.
    #[arg(long)]
    pub log_net_recv: bool,

    /// Seed for every random choice the harness makes (ops, latencies, partitions,
    /// services). Printed at the start and the end of each run; random when absent.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// The verdict the run is meant to reach: `invalid` for a node broken on purpose.
    /// Recorded in run.json for the reports; the exit status does not depend on it.
    #[arg(long, value_enum, value_name = "VERDICT")]
    pub expect: Option<crate::store::Expect>,

    /// Arguments passed to the node binary, after `--`: `--bin node -- --flag value`.
    /// Maelstrom also takes stray words as node arguments; here they are refused, so that a
    /// mistyped option is reported instead of being handed to the node.
    #[arg(value_name = "NODE_ARGS", last = true)]
    pub args: Vec<String>,
}

impl ScenariosArgs {
    pub fn listing(&self) -> Listing {
        match (self.makefile, self.ci_matrix) {
            (true, _) => Listing::Makefile,
            (_, true) => Listing::CiMatrix,
            _ => Listing::Table,
        }
    }
}

/// Options of `workloads analyze`.
#[derive(Debug, Clone, Args)]
pub struct AnalyzeArgs {
    /// A stored run: a directory holding history.edn. Defaults to store/latest.
    #[arg(
        short = 't',
        long = "test",
        value_name = "PATH",
        default_value = "store/latest"
    )]
    pub test: PathBuf,

    /// The workload whose checker to use; read from the run's results when absent.
    #[arg(short = 'w', long)]
    pub workload: Option<String>,

    /// Availability requirement, as for `test`.
    #[arg(long, value_name = "nil|total|FRACTION", default_value = "nil")]
    pub availability: Availability,
}

/// One `--nemesis` word: a kind, or `all` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NemesisChoice {
    One(Kind),
    All,
}

fn parse_kind(s: &str) -> Result<NemesisChoice, String> {
    if s == "all" {
        return Ok(NemesisChoice::All);
    }
    Kind::parse(s).map(NemesisChoice::One).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        format!("expected one of {}, or all", names.join(", "))
    })
}

fn parse_service(s: &str) -> Result<ServiceSpec, String> {
    s.parse()
}

fn parse_service_args(s: &str) -> Result<(String, Vec<String>), String> {
    options::parse_service_args(s)
}

fn parse_shape(s: &str) -> Result<Shape, String> {
    Shape::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Shape::ALL.iter().map(|k| k.keyword()).collect();
        format!("expected one of {} (or halves)", names.join(", "))
    })
}

impl From<TestArgs> for TestOptions {
    fn from(a: TestArgs) -> Self {
        let nemesis = a
            .nemesis
            .iter()
            .flat_map(|c| match c {
                NemesisChoice::One(k) => vec![*k],
                NemesisChoice::All => Kind::ALL.to_vec(),
            })
            .collect();
        TestOptions {
            workload: a.workload,
            bin: a.bin,
            services: a.service,
            service_args: a.service_args,
            node_count: a.node_count,
            nodes: a.nodes,
            time_limit: a.time_limit,
            rate: a.rate,
            concurrency: a.concurrency,
            latency: a.latency,
            latency_dist: a.latency_dist,
            nemesis,
            partition_shapes: a.partition_shapes,
            lossy_rate: a.lossy_rate,
            nemesis_interval: a.nemesis_interval,
            availability: a.availability,
            topology: a.topology,
            node_dir: a.node_dir,
            node_dir_per_node: a.node_dir_per_node,
            log_stderr: a.log_stderr,
            log_net_send: a.log_net_send,
            log_net_recv: a.log_net_recv,
            seed: a.seed,
            expect: a.expect,
            args: a.args,
        }
    }
}

fn topology_parser() -> impl TypedValueParser<Value = Topology> {
    let names = Topology::ALL.map(|t| match t {
        Topology::Tree2 => PossibleValue::new(t.name()).alias("tree"),
        _ => PossibleValue::new(t.name()),
    });
    PossibleValuesParser::new(names).map(|w| Topology::parse(&w).expect("a listed name"))
}

fn latency_dist_parser() -> impl TypedValueParser<Value = LatencyDist> {
    let names = LatencyDist::ALL.map(|d| PossibleValue::new(d.name()));
    PossibleValuesParser::new(names).map(|w| LatencyDist::parse(&w).expect("a listed name"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn parse(args: &[&str]) -> TestArgs {
        let mut argv = vec!["workloads", "test"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Test(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_maelstroms() {
        let t = parse(&["--bin", "node"]);
        assert_eq!(t.workload, "lin-kv");
        assert_eq!(t.time_limit, 60);
        assert_eq!(t.rate, 5.0);
        assert_eq!(t.concurrency, Concurrency::PerNode(1));
        assert_eq!(t.latency, 0);
        assert_eq!(t.latency_dist, LatencyDist::Constant);
        assert!(t.nemesis.is_empty());
        assert_eq!(t.nemesis_interval, 10.0);
        assert_eq!(t.availability, Availability::Unchecked);
        assert_eq!(t.topology, Topology::Grid);
        assert_eq!(t.node_count, None);
    }

    #[test]
    fn node_arguments_follow_the_double_dash() {
        let t = parse(&[
            "-w", "echo", "--bin", "node", "--rate", "2.5", "--", "x", "-y",
        ]);
        assert_eq!(t.args, vec!["x", "-y"]);
        assert_eq!(t.rate, 2.5);
        let t = parse(&["--bin", "node", "--", "--flag", "--rate", "1"]);
        assert_eq!(t.args, vec!["--flag", "--rate", "1"]);
        assert_eq!(t.rate, 5.0, "options after -- belong to the node");
    }

    fn opts(args: &[&str]) -> TestOptions {
        parse(args).into()
    }

    fn refusal(args: &[&str]) -> clap::Error {
        let mut argv = vec!["workloads", "test"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect_err("refused")
    }

    #[test]
    fn words_before_the_double_dash_are_refused() {
        let e = refusal(&["--bin", "node", "x"]);
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
        assert!(e.use_stderr(), "an error, so exit status 254");
        assert!(e.to_string().contains("'x'"), "{e}");
    }

    #[test]
    fn a_mistyped_option_is_named_with_a_hint() {
        for argv in [
            &[
                "-w",
                "echo",
                "--bin",
                "b",
                "--node-cout",
                "1",
                "--time-limit",
                "2",
            ][..],
            &["-w", "echo", "--node-cout", "1", "--bin", "b"],
            &["-w", "echo", "--node-cout", "1"],
        ] {
            let e = refusal(argv);
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{argv:?}"
            );
            let text = e.to_string();
            assert!(text.contains("'--node-cout'"), "{text}");
            assert!(
                text.contains("similar argument exists: '--node-count'"),
                "{text}"
            );
            assert!(!text.contains("required"), "{text}");
        }
        let text = refusal(&["--bin", "b", "--nemesis-intreval", "2"]).to_string();
        assert!(text.contains("'--nemesis-interval'"), "{text}");
    }

    #[test]
    fn analyze_is_as_strict() {
        let e = Cli::try_parse_from(["workloads", "analyze", "--tset", "store/latest"])
            .expect_err("refused");
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
        assert!(e.to_string().contains("'--test'"), "{e}");
        let e = Cli::try_parse_from(["workloads", "analyze", "store/latest"]).expect_err("refused");
        assert!(e.use_stderr(), "{e}");
    }

    #[test]
    fn concurrency_accepts_integers_and_multiples_of_n() {
        assert_eq!("3".parse(), Ok(Concurrency::Exactly(3)));
        assert_eq!("2n".parse(), Ok(Concurrency::PerNode(2)));
        assert_eq!("n".parse(), Ok(Concurrency::PerNode(1)));
        assert!("xn".parse::<Concurrency>().is_err());
        assert_eq!(Concurrency::PerNode(2).workers(5), 10);
    }

    #[test]
    fn nemesis_and_topology_names() {
        let t = parse(&["--bin", "b", "--nemesis", "partition", "--topology", "tree"]);
        assert_eq!(t.nemesis, vec![NemesisChoice::One(Kind::Partition)]);
        assert_eq!(t.topology, Topology::Tree2);
        assert_eq!(TestOptions::from(t).shapes(), Shape::MAELSTROM.to_vec());
        let t = opts(&[
            "--bin",
            "b",
            "--nemesis",
            "kill,pause",
            "--partition-shapes",
            "bridge,halves",
        ]);
        assert_eq!(t.nemesis_kinds(), BTreeSet::from([Kind::Kill, Kind::Pause]));
        assert_eq!(t.shapes(), vec![Shape::Majority, Shape::Bridge]);
        assert_eq!(
            opts(&["--bin", "b", "--nemesis", "all"])
                .nemesis_kinds()
                .len(),
            5
        );
        for bad in [&["--nemesis", "flood"][..], &["--partition-shapes", "ring"]] {
            let mut argv = vec!["workloads", "test", "--bin", "b"];
            argv.extend_from_slice(bad);
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
        }
        let t = parse(&[
            "--bin",
            "b",
            "--nemesis-interval",
            "2",
            "--nemesis-interval",
            "1",
        ]);
        assert_eq!(t.nemesis_interval, 1.0, "the last value wins");
        let line = opts(&["--bin", "b", "--nemesis", "lossy,partition"]).replay_command(1);
        assert!(
            line.contains("--nemesis partition,lossy --lossy-rate 0.1"),
            "{line}"
        );
    }

    #[test]
    fn availability_forms() {
        assert_eq!("total".parse(), Ok(Availability::Total));
        assert_eq!("0.5".parse(), Ok(Availability::Fraction(0.5)));
        assert_eq!("nil".parse(), Ok(Availability::Unchecked));
        assert!("2".parse::<Availability>().is_err());
    }

    #[test]
    fn replay_command_round_trips() {
        let t = opts(&[
            "-w",
            "echo",
            "--bin",
            "my node",
            "--node-count",
            "3",
            "--",
            "a b",
        ]);
        let line = t.replay_command(42);
        assert!(line.contains("--seed 42"), "{line}");
        assert!(line.contains("'my node'"), "{line}");
        assert!(line.ends_with("-- 'a b'"), "{line}");
    }

    #[test]
    fn replay_command_keeps_where_the_nodes_start() {
        for (extra, want) in [
            (&["--node-dir", "my nodes"][..], "--node-dir 'my nodes'"),
            (&["--node-dir-per-node"][..], "--node-dir-per-node"),
        ] {
            let mut argv = vec!["--bin", "b"];
            argv.extend_from_slice(extra);
            let line = opts(&argv).replay_command(7);
            assert!(line.contains(want), "{line}");
        }
        let line = opts(&["--bin", "b"]).replay_command(7);
        assert!(!line.contains("--node-dir"), "{line}");
    }

    #[test]
    fn services_keep_their_order_and_their_own_arguments() {
        let t = parse(&[
            "-w",
            "echo",
            "--service",
            "giftid=target/debug/giftid-node:3",
            "--service",
            "queue=bin/q=x:y:2",
            "--service-args",
            "queue=--broken 'two words' \"a\\\"b\"",
            "--",
            "--common",
        ]);
        assert_eq!(t.bin, None);
        let names: Vec<(&str, usize)> = t
            .service
            .iter()
            .map(|s| (s.name.as_str(), s.count))
            .collect();
        assert_eq!(names, [("giftid", 3), ("queue", 2)]);
        assert_eq!(
            t.service[1].bin,
            PathBuf::from("bin/q=x:y"),
            "the count follows the last :"
        );
        assert_eq!(
            t.service_args,
            [(
                "queue".to_string(),
                vec!["--broken".into(), "two words".into(), "a\"b".into()]
            )]
        );
        assert_eq!(t.args, ["--common"]);
    }

    #[test]
    fn bad_service_forms_and_conflicts_are_clap_errors() {
        use clap::error::ErrorKind;
        for (argv, kind, said) in [
            (
                &["--service", "a=b"][..],
                ErrorKind::ValueValidation,
                "NAME=BIN:COUNT",
            ),
            (
                &["--service", "b:2"],
                ErrorKind::ValueValidation,
                "NAME=BIN:COUNT",
            ),
            (
                &["--service", "A=b:2"],
                ErrorKind::ValueValidation,
                "bad service name",
            ),
            (
                &["--service", "1a=b:2"],
                ErrorKind::ValueValidation,
                "bad service name",
            ),
            (
                &["--service", "a=b:0"],
                ErrorKind::ValueValidation,
                "at least 1",
            ),
            (
                &["--service", "a=b:x"],
                ErrorKind::ValueValidation,
                "at least 1",
            ),
            (
                &["--service", "a=:2"],
                ErrorKind::ValueValidation,
                "is empty",
            ),
            (
                &["--service", "a=b:2", "--service-args", "a"],
                ErrorKind::ValueValidation,
                "NAME=ARGS",
            ),
            (
                &["--service", "a=b:2", "--service-args", "a='x"],
                ErrorKind::ValueValidation,
                "unclosed '",
            ),
            (
                &["--service", "a=b:2", "--bin", "b"],
                ErrorKind::ArgumentConflict,
                "--bin",
            ),
            (
                &["--service", "a=b:2", "--node-count", "2"],
                ErrorKind::ArgumentConflict,
                "--node-count",
            ),
            (
                &["--service", "a=b:2", "--nodes", "x,y"],
                ErrorKind::ArgumentConflict,
                "--nodes",
            ),
            (
                &["--bin", "b", "--service-args", "a=x"],
                ErrorKind::ArgumentConflict,
                "--service-args",
            ),
            (&["-w", "echo"], ErrorKind::MissingRequiredArgument, "--bin"),
        ] {
            let e = refusal(argv);
            assert_eq!(e.kind(), kind, "{argv:?}: {e}");
            assert!(e.use_stderr(), "an error, so exit status 254");
            assert!(e.to_string().contains(said), "{argv:?}: {e}");
        }
    }

    #[test]
    fn replay_command_round_trips_services() {
        let t = opts(&[
            "-w",
            "echo",
            "--service",
            "a=my bin:2",
            "--service",
            "b=other:1",
            "--service-args",
            "b=--flag 'x y'",
            "--",
            "--all",
        ]);
        let line = t.replay_command(9);
        assert!(
            line.contains("--service 'a=my bin:2' --service b=other:1"),
            "{line}"
        );
        assert!(!line.contains("--bin"), "{line}");
        let words = options::split_words(&line).unwrap();
        let again: TestOptions =
            parse(&words[2..].iter().map(String::as_str).collect::<Vec<_>>()).into();
        assert_eq!(again.services, t.services);
        assert_eq!(again.service_args, t.service_args);
        assert_eq!(again.args, t.args);
        assert_eq!(again.seed, Some(9));
        assert_eq!(again.replay_command(9), line);
    }

    #[test]
    fn words_split_as_a_shell_splits_them() {
        let split = |s: &str| options::split_words(s).unwrap();
        assert_eq!(split("  a  b\tc "), ["a", "b", "c"]);
        assert_eq!(split(r#"'a b'"c d"e\ f"#), ["a bc de f"]);
        assert_eq!(split(r#""\$\x" '' """#), ["$\\x", "", ""]);
        assert_eq!(split(""), Vec::<String>::new());
        assert!(options::split_words("\"a").is_err());
        assert!(options::split_words("a\\").is_err());
    }
}
