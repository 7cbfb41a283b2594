//! The partition nemesis, as pure functions of a seeded RNG: the four grudge shapes Maelstrom
//! draws from, and the flip-flop schedule of start/stop operations.
//!
//! A grudge maps each receiving node to the set of nodes it drops messages from; nodes are
//! indices into the node list. Shapes are drawn uniformly from `one`, `minority-third`,
//! `majority` and `majorities-ring` (Maelstrom has no `primaries`).

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// Receiver → senders it drops, in receiver order.
pub type Grudge = Vec<(u32, BTreeSet<u32>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    One,
    MinorityThird,
    Majority,
    MajoritiesRing,
}

impl Shape {
    pub const ALL: [Shape; 4] = [
        Shape::One,
        Shape::MinorityThird,
        Shape::Majority,
        Shape::MajoritiesRing,
    ];

    /// Maelstrom's keyword for the shape, without the colon.
    pub fn keyword(self) -> &'static str {
        match self {
            Shape::One => "one",
            Shape::MinorityThird => "minority-third",
            Shape::Majority => "majority",
            Shape::MajoritiesRing => "majorities-ring",
        }
    }

    pub fn random(rng: &mut StdRng) -> Shape {
        Shape::ALL[rng.gen_range(0..Shape::ALL.len())]
    }

    /// The grudge of this shape over nodes `0..n`.
    pub fn grudge(self, n: u32, rng: &mut StdRng) -> Grudge {
        let mut nodes: Vec<u32> = (0..n).collect();
        nodes.shuffle(rng);
        match self {
            Shape::One => complete(&[&nodes[..1.min(nodes.len())], &nodes[1.min(nodes.len())..]]),
            Shape::MinorityThird => {
                let k = (n.saturating_sub(1) / 3) as usize;
                if k == 0 {
                    Vec::new()
                } else {
                    complete(&[&nodes[..k], &nodes[k..]])
                }
            }
            Shape::Majority => {
                let k = (n / 2) as usize;
                complete(&[&nodes[..k], &nodes[k..]])
            }
            Shape::MajoritiesRing if n <= 5 => ring_perfect(&nodes),
            Shape::MajoritiesRing => ring_stochastic(n, rng),
        }
    }
}

/// Smallest majority of `n`.
fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// Every node drops every node outside its own component.
fn complete(components: &[&[u32]]) -> Grudge {
    let mut grudge: Grudge = Vec::new();
    for (i, component) in components.iter().enumerate() {
        let others: BTreeSet<u32> = components
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, c)| c.iter().copied())
            .collect();
        for node in component.iter() {
            grudge.push((*node, others.clone()));
        }
    }
    grudge.retain(|(_, srcs)| !srcs.is_empty());
    grudge.sort_by_key(|(node, _)| *node);
    grudge
}

/// Nodes in a (shuffled) ring; each sees the majority-sized window centred on itself.
fn ring_perfect(ring: &[u32]) -> Grudge {
    let n = ring.len();
    let m = majority(n);
    let mut grudge: Grudge = Vec::new();
    for start in 0..n {
        let window: Vec<u32> = (0..m).map(|k| ring[(start + k) % n]).collect();
        let me = window[m / 2];
        let dropped: BTreeSet<u32> = ring
            .iter()
            .copied()
            .filter(|x| !window.contains(x))
            .collect();
        if !dropped.is_empty() {
            grudge.push((me, dropped));
        }
    }
    grudge.sort_by_key(|(node, _)| *node);
    grudge
}

/// For larger clusters: each node sees a random majority containing itself, no two nodes
/// the same one (retrying a few times, as distinct majorities are plentiful for n > 5).
fn ring_stochastic(n: u32, rng: &mut StdRng) -> Grudge {
    let m = majority(n as usize);
    let mut seen: Vec<BTreeSet<u32>> = Vec::new();
    let mut grudge: Grudge = Vec::new();
    for me in 0..n {
        let mut visible = BTreeSet::new();
        for _ in 0..16 {
            let mut others: Vec<u32> = (0..n).filter(|&x| x != me).collect();
            others.shuffle(rng);
            visible = others[..m - 1].iter().copied().collect();
            visible.insert(me);
            if !seen.contains(&visible) {
                break;
            }
        }
        seen.push(visible.clone());
        let dropped: BTreeSet<u32> = (0..n).filter(|x| !visible.contains(x)).collect();
        grudge.push((me, dropped));
    }
    grudge
}

/// What the nemesis does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NemesisStep {
    Start,
    Stop,
}

/// Maelstrom's schedule: start and stop alternate (flip-flop), the first right away and
/// each next one a uniform 0…2×interval seconds after the previous.
#[derive(Debug)]
pub struct Schedule {
    interval_ns: u64,
    next_at: u64,
    next: NemesisStep,
}

impl Schedule {
    pub fn new(interval_secs: f64, start_ns: u64) -> Self {
        Schedule {
            interval_ns: (interval_secs.max(0.0) * 1e9) as u64,
            next_at: start_ns,
            next: NemesisStep::Start,
        }
    }

    pub fn next_at(&self) -> u64 {
        self.next_at
    }

    /// The step due at `now`, if any, advancing the schedule.
    pub fn poll(&mut self, now: u64, rng: &mut StdRng) -> Option<NemesisStep> {
        if now < self.next_at {
            return None;
        }
        let step = self.next;
        self.next = match step {
            NemesisStep::Start => NemesisStep::Stop,
            NemesisStep::Stop => NemesisStep::Start,
        };
        let gap = if self.interval_ns == 0 {
            0
        } else {
            rng.gen_range(0..=2 * self.interval_ns)
        };
        self.next_at = now + gap;
        Some(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(11)
    }

    fn dropped_by(g: &Grudge, node: u32) -> BTreeSet<u32> {
        g.iter()
            .find(|(n, _)| *n == node)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }

    #[test]
    fn one_isolates_a_single_node_both_ways() {
        let g = Shape::One.grudge(5, &mut rng());
        let lonely: Vec<u32> = g
            .iter()
            .filter(|(_, s)| s.len() == 4)
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(lonely.len(), 1);
        for (node, srcs) in &g {
            if *node != lonely[0] {
                assert_eq!(srcs, &BTreeSet::from([lonely[0]]));
            }
        }
        assert_eq!(g.len(), 5);
    }

    #[test]
    fn minority_third_is_a_no_op_up_to_three_nodes() {
        for n in 1..=3 {
            assert!(Shape::MinorityThird.grudge(n, &mut rng()).is_empty());
        }
        let g = Shape::MinorityThird.grudge(7, &mut rng());
        let cut: Vec<_> = g.iter().filter(|(_, s)| s.len() == 5).collect();
        assert_eq!(cut.len(), 2, "⌊(7−1)/3⌋ = 2 nodes cut off: {g:?}");
    }

    #[test]
    fn majority_splits_floor_half_from_the_rest() {
        let g = Shape::Majority.grudge(5, &mut rng());
        let minority = g.iter().filter(|(_, s)| s.len() == 3).count();
        let majority = g.iter().filter(|(_, s)| s.len() == 2).count();
        assert_eq!((minority, majority), (2, 3));
    }

    #[test]
    fn majorities_ring_gives_everyone_a_distinct_majority() {
        for n in [3u32, 4, 5, 7, 9] {
            let g = Shape::MajoritiesRing.grudge(n, &mut rng());
            let m = n as usize / 2 + 1;
            let mut views = BTreeSet::new();
            for node in 0..n {
                let visible: BTreeSet<u32> = (0..n)
                    .filter(|x| !dropped_by(&g, node).contains(x))
                    .collect();
                assert_eq!(visible.len(), m, "n={n} node={node} {g:?}");
                assert!(visible.contains(&node));
                views.insert(visible);
            }
            assert_eq!(views.len(), n as usize, "n={n}");
        }
        // Exact ring for five: each node drops exactly the two nodes across the ring.
        let g = Shape::MajoritiesRing.grudge(5, &mut rng());
        assert!(g.iter().all(|(_, s)| s.len() == 2));
    }

    #[test]
    fn schedule_flip_flops_starting_at_once() {
        let mut s = Schedule::new(1.0, 0);
        let mut rng = rng();
        assert_eq!(s.poll(0, &mut rng), Some(NemesisStep::Start));
        let next = s.next_at();
        assert!(next <= 2_000_000_000);
        assert_eq!(
            s.poll(next.saturating_sub(1).min(next), &mut rng).is_some(),
            next == 0
        );
        let mut s = Schedule::new(1.0, 0);
        let steps: Vec<_> = (0..4)
            .map(|_| {
                let at = s.next_at();
                s.poll(at, &mut rng).unwrap()
            })
            .collect();
        use NemesisStep::*;
        assert_eq!(steps, vec![Start, Stop, Start, Stop]);
    }
}
