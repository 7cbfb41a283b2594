//! Wall-clock faults carried out without the node's cooperation, through libfaketime; the
//! nemesis plans them ([`crate::nemesis::clock`]).
//!
//! With `--nemesis clock`, every node starts with libfaketime preloaded (`LD_PRELOAD`) and
//! reads its offset from its own file (`FAKETIME_TIMESTAMP_FILE`, re-read on every call with
//! `FAKETIME_NO_CACHE=1`). The harness moves a node's clock by rewriting that file. Only
//! the wall clock (`CLOCK_REALTIME`, `time`, `gettimeofday`) moves: `DONT_FAKE_MONOTONIC=1`
//! keeps monotonic clocks, and so timers, honest. This works for any dynamically linked
//! program that reads time through libc (C, C++, Rust, Python, the JVM, Node.js); statically
//! linked binaries that read the clock from the vDSO themselves (Go's) do not see it.
//!
//! Drift is applied by the harness, as a small offset change every [`DRIFT_TICK_NS`], so the
//! offset of every node at every moment is known exactly and can be plotted.

use std::path::{Path, PathBuf};

use crate::edn::Edn;
use crate::nemesis::clock::ClockChange;

/// How often drifting clocks are moved.
pub const DRIFT_TICK_NS: u64 = 100_000_000;

/// Where Debian's libfaketime package puts the library.
const LIBRARY_CANDIDATES: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];

/// The libfaketime library, from `$WORKLOADS_LIBFAKETIME` or the usual places.
pub fn find_library() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WORKLOADS_LIBFAKETIME") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    LIBRARY_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The environment that puts a node's wall clock under the file at `file`. The path is
/// made absolute: nodes run in their own working directories.
pub fn environment(library: &Path, file: &Path) -> Vec<(String, String)> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let preload = match std::env::var("LD_PRELOAD") {
        Ok(existing) if !existing.is_empty() => format!("{}:{existing}", library.display()),
        _ => library.display().to_string(),
    };
    vec![
        ("LD_PRELOAD".into(), preload),
        ("FAKETIME_TIMESTAMP_FILE".into(), file.display().to_string()),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
        ("DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}

/// Every node's offset and drift, and the offsets over time.
#[derive(Debug)]
pub struct Clocks {
    files: Vec<PathBuf>,
    offset_ms: Vec<f64>,
    /// Offset change per real millisecond: speed − 1.
    rate: Vec<f64>,
    last_tick: u64,
    /// Per node: (nanoseconds since the engine started, offset in ms), at every change.
    pub trace: Vec<Vec<(u64, f64)>>,
}

impl Clocks {
    /// Creates the offset files, all at zero.
    pub fn create(files: Vec<PathBuf>, now: u64) -> std::io::Result<Clocks> {
        let n = files.len();
        for f in &files {
            if let Some(parent) = f.parent() {
                std::fs::create_dir_all(parent)?;
            }
        }
        let clocks = Clocks {
            files,
            offset_ms: vec![0.0; n],
            rate: vec![0.0; n],
            last_tick: now,
            trace: vec![vec![(now, 0.0)]; n],
        };
        for i in 0..n {
            clocks.write(i)?;
        }
        Ok(clocks)
    }

    pub fn offset_ms(&self, node: usize) -> f64 {
        self.offset_ms[node]
    }

    pub fn drifting(&self) -> bool {
        self.rate.iter().any(|r| *r != 0.0)
    }

    /// The next time drift must be applied, if any clock drifts.
    pub fn next_tick(&self) -> Option<u64> {
        self.drifting().then_some(self.last_tick + DRIFT_TICK_NS)
    }

    /// Applies a change to `node` at `now`.
    pub fn apply(&mut self, now: u64, node: usize, change: ClockChange) -> std::io::Result<()> {
        self.advance(now)?;
        match change {
            ClockChange::Bump(ms) => self.offset_ms[node] += ms as f64,
            ClockChange::Drift(speed) => self.rate[node] = speed - 1.0,
        }
        self.trace[node].push((now, self.offset_ms[node]));
        self.write(node)
    }

    /// Puts every clock back to real time.
    pub fn reset(&mut self, now: u64) -> std::io::Result<()> {
        self.advance(now)?;
        for i in 0..self.files.len() {
            self.rate[i] = 0.0;
            if self.offset_ms[i] != 0.0 {
                self.offset_ms[i] = 0.0;
                self.trace[i].push((now, 0.0));
                self.write(i)?;
            }
        }
        Ok(())
    }

    /// Moves drifting clocks forward to `now`.
    pub fn advance(&mut self, now: u64) -> std::io::Result<()> {
        let elapsed_ms = now.saturating_sub(self.last_tick) as f64 / 1e6;
        self.last_tick = now;
        for i in 0..self.files.len() {
            if self.rate[i] != 0.0 {
                self.offset_ms[i] += self.rate[i] * elapsed_ms;
                self.trace[i].push((now, self.offset_ms[i]));
                self.write(i)?;
            }
        }
        Ok(())
    }

    /// Replaces the node's file in one rename, so libfaketime never reads half a line.
    fn write(&self, node: usize) -> std::io::Result<()> {
        let path = &self.files[node];
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{:+.3}\n", self.offset_ms[node] / 1000.0))?;
        std::fs::rename(&tmp, path)
    }
}

impl Clocks {
    /// The `:clock` section of the results: per node, the largest offsets either way, how
    /// often the clock jumped (backwards among them), and its offset over time as
    /// `[seconds offset-ms]` points (at most [`SUMMARY_POINTS`], evenly thinned).
    pub fn summary(&self, names: &[String], origin_ns: u64) -> Edn {
        let nodes = names
            .iter()
            .zip(&self.trace)
            .map(|(name, trace)| {
                let ahead = trace.iter().map(|p| p.1).fold(0.0, f64::max);
                let behind = trace.iter().map(|p| p.1).fold(0.0, f64::min);
                let steps = trace.windows(2).filter(|w| w[1].1 != w[0].1);
                let backwards = steps.clone().filter(|w| w[1].1 < w[0].1).count();
                let stride = trace.len().div_ceil(SUMMARY_POINTS).max(1);
                let points = trace
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| k % stride == 0 || *k + 1 == trace.len())
                    .map(|(_, (t, ms))| {
                        let secs = t.saturating_sub(origin_ns) as f64 / 1e9;
                        Edn::Vector(vec![
                            Edn::Float((secs * 1000.0).round() / 1000.0),
                            Edn::Int(ms.round() as i64),
                        ])
                    })
                    .collect();
                let entry = Edn::map(vec![
                    ("max-ahead-ms", Edn::Int(ahead.round() as i64)),
                    ("max-behind-ms", Edn::Int(behind.round() as i64)),
                    ("changes", Edn::from(steps.count())),
                    ("backward-changes", Edn::from(backwards)),
                    ("offsets", Edn::Vector(points)),
                ]);
                (Edn::Str(name.clone()), entry)
            })
            .collect();
        Edn::map(vec![
            ("valid?", Edn::Bool(true)),
            ("nodes", Edn::Map(nodes)),
        ])
    }

    /// Per node, (nanoseconds since `origin_ns`, offset in ms), for the clock plot.
    pub fn series(&self, names: &[String], origin_ns: u64) -> Vec<(String, Vec<(u64, f64)>)> {
        names
            .iter()
            .zip(&self.trace)
            .map(|(name, trace)| {
                let points = trace
                    .iter()
                    .map(|(t, ms)| (t.saturating_sub(origin_ns), *ms))
                    .collect();
                (name.clone(), points)
            })
            .collect()
    }
}

/// Offsets listed per node in the results.
pub const SUMMARY_POINTS: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_written_in_libfaketime_syntax_and_traced() {
        let dir = std::env::temp_dir().join(format!("clocks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = vec![dir.join("n0.rc"), dir.join("n1.rc")];
        let mut c = Clocks::create(files.clone(), 0).unwrap();
        assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), "+0.000\n");
        c.apply(1_000_000, 0, ClockChange::Bump(-2500)).unwrap();
        assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), "-2.500\n");
        c.apply(1_000_000, 1, ClockChange::Drift(0.0)).unwrap();
        assert_eq!(c.next_tick(), Some(1_000_000 + DRIFT_TICK_NS));
        // A stalled clock loses exactly the real time that passes.
        c.advance(1_000_000 + 400_000_000).unwrap();
        assert!((c.offset_ms(1) + 400.0).abs() < 1e-9);
        assert_eq!(std::fs::read_to_string(&files[1]).unwrap(), "-0.400\n");
        c.reset(2_000_000_000).unwrap();
        assert!(!c.drifting());
        assert_eq!(c.offset_ms(0), 0.0);
        assert_eq!(c.trace[0].last(), Some(&(2_000_000_000, 0.0)));
        let names = vec!["n0".to_string(), "n1".to_string()];
        let summary = c.summary(&names, 0);
        let Some(Edn::Map(nodes)) = summary.get("nodes") else {
            panic!("{summary}")
        };
        let n0 = &nodes[0].1;
        assert_eq!(nodes[0].0, Edn::Str("n0".into()));
        assert_eq!(n0.get("max-behind-ms"), Some(&Edn::Int(-2500)));
        assert_eq!(n0.get("backward-changes"), Some(&Edn::Int(1)));
        assert_eq!(n0.get("changes"), Some(&Edn::Int(2)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
