//! The store: `store/<workload>/<yyyyMMdd'T'HHmmss.SSS+ZZZZ>/` under the current directory,
//! with Jepsen's file names, and the `store/latest`, `store/current` and
//! `store/<workload>/latest` symlinks (relative, so a moved store keeps working).
//!
//! Layout of one run:
//! `results.edn`, `results.json`, `history.edn`, `history.txt`, `history.jsonl`, `jepsen.log`,
//! `node-logs/<node>.log` (each node's stderr) and, with `--node-dir-per-node`,
//! `node-dirs/<node>/` (each node's working directory; by default, as in Maelstrom, all
//! nodes share one working directory outside the store).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::Local;

use crate::edn::Edn;
use crate::history::History;

/// What a run was, for the run index of `workloads serve`: `run.json` in the run's folder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    pub workload: String,
    /// The fault kinds, empty for none.
    pub nemesis: Vec<String>,
    pub nodes: Vec<String>,
    /// Client workers, so a re-analysis knows which node each process talked to.
    #[serde(default)]
    pub workers: usize,
    pub seed: u64,
    pub time_limit: u64,
    /// The command line that replays the run.
    pub command: String,
    pub valid: Validity,
    /// The verdict the run was meant to reach (`--expect`), when it was said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// The services of a cluster of several binaries (`--service`), in order; absent for a
    /// run of one binary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceInfo>,
    /// The node (an index into `nodes`) each worker talked to, for a cluster of several
    /// binaries (workers may keep to one service); absent for a run of one binary, whose
    /// worker `w` talks to node `w % nodes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worker_nodes: Vec<usize>,
}

/// One service of a run, in run.json: its name, binary, arguments and node ids.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    pub bin: String,
    #[serde(default)]
    pub args: Vec<String>,
    pub nodes: Vec<String>,
}

/// The verdict a run is meant to reach: `invalid` marks a node broken on purpose, whose
/// invalid run shows that a fault caught it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Valid,
    Invalid,
}

impl Expect {
    pub fn word(self) -> &'static str {
        match self {
            Expect::Valid => "valid",
            Expect::Invalid => "invalid",
        }
    }

    /// Whether `verdict` is the one expected.
    pub fn met_by(self, verdict: Validity) -> bool {
        verdict == Validity::Known(self == Expect::Valid)
    }
}

/// A run's verdict: `true`, `false` or `"unknown"` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Validity {
    Known(bool),
    #[serde(with = "unknown")]
    Unknown,
}

mod unknown {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("unknown")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        match String::deserialize(d)?.as_str() {
            "unknown" => Ok(()),
            other => Err(serde::de::Error::custom(format!("not a verdict: {other}"))),
        }
    }
}

impl Validity {
    /// The top-level `:valid?` of a results map.
    pub fn of(results: &Edn) -> Validity {
        match results.get("valid?") {
            Some(Edn::Bool(b)) => Validity::Known(*b),
            _ => Validity::Unknown,
        }
    }
}

/// One run's folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    workload: String,
    stamp: String,
    pub dir: PathBuf,
}

impl Store {
    /// Creates a fresh run folder under `root` (normally `store`).
    pub fn create(root: &Path, workload: &str) -> io::Result<Store> {
        loop {
            let stamp = Local::now().format("%Y%m%dT%H%M%S%.3f%z").to_string();
            let dir = root.join(workload).join(&stamp);
            if dir.exists() {
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            fs::create_dir_all(dir.join("node-logs"))?;
            return Ok(Store {
                root: root.to_path_buf(),
                workload: workload.to_string(),
                stamp,
                dir,
            });
        }
    }

    pub fn node_log(&self, node: &str) -> PathBuf {
        self.dir.join("node-logs").join(format!("{node}.log"))
    }

    /// A node's working directory, created on demand.
    pub fn node_dir(&self, node: &str) -> io::Result<PathBuf> {
        let dir = self.dir.join("node-dirs").join(node);
        fs::create_dir_all(&dir)?;
        // Absolute, because the node starts in it.
        dir.canonicalize()
    }

    /// The file a node's wall-clock offset is read from under the clock nemesis; kept out of
    /// the node's working directory so the node cannot trip over it.
    pub fn clock_file(&self, node: &str) -> PathBuf {
        self.dir.join("clocks").join(format!("{node}.rc"))
    }

    pub fn write_run_info(&self, info: &RunInfo) -> io::Result<()> {
        let text = serde_json::to_string_pretty(info).map_err(io::Error::other)?;
        fs::write(self.dir.join("run.json"), text + "\n")
    }

    pub fn jepsen_log(&self) -> PathBuf {
        self.dir.join("jepsen.log")
    }

    pub fn write_history(&self, history: &History) -> io::Result<()> {
        fs::write(self.dir.join("history.edn"), history.to_edn_lines())?;
        fs::write(self.dir.join("history.txt"), history.to_txt())?;
        fs::write(self.dir.join("history.jsonl"), history.to_jsonl())?;
        Ok(())
    }

    pub fn write_results(&self, results: &Edn) -> io::Result<()> {
        let mut edn = results.to_pretty();
        if !edn.ends_with('\n') {
            edn.push('\n');
        }
        fs::write(self.dir.join("results.edn"), edn)?;
        let json = serde_json::to_string_pretty(&results.to_json()).unwrap_or_default();
        fs::write(self.dir.join("results.json"), json + "\n")?;
        Ok(())
    }

    /// Points the `latest` links at this run.
    pub fn link_latest(&self) -> io::Result<()> {
        let in_root = Path::new(&self.workload).join(&self.stamp);
        relink(&self.root.join("latest"), &in_root)?;
        relink(&self.root.join("current"), &in_root)?;
        relink(
            &self.root.join(&self.workload).join("latest"),
            Path::new(&self.stamp),
        )
    }
}

/// Replaces the symlink `link` atomically with one to `target`.
fn relink(link: &Path, target: &Path) -> io::Result<()> {
    let tmp = link.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    fs::rename(&tmp, link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_timestamped_dirs_and_relative_links() {
        let root = std::env::temp_dir().join(format!("workloads-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let a = Store::create(&root, "echo").unwrap();
        a.link_latest().unwrap();
        let b = Store::create(&root, "echo").unwrap();
        b.link_latest().unwrap();
        assert_ne!(a.dir, b.dir);
        let name = b.dir.file_name().unwrap().to_str().unwrap().to_string();
        // 20251110T205811.203+0100
        assert_eq!(name.len(), 24, "{name}");
        assert_eq!(&name[8..9], "T");
        assert!(name[19..].starts_with(['+', '-']), "{name}");
        let latest = fs::read_link(root.join("latest")).unwrap();
        assert_eq!(latest, Path::new("echo").join(&name));
        assert_eq!(
            fs::read_link(root.join("echo/latest")).unwrap(),
            Path::new(&name)
        );
        assert!(root.join("latest/node-logs").is_dir());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn run_info_round_trips_with_all_three_verdicts() {
        for valid in [
            Validity::Known(true),
            Validity::Known(false),
            Validity::Unknown,
        ] {
            let info = RunInfo {
                workload: "echo".into(),
                nemesis: vec!["kill".into()],
                nodes: vec!["n0".into()],
                workers: 1,
                seed: 7,
                time_limit: 10,
                command: "workloads test".into(),
                valid,
                expect: (valid == Validity::Known(false)).then_some(Expect::Invalid),
                services: Vec::new(),
                worker_nodes: Vec::new(),
            };
            let text = serde_json::to_string(&info).unwrap();
            assert!(!text.contains("services"), "one binary: {text}");
            assert_eq!(serde_json::from_str::<RunInfo>(&text).unwrap(), info);
        }
        let several = RunInfo {
            nodes: vec!["n0".into(), "n1".into()],
            services: vec![
                ServiceInfo {
                    name: "a".into(),
                    bin: "bin/a".into(),
                    args: vec!["--x".into()],
                    nodes: vec!["n0".into()],
                },
                ServiceInfo {
                    name: "b".into(),
                    bin: "bin/b".into(),
                    args: Vec::new(),
                    nodes: vec!["n1".into()],
                },
            ],
            worker_nodes: vec![1, 0],
            ..serde_json::from_str(
                r#"{"workload":"echo","nemesis":[],"nodes":[],"seed":1,"time_limit":1,
                    "command":"c","valid":true}"#,
            )
            .unwrap()
        };
        let text = serde_json::to_string(&several).unwrap();
        assert!(
            text.contains(
                r#""services":[{"name":"a","bin":"bin/a","args":["--x"],"nodes":["n0"]}"#
            ),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<RunInfo>(&text).unwrap(), several);
        let expect = serde_json::to_value(Expect::Invalid).unwrap();
        assert_eq!(expect, serde_json::json!("invalid"));
        assert!(Expect::Invalid.met_by(Validity::Known(false)));
        assert!(!Expect::Invalid.met_by(Validity::Known(true)));
        assert!(!Expect::Valid.met_by(Validity::Unknown));
        let unknown = serde_json::to_value(Validity::Unknown).unwrap();
        assert_eq!(unknown, serde_json::json!("unknown"));
        assert!(serde_json::from_str::<Validity>("\"maybe\"").is_err());
    }
}
