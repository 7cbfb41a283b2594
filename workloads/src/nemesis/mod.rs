//! The nemesis as a pure planner: which fault starts or stops when, on which nodes, drawn
//! from a seeded RNG so that `--seed` replays the same schedule. The engine's runner carries
//! the actions out (its `faults` module); nothing here touches a process or the network.
//!
//! The schedule is Maelstrom's stagger: the first step right away, each next one a uniform
//! 0…2×`--nemesis-interval` seconds after the previous. With several kinds enabled, each step
//! picks one kind at random and flips it: a kind that is off starts, one that is on stops
//! (Jepsen's mix of flip-flop generators). With one kind this is exactly Maelstrom's
//! start/stop alternation.
//!
//! Three pacing rules ([`Pacing`]) keep every seed meaningful. Nothing starts in the first
//! tenth of the run, so the first fault meets nodes already in use. A started fault stays
//! on for at least half an interval, so it bites. Kill and pause (the faults that stop
//! processes) never overlap, last at most two intervals, and the next one waits until the
//! requests the last one held have timed out and clients then had an interval of healthy
//! nodes: so a short run always has operations that can succeed, and a node that was
//! killed always serves requests again before the next kill. And `one` partitions cut off
//! the nodes in turn, so that a leader, wherever it is, is cut off within `n` of them.

pub mod clock;
pub mod partition;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use clock::ClockChange;
use partition::{Grudge, Shape};

/// The shortest `--nemesis-interval` accepted, in seconds. Faults that change faster than
/// every 100 ms outpace what they are meant to test: a killed node takes tens of
/// milliseconds to restart and answer `init`, a request round trip under `--latency` takes
/// as long, and Maelstrom's own schedules are seconds apart. Below it a run mostly measures
/// the harness (an interval of 0 made thousands of partitions in a few seconds).
pub const MIN_NEMESIS_INTERVAL_S: f64 = 0.1;

/// A kind of fault, as named by `--nemesis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Network partitions in the configured shapes.
    Partition,
    /// SIGKILL, then restart with the same id and working directory.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// Jumps and drift of the nodes' wall clocks (libfaketime).
    Clock,
    /// Dropped, duplicated and reordered node-to-node messages.
    Lossy,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Partition,
        Kind::Kill,
        Kind::Pause,
        Kind::Clock,
        Kind::Lossy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Partition => "partition",
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Clock => "clock",
            Kind::Lossy => "lossy",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How often messages misbehave while the lossy fault is on; each is a probability per
/// node-to-node message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lossy {
    pub drop: f64,
    pub duplicate: f64,
    pub reorder: f64,
}

impl Lossy {
    pub fn uniform(rate: f64) -> Lossy {
        Lossy {
            drop: rate,
            duplicate: rate,
            reorder: rate,
        }
    }
}

/// What the nemesis may do.
#[derive(Debug, Clone)]
pub struct Config {
    pub kinds: BTreeSet<Kind>,
    /// Mean seconds between steps.
    pub interval_s: f64,
    pub shapes: Vec<Shape>,
    pub lossy: Lossy,
    pub pacing: Pacing,
}

/// What the pacing rules (see the module documentation) are derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Length of the main phase.
    pub run_ns: u64,
    /// How long a request to a stopped node holds its client.
    pub client_timeout_ns: u64,
}

impl Pacing {
    /// No fault before this long into the run.
    pub fn settle_ns(&self, interval_ns: u64) -> u64 {
        (self.run_ns / 10).min(interval_ns)
    }
}

/// The pacing rules in nanoseconds, derived once from [`Config`].
#[derive(Debug, Clone, Copy)]
struct Rules {
    /// Mean gap between steps.
    interval: u64,
    min_on: u64,
    max_down: u64,
    healthy: u64,
    client_timeout: u64,
}

/// Which nodes a process fault hits, as Jepsen's `db-nodes` targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Targets {
    One,
    Minority,
    Majority,
    All,
}

impl Targets {
    const ALL: [Targets; 4] = [
        Targets::One,
        Targets::Minority,
        Targets::Majority,
        Targets::All,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            Targets::One => "one",
            Targets::Minority => "minority",
            Targets::Majority => "majority",
            Targets::All => "all",
        }
    }

    /// How many of `n` nodes this names (at least one when `n > 0`).
    pub fn count(self, n: usize) -> usize {
        let k = match self {
            Targets::One => 1,
            Targets::Minority => (n.saturating_sub(1)) / 2,
            Targets::Majority => n / 2 + 1,
            Targets::All => n,
        };
        k.clamp(1.min(n), n)
    }
}

/// One thing for the engine to do, with every random choice already made.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Partition { shape: Shape, grudge: Grudge },
    Heal,
    Kill { targets: Targets, nodes: Vec<u32> },
    Restart,
    Pause { targets: Targets, nodes: Vec<u32> },
    Resume,
    Clock { changes: Vec<(u32, ClockChange)> },
    ResetClocks,
    StartLossy(Lossy),
    StopLossy,
}

impl Kind {
    /// Whether the fault stops node processes, so that requests to them go unanswered.
    pub fn stops_nodes(self) -> bool {
        matches!(self, Kind::Kill | Kind::Pause)
    }
}

impl Action {
    pub fn kind(&self) -> Kind {
        match self {
            Action::Partition { .. } | Action::Heal => Kind::Partition,
            Action::Kill { .. } | Action::Restart => Kind::Kill,
            Action::Pause { .. } | Action::Resume => Kind::Pause,
            Action::Clock { .. } | Action::ResetClocks => Kind::Clock,
            Action::StartLossy(_) | Action::StopLossy => Kind::Lossy,
        }
    }

    pub fn is_start(&self) -> bool {
        matches!(
            self,
            Action::Partition { .. }
                | Action::Kill { .. }
                | Action::Pause { .. }
                | Action::Clock { .. }
                | Action::StartLossy(_)
        )
    }

    /// The history's `:f`: `start-<kind>` or `stop-<kind>`.
    pub fn f(&self) -> String {
        let verb = if self.is_start() { "start" } else { "stop" };
        format!("{verb}-{}", self.kind())
    }
}

/// The seeded schedule of actions. See the module documentation.
#[derive(Debug)]
pub struct Planner {
    config: Config,
    kinds: Vec<Kind>,
    /// Active kinds and when each started.
    active: BTreeMap<Kind, u64>,
    rules: Rules,
    next_at: u64,
    /// Earliest start of the next kill or pause.
    stop_nodes_at: u64,
    /// Nodes still to be cut off by a `one` partition in this round.
    isolation_order: Vec<u32>,
    rng: StdRng,
}

impl Planner {
    pub fn new(config: Config, start_ns: u64, rng: StdRng) -> Planner {
        let kinds = config.kinds.iter().copied().collect();
        let interval_ns = (config.interval_s.max(0.0) * 1e9) as u64;
        let rules = Rules {
            interval: interval_ns,
            min_on: interval_ns / 2,
            max_down: 2 * interval_ns,
            healthy: interval_ns,
            client_timeout: config.pacing.client_timeout_ns,
        };
        let first = start_ns + config.pacing.settle_ns(interval_ns);
        Planner {
            config,
            kinds,
            active: BTreeMap::new(),
            rules,
            next_at: first,
            stop_nodes_at: first,
            isolation_order: Vec::new(),
            rng,
        }
    }

    /// When [`Planner::poll`] next has something to do.
    pub fn next_at(&self) -> u64 {
        self.overdue_at()
            .map_or(self.next_at, |(at, _)| at.min(self.next_at))
    }

    pub fn is_active(&self, kind: Kind) -> bool {
        self.active.contains_key(&kind)
    }

    /// The action due at `now`, if any. `n` is the node count.
    pub fn poll(&mut self, now: u64, n: u32) -> Option<Action> {
        if let Some((at, kind)) = self.overdue_at() {
            if now >= at {
                return Some(self.stop(kind, now));
            }
        }
        if now < self.next_at || self.kinds.is_empty() {
            return None;
        }
        let kind = if self.kinds.len() == 1 {
            self.kinds[0]
        } else {
            self.kinds[self.rng.gen_range(0..self.kinds.len())]
        };
        let gap = self.rng.gen_range(0..=2 * self.rules.interval);
        self.next_at = now + gap;
        let not_before = match self.active.get(&kind) {
            Some(&since) => since + self.rules.min_on,
            None if kind.stops_nodes() => self.stop_nodes_at,
            None => now,
        };
        if now < not_before {
            // Too early for this flip: the step is spent, the next one comes no sooner
            // (or, while the other process fault is on, after the usual gap).
            if not_before != u64::MAX {
                self.next_at = self.next_at.max(not_before);
            }
            return None;
        }
        Some(if self.active.contains_key(&kind) {
            self.stop(kind, now)
        } else {
            self.start(kind, now, n)
        })
    }

    /// The process fault that must stop, and when: no kill or pause lasts longer than
    /// `max_down`.
    fn overdue_at(&self) -> Option<(u64, Kind)> {
        self.active
            .iter()
            .find(|(k, _)| k.stops_nodes())
            .map(|(&k, &since)| (since + self.rules.max_down, k))
    }

    fn stop(&mut self, kind: Kind, now: u64) -> Action {
        if let Some(since) = self.active.remove(&kind) {
            if kind.stops_nodes() {
                let held_until = since + self.rules.client_timeout;
                self.stop_nodes_at = now.max(held_until) + self.rules.healthy;
            }
        }
        stop(kind)
    }

    /// Stops every active fault, partitions first and kills last, so restarted nodes come
    /// back to a whole network.
    pub fn heal(&mut self) -> Vec<Action> {
        let order = [
            Kind::Partition,
            Kind::Lossy,
            Kind::Clock,
            Kind::Pause,
            Kind::Kill,
        ];
        let actions = order
            .into_iter()
            .filter(|k| self.active.contains_key(k))
            .map(stop)
            .collect();
        self.active.clear();
        actions
    }

    fn start(&mut self, kind: Kind, now: u64, n: u32) -> Action {
        self.active.insert(kind, now);
        if kind.stops_nodes() {
            // One process fault at a time: never kill and pause every node between them.
            self.stop_nodes_at = u64::MAX;
        }
        match kind {
            Kind::Partition => {
                let shape = Shape::random(&self.config.shapes, &mut self.rng);
                let grudge = match shape {
                    Shape::One => partition::isolate(self.next_isolated(n), n),
                    _ => shape.grudge(n, &mut self.rng),
                };
                Action::Partition { shape, grudge }
            }
            Kind::Kill => {
                let (targets, nodes) = self.pick(n);
                Action::Kill { targets, nodes }
            }
            Kind::Pause => {
                let (targets, nodes) = self.pick(n);
                Action::Pause { targets, nodes }
            }
            Kind::Clock => {
                let (_, nodes) = self.pick(n);
                let changes = nodes
                    .into_iter()
                    .map(|node| (node, ClockChange::random(&mut self.rng)))
                    .collect();
                Action::Clock { changes }
            }
            Kind::Lossy => Action::StartLossy(self.config.lossy),
        }
    }

    /// The node the next `one` partition cuts off: every node in turn, in a seeded order
    /// drawn afresh for each round, so that `n` such partitions cut off every node (and so
    /// whichever node leads).
    fn next_isolated(&mut self, n: u32) -> u32 {
        if self.isolation_order.is_empty() {
            self.isolation_order = (0..n).collect();
            self.isolation_order.shuffle(&mut self.rng);
        }
        self.isolation_order.pop().unwrap_or(0)
    }

    fn pick(&mut self, n: u32) -> (Targets, Vec<u32>) {
        let targets = Targets::ALL[self.rng.gen_range(0..Targets::ALL.len())];
        let mut nodes: Vec<u32> = (0..n).collect();
        nodes.shuffle(&mut self.rng);
        nodes.truncate(targets.count(n as usize));
        nodes.sort_unstable();
        (targets, nodes)
    }
}

fn stop(kind: Kind) -> Action {
    match kind {
        Kind::Partition => Action::Heal,
        Kind::Kill => Action::Restart,
        Kind::Pause => Action::Resume,
        Kind::Clock => Action::ResetClocks,
        Kind::Lossy => Action::StopLossy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const S: u64 = 1_000_000_000;

    fn planner(kinds: &[Kind], seed: u64) -> Planner {
        paced(kinds, seed, 1.0, 60, 5)
    }

    /// A planner for a run of `run_s` seconds whose clients time out after `timeout_s`.
    fn paced(kinds: &[Kind], seed: u64, interval_s: f64, run_s: u64, timeout_s: u64) -> Planner {
        let config = Config {
            kinds: kinds.iter().copied().collect(),
            interval_s,
            shapes: Shape::MAELSTROM.to_vec(),
            lossy: Lossy::uniform(0.1),
            pacing: Pacing {
                run_ns: run_s * S,
                client_timeout_ns: timeout_s * S,
            },
        };
        Planner::new(config, 0, StdRng::seed_from_u64(seed))
    }

    /// The first `steps` actions, each with its time.
    fn timeline(p: &mut Planner, steps: usize) -> Vec<(u64, Action)> {
        let mut out = Vec::new();
        while out.len() < steps {
            let at = p.next_at();
            if let Some(action) = p.poll(at, 5) {
                out.push((at, action));
            }
        }
        out
    }

    fn run(p: &mut Planner, steps: usize) -> Vec<Action> {
        timeline(p, steps).into_iter().map(|(_, a)| a).collect()
    }

    #[test]
    fn one_kind_alternates_start_and_stop_after_settling() {
        let mut p = planner(&[Kind::Partition], 3);
        assert_eq!(p.poll(0, 5), None, "nothing in the first tenth of the run");
        assert_eq!(p.next_at(), S, "a tenth of 60 s, at most one interval");
        assert!(p.poll(S, 5).is_some_and(|a| a.f() == "start-partition"));
        let at = p.next_at();
        assert!(at <= 3 * S);
        assert_eq!(p.poll(at - 1, 5), None);
        let fs: Vec<String> = run(&mut p, 3).iter().map(Action::f).collect();
        assert_eq!(fs, ["stop-partition", "start-partition", "stop-partition"]);
    }

    /// Each kind's (start, stop) spans, in order; a fault still on ends at `u64::MAX`.
    fn spans(timeline: &[(u64, Action)]) -> Vec<(Kind, u64, u64)> {
        let mut on: BTreeMap<Kind, u64> = BTreeMap::new();
        let mut out = Vec::new();
        for (at, a) in timeline {
            if a.is_start() {
                on.insert(a.kind(), *at);
            } else {
                out.push((a.kind(), on.remove(&a.kind()).unwrap(), *at));
            }
        }
        out.extend(on.into_iter().map(|(k, since)| (k, since, u64::MAX)));
        out.sort_by_key(|&(_, since, _)| since);
        out
    }

    #[test]
    fn pacing_settles_bites_and_leaves_healthy_time_between_process_faults() {
        for seed in 0..200 {
            for kinds in [&Kind::ALL[..], &[Kind::Kill], &[Kind::Kill, Kind::Pause]] {
                let t = timeline(&mut paced(kinds, seed, 2.0, 30, 5), 40);
                assert!(t[0].0 >= 2 * S, "seed {seed}: a fault before settling");
                let all = spans(&t);
                for &(kind, since, until) in &all {
                    assert!(
                        until - since >= S,
                        "seed {seed}: {kind} on < half an interval"
                    );
                }
                let procs: Vec<_> = all.iter().filter(|s| s.0.stops_nodes()).collect();
                for &&(kind, since, until) in procs.iter().filter(|s| s.2 != u64::MAX) {
                    assert!(
                        until - since <= 4 * S,
                        "seed {seed}: {kind} down > 2 intervals"
                    );
                }
                for pair in procs.windows(2) {
                    let ((_, since, until), (kind, next, _)) = (*pair[0], *pair[1]);
                    let healthy_from = until.max(since + 5 * S);
                    assert!(
                        next >= healthy_from + 2 * S,
                        "seed {seed}: {kind} at {next} ns, the last ended at {until} ns"
                    );
                }
            }
        }
    }

    #[test]
    fn a_short_kill_run_kills_nodes_in_use_and_serves_requests_after() {
        // unique-ids-kill and gift-ids-kill: 10 s runs, 5 s client timeouts.
        for interval_s in [1.0, 2.0] {
            for seed in 0..200 {
                let t = timeline(&mut paced(&[Kind::Kill], seed, interval_s, 10, 5), 2);
                let (kill_at, restart_at) = (t[0].0, t[1].0);
                assert_eq!(t[0].1.f(), "start-kill");
                assert_eq!(kill_at, S, "after a second of requests");
                let serving_again = restart_at.max(kill_at + 5 * S);
                assert!(
                    serving_again + S <= 10 * S,
                    "seed {seed}: killed nodes serve again at {serving_again} ns"
                );
            }
        }
    }

    #[test]
    fn one_partitions_cut_off_every_node_in_turn() {
        let config = |seed| {
            let mut p = paced(&[Kind::Partition], seed, 2.0, 30, 1);
            p.config.shapes = vec![Shape::One];
            p
        };
        for seed in 0..300 {
            let t = timeline(&mut config(seed), 10);
            let mut cut_off = BTreeSet::new();
            for (pair, (start, action)) in t.chunks(2).zip(t.iter().step_by(2)) {
                let Action::Partition { grudge, .. } = action else {
                    panic!("{action:?}")
                };
                let alone: Vec<u32> = grudge
                    .iter()
                    .filter(|(_, srcs)| srcs.len() == 4)
                    .map(|(node, _)| *node)
                    .collect();
                assert_eq!(alone.len(), 1, "seed {seed}: {grudge:?}");
                assert!(pair[1].0 - start >= S, "seed {seed}: cut off for under 1 s");
                cut_off.insert(alone[0]);
                if cut_off.len() == 5 {
                    // The scenario that relies on it (an early-acking leader) runs 30 s: the
                    // last node is cut off for a second within it.
                    assert!(
                        start + S <= 30 * S,
                        "seed {seed}: last cut off at {start} ns"
                    );
                    break;
                }
            }
            assert_eq!(
                cut_off.len(),
                5,
                "seed {seed}: 5 partitions cut off 5 nodes"
            );
        }
    }

    #[test]
    fn mixed_kinds_flip_independently_and_heal_stops_what_is_on() {
        let mut p = planner(&Kind::ALL, 8);
        let actions = run(&mut p, 40);
        let mut on = BTreeSet::new();
        for a in &actions {
            if a.is_start() {
                assert!(on.insert(a.kind()), "{a:?} started twice");
            } else {
                assert!(on.remove(&a.kind()), "{a:?} stopped while off");
            }
        }
        let kinds: BTreeSet<Kind> = actions.iter().map(Action::kind).collect();
        assert_eq!(kinds.len(), 5, "every kind is drawn: {kinds:?}");
        let healed = p.heal();
        assert_eq!(healed.len(), on.len());
        assert!(healed.iter().all(|a| !a.is_start()));
        if on.contains(&Kind::Kill) {
            assert_eq!(healed.last(), Some(&Action::Restart), "restarts come last");
        }
        assert!(p.heal().is_empty());
    }

    #[test]
    fn same_seed_same_schedule() {
        let a = run(&mut planner(&Kind::ALL, 42), 30);
        let b = run(&mut planner(&Kind::ALL, 42), 30);
        assert_eq!(a, b);
        let c = run(&mut planner(&Kind::ALL, 43), 30);
        assert_ne!(a, c);
    }

    #[test]
    fn targets_name_sensible_counts() {
        assert_eq!(Targets::One.count(5), 1);
        assert_eq!(Targets::Minority.count(5), 2);
        assert_eq!(Targets::Minority.count(2), 1, "at least one node");
        assert_eq!(Targets::Majority.count(5), 3);
        assert_eq!(Targets::All.count(3), 3);
        assert_eq!(Targets::Majority.count(1), 1);
        assert_eq!(Targets::All.count(0), 0);
    }
}
