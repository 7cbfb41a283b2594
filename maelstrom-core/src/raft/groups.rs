//! A host for the Raft groups of one node: each group's [`Raft`], its durable
//! [`RaftStore`], its replicated state machine with client [`Sessions`], and the requests
//! waiting for a log entry to apply or for a linearizable read. The node routes requests
//! and speaks its own protocol; the host answers every waiting request exactly once:
//! with what its entry did, with the reply recorded for it when its entry came twice,
//! or with an error when its entry was overwritten by another leader's or covered by an
//! installed snapshot. Such an error is indefinite whenever another copy of the request
//! may still take effect (see [`Groups::propose`]).
//!
//! Every group of one host runs the same [`StateMachine`] type; a node with groups of
//! different kinds uses an enum of state machines.

use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sessions::{Origin, Seen, Sessions};
use super::{Config, Entry, Index, NotLeader, Raft, RaftMsg, RaftStore, StoreError, Term};
use crate::error::{ErrorBody, ErrorCode};
use crate::node::{Node, Outbox};
use crate::storage::Storage;

/// A replicated state machine: deterministic, snapshotted as JSON.
pub trait StateMachine: Sized {
    type Cmd: Clone + std::fmt::Debug + Serialize + DeserializeOwned;
    /// What applying a command did, as its requester hears it; kept in its session.
    type Output: Clone + Serialize + DeserializeOwned;

    fn apply(&mut self, cmd: Self::Cmd) -> Self::Output;
    fn snapshot(&self) -> Result<Value, String>;
    /// The state machine a snapshot describes (`self` gives what the snapshot omits).
    fn restore(&self, data: Value) -> Result<Self, String>;
}

/// A command as it travels in the log: with the client request it carries out, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logged<C> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    pub cmd: C,
}

/// The log entries and messages of a host's groups.
pub type GroupMsg<S> = RaftMsg<Logged<<S as StateMachine>::Cmd>>;

/// How a waiting request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<O> {
    /// Its command was applied (or had been: the recorded reply).
    Applied(O),
    /// Its read may be served from the state machine now.
    Read,
    Failed(ErrorBody),
}

/// A waiting request's answer, for the node to deliver.
#[derive(Debug)]
pub struct Answer<G, W, O> {
    pub group: G,
    pub to: W,
    pub outcome: Outcome<O>,
}

/// A proposal's index and the answer to an older waiter it displaced at that index, or
/// the waiter back when this node does not lead.
pub type Proposed<G, W, O> = Result<(Index, Option<Answer<G, W, O>>), (Option<W>, NotLeader)>;

/// What one round of [`Groups::drive`] leaves the node to do, after persisting.
pub struct Round<G, S: StateMachine, W> {
    /// Raft messages per peer, each with its group: one message per peer, if the node
    /// likes.
    pub messages: BTreeMap<String, Vec<(G, GroupMsg<S>)>>,
    pub answers: Vec<Answer<G, W, S::Output>>,
}

struct Waiting<W> {
    term: Term,
    to: W,
    origin: Option<Origin>,
    /// Another copy of the request may exist (it was passed on by a node, and networks
    /// duplicate): "it did not happen" cannot be said for sure.
    copies: bool,
}

/// One group: consensus, storage, state machine, sessions and waiting requests.
pub struct Group<S: StateMachine, W> {
    raft: Raft<Logged<S::Cmd>>,
    store: RaftStore,
    sm: S,
    sessions: Sessions<S::Output>,
    applied: Index,
    waiting: HashMap<Index, Waiting<W>>,
}

impl<S: StateMachine, W> Group<S, W> {
    pub fn raft(&self) -> &Raft<Logged<S::Cmd>> {
        &self.raft
    }

    pub fn raft_mut(&mut self) -> &mut Raft<Logged<S::Cmd>> {
        &mut self.raft
    }

    pub fn sm(&self) -> &S {
        &self.sm
    }

    pub fn applied(&self) -> Index {
        self.applied
    }

    /// What this replica knows of `origin`'s request: applied (its reply), superseded,
    /// or proposed here and still waiting. A node about to refuse a request without
    /// proposing it asks this first, so that a copy is never refused as "did not happen".
    pub fn known(&self, origin: &Origin) -> Option<Outcome<S::Output>> {
        match self.sessions.check(origin) {
            Seen::Repeat(reply) => Some(Outcome::Applied(reply)),
            Seen::Superseded => Some(unknown("the client has sent a newer request")),
            Seen::New => self
                .waiting
                .values()
                .any(|w| w.origin.as_ref() == Some(origin))
                .then(|| unknown("a copy of this request is in progress")),
        }
    }
}

fn lost_leadership<O>() -> Outcome<O> {
    let body = ErrorBody::new(ErrorCode::TemporarilyUnavailable, "lost leadership");
    Outcome::Failed(body)
}

/// An indefinite error: the request may or may not have taken effect.
pub fn unknown<O>(why: &str) -> Outcome<O> {
    Outcome::Failed(ErrorBody::new(ErrorCode::Timeout, why))
}

/// A request that did not take effect here: indefinite when `copies` of it may still
/// take effect elsewhere, definite (temporarily unavailable) otherwise.
pub fn refused<O>(copies: bool, why: &str) -> Outcome<O> {
    if copies {
        unknown(why)
    } else {
        Outcome::Failed(ErrorBody::new(ErrorCode::TemporarilyUnavailable, why))
    }
}

/// A node's Raft groups, by group id `G`, answering waiters `W`.
pub struct Groups<G, S: StateMachine, W> {
    groups: BTreeMap<G, Group<S, W>>,
    /// Reads asked for since the last round, per group: one read-index round serves all.
    asked: BTreeMap<G, Vec<W>>,
    /// Read-index id -> the group and the reads it serves.
    reads: HashMap<u64, (G, Vec<W>)>,
    next_read: u64,
    /// The log is compacted into a snapshot every this many applied entries.
    compact_every: u64,
}

impl<G: Ord + Copy + std::fmt::Debug, S: StateMachine, W> Groups<G, S, W> {
    pub fn new(compact_every: u64) -> Self {
        Groups {
            groups: BTreeMap::new(),
            asked: BTreeMap::new(),
            reads: HashMap::new(),
            next_read: 0,
            compact_every: compact_every.max(1),
        }
    }

    /// Adds group `id` with `members`, restored from the files under `prefix`; `sm` is
    /// its state machine before any entry (a stored snapshot replaces it).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        id: G,
        node: &str,
        members: &[String],
        config: Config,
        storage: &dyn Storage,
        prefix: &str,
        now_ms: u64,
        seed: u64,
        sm: S,
    ) -> Result<(), StoreError> {
        let (store, state) = RaftStore::load::<Logged<S::Cmd>>(storage, prefix)?;
        let raft = Raft::new(node, members, config, state, now_ms, seed);
        let group = Group {
            raft,
            store,
            sm,
            sessions: Sessions::default(),
            applied: 0,
            waiting: HashMap::new(),
        };
        self.groups.insert(id, group);
        Ok(())
    }

    pub fn get(&self, id: &G) -> Option<&Group<S, W>> {
        self.groups.get(id)
    }

    pub fn get_mut(&mut self, id: &G) -> Option<&mut Group<S, W>> {
        self.groups.get_mut(id)
    }

    pub fn contains(&self, id: &G) -> bool {
        self.groups.contains_key(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&G, &Group<S, W>)> {
        self.groups.iter()
    }

    pub fn ids(&self) -> impl Iterator<Item = &G> {
        self.groups.keys()
    }

    /// The answer to a request for group `id` that is refused without being proposed
    /// here: its recorded reply if a copy of it applied here, an indefinite error if
    /// `copies` of it may exist (it came through another node) or one is in progress
    /// here, a definite one otherwise.
    pub fn refusal(
        &self,
        id: &G,
        origin: Option<&Origin>,
        copies: bool,
        why: &str,
    ) -> Outcome<S::Output> {
        let known = origin.and_then(|o| self.groups.get(id)?.known(o));
        known.unwrap_or_else(|| refused(copies && origin.is_some(), why))
    }

    pub fn is_leader(&self, id: &G) -> bool {
        self.groups.get(id).is_some_and(|g| g.raft.is_leader())
    }

    pub fn step(&mut self, id: &G, now_ms: u64, from: &str, msg: GroupMsg<S>) {
        if let Some(g) = self.groups.get_mut(id) {
            g.raft.step(now_ms, from, msg);
        }
    }

    /// Steps each group named in a peer's `msgs` with its message.
    pub fn step_all(&mut self, now_ms: u64, from: &str, msgs: Vec<(G, GroupMsg<S>)>) {
        for (id, msg) in msgs {
            self.step(&id, now_ms, from, msg);
        }
    }

    pub fn tick(&mut self, now_ms: u64) {
        for g in self.groups.values_mut() {
            g.raft.tick(now_ms);
        }
    }

    /// Proposes `cmd` to group `id`; `to` (if any) is answered once its entry applies or
    /// can no longer. `origin` is the client request it carries out, for its session;
    /// `copies` says whether other copies of that request may exist (it came through
    /// another node): then a lost entry is answered with an indefinite error. When this
    /// node does not lead the group, `to` comes back with the leader it knows.
    pub fn propose(
        &mut self,
        id: &G,
        cmd: S::Cmd,
        origin: Option<Origin>,
        to: Option<W>,
        copies: bool,
    ) -> Proposed<G, W, S::Output> {
        let Some(g) = self.groups.get_mut(id) else {
            return Err((to, NotLeader { leader: None }));
        };
        let term = g.raft.term();
        let logged = Logged {
            origin: origin.clone(),
            cmd,
        };
        let index = match g.raft.propose(logged) {
            Ok(index) => index,
            Err(e) => return Err((to, e)),
        };
        let Some(to) = to else {
            return Ok((index, None));
        };
        let waiting = Waiting {
            term,
            to,
            origin,
            copies,
        };
        // An older proposal at this index was truncated away, uncommitted.
        let old = g.waiting.insert(index, waiting).map(|old| Answer {
            group: *id,
            to: old.to,
            outcome: refused(
                old.copies,
                "leadership changed before the request committed",
            ),
        });
        Ok((index, old))
    }

    /// Asks for a linearizable read of group `id`: answered with [`Outcome::Read`] once a
    /// quorum confirmed this node's leadership after now and the state machine caught up.
    /// The reads asked for before the next [`Groups::drive`] share one read-index round.
    pub fn read(&mut self, id: &G, to: W) -> Result<(), (W, NotLeader)> {
        match self.groups.get(id) {
            Some(g) if g.raft.is_leader() => {
                self.asked.entry(*id).or_default().push(to);
                Ok(())
            }
            Some(g) => {
                let leader = g.raft.leader().map(str::to_string);
                Err((to, NotLeader { leader }))
            }
            None => Err((to, NotLeader { leader: None })),
        }
    }

    /// Starts one read-index round per group for the reads asked for since the last.
    fn start_reads(&mut self, answers: &mut Vec<Answer<G, W, S::Output>>) {
        for (id, waiting) in std::mem::take(&mut self.asked) {
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            self.next_read += 1;
            match g.raft.read_index(self.next_read) {
                Ok(()) => {
                    self.reads.insert(self.next_read, (id, waiting));
                }
                Err(_) => answers.extend(waiting.into_iter().map(|to| Answer {
                    group: id,
                    to,
                    outcome: lost_leadership(),
                })),
            }
        }
    }

    /// Carries out what every group's Raft asks for: persists (through `out`, before
    /// anything the node sends next), installs snapshots, applies committed entries,
    /// compacts; returns the messages to send and the answers to deliver.
    pub fn drive<N: Node>(&mut self, out: &mut Outbox<N>) -> Round<G, S, W> {
        let mut round = Round {
            messages: BTreeMap::new(),
            answers: Vec::new(),
        };
        self.start_reads(&mut round.answers);
        for (&id, g) in self.groups.iter_mut() {
            let ready = g.raft.ready();
            if ready.persist {
                g.store.save(&g.raft, &ready.changes, out);
            }
            for (to, msg) in ready.messages {
                round.messages.entry(to).or_default().push((id, msg));
            }
            if let Some((index, data)) = ready.install {
                g.install(id, index, data, &mut round.answers);
            }
            for entry in ready.committed {
                g.apply(id, entry, &mut round.answers);
            }
            let served = ready.reads.iter().map(|r| (r, true));
            let failed = ready.failed_reads.iter().map(|r| (r, false));
            for (read, ok) in served.chain(failed) {
                if let Some((group, waiting)) = self.reads.remove(read) {
                    round.answers.extend(waiting.into_iter().map(|to| Answer {
                        group,
                        to,
                        outcome: if ok { Outcome::Read } else { lost_leadership() },
                    }));
                }
            }
            if g.applied >= g.raft.log().snapshot_index + self.compact_every {
                match g.snapshot() {
                    Ok(data) => g.raft.compact(g.applied, data),
                    Err(e) => eprintln!("group {id:?}: cannot snapshot: {e}"),
                }
            }
        }
        round
    }
}

impl<S: StateMachine, W> Group<S, W> {
    fn snapshot(&self) -> Result<Value, String> {
        let sessions = serde_json::to_value(&self.sessions).map_err(|e| e.to_string())?;
        // Built in place: `json!` would copy both trees once more.
        let mut parts = serde_json::Map::new();
        parts.insert("sm".to_string(), self.sm.snapshot()?);
        parts.insert("sessions".to_string(), sessions);
        Ok(Value::Object(parts))
    }

    /// Replaces the state with a snapshot taken at `index`. Requests waiting for entries
    /// it covers get their recorded reply, or an indefinite error: whether their entry
    /// was applied in it is unknown.
    fn install<G: Copy + std::fmt::Debug>(
        &mut self,
        id: G,
        index: Index,
        mut data: Value,
        answers: &mut Vec<Answer<G, W, S::Output>>,
    ) {
        let sessions = serde_json::from_value(data["sessions"].take());
        match (self.sm.restore(data["sm"].take()), sessions) {
            (Ok(sm), Ok(sessions)) => {
                self.sm = sm;
                self.sessions = sessions;
                self.applied = index;
            }
            (Err(e), _) => eprintln!("group {id:?}: cannot read snapshot: {e}"),
            (_, Err(e)) => eprintln!("group {id:?}: cannot read snapshot's sessions: {e}"),
        }
        let covered: Vec<Index> = self
            .waiting
            .keys()
            .copied()
            .filter(|&i| i <= index)
            .collect();
        for i in covered {
            let Some(w) = self.waiting.remove(&i) else {
                continue;
            };
            let outcome = match w.origin.as_ref().map(|o| self.sessions.check(o)) {
                Some(Seen::Repeat(reply)) => Outcome::Applied(reply),
                _ => unknown("a snapshot replaced the request's log entry; outcome unknown"),
            };
            answers.push(Answer {
                group: id,
                to: w.to,
                outcome,
            });
        }
    }

    /// Applies one committed entry (once: a session's repeat gets its recorded reply) and
    /// answers whoever waits for its index.
    fn apply<G: Copy>(
        &mut self,
        id: G,
        entry: Entry<Logged<S::Cmd>>,
        answers: &mut Vec<Answer<G, W, S::Output>>,
    ) {
        if entry.index <= self.applied {
            return;
        }
        self.applied = entry.index;
        // Only a waiting request needs the reply besides the session: no copy otherwise.
        let waiter = self.waiting.remove(&entry.index);
        let wanted = waiter.as_ref().is_some_and(|w| w.term == entry.term);
        let outcome = entry
            .command
            .and_then(|Logged { origin, cmd }| match origin {
                None => {
                    let reply = self.sm.apply(cmd);
                    wanted.then_some(Outcome::Applied(reply))
                }
                Some(origin) => match self.sessions.check(&origin) {
                    Seen::Repeat(reply) => Some(Outcome::Applied(reply)),
                    Seen::Superseded => Some(unknown("the client has sent a newer request")),
                    Seen::New => {
                        let reply = self.sm.apply(cmd);
                        let answer = wanted.then(|| Outcome::Applied(reply.clone()));
                        self.sessions.record(&origin, entry.index, reply);
                        answer
                    }
                },
            });
        let Some(w) = waiter else {
            return;
        };
        let outcome = match outcome {
            Some(outcome) if wanted => outcome,
            // Another leader's entry took the index: ours was truncated away.
            _ => refused(w.copies, "leadership changed before the request committed"),
        };
        answers.push(Answer {
            group: id,
            to: w.to,
            outcome,
        });
    }
}

impl<G: std::fmt::Debug, S: StateMachine, W> std::fmt::Debug for Round<G, S, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Round")
            .field("peers", &self.messages.keys().collect::<Vec<_>>())
            .field("answers", &self.answers.len())
            .finish()
    }
}

impl<S: StateMachine, W> std::fmt::Debug for Group<S, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("term", &self.raft.term())
            .field("role", &self.raft.role())
            .field("applied", &self.applied)
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

impl<G: std::fmt::Debug, S: StateMachine, W> std::fmt::Debug for Groups<G, S, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.groups.iter()).finish()
    }
}
