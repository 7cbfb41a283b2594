//! The runs of a store and what is shown of each: read from the run's `run.json` and
//! `results.edn` only, afresh on every request, so a page is never staler than the store.

use std::cmp::{Ordering, Reverse};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::Value;

use super::why::{self, Failure};
use crate::edn::Edn;
use crate::store::{Expect, Validity};

/// The store's folder-name format of a run's start.
const STAMP_FORMAT: &str = "%Y%m%dT%H%M%S%.3f%z";

/// One run folder, `store/<workload>/<stamp>/`.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub workload: String,
    pub stamp: String,
    pub dir: PathBuf,
    /// The stamp read as a time; `None` for a folder not named like a stamp.
    pub time: Option<DateTime<FixedOffset>>,
}

impl RunDir {
    pub fn new(workload: &str, stamp: &str, dir: PathBuf) -> RunDir {
        RunDir {
            workload: workload.to_string(),
            stamp: stamp.to_string(),
            dir,
            time: DateTime::parse_from_str(stamp, STAMP_FORMAT).ok(),
        }
    }

    /// The start for people: `2026-11-23 10:15:30 +0000`, or the folder name as it is.
    pub fn when(&self) -> String {
        match &self.time {
            Some(t) => t.format("%Y-%m-%d %H:%M:%S %z").to_string(),
            None => self.stamp.clone(),
        }
    }

    /// Newest first: by instant (so stamps in different offsets compare right), then by
    /// name; folders whose names are not stamps go last.
    fn order_key(&self) -> Reverse<(Option<DateTime<Utc>>, &str, &str)> {
        Reverse((
            self.time.map(|t| t.with_timezone(&Utc)),
            &self.stamp,
            &self.workload,
        ))
    }
}

/// Every run of the store, newest first, across workloads. Symlinks (`latest`, `current`)
/// and hidden entries are skipped, so each run appears once. A missing store is an error
/// of kind [`io::ErrorKind::NotFound`].
pub fn list(root: &Path) -> io::Result<Vec<RunDir>> {
    let mut runs = Vec::new();
    for (workload, workload_dir) in real_subdirs(root)? {
        // A workload folder that vanished or cannot be read has no runs to show.
        let Ok(stamps) = real_subdirs(&workload_dir) else {
            continue;
        };
        for (stamp, dir) in stamps {
            runs.push(RunDir::new(&workload, &stamp, dir));
        }
    }
    runs.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    Ok(runs)
}

/// The folders directly in `dir` that are folders themselves, not symlinks, with UTF-8
/// names not starting with `.`.
fn real_subdirs(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        // `DirEntry::file_type` does not follow symlinks.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !kind.is_dir() {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        out.push((name, entry.path()));
    }
    Ok(out)
}

/// What `run.json` says, field by field, so that an older or partly written file still
/// yields what it has.
#[derive(Debug, Clone, Default)]
pub struct RunJson {
    pub workload: Option<String>,
    pub nemesis: Option<Vec<String>>,
    pub nodes: Option<Vec<String>>,
    /// The services of a cluster of several binaries: (name, node ids).
    pub services: Option<Vec<(String, Vec<String>)>>,
    pub seed: Option<u64>,
    pub time_limit: Option<u64>,
    pub command: Option<String>,
    pub valid: Option<Validity>,
    /// The verdict the run was meant to reach (`--expect`).
    pub expect: Option<Expect>,
}

impl RunJson {
    /// Reads `run.json` in `dir`; `None` when it is missing or not a JSON object.
    pub fn read(dir: &Path) -> Option<RunJson> {
        let text = fs::read_to_string(dir.join("run.json")).ok()?;
        let value: Value = serde_json::from_str(&text).ok()?;
        let object = value.as_object()?;
        let string = |key: &str| object.get(key)?.as_str().map(str::to_string);
        let strings = |key: &str| {
            object.get(key)?.as_array().map(|items| {
                items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
        };
        let valid = match object.get("valid") {
            Some(Value::Bool(b)) => Some(Validity::Known(*b)),
            Some(Value::String(s)) if s == "unknown" => Some(Validity::Unknown),
            _ => None,
        };
        Some(RunJson {
            workload: string("workload"),
            nemesis: strings("nemesis"),
            nodes: strings("nodes"),
            services: object.get("services").and_then(services),
            seed: object.get("seed").and_then(Value::as_u64),
            time_limit: object.get("time_limit").and_then(Value::as_u64),
            command: string("command"),
            valid,
            expect: object
                .get("expect")
                .and_then(|v| serde_json::from_value(v.clone()).ok()),
        })
    }

    /// The fault kinds joined with `,`, or `none`.
    pub fn scenario(&self) -> Option<String> {
        self.nemesis.as_ref().map(|kinds| {
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(",")
            }
        })
    }
}

/// run.json's `services`: `[{"name", "nodes", …}, …]` as (name, node ids).
fn services(value: &Value) -> Option<Vec<(String, Vec<String>)>> {
    value
        .as_array()?
        .iter()
        .map(|s| {
            let name = s.get("name")?.as_str()?.to_string();
            let nodes = s.get("nodes")?.as_array()?;
            let nodes = nodes.iter().filter_map(Value::as_str).map(str::to_string);
            Some((name, nodes.collect()))
        })
        .collect()
}

/// The key figures of a run's results.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    pub ops: Option<i64>,
    pub ok: Option<i64>,
    pub info: Option<i64>,
    pub fail: Option<i64>,
    pub msgs_per_op: Option<f64>,
    pub ok_fraction: Option<f64>,
}

impl Figures {
    pub fn of(results: &Edn) -> Figures {
        let stats = |key: &str| path(results, &["stats", key]).and_then(Edn::as_i64);
        Figures {
            ops: stats("count"),
            ok: stats("ok-count"),
            info: stats("info-count"),
            fail: stats("fail-count"),
            msgs_per_op: path(results, &["net", "servers", "msgs-per-op"]).and_then(number),
            ok_fraction: path(results, &["availability", "ok-fraction"]).and_then(number),
        }
    }
}

/// Follows keyword keys down nested maps.
pub fn path<'a>(value: &'a Edn, keys: &[&str]) -> Option<&'a Edn> {
    keys.iter().try_fold(value, |v, key| v.get(key))
}

fn number(value: &Edn) -> Option<f64> {
    match value {
        Edn::Int(i) => Some(*i as f64),
        Edn::Float(f) => Some(*f),
        _ => None,
    }
}

/// Why a run has no figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultsState {
    Read,
    /// No `results.edn` (yet): a run in progress, or one that died early.
    Missing,
    Unreadable,
}

/// `results.edn` of a run folder, parsed.
pub fn read_results(dir: &Path) -> (Option<Edn>, ResultsState) {
    match fs::read_to_string(dir.join("results.edn")) {
        Ok(text) => match Edn::parse(&text) {
            Ok(edn) => (Some(edn), ResultsState::Read),
            Err(_) => (None, ResultsState::Unreadable),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => (None, ResultsState::Missing),
        Err(_) => (None, ResultsState::Unreadable),
    }
}

/// One line of the run index.
#[derive(Debug, Clone)]
pub struct Summary {
    pub run: RunDir,
    pub info: Option<RunJson>,
    pub verdict: Validity,
    pub figures: Figures,
    pub results: ResultsState,
    /// The checkers that judged the run invalid.
    pub failures: Vec<Failure>,
}

impl Summary {
    /// Reads the run's `run.json` and `results.edn`. The verdict is `run.json`'s, or the
    /// top-level `:valid?` of the results for runs without one (such as the JVM
    /// Maelstrom's).
    pub fn read(run: RunDir) -> Summary {
        let info = RunJson::read(&run.dir);
        let (results, state) = read_results(&run.dir);
        let verdict = info
            .as_ref()
            .and_then(|i| i.valid)
            .or_else(|| results.as_ref().map(Validity::of))
            .unwrap_or(Validity::Unknown);
        Summary {
            figures: results.as_ref().map(Figures::of).unwrap_or_default(),
            failures: results.as_ref().map(why::failures).unwrap_or_default(),
            run,
            info,
            verdict,
            results: state,
        }
    }

    /// The verdict the run was meant to reach, when it said.
    pub fn expect(&self) -> Option<Expect> {
        self.info.as_ref().and_then(|i| i.expect)
    }

    /// The workload `run.json` names, else the folder's.
    pub fn workload(&self) -> &str {
        self.info
            .as_ref()
            .and_then(|i| i.workload.as_deref())
            .unwrap_or(&self.run.workload)
    }

    /// The fault kinds, or `?` when the run does not say.
    pub fn scenario(&self) -> String {
        self.info
            .as_ref()
            .and_then(RunJson::scenario)
            .unwrap_or_else(|| "?".to_string())
    }
}

/// Summarizes runs on a few threads at once (the work is reading and parsing small files),
/// keeping their order.
pub fn summarize(runs: Vec<RunDir>) -> Vec<Summary> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    if runs.len() < 64 || threads == 1 {
        return runs.into_iter().map(Summary::read).collect();
    }
    let chunk = runs.len().div_ceil(threads);
    let mut chunks: Vec<Vec<RunDir>> = Vec::new();
    let mut runs = runs.into_iter().peekable();
    while runs.peek().is_some() {
        chunks.push(runs.by_ref().take(chunk).collect());
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|part| scope.spawn(move || part.into_iter().map(Summary::read).collect()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| Vec::new()))
            .collect()
    })
}

/// The verdict as a word, also the CSS class that colours it.
pub fn verdict_word(v: Validity) -> &'static str {
    match v {
        Validity::Known(true) => "valid",
        Validity::Known(false) => "invalid",
        Validity::Unknown => "unknown",
    }
}

/// Compares names so that `n2` sorts before `n10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_instant_then_name_with_odd_names_last() {
        let run = |w: &str, s: &str| RunDir::new(w, s, PathBuf::from(s));
        let mut runs = [
            run("echo", "not-a-stamp"),
            run("echo", "20261123T101530.123+0000"),
            // 09:30 UTC: earlier than the one above despite the larger local time.
            run("g-set", "20261123T113000.000+0200"),
            run("broadcast", "20261123T101531.000+0000"),
        ];
        runs.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        let order: Vec<_> = runs.iter().map(|r| r.stamp.as_str()).collect();
        assert_eq!(
            order,
            [
                "20261123T101531.000+0000",
                "20261123T101530.123+0000",
                "20261123T113000.000+0200",
                "not-a-stamp"
            ]
        );
        assert_eq!(runs[0].when(), "2026-11-23 10:15:31 +0000");
        assert_eq!(runs[3].when(), "not-a-stamp");
    }

    #[test]
    fn figures_come_from_nested_results() {
        let results = Edn::parse(
            "{:stats {:count 10, :ok-count 7, :info-count 2, :fail-count 1}, \
             :net {:servers {:msgs-per-op 2.5}}, :availability {:ok-fraction 1}, :valid? false}",
        )
        .unwrap();
        let f = Figures::of(&results);
        assert_eq!(
            f,
            Figures {
                ops: Some(10),
                ok: Some(7),
                info: Some(2),
                fail: Some(1),
                msgs_per_op: Some(2.5),
                ok_fraction: Some(1.0),
            }
        );
        assert_eq!(Figures::of(&Edn::Nil), Figures::default());
    }

    #[test]
    fn natural_order_of_node_names() {
        let mut names = vec!["n10", "n2", "n1", "n02x", "a", "n"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["a", "n", "n1", "n2", "n02x", "n10"]);
    }
}
