//! Raft instances driven in-process over a simulated network: seeded random delays, loss,
//! partitions, crashes and restarts from persisted state. Every step checks Raft's safety
//! properties (election safety, log matching, leader completeness, state machine safety);
//! the flawed variants are shown to break them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use maelstrom_core::raft::{Config, Flaw, Persistent, Raft, RaftMsg, RaftStore, Role};
use maelstrom_core::{Command, Context, InitError, MemStorage, Message, Outbox, Storage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Cmd = u64;

struct Node {
    raft: Option<Raft<Cmd>>,
    saved: Option<Vec<u8>>,
    /// Applied commands by index.
    applied: BTreeMap<u64, Option<Cmd>>,
    /// The same state written incrementally, when the simulation restarts from it.
    store: RaftStore,
    disk: MemStorage,
}

/// A node type only for the [`Outbox`] a [`RaftStore`] records its writes in.
#[derive(Debug)]
struct Host;

impl maelstrom_core::Node for Host {
    type Msg = serde_json::Value;
    type Timer = ();
    type Call = ();

    fn init(_: &Context, _: &dyn Storage, _: &mut Outbox<Self>) -> Result<Self, InitError> {
        Ok(Host)
    }

    fn on_message(&mut self, _: &Context, _: Message<serde_json::Value>, _: &mut Outbox<Self>) {}
}

const STORE_PREFIX: &str = "raft";

/// (deliver at, sequence, from, to, message as sent on the wire)
type InFlight = (u64, u64, usize, usize, String);

struct Sim {
    names: Vec<String>,
    nodes: Vec<Node>,
    now: u64,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    rng: StdRng,
    config: Config,
    cut: BTreeSet<(usize, usize)>,
    loss: f64,
    /// term -> leader
    leaders: BTreeMap<u64, usize>,
    /// index -> (term, command) of every entry any node applied.
    committed: BTreeMap<u64, (u64, Option<Cmd>)>,
    next_cmd: Cmd,
    violations: Vec<String>,
    /// (node, read id) of every read reported ready.
    reads: Vec<(usize, u64)>,
    /// Compact a node's log once it applied this many entries past its snapshot.
    compact_every: Option<u64>,
    /// Snapshots installed, from a leader or from a node's own saved state.
    installs: usize,
    /// Restart nodes from their [`RaftStore`] files rather than from [`Raft::save`].
    from_store: bool,
}

impl Sim {
    fn new(n: usize, seed: u64, config: Config) -> Sim {
        let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        let nodes = (0..n)
            .map(|i| Node {
                raft: Some(Raft::new(&names[i], &names, config.clone(), None, 0, seed)),
                saved: None,
                applied: BTreeMap::new(),
                store: RaftStore::load::<Cmd>(&MemStorage::default(), STORE_PREFIX)
                    .unwrap()
                    .0,
                disk: MemStorage::default(),
            })
            .collect();
        Sim {
            names,
            nodes,
            now: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            rng: StdRng::seed_from_u64(seed),
            config,
            cut: BTreeSet::new(),
            loss: 0.0,
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            next_cmd: 1,
            violations: Vec::new(),
            reads: Vec::new(),
            compact_every: None,
            installs: 0,
            from_store: false,
        }
    }

    fn index_of(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).unwrap()
    }

    /// Collects what node `i` must do, checking as it goes.
    fn drain(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let Some(raft) = node.raft.as_mut() else {
            return;
        };
        let ready = raft.ready();
        if ready.persist {
            node.saved = Some(raft.save());
        }
        let mut out = Outbox::<Host>::new();
        node.store.save(raft, &ready.changes, &mut out);
        for command in out.drain() {
            match command {
                Command::Persist { name, bytes } => node.disk.store(&name, &bytes).unwrap(),
                Command::Append { name, bytes } => node.disk.append(&name, &bytes).unwrap(),
                other => panic!("a store only writes: {other:?}"),
            }
        }
        if raft.role() == Role::Leader {
            let term = raft.term();
            match self.leaders.get(&term) {
                Some(&other) if other != i => self.violations.push(format!(
                    "election safety: n{other} and n{i} both lead term {term}"
                )),
                Some(_) => {}
                None => {
                    self.leaders.insert(term, i);
                    // Leader completeness: every committed entry is in the new leader's log.
                    let log = raft.log();
                    for (index, (t, _)) in &self.committed {
                        if *index > log.snapshot_index && log.term(*index) != Some(*t) {
                            self.violations.push(format!(
                                "leader completeness: n{i} leads term {term} without committed entry {index}"
                            ));
                        }
                    }
                }
            }
        }
        self.reads.extend(ready.reads.iter().map(|r| (i, *r)));
        if let Some((_, data)) = ready.install {
            let snapshot: BTreeMap<u64, Option<Cmd>> = serde_json::from_value(data).unwrap();
            for (index, command) in &snapshot {
                if self.committed.get(index).is_some_and(|(_, c)| c != command) {
                    self.violations.push(format!(
                        "state machine safety: n{i}'s snapshot differs at {index}"
                    ));
                }
            }
            self.nodes[i].applied = snapshot;
            self.installs += 1;
        }
        for entry in ready.committed {
            let record = (entry.term, entry.command);
            match self.committed.get(&entry.index) {
                Some(seen) if *seen != record => self.violations.push(format!(
                    "state machine safety: n{i} applied {record:?} at {} where {seen:?} was applied",
                    entry.index
                )),
                Some(_) => {}
                None => {
                    self.committed.insert(entry.index, record);
                }
            }
            self.nodes[i].applied.insert(entry.index, entry.command);
        }
        let node = &mut self.nodes[i];
        let last = node.applied.keys().next_back().copied();
        if let (Some(every), Some(last), Some(raft)) =
            (self.compact_every, last, node.raft.as_mut())
        {
            if last >= raft.log().snapshot_index + every {
                raft.compact(last, serde_json::to_value(&node.applied).unwrap());
            }
        }
        for (to, msg) in ready.messages {
            let to = self.index_of(&to);
            if self.cut.contains(&(i, to)) || self.rng.gen_bool(self.loss) {
                continue;
            }
            let delay = self.rng.gen_range(1..=20);
            self.seq += 1;
            let text = serde_json::to_string(&msg).unwrap();
            self.queue
                .push(Reverse((self.now + delay, self.seq, i, to, text)));
        }
    }

    /// Log matching: same index and term means identical prefixes.
    fn check_logs(&mut self) {
        let logs: Vec<_> = self
            .nodes
            .iter()
            .filter_map(|n| n.raft.as_ref())
            .map(|r| r.log())
            .collect();
        for a in &logs {
            for b in &logs {
                let top = a.last_index().min(b.last_index());
                let bottom = a.snapshot_index.max(b.snapshot_index) + 1;
                let mut matched = false;
                for i in (bottom..=top).rev() {
                    let (ea, eb) = (a.get(i), b.get(i));
                    if matched || ea.map(|e| e.term) == eb.map(|e| e.term) {
                        matched = true;
                        if ea != eb {
                            self.violations.push(format!("log matching broken at {i}"));
                            return;
                        }
                    }
                }
            }
        }
    }

    fn step(&mut self) {
        let next_msg = self.queue.peek().map(|Reverse((t, ..))| *t);
        let next_tick = self
            .nodes
            .iter()
            .filter_map(|n| n.raft.as_ref())
            .map(|r| r.next_deadline())
            .min();
        let next = next_msg
            .into_iter()
            .chain(next_tick)
            .min()
            .unwrap_or(self.now + 10);
        self.now = self.now.max(next);
        while let Some(Reverse((t, ..))) = self.queue.peek() {
            if *t > self.now {
                break;
            }
            let Reverse((_, _, from, to, text)) = self.queue.pop().unwrap();
            let msg: RaftMsg<Cmd> = serde_json::from_str(&text).unwrap();
            let from_name = self.names[from].clone();
            if let Some(r) = self.nodes[to].raft.as_mut() {
                r.step(self.now, &from_name, msg);
                self.drain(to);
            }
        }
        for i in 0..self.nodes.len() {
            if let Some(r) = self.nodes[i].raft.as_mut() {
                r.tick(self.now);
                self.drain(i);
            }
        }
    }

    fn propose(&mut self) {
        for i in 0..self.nodes.len() {
            let cmd = self.next_cmd;
            if let Some(r) = self.nodes[i].raft.as_mut() {
                if r.propose(cmd).is_ok() {
                    self.next_cmd += 1;
                    self.drain(i);
                }
            }
        }
    }

    fn crash(&mut self, i: usize) {
        self.nodes[i].raft = None;
        self.nodes[i].applied.clear();
    }

    fn restart(&mut self, i: usize, seed: u64) {
        let saved: Option<Persistent<Cmd>> = self.nodes[i]
            .saved
            .as_ref()
            .map(|b| serde_json::from_slice(b).unwrap());
        let (store, stored) = RaftStore::load::<Cmd>(&self.nodes[i].disk, STORE_PREFIX).unwrap();
        self.nodes[i].store = store;
        // Both ways of persisting hold the same state; either restarts the node.
        assert_eq!(stored, saved, "n{i}'s store and save() disagree");
        let state = if self.from_store { stored } else { saved };
        let raft = Raft::new(
            &self.names[i],
            &self.names,
            self.config.clone(),
            state,
            self.now,
            seed,
        );
        self.nodes[i].raft = Some(raft);
        self.drain(i);
    }

    fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.raft.as_ref().is_some_and(|r| r.role() == Role::Leader))
    }

    fn run_until(&mut self, t: u64) {
        while self.now < t {
            self.step();
        }
    }
}

#[test]
fn a_leader_is_elected_and_commands_commit_everywhere() {
    for n in [1, 3, 5] {
        let mut sim = Sim::new(n, 1, Config::default());
        sim.run_until(2_000);
        assert!(sim.leader().is_some(), "{n} nodes elect a leader");
        for _ in 0..100 {
            sim.propose();
            sim.step();
        }
        sim.run_until(sim.now + 2_000);
        let applied: Vec<usize> = sim.nodes.iter().map(|n| n.applied.len()).collect();
        assert!(
            applied.iter().all(|a| *a == applied[0] && *a >= 101),
            "{n}: {applied:?}"
        );
        assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    }
}

#[test]
fn the_leader_reports_how_far_each_follower_matches() {
    let mut sim = Sim::new(3, 2, Config::default());
    sim.run_until(2_000);
    let leader = sim.leader().unwrap();
    let follower = (leader + 1) % 3;
    let cut_off = (leader + 2) % 3;
    sim.cut.insert((leader, cut_off));
    for _ in 0..10 {
        sim.propose();
        sim.step();
    }
    sim.run_until(sim.now + 500);
    let raft = sim.nodes[leader].raft.as_ref().unwrap();
    let last = raft.log().last_index();
    let matched: BTreeMap<String, u64> = raft.match_indexes().into_iter().collect();
    assert_eq!(matched.len(), 2);
    assert_eq!(matched[&sim.names[follower]], last);
    assert!(matched[&sim.names[cut_off]] < last, "{matched:?}");
    let other = sim.nodes[follower].raft.as_ref().unwrap();
    assert!(other.match_indexes().is_empty(), "only a leader knows");
}

/// Forty rounds of random partitions, crashes, restarts and loss, then healing. Returns the
/// first safety violation, or whether the healed cluster made progress.
fn random_faults(seed: u64, config: Config) -> Result<bool, String> {
    let mut sim = Sim::new(5, seed, config);
    // Half the schedules restart nodes from their RaftStore files.
    sim.from_store = seed % 4 >= 2;
    // Half the schedules also compact logs, so snapshots travel and restarts load them.
    sim.compact_every = (seed % 2 == 1).then_some(25);
    let mut rng = StdRng::seed_from_u64(seed + 1000);
    for round in 0..40 {
        match rng.gen_range(0..6) {
            0 => {
                sim.cut.clear();
                let side: Vec<bool> = (0..5).map(|_| rng.gen_bool(0.5)).collect();
                for a in 0..5 {
                    for b in 0..5 {
                        if side[a] != side[b] {
                            sim.cut.insert((a, b));
                        }
                    }
                }
            }
            1 => sim.cut.clear(),
            2 => sim.crash(rng.gen_range(0..5)),
            3 => {
                for i in 0..5 {
                    if sim.nodes[i].raft.is_none() {
                        sim.restart(i, seed * 100 + round);
                    }
                }
            }
            4 => sim.loss = [0.0, 0.1, 0.3][rng.gen_range(0..3)],
            _ => {}
        }
        for _ in 0..20 {
            sim.propose();
            sim.step();
        }
        sim.run_until(sim.now + rng.gen_range(50..500));
        sim.check_logs();
        if let Some(v) = sim.violations.first() {
            return Err(v.clone());
        }
    }
    sim.cut.clear();
    sim.loss = 0.0;
    for i in 0..5 {
        if sim.nodes[i].raft.is_none() {
            sim.restart(i, seed);
        }
    }
    sim.run_until(sim.now + 3_000);
    let before = sim.committed.len();
    sim.propose();
    sim.run_until(sim.now + 2_000);
    match sim.violations.first() {
        Some(v) => Err(v.clone()),
        None => Ok(sim.committed.len() > before),
    }
}

#[test]
fn random_faults_never_break_safety_and_the_cluster_recovers() {
    for seed in 0..60 {
        match random_faults(seed, Config::default()) {
            Ok(progress) => assert!(progress, "seed {seed}: no progress after healing"),
            Err(violation) => panic!("seed {seed}: {violation}"),
        }
    }
}

#[test]
fn a_node_that_fell_behind_a_compacted_log_catches_up_from_a_snapshot() {
    let mut sim = Sim::new(3, 5, Config::default());
    sim.compact_every = Some(20);
    sim.run_until(2_000);
    let leader = sim.leader().unwrap();
    let behind = (leader + 1) % 3;
    for other in 0..3 {
        if other != behind {
            sim.cut.insert((behind, other));
            sim.cut.insert((other, behind));
        }
    }
    for _ in 0..200 {
        sim.propose();
        sim.step();
    }
    sim.run_until(sim.now + 1_000);
    let log = sim.nodes[leader].raft.as_ref().unwrap().log();
    assert!(
        log.snapshot_index >= 150,
        "the leader compacted: {}",
        log.snapshot_index
    );
    sim.cut.clear();
    sim.run_until(sim.now + 3_000);
    assert!(sim.installs > 0, "a snapshot was sent");
    let applied: Vec<usize> = sim.nodes.iter().map(|n| n.applied.len()).collect();
    assert!(
        applied.iter().all(|a| *a == applied[0] && *a > 200),
        "{applied:?}"
    );
    assert_eq!(sim.nodes[behind].applied, sim.nodes[leader].applied);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn a_rejoining_node_does_not_disrupt_a_healthy_leader() {
    let mut sim = Sim::new(3, 7, Config::default());
    sim.run_until(2_000);
    let leader = sim.leader().unwrap();
    let term = sim.nodes[leader].raft.as_ref().unwrap().term();
    let loner = (leader + 1) % 3;
    for other in 0..3 {
        if other != loner {
            sim.cut.insert((loner, other));
            sim.cut.insert((other, loner));
        }
    }
    sim.run_until(sim.now + 5_000);
    sim.cut.clear();
    sim.run_until(sim.now + 2_000);
    let raft = sim.nodes[leader].raft.as_ref().unwrap();
    assert_eq!(
        (raft.role(), raft.term()),
        (Role::Leader, term),
        "pre-vote kept the term"
    );
}

#[test]
fn reads_are_served_only_after_a_quorum_confirms_the_leader() {
    let mut sim = Sim::new(3, 3, Config::default());
    sim.run_until(2_000);
    let leader = sim.leader().unwrap();
    sim.nodes[leader]
        .raft
        .as_mut()
        .unwrap()
        .read_index(1)
        .unwrap();
    sim.drain(leader);
    sim.run_until(sim.now + 100);
    assert_eq!(
        sim.reads,
        [(leader, 1)],
        "a connected leader serves its read"
    );
    // Cut the leader off: a read must wait, then fail when it steps down.
    for other in 0..3 {
        if other != leader {
            sim.cut.insert((leader, other));
            sim.cut.insert((other, leader));
        }
    }
    sim.nodes[leader]
        .raft
        .as_mut()
        .unwrap()
        .read_index(2)
        .unwrap();
    sim.drain(leader);
    sim.run_until(sim.now + 3_000);
    assert_eq!(
        sim.reads.len(),
        1,
        "an isolated leader served a read: {:?}",
        sim.reads
    );
    assert_ne!(
        sim.nodes[leader].raft.as_ref().unwrap().role(),
        Role::Leader,
        "it stepped down"
    );
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

/// Two candidates of one term; the third node votes for the first, crashes, restarts from
/// what it saved, and hears the second. Returns whether both won.
fn two_leaders_after_a_restart(flaw: Flaw) -> bool {
    let config = Config {
        flaw,
        ..Config::default()
    };
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let mk = |id: &str, state| Raft::<Cmd>::new(id, &names, config.clone(), state, 0, 1);
    let (mut a, mut b, mut c) = (mk("a", None), mk("b", None), mk("c", None));
    let t = 10_000;
    // Both time out; c grants both pre-votes, so both become candidates of term 1.
    a.tick(t);
    b.tick(t);
    for (cand, msgs) in [("a", a.ready().messages), ("b", b.ready().messages)] {
        for (to, m) in msgs {
            if to == "c" {
                c.step(t, cand, m);
            }
        }
    }
    for (to, m) in c.ready().messages {
        match to.as_str() {
            "a" => a.step(t, "c", m),
            _ => b.step(t, "c", m),
        }
    }
    let to_c = |msgs: Vec<(String, RaftMsg<Cmd>)>| -> Vec<RaftMsg<Cmd>> {
        msgs.into_iter()
            .filter(|(to, _)| to == "c")
            .map(|(_, m)| m)
            .collect()
    };
    let (votes_a, votes_b) = (to_c(a.ready().messages), to_c(b.ready().messages));
    for m in votes_a {
        c.step(t, "a", m);
    }
    let ready = c.ready();
    assert!(ready.persist);
    let saved = c.save();
    for (to, m) in ready.messages {
        if to == "a" {
            a.step(t, "c", m);
        }
    }
    assert!(a.is_leader());
    let state: Persistent<Cmd> = serde_json::from_slice(&saved).unwrap();
    let mut c = Raft::new("c", &names, config.clone(), Some(state), t, 2);
    for m in votes_b {
        c.step(t, "b", m);
    }
    for (to, m) in c.ready().messages {
        if to == "b" {
            b.step(t, "c", m);
        }
    }
    a.is_leader() && b.is_leader() && a.term() == b.term()
}

#[test]
fn forgetting_the_vote_elects_two_leaders_in_one_term() {
    assert!(!two_leaders_after_a_restart(Flaw::None), "the vote is kept");
    assert!(
        two_leaders_after_a_restart(Flaw::ForgetVote),
        "the flaw is caught"
    );
}

/// Five instances whose messages are delivered only where a test says, for scripted
/// scenarios; records every commit to catch two different entries committed at one index.
struct Script {
    names: Vec<String>,
    nodes: Vec<Option<Raft<Cmd>>>,
    now: u64,
    committed: BTreeMap<u64, (u64, Option<Cmd>)>,
    conflicts: Vec<u64>,
}

impl Script {
    fn new(config: &Config) -> Script {
        let names: Vec<String> = (0..5).map(|i| format!("n{i}")).collect();
        let nodes = (0..5)
            .map(|i| {
                Some(Raft::new(
                    &names[i],
                    &names,
                    config.clone(),
                    None,
                    0,
                    i as u64,
                ))
            })
            .collect();
        Script {
            names,
            nodes,
            now: 0,
            committed: BTreeMap::new(),
            conflicts: Vec::new(),
        }
    }

    /// Lets `node` time out and campaign, long after anyone heard from a leader.
    fn campaign(&mut self, node: usize) {
        self.now += 10_000;
        self.nodes[node].as_mut().unwrap().tick(self.now);
    }

    /// Delivers messages among `among` that `pass` lets through until none are left.
    fn pump(&mut self, among: &[usize], pass: &impl Fn(&mut RaftMsg<Cmd>) -> bool) {
        loop {
            let mut sent = Vec::new();
            for i in 0..5 {
                let Some(raft) = self.nodes[i].as_mut() else {
                    continue;
                };
                let ready = raft.ready();
                for e in ready.committed {
                    let record = (e.term, e.command);
                    match self.committed.get(&e.index) {
                        Some(seen) if *seen != record => self.conflicts.push(e.index),
                        Some(_) => {}
                        None => {
                            self.committed.insert(e.index, record);
                        }
                    }
                }
                for (to, mut msg) in ready.messages {
                    let to = self.names.iter().position(|n| *n == to).unwrap();
                    if among.contains(&i) && among.contains(&to) && pass(&mut msg) {
                        sent.push((i, to, msg));
                    }
                }
            }
            if sent.is_empty() {
                return;
            }
            for (from, to, msg) in sent {
                if let Some(raft) = self.nodes[to].as_mut() {
                    raft.step(self.now, &self.names[from], msg);
                }
            }
        }
    }

    /// Campaigns `node` until it leads: a stale leader first steps down, a node behind
    /// first learns the current term from refused pre-votes.
    fn elect(&mut self, node: usize, among: &[usize], pass: impl Fn(&mut RaftMsg<Cmd>) -> bool) {
        for _ in 0..4 {
            self.campaign(node);
            self.pump(among, &pass);
            if self.raft(node).is_leader() {
                return;
            }
        }
        panic!("n{node} could not win an election among {among:?}");
    }

    fn raft(&self, i: usize) -> &Raft<Cmd> {
        self.nodes[i].as_ref().unwrap()
    }
}

/// Figure 8 of the Raft paper: n0 leads term 1 and stores x at index 2 on n1 only; n4 wins
/// term 2 without it; n0 wins term 3 and copies x to n2, a majority, but its own no-op is
/// cut from every append.
/// Returns whether n0 then counted x committed, and whether another entry was later
/// committed at the same index once n4 won term 4.
fn figure_eight(flaw: Flaw) -> (bool, bool) {
    let config = Config {
        flaw,
        max_batch: 1,
        ..Config::default()
    };
    let all = [0, 1, 2, 3, 4];
    let mut s = Script::new(&config);
    s.elect(0, &all, |_| true);
    assert!(s.raft(0).is_leader() && s.raft(0).commit_index() == 1);
    s.nodes[0].as_mut().unwrap().propose(100).unwrap();
    s.pump(&[0, 1], &|_| true);
    assert_eq!(s.raft(1).log().last_index(), 2, "x reached n1");

    s.elect(4, &[2, 3, 4], |m: &mut RaftMsg<Cmd>| {
        !matches!(m, RaftMsg::Append { .. })
    });
    assert!(
        s.raft(4).is_leader() && s.raft(4).term() == 2,
        "n4 leads term 2"
    );

    let not_own_noop = |m: &mut RaftMsg<Cmd>| {
        if let RaftMsg::Append { entries, .. } = m {
            entries.retain(|e| e.index < 3);
        }
        true
    };
    s.elect(0, &[0, 1, 2, 3], not_own_noop);
    assert!(
        s.raft(0).is_leader() && s.raft(0).term() == 3,
        "n0 leads term 3"
    );
    assert_eq!(s.raft(2).log().term(2), Some(1), "x reached n2");
    let counted = s.committed.get(&2) == Some(&(1, Some(100)));

    // n0 crashes; n4 wins a later term with n1..n3 and replicates its own index 2.
    s.nodes[0] = None;
    s.elect(4, &[1, 2, 3, 4], |_| true);
    s.pump(&[1, 2, 3, 4], &|_| true);
    (counted, s.conflicts.contains(&2))
}

#[test]
fn committing_an_older_terms_entry_by_counting_loses_it() {
    assert_eq!(
        figure_eight(Flaw::None),
        (false, false),
        "correct Raft waits"
    );
    assert_eq!(
        figure_eight(Flaw::CommitOldTerms),
        (true, true),
        "the flaw is caught"
    );
}
