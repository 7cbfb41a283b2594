//! Small durable files in the node's working directory.
//!
//! Nodes that must keep promises across a crash (a Raft vote, an ID generator's high-water
//! mark) persist a few small files. Reads happen once, at `init`, through [`Storage`];
//! writes are [`crate::Outbox::persist`] (replace a file) and [`crate::Outbox::append`]
//! (grow one) commands that the runtime carries out, in order, before any later message
//! leaves, so nothing is promised that is not on disk.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;

/// Named blobs that survive the process.
pub trait Storage {
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
#[derive(Debug)]
pub struct DirStorage {
    dir: PathBuf,
    /// Open append handles by name. A `store` of the name drops its handle: after the
    /// rename it would point at the replaced file.
    appending: HashMap<String, fs::File>,
}

impl DirStorage {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirStorage {
            dir: dir.into(),
            appending: HashMap::new(),
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        fs::File::open(&self.dir)?.sync_all()
    }

    /// The append handle for `name`, opening (and if need be creating) the file.
    fn append_handle(&mut self, name: &str) -> io::Result<&mut fs::File> {
        if !self.appending.contains_key(name) {
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
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        if valid {
            Ok(self.dir.join(name))
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("storage name {name:?} must be a plain file name of [A-Za-z0-9._-]"),
            ))
        }
    }
}

impl Storage for DirStorage {
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
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
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
