//! Where a node binary keeps its files, so that nodes sharing one working directory never
//! collide.
//!
//! Maelstrom starts every node of a test, and every test after it, in one working
//! directory (the JVM's temporary directory). So a node's files live in a directory of its
//! own, chosen once `init` names the node:
//!
//! - `$MAELSTROM_NODE_DIR/<node id>/` when that variable is set: a harness that sets it
//!   gives each test run its own directory;
//! - otherwise `<working dir>/maelstrom-node-files/<run>/<node id>/`, where `<run>` names
//!   the test run after the process that started the node, as Maelstrom's JVM (or our
//!   harness) starts every node of one test: `run-<boot>-<pid>-<start>`, that process's
//!   pid and start time (clock ticks since boot, from `/proc/<pid>/stat`) and the first
//!   8 characters of the kernel's boot id. A node restarted within the test has the same
//!   parent, so it finds its files again; a new test has another parent (or the same pid
//!   reused, with another start time), so it never sees an earlier test's files. A wrapper
//!   script must `exec` the node, or the wrapper becomes the parent.
//!
//! `<node id>` is the id itself when it is a plain file name, else its `%XX` encoding
//! ([`dir_name`]): any id Maelstrom accepts gets a directory of its own.
//!
//! A limit: Maelstrom's `--test-count N` runs N tests in one JVM, so they have one parent
//! and share one run folder. A node cannot tell a second test in the same parent from a
//! restart within the first, so the second test starts from the first's files. Tests kept
//! apart need one Maelstrom invocation each, with `MAELSTROM_NODE_DIR` set to a fresh
//! directory per invocation where their files should go elsewhere.
//!
//! Run folders do not pile up: when a node first creates its run folder, it removes the
//! sibling run folders whose process is gone. A live run is never removed, since its
//! process matches its name exactly, and a pid once dead never comes back with the same
//! start time.
//!
//! Users share the system's temporary directory, so the process that creates
//! `maelstrom-node-files` makes it world-writable with the sticky bit, as `/tmp` is: every
//! user's nodes may add run folders to it, and each run folder belongs to its creator.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The variable naming the directory of one test run's node files.
pub const NODE_DIR_ENV: &str = "MAELSTROM_NODE_DIR";

/// The folder of run folders, under the working directory.
pub const RUNS_DIR: &str = "maelstrom-node-files";

/// One test run: the process that started the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunId {
    pub boot: String,
    pub pid: u32,
    pub start: u64,
}

impl RunId {
    /// The run of this process: its parent.
    pub fn of_parent() -> io::Result<RunId> {
        RunId::of(std::os::unix::process::parent_id())
    }

    /// The run of the live process `pid`.
    pub fn of(pid: u32) -> io::Result<RunId> {
        Ok(RunId {
            boot: boot_id(),
            pid,
            start: start_time(pid)?,
        })
    }

    /// The run folder's name.
    pub fn name(&self) -> String {
        format!("run-{}-{}-{}", self.boot, self.pid, self.start)
    }

    /// The run a folder name stands for, if it is one.
    pub fn parse(name: &str) -> Option<RunId> {
        let mut parts = name.strip_prefix("run-")?.split('-');
        let boot = parts.next()?;
        let pid = parts.next()?.parse().ok()?;
        let start = parts.next()?.parse().ok()?;
        let plain = !boot.is_empty() && boot.bytes().all(|b| b.is_ascii_alphanumeric());
        (plain && parts.next().is_none()).then(|| RunId {
            boot: boot.to_string(),
            pid,
            start,
        })
    }

    /// Whether the run's process still exists (in this boot, with this start time).
    pub fn is_live(&self) -> bool {
        boot_id() == self.boot && start_time(self.pid).is_ok_and(|start| start == self.start)
    }
}

/// The first 8 hex digits of the kernel's boot id (start times count from boot), or `0`
/// where the kernel does not tell: a reboot then relies on the pid and start time alone.
fn boot_id() -> String {
    let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let id: String = id.chars().filter(char::is_ascii_hexdigit).take(8).collect();
    if id.is_empty() {
        "0".into()
    } else {
        id
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
fn start_time(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses.
    let after_name = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    after_name
        .split_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/stat")))
}

/// How a binary's nodes find their directories, decided at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeDirs {
    /// `<root>/<node id>`: the root belongs to one test run.
    Under(PathBuf),
    /// `<base>/maelstrom-node-files/<run>/<node id>`.
    ByRun { base: PathBuf, run: RunId },
    /// The run could not be named; every use of storage reports why.
    Unnamed(String),
}

/// A node's directory, and the run folder whose dead siblings to sweep once it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDir {
    pub dir: PathBuf,
    pub sweep: Option<(PathBuf, RunId)>,
}

impl NodeDirs {
    /// `$MAELSTROM_NODE_DIR` if set, else by run under `cwd`.
    pub fn from_env(cwd: PathBuf) -> NodeDirs {
        match std::env::var_os(NODE_DIR_ENV) {
            Some(root) if !root.is_empty() => NodeDirs::Under(root.into()),
            _ => match RunId::of_parent() {
                Ok(run) => NodeDirs::ByRun { base: cwd, run },
                Err(e) => NodeDirs::Unnamed(format!(
                    "cannot name the test run from the parent process ({e}); set {NODE_DIR_ENV}"
                )),
            },
        }
    }

    /// The directory of node `node_id`.
    pub fn resolve(&self, node_id: &str) -> io::Result<NodeDir> {
        let name = dir_name(node_id);
        match self {
            NodeDirs::Under(root) => Ok(NodeDir {
                dir: root.join(name),
                sweep: None,
            }),
            NodeDirs::ByRun { base, run } => {
                let runs = base.join(RUNS_DIR);
                Ok(NodeDir {
                    dir: runs.join(run.name()).join(name),
                    sweep: Some((runs, run.clone())),
                })
            }
            NodeDirs::Unnamed(why) => Err(io::Error::other(why.clone())),
        }
    }
}

/// The directory name of node `node_id`: the id itself when it is a plain name, else the
/// id with every byte outside `[A-Za-z0-9._-]`, and a leading `.`, written `%XX`. Any id
/// Maelstrom accepts names a directory of its own: `%` is always encoded, so two ids never
/// share a name, and the name never leaves its parent or hides. The empty id is `%`,
/// which no other id encodes to.
pub fn dir_name(node_id: &str) -> String {
    if node_id.is_empty() {
        return "%".into();
    }
    let mut name = String::with_capacity(node_id.len());
    for (i, b) in node_id.bytes().enumerate() {
        let safe = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') || (b == b'.' && i > 0);
        if safe {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name
}

/// A file or directory name that stays inside its parent and is not hidden.
pub(crate) fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Creates the folder of run folders if need be. It is shared by every user whose nodes
/// start in the same working directory (the system's temporary directory, usually), so
/// the process that creates it makes it world-writable with the sticky bit, like `/tmp`
/// itself: anyone may add a run folder, only its owner may remove it. A folder that
/// already exists is left as it is.
pub fn create_runs_dir(runs: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = runs.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::create_dir(runs) {
        // The umask would take the write bits away from everybody else. Where the file
        // system refuses, this user's nodes still work: only other users' would fail.
        Ok(()) => {
            let _ = fs::set_permissions(runs, fs::Permissions::from_mode(0o1777));
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && runs.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the run folders in `runs` whose process is gone, except `keep`'s. Folders that
/// are not run folders are left alone; failures are ignored (another node may be
/// sweeping the same folder). Returns how many were removed.
pub fn sweep(runs: &Path, keep: &RunId) -> usize {
    let Ok(entries) = fs::read_dir(runs) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(run) = name.to_str().and_then(RunId::parse) else {
            continue;
        };
        if run != *keep && !run.is_live() && fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_round_trip_and_reject_other_names() {
        let run = RunId::of(std::process::id()).unwrap();
        assert_eq!(RunId::parse(&run.name()), Some(run.clone()));
        for other in [
            "run-",
            "run-abc-1",
            "run-abc-x-1",
            "run-ab/c-1-2",
            "notes",
            "run-a-1-2-3",
        ] {
            assert_eq!(RunId::parse(other), None, "{other}");
        }
    }

    #[test]
    fn this_process_and_its_parent_are_live_and_a_changed_start_is_not() {
        let me = RunId::of(std::process::id()).unwrap();
        assert!(me.is_live());
        assert!(RunId::of_parent().unwrap().is_live());
        let reused_pid = RunId {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(!reused_pid.is_live());
        let other_boot = RunId {
            boot: "00000000".into(),
            ..me
        };
        assert!(!other_boot.is_live());
    }

    #[test]
    fn nodes_resolve_to_their_own_directories() {
        let run = RunId::of(std::process::id()).unwrap();
        let by_run = NodeDirs::ByRun {
            base: "/w".into(),
            run: run.clone(),
        };
        let n0 = by_run.resolve("n0").unwrap();
        assert_eq!(
            n0.dir,
            Path::new("/w").join(RUNS_DIR).join(run.name()).join("n0")
        );
        assert_eq!(
            n0.sweep,
            Some((Path::new("/w").join(RUNS_DIR), run.clone()))
        );
        assert_ne!(by_run.resolve("n1").unwrap().dir, n0.dir);
        let under = NodeDirs::Under("/r".into()).resolve("n1").unwrap();
        assert_eq!((under.dir, under.sweep), (PathBuf::from("/r/n1"), None));
        // Any id names a directory of its own, inside the run folder.
        let run_dir = Path::new("/w").join(RUNS_DIR).join(run.name());
        for odd in ["", "..", "../x", "a/b", ".n0", "n 1", "é", "%2E"] {
            let dir = by_run.resolve(odd).unwrap().dir;
            assert_eq!(dir.parent(), Some(run_dir.as_path()), "{odd:?}");
        }
        let unnamed = NodeDirs::Unnamed("no /proc".into()).resolve("n0");
        assert!(unnamed.unwrap_err().to_string().contains("no /proc"));
    }

    #[test]
    fn the_runs_folder_is_created_shared_like_tmp_and_an_existing_one_is_kept() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("mc-runs-mode-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let runs = base.join(RUNS_DIR);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        create_runs_dir(&runs).unwrap();
        assert_eq!(mode(&runs), 0o1777);
        // One that exists keeps its mode (its owner chose it), and is no error.
        fs::set_permissions(&runs, fs::Permissions::from_mode(0o755)).unwrap();
        create_runs_dir(&runs).unwrap();
        assert_eq!(mode(&runs), 0o755);
        fs::remove_dir_all(&runs).unwrap();
        fs::write(&runs, b"not a folder").unwrap();
        assert!(create_runs_dir(&runs).is_err());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn node_ids_encode_to_distinct_plain_directory_names() {
        for (id, name) in [
            ("n0", "n0"),
            ("n.0_a-B", "n.0_a-B"),
            ("", "%"),
            ("..", "%2E."),
            (".n0", "%2En0"),
            ("a/b", "a%2Fb"),
            ("n 1", "n%201"),
            ("%2F", "%252F"),
            ("é", "%C3%A9"),
        ] {
            assert_eq!(dir_name(id), name, "{id:?}");
        }
        let ids = [
            "", "%", "%25", ".", "%2E", "..", "a/b", "a%2Fb", "a.b", ".a", "a", "n 1", "n%201",
        ];
        let names: std::collections::BTreeSet<String> = ids.iter().map(|id| dir_name(id)).collect();
        assert_eq!(names.len(), ids.len(), "{names:?}");
        for name in &names {
            assert!(plain_name(&name.replace('%', "x")), "{name}");
        }
    }

    #[test]
    fn a_sweep_removes_dead_runs_only() {
        let runs = std::env::temp_dir().join(format!("mc-sweep-{}", std::process::id()));
        let _ = fs::remove_dir_all(&runs);
        let me = RunId::of(std::process::id()).unwrap();
        let parent = RunId::of_parent().unwrap();
        let dead = RunId {
            start: me.start + 1,
            ..me.clone()
        };
        let keep = RunId {
            start: me.start + 2,
            ..me.clone()
        };
        for run in [&me, &parent, &dead, &keep] {
            fs::create_dir_all(runs.join(run.name()).join("n0")).unwrap();
        }
        fs::create_dir_all(runs.join("notes")).unwrap();
        assert_eq!(sweep(&runs, &keep), 1);
        for run in [&me, &parent, &keep] {
            assert!(runs.join(run.name()).is_dir(), "{}", run.name());
        }
        assert!(!runs.join(dead.name()).exists());
        assert!(runs.join("notes").is_dir());
        fs::remove_dir_all(&runs).unwrap();
    }
}
