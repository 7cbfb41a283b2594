//! Small durable files in the node's working directory.
//!
//! Nodes that must keep promises across a crash (a Raft vote, an ID generator's high-water
//! mark) persist a few small files. Reads happen once, at `init`, through [`Storage`];
//! writes are [`crate::Outbox::persist`] commands that the runtime carries out, in order,
//! before any later message leaves, so nothing is promised that is not on disk.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;

/// Named blobs that survive the process.
pub trait Storage {
    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    fn store(&mut self, name: &str, bytes: &[u8]) -> io::Result<()>;
}

/// Files in a directory, replaced atomically (write, fsync, rename, fsync the directory).
#[derive(Debug, Clone)]
pub struct DirStorage {
    dir: PathBuf,
}

impl DirStorage {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirStorage { dir: dir.into() }
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
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        // The rename is only durable once the directory entry is.
        fs::File::open(&self.dir)?.sync_all()
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
        }
    }
}
