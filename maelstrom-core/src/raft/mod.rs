//! Raft consensus as a deterministic state machine: no I/O, no clock, no threads. The
//! embedding node feeds it messages ([`Raft::step`]), time ([`Raft::tick`]), proposals and
//! read requests, and after each event takes a [`Ready`]: messages to send, state to
//! persist (before sending them), committed entries to apply, reads that may now be served,
//! and snapshots to install. A node may embed several instances, one per group.
//!
//! What it does, by the thesis's chapters: leader election with randomized timeouts and
//! pre-vote, plus leader stickiness (a node that heard from a leader within the minimum
//! election timeout ignores votes), so a rejoining node cannot disrupt a healthy cluster;
//! log replication with the consistency check, fast backtracking by conflicting term, and
//! batched, pipelined AppendEntries (up to [`Config::max_inflight`] unacknowledged per
//! follower); commitment only of current-term entries by counting (a leader appends a
//! no-op on election); linearizable reads by read-index (a quorum heartbeat round after the
//! read arrives, once the leader has committed in its term); a leader that loses contact
//! with a majority for an election timeout steps down; snapshots for log compaction, sent
//! to followers that fell behind them.

pub mod groups;
pub mod log;
pub mod placement;
pub mod route;
pub mod sessions;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

pub use groups::{Answer, GroupMsg, Groups, Logged, Outcome, Round, StateMachine};
pub use log::{Entry, Index, Log, Term};
pub use placement::replicas;
pub use route::{relay_or_decode, Pass, Relayed, Route, RouteConfig, Router, Target};
pub use sessions::{Origin, Sessions};
pub use store::{RaftStore, StoreError};

/// Timing and batching. Times are in milliseconds of the caller's monotonic clock.
#[derive(Debug, Clone)]
pub struct Config {
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    pub heartbeat_ms: u64,
    /// Entries per AppendEntries.
    pub max_batch: usize,
    /// Unacknowledged AppendEntries per follower.
    pub max_inflight: usize,
    /// Deliberate mistakes, for showing that the tests catch them.
    pub flaw: Flaw,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            election_min_ms: 300,
            election_max_ms: 600,
            heartbeat_ms: 50,
            max_batch: 256,
            max_inflight: 8,
            flaw: Flaw::None,
        }
    }
}

/// Ways to be wrong on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flaw {
    #[default]
    None,
    /// Does not persist `voted_for`: a restarted node may vote twice in one term.
    ForgetVote,
    /// Commits any entry a majority stores, whatever its term (Figure 8 of the paper).
    CommitOldTerms,
}

/// Raft's messages. Nodes wrap them with a group id in their own message type.
///
/// Externally tagged (`{"append": {…}}`): an internal tag makes serde buffer the whole
/// message, every entry of a batch included, before decoding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RaftMsg<C> {
    PreVote {
        term: Term,
        last_index: Index,
        last_term: Term,
    },
    PreVoteReply {
        term: Term,
        granted: bool,
    },
    Vote {
        term: Term,
        last_index: Index,
        last_term: Term,
    },
    VoteReply {
        term: Term,
        granted: bool,
    },
    Append {
        term: Term,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry<C>>,
        commit: Index,
        /// The leader's heartbeat round, echoed back for read-index.
        round: u64,
    },
    AppendReply {
        term: Term,
        success: bool,
        /// On success, the last index known to match; on failure, where to retry.
        index: Index,
        /// On failure, the term of the conflicting entry (0: the log is too short).
        conflict_term: Term,
        /// On failure, the `prev_index` that did not match, so stale rejections are told
        /// from fresh ones.
        #[serde(default)]
        rejected: Index,
        round: u64,
    },
    Snapshot {
        term: Term,
        last_index: Index,
        last_term: Term,
        data: serde_json::Value,
        round: u64,
    },
    SnapshotReply {
        term: Term,
        last_index: Index,
        round: u64,
    },
}

impl<C> RaftMsg<C> {
    pub fn term(&self) -> Term {
        match self {
            RaftMsg::PreVote { term, .. }
            | RaftMsg::PreVoteReply { term, .. }
            | RaftMsg::Vote { term, .. }
            | RaftMsg::VoteReply { term, .. }
            | RaftMsg::Append { term, .. }
            | RaftMsg::AppendReply { term, .. }
            | RaftMsg::Snapshot { term, .. }
            | RaftMsg::SnapshotReply { term, .. } => *term,
        }
    }
}

/// What must survive a crash, written before any message produced with it leaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Persistent<C> {
    pub term: Term,
    pub voted_for: Option<String>,
    pub log: Log<C>,
    /// The state machine at `log.snapshot_index`.
    pub snapshot: Option<serde_json::Value>,
}

/// [`Persistent`] borrowed from a live instance, to serialize without copying the log.
#[derive(Debug, Serialize)]
struct PersistentRef<'a, C> {
    term: Term,
    voted_for: Option<&'a str>,
    log: &'a Log<C>,
    snapshot: Option<&'a serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// Why a proposal or read was not accepted here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLeader {
    /// The leader this node last heard from in the current term, if any.
    pub leader: Option<String>,
}

/// What of the persistent state changed since the last [`Raft::ready`], so that storage
/// can write only that ([`RaftStore::save`]) instead of the whole state every time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// `term` or `voted_for` changed.
    pub hard_state: bool,
    /// The lowest log index appended, overwritten or truncated: the log from here on is
    /// new, and whatever was stored from here on is stale.
    pub entries_from: Option<Index>,
    /// The snapshot changed (a compaction or an install), and with it the log's start.
    pub snapshot: bool,
}

impl Changes {
    /// Whether anything must be persisted.
    pub fn any(&self) -> bool {
        self.hard_state || self.entries_from.is_some() || self.snapshot
    }

    fn log_from(&mut self, index: Index) {
        self.entries_from = Some(self.entries_from.map_or(index, |i| i.min(index)));
    }
}

/// Everything the node must do after an event.
#[derive(Debug)]
pub struct Ready<C> {
    pub messages: Vec<(String, RaftMsg<C>)>,
    /// Persist [`Raft::save`] (or `changes` through a [`RaftStore`]) before sending
    /// `messages` or acting on `committed`.
    pub persist: bool,
    /// What changed, in detail: `persist` is `changes.any()`.
    pub changes: Changes,
    /// Newly committed entries, in order, to apply to the state machine.
    pub committed: Vec<Entry<C>>,
    /// A snapshot from the leader: replace the state machine with it (before `committed`).
    pub install: Option<(Index, serde_json::Value)>,
    /// Reads (by the caller's id) that may be served once `committed` is applied.
    pub reads: Vec<u64>,
    /// Reads that can no longer be served here (leadership lost).
    pub failed_reads: Vec<u64>,
}

#[derive(Debug, Clone)]
struct Progress {
    next: Index,
    matched: Index,
    inflight: usize,
    /// Whether the follower's match point is unknown: then one append is in flight at a
    /// time, so rejections cannot multiply.
    probing: bool,
    /// The `prev_index` of the newest probe, the only rejection a probing leader heeds.
    probe: Index,
    /// The newest heartbeat round this follower answered.
    round: u64,
    /// When it last answered, for the leader's quorum check.
    heard_ms: u64,
    snapshot_sent: bool,
}

#[derive(Debug)]
struct PendingRead {
    id: u64,
    index: Index,
    round: u64,
}

/// One member of one Raft group. See the module documentation.
#[derive(Debug)]
pub struct Raft<C> {
    id: String,
    peers: Vec<String>,
    config: Config,
    role: Role,
    term: Term,
    voted_for: Option<String>,
    leader: Option<String>,
    log: Log<C>,
    snapshot: Option<serde_json::Value>,
    commit: Index,
    applied: Index,
    now: u64,
    election_deadline: u64,
    heartbeat_due: u64,
    last_leader_contact: Option<u64>,
    votes: BTreeSet<String>,
    progress: BTreeMap<String, Progress>,
    round: u64,
    reads: VecDeque<PendingRead>,
    ready_reads: Vec<u64>,
    failed_reads: Vec<u64>,
    messages: Vec<(String, RaftMsg<C>)>,
    /// What to persist before the messages leave, since the last `ready`.
    changes: Changes,
    install: Option<(Index, serde_json::Value)>,
    /// Entries proposed since the last `ready`, sent as one batch.
    replicate: bool,
    rng: StdRng,
}

impl<C: Clone + std::fmt::Debug> Raft<C> {
    /// A member `id` of the group `members` (which includes `id`), restored from `state`
    /// when there is one. `seed` makes its election timeouts reproducible.
    pub fn new(
        id: &str,
        members: &[String],
        config: Config,
        state: Option<Persistent<C>>,
        now_ms: u64,
        seed: u64,
    ) -> Self {
        let peers = members.iter().filter(|m| *m != id).cloned().collect();
        let mut rng = StdRng::seed_from_u64(seed ^ crate::stable_hash(id.as_bytes()));
        let (term, voted_for, log, snapshot) = match state {
            Some(s) => (s.term, s.voted_for, s.log, s.snapshot),
            None => (0, None, Log::new(), None),
        };
        let first_timeout = rng.gen_range(config.election_min_ms..=config.election_max_ms);
        let commit = log.snapshot_index;
        let install = snapshot.clone().map(|s| (log.snapshot_index, s));
        Raft {
            id: id.to_string(),
            peers,
            role: Role::Follower,
            term,
            voted_for,
            leader: None,
            commit,
            applied: commit,
            snapshot,
            log,
            now: now_ms,
            election_deadline: now_ms + first_timeout,
            heartbeat_due: now_ms,
            last_leader_contact: None,
            votes: BTreeSet::new(),
            progress: BTreeMap::new(),
            round: 0,
            reads: VecDeque::new(),
            ready_reads: Vec::new(),
            failed_reads: Vec::new(),
            messages: Vec::new(),
            changes: Changes::default(),
            install,
            replicate: false,
            config,
            rng,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    pub fn commit_index(&self) -> Index {
        self.commit
    }

    pub fn log(&self) -> &Log<C> {
        &self.log
    }

    /// The leader's view of how far each follower's log matches its own, for health
    /// reports; empty when this node does not lead.
    pub fn match_indexes(&self) -> Vec<(String, Index)> {
        if self.role != Role::Leader {
            return Vec::new();
        }
        self.progress
            .iter()
            .map(|(peer, p)| (peer.clone(), p.matched))
            .collect()
    }

    /// The earliest time `tick` has something to do.
    pub fn next_deadline(&self) -> u64 {
        match self.role {
            Role::Leader => self.heartbeat_due,
            _ => self.election_deadline,
        }
    }

    fn quorum(&self) -> usize {
        let members = self.peers.len() + 1;
        members / 2 + 1
    }

    fn random_timeout(&mut self) -> u64 {
        self.rng
            .gen_range(self.config.election_min_ms..=self.config.election_max_ms)
    }

    fn reset_election(&mut self) {
        let timeout = self.random_timeout();
        self.election_deadline = self.now + timeout;
    }

    fn send(&mut self, to: &str, msg: RaftMsg<C>) {
        self.messages.push((to.to_string(), msg));
    }

    fn set_term(&mut self, term: Term) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.changes.hard_state = true;
        }
    }

    /// Advances time: elections for followers, heartbeats and the quorum check for leaders.
    pub fn tick(&mut self, now_ms: u64) {
        self.now = self.now.max(now_ms);
        match self.role {
            Role::Leader => {
                let lost_quorum = {
                    let heard = self
                        .progress
                        .values()
                        .filter(|p| {
                            self.now.saturating_sub(p.heard_ms) < self.config.election_max_ms
                        })
                        .count()
                        + 1;
                    heard < self.quorum()
                };
                if lost_quorum {
                    self.become_follower(self.term, None);
                    return;
                }
                if self.now >= self.heartbeat_due {
                    self.heartbeat();
                }
            }
            _ if self.now >= self.election_deadline => self.campaign(),
            _ => {}
        }
    }

    /// A new round of AppendEntries to every follower (empty ones are heartbeats).
    fn heartbeat(&mut self) {
        self.round += 1;
        self.heartbeat_due = self.now + self.config.heartbeat_ms;
        let peers = self.peers.clone();
        for peer in &peers {
            if let Some(p) = self.progress.get_mut(peer) {
                // A heartbeat round re-opens the pipe: lost appends are not waited for.
                p.inflight = 0;
                p.snapshot_sent = false;
            }
            self.send_append(peer, true);
        }
        if self.peers.is_empty() {
            self.advance_reads();
        }
    }

    fn campaign(&mut self) {
        self.reset_election();
        if self.peers.is_empty() {
            self.set_term(self.term + 1);
            self.voted_for = Some(self.id.clone());
            self.changes.hard_state = true;
            self.become_leader();
            return;
        }
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes = BTreeSet::from([self.id.clone()]);
        let msg = RaftMsg::PreVote {
            term: self.term + 1,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        for peer in self.peers.clone() {
            self.send(&peer, msg.clone());
        }
    }

    fn start_election(&mut self) {
        self.role = Role::Candidate;
        self.set_term(self.term + 1);
        self.voted_for = Some(self.id.clone());
        self.changes.hard_state = true;
        self.votes = BTreeSet::from([self.id.clone()]);
        self.reset_election();
        let msg = RaftMsg::Vote {
            term: self.term,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        for peer in self.peers.clone() {
            self.send(&peer, msg.clone());
        }
    }

    fn become_follower(&mut self, term: Term, leader: Option<String>) {
        let was_leader = self.role == Role::Leader;
        self.set_term(term);
        self.role = Role::Follower;
        self.leader = leader;
        if was_leader {
            self.reset_election();
            self.failed_reads.extend(self.reads.drain(..).map(|r| r.id));
        }
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.id.clone());
        let next = self.log.last_index() + 1;
        self.progress = self
            .peers
            .iter()
            .map(|p| {
                let progress = Progress {
                    next,
                    matched: 0,
                    inflight: 0,
                    probing: true,
                    probe: 0,
                    round: 0,
                    heard_ms: self.now,
                    snapshot_sent: false,
                };
                (p.clone(), progress)
            })
            .collect();
        // A no-op of the new term lets earlier entries commit through it.
        let noop = self.log.append(self.term, None);
        self.changes.log_from(noop);
        self.maybe_commit();
        self.heartbeat();
    }

    /// Handles a message from `from`.
    pub fn step(&mut self, now_ms: u64, from: &str, msg: RaftMsg<C>) {
        self.now = self.now.max(now_ms);
        if !self.peers.iter().any(|p| p == from) {
            return;
        }
        let recent_leader = self
            .last_leader_contact
            .is_some_and(|t| self.now.saturating_sub(t) < self.config.election_min_ms);
        match msg {
            RaftMsg::PreVote {
                term,
                last_index,
                last_term,
            } => {
                let granted = term > self.term
                    && !recent_leader
                    && self.role != Role::Leader
                    && self.up_to_date(last_index, last_term);
                let reply = RaftMsg::PreVoteReply {
                    term: if granted { term } else { self.term },
                    granted,
                };
                self.send(from, reply);
            }
            RaftMsg::PreVoteReply { term, granted } => {
                if self.role == Role::PreCandidate && granted && term == self.term + 1 {
                    self.votes.insert(from.to_string());
                    if self.votes.len() >= self.quorum() {
                        self.start_election();
                    }
                } else if !granted && term > self.term {
                    self.become_follower(term, None);
                }
            }
            RaftMsg::Vote {
                term,
                last_index,
                last_term,
            } => {
                if term > self.term && recent_leader {
                    // Leader stickiness: a live leader's followers ignore a disruptive node.
                    return;
                }
                if term > self.term {
                    self.become_follower(term, None);
                }
                let granted = term == self.term
                    && self.voted_for.as_deref().map_or(true, |v| v == from)
                    && self.up_to_date(last_index, last_term);
                if granted {
                    self.voted_for = Some(from.to_string());
                    self.changes.hard_state = true;
                    self.reset_election();
                }
                let reply = RaftMsg::VoteReply {
                    term: self.term,
                    granted,
                };
                self.send(from, reply);
            }
            RaftMsg::VoteReply { term, granted } => {
                if term > self.term {
                    self.become_follower(term, None);
                } else if self.role == Role::Candidate && term == self.term && granted {
                    self.votes.insert(from.to_string());
                    if self.votes.len() >= self.quorum() {
                        self.become_leader();
                    }
                }
            }
            RaftMsg::Append {
                term,
                prev_index,
                prev_term,
                entries,
                commit,
                round,
            } => self.on_append(from, term, prev_index, prev_term, entries, commit, round),
            RaftMsg::AppendReply {
                term,
                success,
                index,
                conflict_term,
                rejected,
                round,
            } => self.on_append_reply(from, term, success, index, conflict_term, rejected, round),
            RaftMsg::Snapshot {
                term,
                last_index,
                last_term,
                data,
                round,
            } => {
                if term < self.term {
                    let reply = RaftMsg::SnapshotReply {
                        term: self.term,
                        last_index: 0,
                        round,
                    };
                    self.send(from, reply);
                    return;
                }
                self.heard_from_leader(term, from);
                if last_index > self.commit {
                    self.log.restore(last_index, last_term);
                    self.snapshot = Some(data.clone());
                    self.commit = last_index;
                    self.applied = last_index;
                    self.install = Some((last_index, data));
                    self.changes.snapshot = true;
                }
                let reply = RaftMsg::SnapshotReply {
                    term: self.term,
                    last_index: self.commit.max(last_index.min(self.log.last_index())),
                    round,
                };
                self.send(from, reply);
            }
            RaftMsg::SnapshotReply {
                term,
                last_index,
                round,
            } => {
                if !self.answers_my_leadership(term) {
                    return;
                }
                let now = self.now;
                if let Some(p) = self.progress.get_mut(from) {
                    p.heard_ms = now;
                    p.round = p.round.max(round);
                    p.snapshot_sent = false;
                    p.matched = p.matched.max(last_index);
                    p.next = p.next.max(last_index + 1);
                }
                self.maybe_commit();
                self.advance_reads();
                self.send_append(from, false);
            }
        }
    }

    fn up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.log.last_term(), self.log.last_index())
    }

    fn heard_from_leader(&mut self, term: Term, leader: &str) {
        if term > self.term || self.role != Role::Follower {
            self.become_follower(term, Some(leader.to_string()));
        }
        self.leader = Some(leader.to_string());
        self.last_leader_contact = Some(self.now);
        self.reset_election();
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append(
        &mut self,
        from: &str,
        term: Term,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry<C>>,
        commit: Index,
        round: u64,
    ) {
        // Ok(the last index known to match), or Err((where to retry, the conflicting term)).
        let outcome = if term < self.term {
            Err((0, 0))
        } else {
            self.heard_from_leader(term, from);
            match self.log.term(prev_index) {
                // Already compacted here: everything up to the snapshot matches.
                _ if prev_index < self.log.snapshot_index => Ok(self.log.snapshot_index),
                None => Err((self.log.last_index() + 1, 0)),
                Some(t) if t != prev_term => Err((self.log.first_index_of_term(prev_index), t)),
                Some(_) => {
                    let last_new = prev_index + entries.len() as u64;
                    if let Some(from) = self.log.splice(entries) {
                        self.changes.log_from(from);
                    }
                    self.commit = self.commit.max(commit.min(last_new));
                    Ok(last_new)
                }
            }
        };
        let (success, index, conflict_term, rejected) = match outcome {
            Ok(index) => (true, index, 0, 0),
            Err((index, conflict)) => (false, index, conflict, prev_index),
        };
        let reply = RaftMsg::AppendReply {
            term: self.term,
            success,
            index,
            conflict_term,
            rejected,
            round,
        };
        self.send(from, reply);
    }

    /// Whether a follower's reply of `term` is to this node's current leadership; a newer
    /// term makes this node a follower first.
    fn answers_my_leadership(&mut self, term: Term) -> bool {
        if term > self.term {
            self.become_follower(term, None);
            return false;
        }
        self.role == Role::Leader && term == self.term
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append_reply(
        &mut self,
        from: &str,
        term: Term,
        success: bool,
        index: Index,
        conflict_term: Term,
        rejected: Index,
        round: u64,
    ) {
        if !self.answers_my_leadership(term) {
            return;
        }
        let now = self.now;
        let last_term_index = (conflict_term != 0)
            .then(|| self.log.last_index_of_term(conflict_term))
            .flatten();
        let Some(p) = self.progress.get_mut(from) else {
            return;
        };
        p.heard_ms = now;
        p.round = p.round.max(round);
        p.inflight = p.inflight.saturating_sub(1);
        if success {
            p.matched = p.matched.max(index);
            p.next = p.next.max(index + 1);
            p.probing = false;
        } else {
            let stale = if p.probing {
                rejected != p.probe
            } else {
                rejected <= p.matched
            };
            if stale {
                return;
            }
            // Fast backtracking: skip the whole conflicting term at once.
            p.next = match last_term_index {
                Some(i) => (i + 1).min(index.max(1)),
                None => index.max(1),
            }
            .clamp(p.matched + 1, rejected.max(p.matched + 1));
            p.inflight = 0;
            p.probing = true;
        }
        self.maybe_commit();
        self.advance_reads();
        self.send_append(from, false);
    }

    /// Sends what `peer` is missing, within the pipeline's limit; `heartbeat` sends even
    /// when nothing is missing.
    fn send_append(&mut self, peer: &str, heartbeat: bool) {
        let Some(p) = self.progress.get(peer).cloned() else {
            return;
        };
        if p.next <= self.log.snapshot_index {
            if !p.snapshot_sent {
                if let Some(data) = self.snapshot.clone() {
                    let msg = RaftMsg::Snapshot {
                        term: self.term,
                        last_index: self.log.snapshot_index,
                        last_term: self.log.snapshot_term,
                        data,
                        round: self.round,
                    };
                    self.send(peer, msg);
                    if let Some(p) = self.progress.get_mut(peer) {
                        p.snapshot_sent = true;
                    }
                }
            }
            return;
        }
        let mut next = p.next;
        let mut inflight = p.inflight;
        let last = self.log.last_index();
        let mut sent_any = false;
        let window = if p.probing {
            1
        } else {
            self.config.max_inflight
        };
        let mut probe = p.probe;
        while inflight < window && (next <= last || (heartbeat && !sent_any)) {
            let prev_index = next - 1;
            let Some(prev_term) = self.log.term(prev_index) else {
                break;
            };
            let entries = self.log.slice(next, last, self.config.max_batch);
            let count = entries.len() as u64;
            let msg = RaftMsg::Append {
                term: self.term,
                prev_index,
                prev_term,
                entries,
                commit: self.commit,
                round: self.round,
            };
            self.send(peer, msg);
            probe = prev_index;
            sent_any = true;
            inflight += 1;
            next += count;
            if count == 0 {
                break;
            }
        }
        if let Some(p) = self.progress.get_mut(peer) {
            p.next = next;
            p.inflight = inflight;
            p.probe = probe;
        }
    }

    fn maybe_commit(&mut self) {
        let mut matched: Vec<Index> = self.progress.values().map(|p| p.matched).collect();
        matched.push(self.log.last_index());
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[self.quorum() - 1];
        if candidate <= self.commit {
            return;
        }
        let current_term = self.log.term(candidate) == Some(self.term);
        if current_term || self.config.flaw == Flaw::CommitOldTerms {
            self.commit = candidate;
        }
    }

    /// Appends a command if this node leads; it is sent with the next [`Raft::ready`].
    pub fn propose(&mut self, command: C) -> Result<Index, NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader.clone(),
            });
        }
        let index = self.log.append(self.term, Some(command));
        self.changes.log_from(index);
        self.replicate = true;
        if self.peers.is_empty() {
            self.maybe_commit();
        }
        Ok(index)
    }

    /// Asks for a linearizable read `id`: it is reported in [`Ready::reads`] once a quorum
    /// confirmed this leadership after the request and the state machine caught up.
    pub fn read_index(&mut self, id: u64) -> Result<(), NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader.clone(),
            });
        }
        // The next heartbeat round (sent right away) must be acknowledged by a quorum.
        self.reads.push_back(PendingRead {
            id,
            index: self.commit,
            round: self.round + 1,
        });
        self.heartbeat();
        Ok(())
    }

    fn advance_reads(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        // Reads wait until the leader has committed an entry of its own term.
        if self.log.term(self.commit) != Some(self.term) {
            return;
        }
        let mut rounds: Vec<u64> = self.progress.values().map(|p| p.round).collect();
        rounds.push(self.round);
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = rounds[self.quorum() - 1];
        while let Some(read) = self.reads.front() {
            if read.round > confirmed {
                break;
            }
            let read = self.reads.pop_front().expect("front exists");
            // Served after the entries committed so far are applied.
            let _ = read.index;
            self.ready_reads.push(read.id);
        }
    }

    /// The state machine was snapshotted at `index` (applied already): drop the log before.
    pub fn compact(&mut self, index: Index, data: serde_json::Value) {
        if index <= self.log.snapshot_index || index > self.applied {
            return;
        }
        let Some(term) = self.log.term(index) else {
            return;
        };
        self.log.compact(index, term);
        self.snapshot = Some(data);
        self.changes.snapshot = true;
    }

    /// Takes what the node must do now.
    pub fn ready(&mut self) -> Ready<C> {
        if self.replicate && self.role == Role::Leader {
            self.replicate = false;
            for peer in self.peers.clone() {
                self.send_append(&peer, false);
            }
        }
        self.advance_reads();
        let committed = if self.commit > self.applied {
            let entries = self.log.slice(self.applied + 1, self.commit, usize::MAX);
            self.applied = self.commit;
            entries
        } else {
            Vec::new()
        };
        let changes = std::mem::take(&mut self.changes);
        Ready {
            messages: std::mem::take(&mut self.messages),
            persist: changes.any(),
            changes,
            committed,
            install: self.install.take(),
            reads: std::mem::take(&mut self.ready_reads),
            failed_reads: std::mem::take(&mut self.failed_reads),
        }
    }
}

impl<C> Raft<C> {
    /// The vote as it must be stored: [`Flaw::ForgetVote`] forgets it.
    fn durable_vote(&self) -> Option<&str> {
        match self.config.flaw {
            Flaw::ForgetVote => None,
            _ => self.voted_for.as_deref(),
        }
    }
}

impl<C: Serialize> Raft<C> {
    /// The persistent state as JSON, for [`Persistent`] to read back after a restart.
    pub fn save(&self) -> Vec<u8> {
        let state = PersistentRef {
            term: self.term,
            voted_for: self.durable_vote(),
            log: &self.log,
            snapshot: self.snapshot.as_ref(),
        };
        serde_json::to_vec(&state).expect("Raft state serializes: string keys, plain values")
    }
}
