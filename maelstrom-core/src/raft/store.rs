//! Raft's persistent state on disk, written by what changed rather than whole.
//!
//! [`Raft::save`] serializes everything (term, vote, the whole log, the snapshot, which may
//! be megabytes) on every batch. A [`RaftStore`] keeps three files under a prefix and, from
//! a [`Changes`], emits only the commands that bring them up to date:
//!
//! - `{prefix}.meta`: term, vote and the snapshot's index and term. Small; replaced
//!   atomically ([`Outbox::persist`]) when the term, the vote or the snapshot changes.
//! - `{prefix}.snap`: the snapshot with its index and term, replaced only when it changes.
//! - `{prefix}.log`: JSON lines. A `base` record (the index and term the log starts after)
//!   opens the file, then `entry` records follow, and `truncate` records that drop what
//!   follows an index when a new leader replaced the tail. New records are appended
//!   ([`Outbox::append`]); when the snapshot changes the file is rewritten whole with
//!   only the entries after it.
//!
//! Writes go in the order meta, snap, log, and each is durable before the next, so a crash
//! between two of them leaves one of these, all of which load into a safe state:
//! - the new meta with the old snapshot and log: a node that learned a term (or voted)
//!   but did not store the entries yet, whose messages never left;
//! - the new meta and snapshot with the old log: loading applies the snapshot to the old
//!   log exactly as [`Log::restore`] does in memory (keeping a suffix that matches it);
//! - a torn final line of the log (a crash in the middle of an append): it is ignored, and
//!   the next save rewrites the log before appending to it.
//!
//! Because the meta file is written first, no file ever holds a term above the meta's, so
//! a restarted node never holds entries or a snapshot of a term it has not durably reached.
//! Like [`Raft`], the store does no I/O itself: it reads files once in [`RaftStore::load`]
//! and otherwise only records commands.

use std::fmt;
use std::io;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Changes, Entry, Index, Log, Persistent, Raft, Term};
use crate::node::{Node, Outbox};
use crate::storage::Storage;

/// Where a Raft instance's files stand, as this store last wrote (or loaded) them.
#[derive(Debug)]
pub struct RaftStore {
    meta_file: String,
    snap_file: String,
    log_file: String,
    /// No meta file exists yet: the first save writes it whatever changed.
    fresh: bool,
    term: Term,
    voted_for: Option<String>,
    /// Index and term of the snapshot file's snapshot; (0, 0) without one.
    snapshot: (Index, Term),
    /// The last index the log file holds.
    log_last: Index,
    /// The log file must be rewritten before anything is appended to it: it is missing,
    /// ends in a torn line, or starts before the snapshot.
    rewrite_log: bool,
}

/// Why the stored state could not be loaded.
#[derive(Debug)]
pub enum StoreError {
    /// A file could not be read.
    Io { file: String, source: io::Error },
    /// A file's content is not what a store writes (and not a torn final log line).
    Corrupt {
        file: String,
        /// 1-based line of the log file, where there is one.
        line: Option<usize>,
        reason: String,
    },
    /// The files are well-formed but no sequence of writes and crashes leaves them so.
    Inconsistent(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { file, source } => write!(f, "cannot read {file}: {source}"),
            StoreError::Corrupt {
                file,
                line: Some(line),
                reason,
            } => write!(f, "{file} is corrupt at line {line}: {reason}"),
            StoreError::Corrupt {
                file,
                line: None,
                reason,
            } => write!(f, "{file} is corrupt: {reason}"),
            StoreError::Inconsistent(reason) => write!(f, "inconsistent Raft files: {reason}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct MetaOut<'a> {
    term: Term,
    voted_for: Option<&'a str>,
    snapshot_index: Index,
    snapshot_term: Term,
}

#[derive(Deserialize)]
struct Meta {
    term: Term,
    voted_for: Option<String>,
    snapshot_index: Index,
    snapshot_term: Term,
}

/// The snapshot; `data` is `null` for none, read back as `None` as [`Raft::save`]'s is.
#[derive(Serialize)]
struct SnapOut<'a> {
    index: Index,
    term: Term,
    data: Option<&'a serde_json::Value>,
}

#[derive(Deserialize)]
struct Snap {
    index: Index,
    term: Term,
    data: Option<serde_json::Value>,
}

/// One line of the log file.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum RecordOut<'a, C> {
    Base { index: Index, term: Term },
    Entry(&'a Entry<C>),
    Truncate { after: Index },
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record<C> {
    Base { index: Index, term: Term },
    Entry(Entry<C>),
    Truncate { after: Index },
}

fn push_record<C: Serialize>(buf: &mut Vec<u8>, record: &RecordOut<'_, C>) {
    serde_json::to_writer(&mut *buf, record)
        .expect("Raft log records serialize: string keys, plain values");
    buf.push(b'\n');
}

impl RaftStore {
    fn empty(prefix: &str) -> Self {
        RaftStore {
            meta_file: format!("{prefix}.meta"),
            snap_file: format!("{prefix}.snap"),
            log_file: format!("{prefix}.log"),
            fresh: true,
            term: 0,
            voted_for: None,
            snapshot: (0, 0),
            log_last: 0,
            rewrite_log: true,
        }
    }

    /// Reads the state stored under `prefix`: `None` when nothing is (a first start), to
    /// hand to [`Raft::new`] either way. The store goes on from what it found.
    pub fn load<C: DeserializeOwned + Clone>(
        storage: &dyn Storage,
        prefix: &str,
    ) -> Result<(RaftStore, Option<Persistent<C>>), StoreError> {
        let mut store = RaftStore::empty(prefix);
        let read = |file: &str| {
            storage.load(file).map_err(|source| StoreError::Io {
                file: file.to_string(),
                source,
            })
        };
        let meta = read(&store.meta_file)?;
        let snap = read(&store.snap_file)?;
        let log = read(&store.log_file)?;
        let Some(meta) = meta else {
            return match (snap, log) {
                (None, None) => Ok((store, None)),
                _ => Err(StoreError::Inconsistent(format!(
                    "{} or {} exists without {}, which is always written first",
                    store.snap_file, store.log_file, store.meta_file
                ))),
            };
        };
        let meta: Meta = serde_json::from_slice(&meta).map_err(|e| StoreError::Corrupt {
            file: store.meta_file.clone(),
            line: None,
            reason: e.to_string(),
        })?;
        let snap: Option<Snap> = snap
            .map(|bytes| serde_json::from_slice(&bytes))
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                file: store.snap_file.clone(),
                line: None,
                reason: e.to_string(),
            })?;
        let (snap_index, snap_term) = snap.as_ref().map_or((0, 0), |s| (s.index, s.term));
        // The meta file is written before the snapshot: it may be newer, never older.
        let snap_fits_meta = snap_index < meta.snapshot_index
            || (snap_index, snap_term) == (meta.snapshot_index, meta.snapshot_term);
        if !snap_fits_meta {
            return Err(StoreError::Inconsistent(format!(
                "{} holds the snapshot at {snap_index} (term {snap_term}) but {} names the one at {} (term {})",
                store.snap_file, store.meta_file, meta.snapshot_index, meta.snapshot_term
            )));
        }
        let (mut log, clean) = match log {
            Some(bytes) => parse_log(&store.log_file, &bytes)?,
            None => (Log::new(), false),
        };
        // The log is rewritten after the snapshot: it may start before it, never after.
        let log_base = (log.snapshot_index, log.snapshot_term);
        if log_base.0 > snap_index || (log_base.0 == snap_index && log_base.1 != snap_term) {
            return Err(StoreError::Inconsistent(format!(
                "{} starts after index {} (term {}) but the snapshot is at {snap_index} (term {snap_term})",
                store.log_file, log_base.0, log_base.1
            )));
        }
        if log_base.0 < snap_index {
            log.restore(snap_index, snap_term);
        }
        let highest = log.last_term().max(snap_term);
        if highest > meta.term {
            return Err(StoreError::Inconsistent(format!(
                "the log or snapshot holds term {highest} but {} is at term {}",
                store.meta_file, meta.term
            )));
        }
        store.fresh = false;
        store.term = meta.term;
        store.voted_for = meta.voted_for.clone();
        store.snapshot = (snap_index, snap_term);
        store.log_last = log.last_index();
        store.rewrite_log = !clean || log_base.0 < snap_index;
        let state = Persistent {
            term: meta.term,
            voted_for: meta.voted_for,
            log,
            snapshot: snap.and_then(|s| s.data),
        };
        Ok((store, Some(state)))
    }

    /// Records in `out` the writes that make the files hold `raft`'s persistent state, given
    /// what changed since the last save (`Ready::changes`; every ready's changes must be
    /// saved). Carry them out before the ready's messages leave.
    ///
    /// # Panics
    ///
    /// If a command cannot be serialized as JSON, as [`Raft::save`] does.
    pub fn save<C, N>(&mut self, raft: &Raft<C>, changes: &Changes, out: &mut Outbox<N>)
    where
        C: Clone + Serialize,
        N: Node,
    {
        let log = &raft.log;
        let snapshot = (log.snapshot_index, log.snapshot_term);
        let vote = raft.durable_vote();
        // What changed, by the changes reported and by what the files hold: either alone
        // would do; both make a missed flag cost a write, not the state.
        let snapshot_changed = changes.snapshot || snapshot != self.snapshot;
        let log_changed =
            snapshot_changed || changes.entries_from.is_some() || log.last_index() != self.log_last;
        let hard_changed = changes.hard_state
            || raft.term != self.term
            || vote != self.voted_for.as_deref()
            || snapshot_changed
            || (self.fresh && log_changed);
        if hard_changed {
            let meta = MetaOut {
                term: raft.term,
                voted_for: vote,
                snapshot_index: snapshot.0,
                snapshot_term: snapshot.1,
            };
            let bytes = serde_json::to_vec(&meta).expect("Raft meta serializes");
            out.persist(self.meta_file.clone(), bytes);
            self.fresh = false;
            self.term = raft.term;
            self.voted_for = vote.map(str::to_string);
        }
        if snapshot_changed {
            let snap = SnapOut {
                index: snapshot.0,
                term: snapshot.1,
                data: raft.snapshot.as_ref(),
            };
            let bytes = serde_json::to_vec(&snap).expect("a JSON value serializes");
            out.persist(self.snap_file.clone(), bytes);
            self.snapshot = snapshot;
        }
        if !log_changed {
            return;
        }
        let mut bytes = Vec::new();
        if self.rewrite_log || snapshot_changed {
            let (index, term) = snapshot;
            push_record::<C>(&mut bytes, &RecordOut::Base { index, term });
            for index in index + 1..=log.last_index() {
                if let Some(entry) = log.get(index) {
                    push_record(&mut bytes, &RecordOut::Entry(entry));
                }
            }
            out.persist(self.log_file.clone(), bytes);
            self.rewrite_log = false;
        } else {
            // Everything after `keep` is new; what the file holds after it is stale.
            let from = changes.entries_from.unwrap_or(Index::MAX);
            let keep = from
                .saturating_sub(1)
                .min(self.log_last)
                .min(log.last_index())
                .max(log.snapshot_index);
            if keep < self.log_last {
                push_record::<C>(&mut bytes, &RecordOut::Truncate { after: keep });
            }
            for index in keep + 1..=log.last_index() {
                if let Some(entry) = log.get(index) {
                    push_record(&mut bytes, &RecordOut::Entry(entry));
                }
            }
            if !bytes.is_empty() {
                out.append(self.log_file.clone(), bytes);
            }
        }
        self.log_last = log.last_index();
    }
}

/// Rebuilds the log file's log; `false` with it when the file ends in a torn line (or
/// without a newline), so the next save must rewrite it.
fn parse_log<C: DeserializeOwned + Clone>(
    file: &str,
    bytes: &[u8],
) -> Result<(Log<C>, bool), StoreError> {
    let corrupt = |line: usize, reason: String| StoreError::Corrupt {
        file: file.to_string(),
        line: Some(line),
        reason,
    };
    // Lines ended by a newline were written whole; what follows the last newline is the
    // tail of an append a crash interrupted, or nothing.
    let (body, tail) = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => (Some(&bytes[..end]), &bytes[end + 1..]),
        None => (None, bytes),
    };
    let mut log: Option<Log<C>> = None;
    let mut apply = |number: usize, record: Record<C>| -> Result<(), StoreError> {
        match (record, log.as_mut()) {
            (Record::Base { index, term }, None) => {
                let mut fresh = Log::new();
                fresh.restore(index, term);
                log = Some(fresh);
            }
            (Record::Base { .. }, Some(_)) => {
                return Err(corrupt(number, "a base record after the first line".into()))
            }
            (_, None) => {
                return Err(corrupt(
                    number,
                    "the first line is not a base record".into(),
                ))
            }
            (Record::Entry(entry), Some(log)) => {
                if log.last_index().checked_add(1) != Some(entry.index) {
                    return Err(corrupt(
                        number,
                        format!(
                            "entry {} does not follow entry {}",
                            entry.index,
                            log.last_index()
                        ),
                    ));
                }
                if entry.term < log.last_term() {
                    return Err(corrupt(
                        number,
                        format!(
                            "entry {} has term {}, below the term {} before it",
                            entry.index,
                            entry.term,
                            log.last_term()
                        ),
                    ));
                }
                log.append(entry.term, entry.command);
            }
            (Record::Truncate { after }, Some(log)) => {
                if after < log.snapshot_index || after > log.last_index() {
                    return Err(corrupt(
                        number,
                        format!(
                            "truncation after {after} outside the log's {}..={}",
                            log.snapshot_index,
                            log.last_index()
                        ),
                    ));
                }
                log.truncate_after(after);
            }
        }
        Ok(())
    };
    let mut lines = 0;
    if let Some(body) = body {
        for line in body.split(|b| *b == b'\n') {
            lines += 1;
            let record = serde_json::from_slice(line).map_err(|e| corrupt(lines, e.to_string()))?;
            apply(lines, record)?;
        }
    }
    let mut clean = true;
    if !tail.is_empty() {
        clean = false;
        // A record complete but for its newline counts; a torn one never parses (it is a
        // JSON object missing at least its closing brace).
        if let Ok(record) = serde_json::from_slice(tail) {
            apply(lines + 1, record)?;
        }
    }
    match log {
        Some(log) => Ok((log, clean)),
        None => Err(StoreError::Corrupt {
            file: file.to_string(),
            line: None,
            reason: "no base record".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{json, Value};

    use super::*;
    use crate::message::Message;
    use crate::node::{Command, Context, InitError};
    use crate::raft::{Config, Flaw, RaftMsg};
    use crate::storage::MemStorage;

    type State = Persistent<u64>;

    /// A node type only for its [`Outbox`].
    #[derive(Debug)]
    struct Host;

    impl Node for Host {
        type Msg = Value;
        type Timer = ();
        type Call = ();

        fn init(_: &Context, _: &dyn Storage, _: &mut Outbox<Self>) -> Result<Self, InitError> {
            Ok(Host)
        }

        fn on_message(&mut self, _: &Context, _: Message<Value>, _: &mut Outbox<Self>) {}
    }

    const PREFIX: &str = "raft";

    /// Carries out storage commands in order; `torn` cuts the last one's bytes in half, as
    /// a crash in the middle of writing it would.
    fn carry_out(disk: &mut MemStorage, commands: &[Command<Host>], torn: bool) {
        for (i, command) in commands.iter().enumerate() {
            let last = i + 1 == commands.len();
            match command {
                Command::Persist { name, bytes } => disk.store(name, bytes).unwrap(),
                Command::Append { name, bytes } => {
                    let bytes = if torn && last {
                        &bytes[..bytes.len() / 2]
                    } else {
                        bytes
                    };
                    disk.append(name, bytes).unwrap()
                }
                other => panic!("a store records only storage commands: {other:?}"),
            }
        }
    }

    fn empty_state() -> State {
        Persistent {
            term: 0,
            voted_for: None,
            log: Log::new(),
            snapshot: None,
        }
    }

    /// What the disk holds, as a restarted node would read it.
    fn loaded(disk: &MemStorage) -> State {
        match RaftStore::load(disk, PREFIX) {
            Ok((_, state)) => state.unwrap_or_else(empty_state),
            Err(err) => panic!("load failed: {err}; files: {:?}", files(disk)),
        }
    }

    fn files(disk: &MemStorage) -> Vec<(String, String)> {
        disk.files
            .iter()
            .map(|(name, bytes)| (name.clone(), String::from_utf8_lossy(bytes).into_owned()))
            .collect()
    }

    /// What `Raft::save` says must survive.
    fn expected(raft: &Raft<u64>) -> State {
        serde_json::from_slice(&raft.save()).unwrap()
    }

    /// A state a crash part-way through one save may leave: each part as before or after.
    fn assert_between(got: &State, before: &State, after: &State, context: &str) {
        let hard = |s: &State| (s.term, s.voted_for.clone());
        assert!(
            hard(got) == hard(before) || hard(got) == hard(after),
            "{context}: term and vote {:?}, before {:?}, after {:?}",
            hard(got),
            hard(before),
            hard(after)
        );
        let snap = |s: &State| {
            (
                s.log.snapshot_index,
                s.log.snapshot_term,
                s.snapshot.clone(),
            )
        };
        assert!(
            snap(got) == snap(before) || snap(got) == snap(after),
            "{context}: snapshot {:?}",
            snap(got)
        );
        for index in got.log.snapshot_index + 1..=got.log.last_index() {
            let entry = got.log.get(index);
            assert!(
                entry == before.log.get(index) || entry == after.log.get(index),
                "{context}: entry {index} is {entry:?}, before {:?}, after {:?}",
                before.log.get(index),
                after.log.get(index)
            );
        }
    }

    struct Member {
        raft: Raft<u64>,
        store: RaftStore,
        disk: MemStorage,
        /// What the disk held after the last save.
        saved: State,
        /// Whether the log file ever got a truncation record.
        truncated: bool,
        /// The changes of the last ready.
        store_changes: Option<Changes>,
    }

    impl Member {
        fn new(raft: Raft<u64>) -> Member {
            let disk = MemStorage::default();
            let (store, state) = RaftStore::load::<u64>(&disk, PREFIX).unwrap();
            assert!(state.is_none());
            Member {
                raft,
                store,
                disk,
                saved: empty_state(),
                truncated: false,
                store_changes: None,
            }
        }

        /// Takes a ready and the commands that save it, without carrying them out.
        fn save(&mut self) -> (crate::raft::Ready<u64>, Vec<Command<Host>>) {
            let ready = self.raft.ready();
            let mut out = Outbox::<Host>::new();
            self.store.save(&self.raft, &ready.changes, &mut out);
            (ready, out.drain().collect())
        }

        /// Restarts from the disk alone, as after a crash.
        fn restart(&mut self, members: &[String], config: Config) {
            let (store, state) = RaftStore::load::<u64>(&self.disk, PREFIX).unwrap();
            self.saved = state.clone().unwrap_or_else(empty_state);
            self.store = store;
            self.raft = Raft::new(self.raft.id(), members, config, state, 0, 2);
        }

        /// Takes a ready, saves it, carries the commands out, and checks that the disk
        /// loads as exactly what `Raft::save` describes, and that a crash after any
        /// prefix of the commands (the last one torn or whole) loads too.
        fn ready(&mut self) -> Vec<(String, RaftMsg<u64>)> {
            let (ready, commands) = self.save();
            assert_eq!(
                commands.is_empty(),
                !ready.persist,
                "{:?} gave {commands:?}",
                ready.changes
            );
            let after = expected(&self.raft);
            for k in 0..=commands.len() {
                for torn in [false, true] {
                    let mut disk = self.disk.clone();
                    carry_out(&mut disk, &commands[..k], torn);
                    let context = format!("{} after {k} commands, torn {torn}", self.raft.id());
                    assert_between(&loaded(&disk), &self.saved, &after, &context);
                }
            }
            for command in &commands {
                if let Command::Append { bytes, .. } = command {
                    self.truncated |= String::from_utf8_lossy(bytes).contains("truncate");
                }
            }
            carry_out(&mut self.disk, &commands, false);
            assert_eq!(loaded(&self.disk), after, "{}", self.raft.id());
            self.saved = after;
            self.store_changes = Some(ready.changes);
            ready.messages
        }
    }

    /// Three members exchanging messages directly, with links that can be cut.
    struct Cluster {
        names: Vec<String>,
        members: Vec<Member>,
        now: u64,
        cut: BTreeSet<(usize, usize)>,
    }

    impl Cluster {
        fn new(config: Config) -> Cluster {
            let names: Vec<String> = (0..3).map(|i| format!("n{i}")).collect();
            let members = (0..3)
                .map(|i| Member::new(Raft::new(&names[i], &names, config.clone(), None, 0, 7)))
                .collect();
            Cluster {
                names,
                members,
                now: 0,
                cut: BTreeSet::new(),
            }
        }

        fn isolate(&mut self, node: usize) {
            for other in 0..3 {
                if other != node {
                    self.cut.insert((node, other));
                    self.cut.insert((other, node));
                }
            }
        }

        /// Delivers messages over uncut links until none are left.
        fn pump(&mut self) {
            loop {
                let mut sent = Vec::new();
                for from in 0..3 {
                    for (to, msg) in self.members[from].ready() {
                        let to = self.names.iter().position(|n| *n == to).unwrap();
                        if !self.cut.contains(&(from, to)) {
                            sent.push((from, to, msg));
                        }
                    }
                }
                if sent.is_empty() {
                    return;
                }
                for (from, to, msg) in sent {
                    let from = self.names[from].clone();
                    self.members[to].raft.step(self.now, &from, msg);
                }
            }
        }

        fn elect(&mut self, node: usize) {
            self.now += 10_000;
            self.members[node].raft.tick(self.now);
            self.pump();
            assert!(self.raft(node).is_leader(), "n{node} won");
        }

        /// A heartbeat round from every member whose deadline passed.
        fn heartbeat(&mut self) {
            self.now += Config::default().heartbeat_ms;
            for m in &mut self.members {
                if m.raft.is_leader() {
                    m.raft.tick(self.now);
                }
            }
            self.pump();
        }

        fn propose(&mut self, node: usize, count: u64) {
            for i in 0..count {
                self.members[node]
                    .raft
                    .propose(1_000 * node as u64 + i)
                    .unwrap();
            }
            self.pump();
        }

        fn compact(&mut self, node: usize) {
            let raft = &mut self.members[node].raft;
            let upto = raft.commit_index();
            raft.compact(upto, json!({ "upto": upto }));
            self.pump();
            assert_eq!(self.raft(node).log().snapshot_index, upto);
        }

        fn raft(&self, node: usize) -> &Raft<u64> {
            &self.members[node].raft
        }
    }

    #[test]
    fn the_files_follow_a_cluster_through_appends_overwrites_compaction_and_installs() {
        let mut c = Cluster::new(Config::default());
        c.elect(0);
        c.propose(0, 5);
        c.heartbeat();
        assert_eq!(c.raft(2).commit_index(), 6, "the no-op and five commands");

        // n0, cut off, appends a tail nobody else has; n1 leads a new term without it.
        c.isolate(0);
        c.propose(0, 3);
        c.elect(1);
        c.propose(1, 2);
        c.cut.clear();
        c.heartbeat();
        c.heartbeat();
        let (n0, n1) = (c.raft(0).log(), c.raft(1).log());
        assert_eq!(n0.last_index(), n1.last_index());
        assert_eq!(n0.get(7), n1.get(7), "n1's entries replaced n0's tail");
        assert!(
            c.members[0].truncated,
            "n0's log file recorded the truncation"
        );

        // Everyone compacts, then n2 falls behind a compacted log and gets a snapshot.
        for node in 0..3 {
            c.compact(node);
        }
        c.isolate(2);
        c.propose(1, 20);
        c.compact(1);
        c.propose(1, 4);
        c.cut.clear();
        c.heartbeat();
        c.heartbeat();
        let snapshot_index = c.raft(1).log().snapshot_index;
        assert!(
            c.raft(2).log().snapshot_index >= snapshot_index,
            "n2 installed it"
        );
        assert_eq!(c.raft(2).log().last_index(), c.raft(1).log().last_index());
        assert_eq!(
            c.members[2].saved.snapshot,
            Some(json!({ "upto": snapshot_index }))
        );

        // A restart from the files alone goes on where the node left off.
        let m = &c.members[2];
        let (mut store, state) = RaftStore::load::<u64>(&m.disk, PREFIX).unwrap();
        let state = state.unwrap();
        assert_eq!(state, m.saved);
        let mut raft = Raft::new("n2", &c.names, Config::default(), Some(state), c.now, 1);
        let mut out = Outbox::<Host>::new();
        let ready = raft.ready();
        store.save(&raft, &ready.changes, &mut out);
        assert!(out.is_empty(), "nothing to write after a clean load");
    }

    /// A follower driven by hand-made appends: a stale append changes nothing, a
    /// conflicting one truncates in the middle of what was written.
    #[test]
    fn a_conflicting_append_truncates_the_written_log() {
        let names: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mut m = Member::new(Raft::new("b", &names, Config::default(), None, 0, 1));
        let entries = |term, indexes: std::ops::RangeInclusive<Index>| -> Vec<Entry<u64>> {
            indexes
                .map(|index| Entry {
                    term,
                    index,
                    command: Some(index * 10 + term),
                })
                .collect()
        };
        let append = |term, prev_index, prev_term, entries| RaftMsg::Append {
            term,
            prev_index,
            prev_term,
            entries,
            commit: 0,
            round: 1,
        };
        let step = |m: &mut Member, msg| {
            m.raft.step(1, "a", msg);
            m.ready();
            m.store_changes.take().unwrap()
        };
        let changes = step(&mut m, append(1, 0, 0, entries(1, 1..=5)));
        assert!(changes.hard_state, "term 1 reached");
        assert_eq!(changes.entries_from, Some(1));
        let changes = step(&mut m, append(1, 0, 0, entries(1, 1..=2)));
        assert!(!changes.any(), "a stale, matching append changes nothing");
        let changes = step(&mut m, append(2, 2, 1, entries(2, 3..=3)));
        assert_eq!(changes.entries_from, Some(3));
        assert!(m.truncated, "entries 4 and 5 were truncated in the file");
        assert_eq!(m.raft.log().last_index(), 3);
        let changes = step(&mut m, append(2, 3, 2, entries(2, 4..=5)));
        assert_eq!(changes.entries_from, Some(4));
        let changes = step(&mut m, append(3, 1, 1, entries(3, 2..=7)));
        assert_eq!(changes.entries_from, Some(2));
        assert_eq!(m.saved.log.last_index(), 7);
        let log = String::from_utf8(m.disk.files["raft.log"].clone()).unwrap();
        assert_eq!(log.matches("truncate").count(), 2, "{log}");
    }

    /// A one-member group, leading.
    fn single(config: Config) -> (Member, Vec<String>) {
        let names = vec!["a".to_string()];
        let mut m = Member::new(Raft::new("a", &names, config, None, 0, 1));
        m.raft.tick(10_000);
        m.ready();
        assert!(m.raft.is_leader());
        (m, names)
    }

    fn propose(m: &mut Member, count: u64) {
        for i in 0..count {
            m.raft.propose(i).unwrap();
        }
    }

    fn command_names(commands: &[Command<Host>]) -> Vec<String> {
        commands
            .iter()
            .map(|c| match c {
                Command::Persist { name, .. } => format!("persist {name}"),
                Command::Append { name, .. } => format!("append {name}"),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_torn_final_line_is_ignored_and_the_log_rewritten_before_the_next_append() {
        // Torn inside the second of two lines, and whole but for the last newline.
        for cut in [Cut::Half, Cut::LastByte] {
            let (mut m, names) = single(Config::default());
            propose(&mut m, 3);
            m.ready();
            let before = m.saved.clone();
            propose(&mut m, 2);
            let (_, commands) = m.save();
            let after = expected(&m.raft);
            let [Command::Append { name, bytes }] = &commands[..] else {
                panic!("one append: {:?}", command_names(&commands));
            };
            let kept = match cut {
                Cut::Half => &bytes[..bytes.len() / 2 + 3],
                Cut::LastByte => &bytes[..bytes.len() - 1],
            };
            assert!(!kept.ends_with(b"\n"), "the cut is inside a line");
            m.disk.append(name, kept).unwrap();
            let got = loaded(&m.disk);
            assert_between(&got, &before, &after, "torn");
            let last = match cut {
                Cut::Half => before.log.last_index() + 1,
                Cut::LastByte => after.log.last_index(),
            };
            assert_eq!(got.log.last_index(), last, "{cut:?}");

            m.restart(&names, Config::default());
            m.raft.tick(20_000);
            propose(&mut m, 4);
            let (_, commands) = m.save();
            assert_eq!(
                command_names(&commands)[..2],
                ["persist raft.meta", "persist raft.log"],
                "the log is rewritten, not appended to"
            );
            carry_out(&mut m.disk, &commands, false);
            assert_eq!(loaded(&m.disk), expected(&m.raft));
            propose(&mut m, 1);
            m.ready();
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Cut {
        Half,
        LastByte,
    }

    #[test]
    fn a_crash_between_the_snapshot_and_the_log_rewrite_loads_the_new_snapshot() {
        let (mut m, names) = single(Config::default());
        propose(&mut m, 10);
        m.ready();
        let upto = m.raft.commit_index();
        propose(&mut m, 3);
        m.ready();
        m.raft.compact(upto, json!({ "upto": upto }));
        let (_, commands) = m.save();
        assert_eq!(
            command_names(&commands),
            ["persist raft.meta", "persist raft.snap", "persist raft.log"]
        );
        let after = expected(&m.raft);
        carry_out(&mut m.disk, &commands[..2], false);
        assert_eq!(
            loaded(&m.disk),
            after,
            "the old log, restored onto the snapshot"
        );
        assert_eq!(after.log.last_index(), upto + 3);

        m.restart(&names, Config::default());
        m.raft.tick(20_000);
        propose(&mut m, 2);
        let (_, commands) = m.save();
        assert!(
            command_names(&commands).contains(&"persist raft.log".to_string()),
            "the log still starting before the snapshot is rewritten"
        );
        carry_out(&mut m.disk, &commands, false);
        assert_eq!(loaded(&m.disk), expected(&m.raft));
        let log = String::from_utf8(m.disk.files["raft.log"].clone()).unwrap();
        assert!(
            log.starts_with(&format!(r#"{{"base":{{"index":{upto},"#)),
            "{log}"
        );
    }

    #[test]
    fn a_null_snapshot_loads_as_save_describes_it() {
        let (mut m, _) = single(Config::default());
        propose(&mut m, 3);
        m.ready();
        let upto = m.raft.commit_index();
        m.raft.compact(upto, Value::Null);
        m.ready();
        assert_eq!(
            (m.saved.log.snapshot_index, &m.saved.snapshot),
            (upto, &None)
        );
    }

    #[test]
    fn the_vote_is_stored_unless_the_flaw_forgets_it() {
        for (flaw, stored) in [(Flaw::None, true), (Flaw::ForgetVote, false)] {
            let config = Config {
                flaw,
                ..Config::default()
            };
            let mut c = Cluster::new(config);
            c.elect(0);
            let meta: Value =
                serde_json::from_slice(&c.members[1].disk.files["raft.meta"]).unwrap();
            let expected = if stored { json!("n0") } else { Value::Null };
            assert_eq!(meta["voted_for"], expected, "{flaw:?}");
        }
    }

    /// A disk with all three files: entries, a truncation-free log after a snapshot.
    fn full_disk() -> MemStorage {
        let (mut m, _) = single(Config::default());
        propose(&mut m, 5);
        m.ready();
        let upto = m.raft.commit_index();
        m.raft.compact(upto, json!({ "upto": upto }));
        propose(&mut m, 5);
        m.ready();
        propose(&mut m, 5);
        m.ready();
        assert_eq!(m.disk.files.len(), 3);
        m.disk
    }

    fn load_error(disk: &MemStorage) -> String {
        match RaftStore::load::<u64>(disk, PREFIX) {
            Ok(_) => panic!("loaded {:?}", files(disk)),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn corrupt_or_inconsistent_files_are_errors() {
        let good = full_disk();
        loaded(&good);
        let with = |name: &str, bytes: &[u8]| {
            let mut disk = good.clone();
            disk.files.insert(name.to_string(), bytes.to_vec());
            disk
        };
        let err = load_error(&with("raft.meta", b"{\"term\":"));
        assert!(err.starts_with("raft.meta is corrupt"), "{err}");
        let err = load_error(&with("raft.snap", b"[]"));
        assert!(err.starts_with("raft.snap is corrupt"), "{err}");

        let log = String::from_utf8(good.files["raft.log"].clone()).unwrap();
        let mut lines: Vec<&str> = log.lines().collect();
        lines[2] = "{\"entry\":{\"term\":1,";
        let err = load_error(&with("raft.log", (lines.join("\n") + "\n").as_bytes()));
        assert!(err.starts_with("raft.log is corrupt at line 3"), "{err}");
        let mut lines: Vec<&str> = log.lines().collect();
        lines.remove(3);
        let err = load_error(&with("raft.log", (lines.join("\n") + "\n").as_bytes()));
        assert!(err.contains("does not follow"), "{err}");
        let err = load_error(&with("raft.log", log.lines().nth(1).unwrap().as_bytes()));
        assert!(
            err.contains("no base record") || err.contains("not a base"),
            "{err}"
        );

        let mut disk = good.clone();
        disk.files.remove("raft.meta");
        assert!(load_error(&disk).contains("without raft.meta"));
        let err = load_error(&with(
            "raft.meta",
            br#"{"term":1,"voted_for":"a","snapshot_index":1,"snapshot_term":1}"#,
        ));
        assert!(err.contains("inconsistent"), "{err}");
        let err = load_error(&with(
            "raft.meta",
            br#"{"term":0,"voted_for":"a","snapshot_index":99,"snapshot_term":1}"#,
        ));
        assert!(err.contains("holds term 1"), "{err}");
    }

    #[test]
    fn damaged_files_never_panic_and_a_cut_log_loads_a_prefix() {
        use rand::{Rng, SeedableRng};
        let good = full_disk();
        let full = loaded(&good);
        let log = good.files["raft.log"].clone();
        let base_line = log.iter().position(|b| *b == b'\n').unwrap() + 1;
        for cut in base_line..log.len() {
            let mut disk = good.clone();
            disk.files.insert("raft.log".into(), log[..cut].to_vec());
            let got = loaded(&disk);
            assert!(got.log.last_index() <= full.log.last_index());
            for index in got.log.snapshot_index + 1..=got.log.last_index() {
                assert_eq!(got.log.get(index), full.log.get(index));
            }
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..3_000 {
            let mut disk = good.clone();
            let name = ["raft.meta", "raft.snap", "raft.log"][rng.gen_range(0..3)];
            let bytes = disk.files.get_mut(name).unwrap();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..bytes.len());
                match rng.gen_range(0..3) {
                    0 => bytes[at] = rng.gen(),
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at, b"{}[]\n\",:0123456789-"[rng.gen_range(0..19)]),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            let _ = RaftStore::load::<u64>(&disk, PREFIX);
        }
    }
}
