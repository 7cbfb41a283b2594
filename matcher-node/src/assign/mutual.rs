//! Assignments with no mutual pair (nobody gives to the one who gives to them).
//!
//! A random perfect matching has few 2-cycles; each is merged into another cycle by a
//! splice-like rewiring. That search may fail where a different matching would succeed,
//! so it restarts a few times and then gives up; exchanges small enough are settled
//! exactly by a backtracking search instead.

use rand::seq::SliceRandom;
use rand::Rng;

use super::graph::{Graph, OverlapIndex};

/// Up to this many participants, `exact` settles the question.
pub const EXACT_UP_TO: usize = 9;

/// Rewires every 2-cycle of `receiver_of` into a longer cycle; false when one cannot be.
pub(crate) fn break_pairs(graph: &Graph, receiver_of: &mut [u32], rng: &mut impl Rng) -> bool {
    let index = OverlapIndex::new(graph);
    for a in 0..receiver_of.len() as u32 {
        let b = receiver_of[a as usize];
        if receiver_of[b as usize] == a && !merge(graph, &index, receiver_of, (a, b), rng) {
            return false;
        }
    }
    true
}

/// Merges the pair a⇄b into the cycle of some edge c→d: c→a→b→d or c→b→a→d. Neither new
/// edge can close a pair (a and b now give outside the pair, and d's giver is new). The
/// candidates c are the ones whose budget overlaps a's (or b's), from a random place:
/// only those may give to a (or b).
fn merge(
    graph: &Graph,
    index: &OverlapIndex,
    receiver_of: &mut [u32],
    (a, b): (u32, u32),
    rng: &mut impl Rng,
) -> bool {
    for (x, y) in [(a, b), (b, a)] {
        let budget = graph.budgets[x as usize];
        let start = rng.gen_range(0..index.end(budget).max(1));
        let fits =
            |c: u32| c != a && c != b && graph.edge(c, x) && graph.edge(y, receiver_of[c as usize]);
        if let Some(pos) = index.find_from(start, budget, fits) {
            let c = index.receiver(pos);
            let d = receiver_of[c as usize];
            receiver_of[c as usize] = x;
            receiver_of[x as usize] = y;
            receiver_of[y as usize] = d;
            return true;
        }
    }
    false
}

/// A random assignment with no self-gift and no mutual pair, by backtracking over givers
/// in order with receivers tried in random order; None when there is none at all.
pub(crate) fn exact(graph: &Graph, rng: &mut impl Rng) -> Option<Vec<u32>> {
    let n = graph.len();
    let mut receiver_of = vec![u32::MAX; n];
    let mut taken = vec![false; n];
    let orders: Vec<Vec<u32>> = (0..n)
        .map(|_| {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.shuffle(rng);
            order
        })
        .collect();
    extend(graph, &orders, &mut receiver_of, &mut taken, 0).then_some(receiver_of)
}

fn extend(
    graph: &Graph,
    orders: &[Vec<u32>],
    receiver_of: &mut [u32],
    taken: &mut [bool],
    g: usize,
) -> bool {
    if g == receiver_of.len() {
        return true;
    }
    for &r in &orders[g] {
        let ru = r as usize;
        if taken[ru] || !graph.edge(g as u32, r) || receiver_of[ru] == g as u32 {
            continue;
        }
        receiver_of[g] = r;
        taken[ru] = true;
        if extend(graph, orders, receiver_of, taken, g + 1) {
            return true;
        }
        taken[ru] = false;
        receiver_of[g] = u32::MAX;
    }
    false
}
