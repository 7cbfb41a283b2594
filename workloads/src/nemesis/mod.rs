//! The nemesis as a pure planner: which fault starts or stops when, on which nodes, drawn
//! from a seeded RNG so that `--seed` replays the same schedule. The engine carries the
//! actions out ([`crate::engine::faults`]); nothing here touches a process or the network.
//!
//! The schedule is Maelstrom's stagger: the first step right away, each next one a uniform
//! 0…2×`--nemesis-interval` seconds after the previous. With several kinds enabled, each step
//! picks one kind at random and flips it: a kind that is off starts, one that is on stops
//! (Jepsen's mix of flip-flop generators). With one kind this is exactly Maelstrom's
//! start/stop alternation.

pub mod clock;
pub mod partition;

use std::collections::BTreeSet;
use std::fmt;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use clock::ClockChange;
use partition::{Grudge, Shape};

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
    active: BTreeSet<Kind>,
    interval_ns: u64,
    next_at: u64,
    rng: StdRng,
}

impl Planner {
    pub fn new(config: Config, start_ns: u64, rng: StdRng) -> Planner {
        let kinds = config.kinds.iter().copied().collect();
        Planner {
            interval_ns: (config.interval_s.max(0.0) * 1e9) as u64,
            config,
            kinds,
            active: BTreeSet::new(),
            next_at: start_ns,
            rng,
        }
    }

    pub fn next_at(&self) -> u64 {
        self.next_at
    }

    pub fn is_active(&self, kind: Kind) -> bool {
        self.active.contains(&kind)
    }

    /// The action due at `now`, if any. `n` is the node count.
    pub fn poll(&mut self, now: u64, n: u32) -> Option<Action> {
        if now < self.next_at || self.kinds.is_empty() {
            return None;
        }
        let kind = if self.kinds.len() == 1 {
            self.kinds[0]
        } else {
            self.kinds[self.rng.gen_range(0..self.kinds.len())]
        };
        let gap = if self.interval_ns == 0 {
            0
        } else {
            self.rng.gen_range(0..=2 * self.interval_ns)
        };
        self.next_at = now + gap;
        Some(if self.active.remove(&kind) {
            stop(kind)
        } else {
            self.active.insert(kind);
            self.start(kind, n)
        })
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
            .filter(|k| self.active.contains(k))
            .map(stop)
            .collect();
        self.active.clear();
        actions
    }

    fn start(&mut self, kind: Kind, n: u32) -> Action {
        match kind {
            Kind::Partition => {
                let shape = Shape::random(&self.config.shapes, &mut self.rng);
                let grudge = shape.grudge(n, &mut self.rng);
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

    fn planner(kinds: &[Kind], seed: u64) -> Planner {
        let config = Config {
            kinds: kinds.iter().copied().collect(),
            interval_s: 1.0,
            shapes: Shape::MAELSTROM.to_vec(),
            lossy: Lossy::uniform(0.1),
        };
        Planner::new(config, 0, StdRng::seed_from_u64(seed))
    }

    fn run(p: &mut Planner, steps: usize) -> Vec<Action> {
        (0..steps)
            .map(|_| {
                let at = p.next_at();
                p.poll(at, 5).expect("due")
            })
            .collect()
    }

    #[test]
    fn one_kind_alternates_start_and_stop_from_time_zero() {
        let mut p = planner(&[Kind::Partition], 3);
        assert!(p.poll(0, 5).is_some_and(|a| a.f() == "start-partition"));
        let at = p.next_at();
        assert!(at <= 2_000_000_000);
        if at > 0 {
            assert_eq!(p.poll(at - 1, 5), None);
        }
        let fs: Vec<String> = run(&mut p, 3).iter().map(Action::f).collect();
        assert_eq!(fs, ["stop-partition", "start-partition", "stop-partition"]);
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
