//! The options of one test run, as the engine takes them: what `workloads test` was asked
//! for, already parsed (the command line turns its words into these, and nothing else).

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::checker::availability::Availability;
use crate::nemesis::partition::Shape;
use crate::nemesis::Kind;
use crate::net::LatencyDist;
use crate::store::Expect;
use crate::topology::Topology;

/// A test run's options, named and meant as Maelstrom's `test` options.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub workload: String,
    /// The node binary of a run of one binary; `None` when `services` are given.
    pub bin: Option<PathBuf>,
    /// The services of a cluster of several binaries, in the order given; empty for a run
    /// of one binary.
    pub services: Vec<ServiceSpec>,
    /// Extra arguments per service name (`--service-args NAME=ARGS`), after the common
    /// node arguments.
    pub service_args: Vec<(String, Vec<String>)>,
    pub node_count: Option<usize>,
    pub nodes: Vec<String>,
    /// Seconds of the main phase.
    pub time_limit: u64,
    /// Requests per second over all clients.
    pub rate: f64,
    pub concurrency: Concurrency,
    /// Mean one-way latency in milliseconds.
    pub latency: u64,
    pub latency_dist: LatencyDist,
    /// The fault kinds, `all` expanded.
    pub nemesis: BTreeSet<Kind>,
    /// Partition shapes as given; [`TestOptions::shapes`] supplies the default.
    pub partition_shapes: Vec<Shape>,
    pub lossy_rate: f64,
    /// Mean seconds between nemesis operations.
    pub nemesis_interval: f64,
    pub availability: Availability,
    pub topology: Topology,
    pub node_dir: Option<PathBuf>,
    pub node_dir_per_node: bool,
    pub log_stderr: bool,
    pub log_net_send: bool,
    pub log_net_recv: bool,
    pub seed: Option<u64>,
    pub expect: Option<Expect>,
    /// Arguments for the node binary.
    pub args: Vec<String>,
}

/// One `--service NAME=BIN:COUNT`: COUNT nodes running BIN, called service NAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    pub bin: PathBuf,
    pub count: usize,
}

impl FromStr for ServiceSpec {
    type Err = String;

    /// `NAME=BIN:COUNT`: NAME is `[a-z][a-z0-9-]*`, BIN a path (it may hold `=` and `:`;
    /// the name ends at the first `=`, the count starts after the last `:`), COUNT >= 1.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let form = "expected NAME=BIN:COUNT, like queue=target/debug/queue-node:3";
        let (name, rest) = s.split_once('=').ok_or(form)?;
        check_service_name(name)?;
        let (bin, count) = rest.rsplit_once(':').ok_or(form)?;
        if bin.is_empty() {
            return Err(format!("the binary of service {name} is empty; {form}"));
        }
        let count = match count.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(format!(
                    "COUNT must be an integer of at least 1, got {count:?}"
                ))
            }
        };
        Ok(ServiceSpec {
            name: name.to_string(),
            bin: PathBuf::from(bin),
            count,
        })
    }
}

/// A service name: `[a-z][a-z0-9-]*`.
pub fn check_service_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let good = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if good {
        Ok(())
    } else {
        Err(format!(
            "bad service name {name:?}: a lower-case letter, then lower-case letters, digits or -"
        ))
    }
}

/// One `--service-args NAME=ARGS`: the name and the words of ARGS, split as a POSIX shell
/// splits them (quotes and backslashes, no expansions).
pub fn parse_service_args(s: &str) -> Result<(String, Vec<String>), String> {
    let (name, args) = s
        .split_once('=')
        .ok_or("expected NAME=ARGS, like matcher=\"--broken enqueue-before-log\"")?;
    check_service_name(name)?;
    Ok((name.to_string(), split_words(args)?))
}

/// Splits `text` into words as a POSIX shell does, without expansions: blanks separate
/// words, `'…'` keeps everything, `"…"` keeps everything but `\"`, `\\`, `\$` and `\``,
/// and a backslash outside quotes keeps the next character.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(format!("unclosed ' in {text:?}")),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => w.extend(['\\', c]),
                            None => return Err(format!("unclosed \" in {text:?}")),
                        },
                        Some(c) => w.push(c),
                        None => return Err(format!("unclosed \" in {text:?}")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(format!("a lone \\ ends {text:?}")),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// The number of client workers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Concurrency {
    Exactly(usize),
    PerNode(usize),
}

impl Concurrency {
    pub fn workers(self, node_count: usize) -> usize {
        match self {
            Concurrency::Exactly(n) => n,
            Concurrency::PerNode(k) => k * node_count,
        }
    }
}

impl FromStr for Concurrency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("expected an integer or Kn (like 2n), got {s:?}");
        match s.strip_suffix('n') {
            Some("") => Ok(Concurrency::PerNode(1)),
            Some(k) => k.parse().map(Concurrency::PerNode).map_err(|_| bad()),
            None => s.parse().map(Concurrency::Exactly).map_err(|_| bad()),
        }
    }
}

impl fmt::Display for Concurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Concurrency::Exactly(n) => write!(f, "{n}"),
            Concurrency::PerNode(k) => write!(f, "{k}n"),
        }
    }
}

impl TestOptions {
    /// The selected fault kinds, `all` expanded.
    pub fn nemesis_kinds(&self) -> BTreeSet<Kind> {
        self.nemesis.clone()
    }

    /// The partition shapes to draw from.
    pub fn shapes(&self) -> Vec<Shape> {
        if self.partition_shapes.is_empty() {
            Shape::MAELSTROM.to_vec()
        } else {
            let set: BTreeSet<Shape> = self.partition_shapes.iter().copied().collect();
            set.into_iter().collect()
        }
    }

    /// The words that say which nodes run: `--bin` and the node list, or the services.
    fn node_words(&self) -> Vec<String> {
        let mut words = Vec::new();
        if let Some(bin) = &self.bin {
            words.extend(["--bin".into(), bin.display().to_string()]);
        }
        for s in &self.services {
            let spec = format!("{}={}:{}", s.name, s.bin.display(), s.count);
            words.extend(["--service".into(), spec]);
        }
        for (name, args) in &self.service_args {
            let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
            words.extend([
                "--service-args".into(),
                format!("{name}={}", quoted.join(" ")),
            ]);
        }
        if let Some(n) = self.node_count {
            words.extend(["--node-count".into(), n.to_string()]);
        } else if !self.nodes.is_empty() {
            words.extend(["--nodes".into(), self.nodes.join(",")]);
        }
        words
    }

    /// The options as a `workloads test` command line that replays this run with `seed`.
    pub fn replay_command(&self, seed: u64) -> String {
        let mut words = vec![
            "workloads".to_string(),
            "test".into(),
            "-w".into(),
            self.workload.clone(),
        ];
        words.extend(self.node_words());
        words.extend(["--time-limit".into(), self.time_limit.to_string()]);
        words.extend(["--rate".into(), self.rate.to_string()]);
        words.extend(["--concurrency".into(), self.concurrency.to_string()]);
        if self.latency != 0 || self.latency_dist != LatencyDist::Constant {
            words.extend(["--latency".into(), self.latency.to_string()]);
            words.extend(["--latency-dist".into(), self.latency_dist.name().into()]);
        }
        let kinds = self.nemesis_kinds();
        if !kinds.is_empty() {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            words.extend(["--nemesis".into(), names.join(",")]);
            if !self.partition_shapes.is_empty() {
                let shapes: Vec<&str> = self.shapes().iter().map(|s| s.keyword()).collect();
                words.extend(["--partition-shapes".into(), shapes.join(",")]);
            }
            if kinds.contains(&Kind::Lossy) {
                words.extend(["--lossy-rate".into(), self.lossy_rate.to_string()]);
            }
            words.extend([
                "--nemesis-interval".into(),
                self.nemesis_interval.to_string(),
            ]);
        }
        if self.availability != Availability::Unchecked {
            words.extend(["--availability".into(), self.availability.to_string()]);
        }
        if let Some(expect) = self.expect {
            words.extend(["--expect".into(), expect.word().into()]);
        }
        if self.topology != Topology::Grid {
            words.extend(["--topology".into(), self.topology.name().into()]);
        }
        if let Some(dir) = &self.node_dir {
            words.extend(["--node-dir".into(), dir.display().to_string()]);
        }
        for (on, flag) in [
            (self.node_dir_per_node, "--node-dir-per-node"),
            (self.log_stderr, "--log-stderr"),
            (self.log_net_send, "--log-net-send"),
            (self.log_net_recv, "--log-net-recv"),
        ] {
            if on {
                words.push(flag.into());
            }
        }
        words.extend(["--seed".into(), seed.to_string()]);
        if !self.args.is_empty() {
            words.push("--".into());
            words.extend(self.args.iter().cloned());
        }
        words
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
