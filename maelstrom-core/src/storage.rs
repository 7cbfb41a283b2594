//! Small durable files in a directory of the node's own.
//!
//! Nodes that must keep promises across a crash (a Raft vote, an ID generator's high-water
//! mark) persist a few small files. Reads happen once, at `init`, through [`Storage`];
//! writes are [`crate::Outbox::persist`] (replace a file) and [`crate::Outbox::append`]
//! (grow one) commands that the runtime carries out, in order, before any later message
//! leaves, so nothing is promised that is not on disk. A node binary's storage learns which
//! node it serves from `init` ([`Storage::open_node`]), and [`crate::node_dir`] says where
//! that node's directory is, so that nodes sharing a working directory never collide.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::node_dir::{self, plain_name, NodeDirs};

/// Named blobs that survive the process.
pub trait Storage {
    /// Called once `init` names the node, before anything is loaded or written: storage
    /// shared by every node a binary may be picks that node's own place here. The default
    /// keeps the one place there is.
    fn open_node(&mut self, node_id: &str) -> io::Result<()> {
        let _ = node_id;
        Ok(())
    }

    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>>;

    /// Replaces `name` with `bytes`, atomically and durably.
    fn store(&mut self, name: &str, bytes: &[u8]) -> io::Result<()>;

    /// Adds `bytes` at the end of `name` (creating it) and makes them durable, so that a log
    /// grows by what changed instead of being rewritten. A crash may leave a prefix of
    /// `bytes` behind; readers must tolerate a torn tail.
    ///
    /// The default rewrites the whole file through [`Storage::store`]: correct for any
    /// storage, but it costs the file's size; real storages override it.
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut all = self.load(name)?.unwrap_or_default();
        all.extend_from_slice(bytes);
        self.store(name, &all)
    }
}

/// Files in a directory, replaced atomically (write, fsync, rename, fsync the directory),
/// or appended to through handles kept open, so an append costs a write and an fdatasync.
/// Temporary files are named by process and counter, so no other writer can pick the same.
#[derive(Debug)]
pub struct DirStorage {
    place: Place,
    /// How to place a node's directory, for storage shared by every node a binary may be;
    /// `None` for one fixed directory.
    dirs: Option<NodeDirs>,
    /// The node whose directory `place` is, once `init` named one.
    node: Option<String>,
    /// Open append handles by name. A `store` of the name drops its handle: after the
    /// rename it would point at the replaced file.
    appending: HashMap<String, fs::File>,
}

#[derive(Debug)]
enum Place {
    /// Files straight in this directory; `created` once it is known to exist, and then
    /// the run folder to sweep, if any.
    Dir {
        dir: PathBuf,
        created: bool,
        sweep: Option<(PathBuf, node_dir::RunId)>,
    },
    /// Waiting for `init` to name the node.
    PerNode,
    /// Why there is no usable directory.
    Unusable(String),
}

/// Makes every temporary file name of this process unique.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl DirStorage {
    /// Files in `dir` itself, whatever node opens it (the caller owns `dir`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirStorage::at(
            Place::Dir {
                dir: dir.into(),
                created: true,
                sweep: None,
            },
            None,
        )
    }

    /// Files in the directory of the node `init` names, as `dirs` places it; nothing is
    /// created until the node first writes.
    pub fn per_node(dirs: NodeDirs) -> Self {
        DirStorage::at(Place::PerNode, Some(dirs))
    }

    fn at(place: Place, dirs: Option<NodeDirs>) -> Self {
        DirStorage {
            place,
            dirs,
            node: None,
            appending: HashMap::new(),
        }
    }

    /// The directory files go to, once known.
    pub fn dir(&self) -> Option<&std::path::Path> {
        match &self.place {
            Place::Dir { dir, .. } => Some(dir),
            _ => None,
        }
    }

    fn known_dir(&self) -> io::Result<&PathBuf> {
        match &self.place {
            Place::Dir { dir, .. } => Ok(dir),
            Place::PerNode => Err(io::Error::other(
                "no node directory yet: files are kept per node, named by init",
            )),
            Place::Unusable(why) => Err(io::Error::other(why.clone())),
        }
    }

    /// The directory, created (with its run folder's dead siblings swept) before the
    /// first write.
    fn writable_dir(&mut self) -> io::Result<PathBuf> {
        let dir = self.known_dir()?.clone();
        if let Place::Dir { created, sweep, .. } = &mut self.place {
            if !*created {
                if let Some((runs, _)) = sweep {
                    node_dir::create_runs_dir(runs)?;
                }
                fs::create_dir_all(&dir)?;
                if let Some(parent) = dir.parent() {
                    // The new directory survives a crash only once its entry does.
                    fs::File::open(parent)?.sync_all()?;
                }
                *created = true;
                if let Some((runs, run)) = sweep.take() {
                    node_dir::sweep(&runs, &run);
                }
            }
        }
        Ok(dir)
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        fs::File::open(self.writable_dir()?)?.sync_all()
    }

    /// The append handle for `name`, opening (and if need be creating) the file.
    fn append_handle(&mut self, name: &str) -> io::Result<&mut fs::File> {
        if !self.appending.contains_key(name) {
            self.writable_dir()?;
            let path = self.path(name)?;
            let file = match fs::OpenOptions::new().append(true).open(&path) {
                Ok(file) => file,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    let file = fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&path)?;
                    // A new file exists after a crash only once its directory entry does.
                    self.sync_dir()?;
                    file
                }
                Err(err) => return Err(err),
            };
            self.appending.insert(name.to_string(), file);
        }
        Ok(self.appending.get_mut(name).expect("inserted above"))
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        if plain_name(name) {
            Ok(self.known_dir()?.join(name))
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("storage name {name:?} must be a plain file name of [A-Za-z0-9._-]"),
            ))
        }
    }
}

/// A temporary name for `name` that no other process (and no other call) picks: hidden,
/// so it never clashes with a stored name.
fn tmp_name(name: &str) -> String {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{name}.{}.{n}.tmp", std::process::id())
}

impl Storage for DirStorage {
    /// Resolves the node's directory again unless it already is this node's: an `init`
    /// that failed (here or in the node) may be followed by another, for any node.
    fn open_node(&mut self, node_id: &str) -> io::Result<()> {
        let Some(dirs) = &self.dirs else {
            return Ok(());
        };
        let same = matches!(self.place, Place::Dir { .. }) && self.node.as_deref() == Some(node_id);
        if same {
            return Ok(());
        }
        // Handles point into the old directory.
        self.appending.clear();
        self.node = Some(node_id.to_string());
        match dirs.resolve(node_id) {
            Ok(node) => {
                self.place = Place::Dir {
                    created: node.dir.is_dir(),
                    dir: node.dir,
                    sweep: node.sweep,
                };
                Ok(())
            }
            Err(e) => {
                self.place = Place::Unusable(e.to_string());
                Err(e)
            }
        }
    }

    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.path(name)?) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    fn store(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.path(name)?;
        // Dropped even if the store fails: the file may or may not have been replaced.
        self.appending.remove(name);
        let tmp = self.writable_dir()?.join(tmp_name(name));
        let written = fs::File::create_new(&tmp).and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        });
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        // The rename is only durable once the directory entry is.
        self.sync_dir()
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let file = self.append_handle(name)?;
        let written = file.write_all(bytes).and_then(|()| file.sync_data());
        if written.is_err() {
            // Where the file ends is unknown now; the next append reopens it.
            self.appending.remove(name);
        }
        written
    }
}

/// In-memory storage for tests and simulations; clone it to model a restart.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Storage for MemStorage {
    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.files.get(name).cloned())
    }

    fn store(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.files.insert(name.to_string(), bytes.to_vec());
        Ok(())
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.files
            .entry(name.to_string())
            .or_default()
            .extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_storage_round_trips_and_replaces() {
        let dir = std::env::temp_dir().join(format!("mc-storage-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut storage = DirStorage::new(&dir);
        assert_eq!(storage.load("state").unwrap(), None);
        storage.store("state", b"one").unwrap();
        storage.store("state", b"two").unwrap();
        assert_eq!(storage.load("state").unwrap(), Some(b"two".to_vec()));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dir_storage_refuses_paths() {
        let mut storage = DirStorage::new(std::env::temp_dir());
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(storage.store(bad, b"x").is_err(), "{bad:?}");
            assert!(storage.load(bad).is_err(), "{bad:?}");
            assert!(storage.append(bad, b"x").is_err(), "{bad:?}");
        }
    }

    fn scratch_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mc-storage-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn dir_storage_appends_create_and_grow_the_file() {
        let dir = scratch_dir("append");
        let mut storage = DirStorage::new(&dir);
        storage.append("log", b"one\n").unwrap();
        storage.append("log", b"two\n").unwrap();
        assert_eq!(storage.load("log").unwrap(), Some(b"one\ntwo\n".to_vec()));
        // A fresh instance (a restart) sees the same bytes and keeps appending to them.
        let mut again = DirStorage::new(&dir);
        again.append("log", b"three\n").unwrap();
        assert_eq!(fs::read(dir.join("log")).unwrap(), b"one\ntwo\nthree\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dir_storage_store_replaces_the_file_appends_go_to() {
        let dir = scratch_dir("rewrite");
        let mut storage = DirStorage::new(&dir);
        storage.append("log", b"old\n").unwrap();
        storage.store("log", b"new\n").unwrap();
        // Through a stale handle this would land in the replaced file and be lost.
        storage.append("log", b"more\n").unwrap();
        assert_eq!(storage.load("log").unwrap(), Some(b"new\nmore\n".to_vec()));
        fs::remove_dir_all(&dir).unwrap();
    }

    fn this_run() -> node_dir::RunId {
        node_dir::RunId::of(std::process::id()).unwrap()
    }

    /// Storage for node `id` of `run`, in a working directory shared with every other node.
    fn node_storage(cwd: &std::path::Path, run: &node_dir::RunId, id: &str) -> DirStorage {
        let mut storage = DirStorage::per_node(NodeDirs::ByRun {
            base: cwd.to_path_buf(),
            run: run.clone(),
        });
        storage.open_node(id).unwrap();
        storage
    }

    #[test]
    fn nodes_sharing_a_working_directory_keep_their_files_apart() {
        let cwd = scratch_dir("shared");
        let run = this_run();
        let mut nodes: Vec<DirStorage> = (0..5)
            .map(|i| node_storage(&cwd, &run, &format!("n{i}")))
            .collect();
        for (i, node) in nodes.iter_mut().enumerate() {
            node.store("state", format!("mine is {i}").as_bytes())
                .unwrap();
            node.append("log", format!("{i}\n").as_bytes()).unwrap();
        }
        for (i, node) in nodes.iter().enumerate() {
            let state = node.load("state").unwrap().unwrap();
            assert_eq!(state, format!("mine is {i}").as_bytes());
            assert_eq!(
                node.load("log").unwrap().unwrap(),
                format!("{i}\n").as_bytes()
            );
        }
        // Nothing lands in the working directory itself but the folder of runs.
        let top: Vec<_> = fs::read_dir(&cwd)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(top, [node_dir::RUNS_DIR]);
        fs::remove_dir_all(&cwd).unwrap();
    }

    #[test]
    fn a_restarted_node_finds_its_files_and_a_new_run_does_not() {
        let cwd = scratch_dir("restart");
        let run = this_run();
        node_storage(&cwd, &run, "n0").store("vote", b"n2").unwrap();
        let again = node_storage(&cwd, &run, "n0");
        assert_eq!(again.load("vote").unwrap(), Some(b"n2".to_vec()));
        // Another test run with the same node ids (here: a pid reused with another start).
        let next = node_dir::RunId {
            start: run.start + 1,
            ..run.clone()
        };
        assert_eq!(node_storage(&cwd, &next, "n0").load("vote").unwrap(), None);
        fs::remove_dir_all(&cwd).unwrap();
    }

    #[test]
    fn nothing_is_created_before_the_first_write_and_then_dead_runs_are_swept() {
        let cwd = scratch_dir("sweep");
        let run = this_run();
        let dead = node_dir::RunId {
            start: run.start + 1,
            ..run.clone()
        };
        node_storage(&cwd, &dead, "n0").store("x", b"old").unwrap();
        let runs = cwd.join(node_dir::RUNS_DIR);
        assert!(runs.join(dead.name()).is_dir());
        let mut node = node_storage(&cwd, &run, "n0");
        assert_eq!(node.load("x").unwrap(), None);
        assert!(!runs.join(run.name()).exists(), "a load creates nothing");
        assert!(runs.join(dead.name()).is_dir(), "nor sweeps");
        node.store("x", b"new").unwrap();
        assert!(!runs.join(dead.name()).exists(), "the dead run is swept");
        // Users sharing the working directory may all add run folders to it.
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&runs).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o1777);
        assert_eq!(node.load("x").unwrap(), Some(b"new".to_vec()));
        fs::remove_dir_all(&cwd).unwrap();
    }

    #[test]
    fn per_node_storage_needs_a_node_and_a_usable_one() {
        let cwd = scratch_dir("unopened");
        let dirs = NodeDirs::ByRun {
            base: cwd.clone(),
            run: this_run(),
        };
        let mut unopened = DirStorage::per_node(dirs.clone());
        assert!(unopened.store("x", b"1").is_err());
        assert!(unopened.load("x").is_err());
        // An id that is no plain name still gets a directory of its own, in the run's.
        let mut odd = DirStorage::per_node(dirs.clone());
        odd.open_node("../n0").unwrap();
        odd.store("x", b"1").unwrap();
        let dir = dirs.resolve("../n0").unwrap().dir;
        assert_eq!(fs::read(dir.join("x")).unwrap(), b"1");
        assert!(dir.starts_with(cwd.join(node_dir::RUNS_DIR)), "{dir:?}");
        let mut unnamed = DirStorage::per_node(NodeDirs::Unnamed("no /proc here".into()));
        unnamed.open_node("n0").unwrap_err();
        assert!(unnamed
            .load("x")
            .unwrap_err()
            .to_string()
            .contains("no /proc"));
        fs::remove_dir_all(&cwd).unwrap();
    }

    #[test]
    fn a_second_open_resolves_again_unless_it_names_the_same_node() {
        let cwd = scratch_dir("reopen");
        let dirs = NodeDirs::ByRun {
            base: cwd.clone(),
            run: this_run(),
        };
        // An init that failed in the node as n0, then one as n1: n1's files go to n1.
        let mut storage = DirStorage::per_node(dirs.clone());
        storage.open_node("n0").unwrap();
        storage.append("log", b"n0\n").unwrap();
        storage.open_node("n0").unwrap();
        assert_eq!(storage.load("log").unwrap(), Some(b"n0\n".to_vec()));
        storage.open_node("n1").unwrap();
        assert_eq!(
            storage.dir(),
            Some(dirs.resolve("n1").unwrap().dir.as_path())
        );
        assert_eq!(storage.load("log").unwrap(), None);
        storage.append("log", b"n1\n").unwrap();
        let n0 = dirs.resolve("n0").unwrap().dir;
        assert_eq!(
            fs::read(n0.join("log")).unwrap(),
            b"n0\n",
            "n0 keeps its own"
        );
        // A place that could not be named fails every open, not only the first.
        let mut unnamed = DirStorage::per_node(NodeDirs::Unnamed("no /proc here".into()));
        unnamed.open_node("n0").unwrap_err();
        unnamed.open_node("n0").unwrap_err();
        // Storage in one fixed directory stays there whatever node opens it.
        let mut fixed = DirStorage::new(&cwd);
        fixed.open_node("n0").unwrap();
        fixed.open_node("n1").unwrap();
        assert_eq!(fixed.dir(), Some(cwd.as_path()));
        fs::remove_dir_all(&cwd).unwrap();
    }

    #[test]
    fn temporary_names_are_never_reused_so_concurrent_writers_never_trip() {
        let (a, b) = (tmp_name("state"), tmp_name("state"));
        assert_ne!(a, b);
        assert!(a.starts_with(".state.") && a.contains(&std::process::id().to_string()));
        // Two writers of one file in one directory: with a shared temporary name one
        // writer's rename takes the other's file away and the other's rename fails.
        let dir = scratch_dir("writers");
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let mut storage = DirStorage::new(&dir);
                    for i in 0..300 {
                        storage.store("state", format!("{w}:{i}").as_bytes())?;
                    }
                    io::Result::Ok(())
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap().unwrap();
        }
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, ["state"], "no temporary file is left behind");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mem_storage_appends() {
        let mut storage = MemStorage::default();
        storage.append("log", b"a").unwrap();
        storage.append("log", b"b").unwrap();
        assert_eq!(storage.load("log").unwrap(), Some(b"ab".to_vec()));
        storage.store("log", b"c").unwrap();
        storage.append("log", b"d").unwrap();
        assert_eq!(storage.load("log").unwrap(), Some(b"cd".to_vec()));
    }

    #[test]
    fn the_default_append_rewrites_through_store() {
        #[derive(Default)]
        struct Plain(BTreeMap<String, Vec<u8>>);
        impl Storage for Plain {
            fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
                Ok(self.0.get(name).cloned())
            }
            fn store(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
                self.0.insert(name.to_string(), bytes.to_vec());
                Ok(())
            }
        }
        let mut storage = Plain::default();
        storage.append("log", b"a").unwrap();
        storage.append("log", b"b").unwrap();
        assert_eq!(storage.load("log").unwrap(), Some(b"ab".to_vec()));
    }
}
