//! Partition shapes, as pure functions of a seeded RNG.
//!
//! A grudge maps each receiving node to the set of nodes it drops messages from; nodes are
//! indices into the node list. By default shapes are drawn uniformly from Maelstrom's four,
//! `one`, `minority-third`, `majority` (random halves) and `majorities-ring` (Maelstrom has no
//! `primaries`); `bridge` (Jepsen's: two halves joined by one node that sees both) can be
//! added with `--partition-shapes`.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// Receiver → senders it drops, in receiver order.
pub type Grudge = Vec<(u32, BTreeSet<u32>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shape {
    One,
    MinorityThird,
    Majority,
    MajoritiesRing,
    Bridge,
}

impl Shape {
    /// Maelstrom's shapes: the default pool.
    pub const MAELSTROM: [Shape; 4] = [
        Shape::One,
        Shape::MinorityThird,
        Shape::Majority,
        Shape::MajoritiesRing,
    ];

    pub const ALL: [Shape; 5] = [
        Shape::One,
        Shape::MinorityThird,
        Shape::Majority,
        Shape::MajoritiesRing,
        Shape::Bridge,
    ];

    /// Parses a keyword; `halves` is another name for `majority`.
    pub fn parse(name: &str) -> Option<Shape> {
        if name == "halves" {
            return Some(Shape::Majority);
        }
        Shape::ALL.into_iter().find(|s| s.keyword() == name)
    }

    /// Maelstrom's keyword for the shape, without the colon.
    pub fn keyword(self) -> &'static str {
        match self {
            Shape::One => "one",
            Shape::MinorityThird => "minority-third",
            Shape::Majority => "majority",
            Shape::MajoritiesRing => "majorities-ring",
            Shape::Bridge => "bridge",
        }
    }

    /// One shape of `pool`, uniformly.
    pub fn random(pool: &[Shape], rng: &mut StdRng) -> Shape {
        pool[rng.gen_range(0..pool.len())]
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
            Shape::Bridge if n < 3 => Vec::new(),
            Shape::Bridge => {
                let k = (n as usize - 1) / 2;
                let (left, rest) = nodes.split_at(k);
                let right = &rest[1..];
                let mut grudge = complete(&[left, right]);
                // `complete` saw only the two halves; the bridge node keeps both.
                grudge.retain(|(node, _)| *node != rest[0]);
                grudge
            }
        }
    }
}

/// `node` cut off from the other nodes of `0..n`, both ways: the `one` shape, aimed.
pub fn isolate(node: u32, n: u32) -> Grudge {
    let rest: Vec<u32> = (0..n).filter(|&x| x != node).collect();
    complete(&[&[node], &rest])
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
    fn bridge_keeps_one_node_connected_to_both_halves() {
        assert!(Shape::Bridge.grudge(2, &mut rng()).is_empty());
        for n in [3u32, 5, 6] {
            let g = Shape::Bridge.grudge(n, &mut rng());
            let bridge: Vec<u32> = (0..n).filter(|x| dropped_by(&g, *x).is_empty()).collect();
            assert_eq!(bridge.len(), 1, "n={n} {g:?}");
            for (node, srcs) in &g {
                assert!(!srcs.contains(&bridge[0]), "nobody drops the bridge");
                assert!(!srcs.is_empty() && !srcs.contains(node));
            }
        }
        assert_eq!(Shape::parse("halves"), Some(Shape::Majority));
        assert_eq!(Shape::parse("bridge"), Some(Shape::Bridge));
        assert_eq!(Shape::parse("ring"), None);
    }
}
