//! A random perfect matching of givers to receivers, or proof that none exists.
//!
//! A randomised greedy pass over budget classes places almost everyone cheaply; then
//! Hopcroft–Karp phases over the implicit graph place the rest. When a phase finds no
//! augmenting path at all, the matching is maximum (Berge), so a giver left over means no
//! valid assignment exists, and the givers its alternating paths reach are the proof.

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::Rng;

use super::graph::{Graph, OverlapIndex};
use crate::constraints::Budget;

const NONE: u32 = u32::MAX;
/// Above this many distinct budgets the greedy pass searches the overlap index instead.
const MAX_CLASSES: usize = 64;
const CLASS_PROBES: usize = 8;

/// Givers and receivers matched so far.
#[derive(Debug)]
pub(crate) struct Matching {
    pub receiver_of: Vec<u32>,
    pub giver_of: Vec<u32>,
}

/// Proof that no perfect matching exists: the givers reachable by alternating paths from
/// one unplaced giver, and every receiver they could take, which are fewer than they are
/// (Hall's condition fails).
#[derive(Debug)]
pub(crate) struct Crowd {
    pub givers: Vec<u32>,
    pub receivers: Vec<u32>,
}

/// A perfect matching drawn at random, or the crowd that shows there is none.
pub(crate) fn perfect(graph: &Graph, rng: &mut impl Rng) -> Result<Matching, Crowd> {
    let mut m = greedy(graph, rng);
    let mut index = OverlapIndex::new(graph);
    loop {
        let free: Vec<u32> = (0..graph.len() as u32)
            .filter(|&g| m.receiver_of[g as usize] == NONE)
            .collect();
        let Some(&first) = free.first() else {
            return Ok(m);
        };
        if augment(graph, &mut m, &mut index, &free) == 0 {
            return Err(crowd(graph, &m, &mut index, first));
        }
    }
}

fn greedy(graph: &Graph, rng: &mut impl Rng) -> Matching {
    let n = graph.len();
    let mut m = Matching {
        receiver_of: vec![NONE; n],
        giver_of: vec![NONE; n],
    };
    let mut givers: Vec<u32> = (0..n as u32).collect();
    givers.shuffle(rng);
    let mut classes: HashMap<Budget, usize> = HashMap::new();
    let class_of: Vec<usize> = graph
        .budgets
        .iter()
        .map(|b| {
            let next = classes.len();
            *classes.entry(*b).or_insert(next)
        })
        .collect();
    if classes.len() > MAX_CLASSES {
        greedy_index(graph, &mut m, &givers, rng);
    } else {
        let mut budgets = vec![Budget::ANY; classes.len()];
        classes.iter().for_each(|(b, &c)| budgets[c] = *b);
        greedy_classes(graph, &mut m, &givers, &class_of, &budgets, rng);
    }
    m
}

fn place(m: &mut Matching, g: u32, r: u32) {
    m.receiver_of[g as usize] = r;
    m.giver_of[r as usize] = g;
}

/// Each giver draws receivers uniformly from the unplaced ones of overlapping budgets.
fn greedy_classes(
    graph: &Graph,
    m: &mut Matching,
    givers: &[u32],
    class_of: &[usize],
    budgets: &[Budget],
    rng: &mut impl Rng,
) {
    let mut pools: Vec<Vec<u32>> = vec![Vec::new(); budgets.len()];
    for (r, &c) in class_of.iter().enumerate() {
        pools[c].push(r as u32);
    }
    let near: Vec<Vec<usize>> = budgets
        .iter()
        .map(|b| {
            (0..budgets.len())
                .filter(|&c| b.overlaps(&budgets[c]))
                .collect()
        })
        .collect();
    for &g in givers {
        let classes = &near[class_of[g as usize]];
        for _ in 0..CLASS_PROBES {
            let total: usize = classes.iter().map(|&c| pools[c].len()).sum();
            if total == 0 {
                break;
            }
            let mut pick = rng.gen_range(0..total);
            let mut class = classes[0];
            for &c in classes {
                class = c;
                if pick < pools[c].len() {
                    break;
                }
                pick -= pools[c].len();
            }
            let r = pools[class][pick];
            if graph.allowed(g, r) {
                pools[class].swap_remove(pick);
                place(m, g, r);
                break;
            }
        }
    }
}

/// For budgets too varied to group: each giver takes the first unplaced receiver it may
/// give to, searching the overlap index from a random place.
fn greedy_index(graph: &Graph, m: &mut Matching, givers: &[u32], rng: &mut impl Rng) {
    let mut index = OverlapIndex::new(graph);
    for &g in givers {
        let budget = graph.budgets[g as usize];
        let end = index.end(budget);
        if end == 0 {
            continue;
        }
        let start = rng.gen_range(0..end);
        if let Some(pos) = index.find_from(start, budget, |r| graph.allowed(g, r)) {
            place(m, g, index.receiver(pos));
            index.kill(pos);
        }
    }
}

/// One Hopcroft–Karp phase: layers by breadth-first search from every free giver until
/// a layer holds a free receiver, then vertex-disjoint shortest augmenting paths by
/// depth-first search along the layers. Returns how many paths it augmented.
fn augment(graph: &Graph, m: &mut Matching, index: &mut OverlapIndex, free: &[u32]) -> usize {
    let Some(mut layers) = layer(graph, m, index, free) else {
        return 0;
    };
    let mut augmented = 0;
    for &root in free {
        if let Some(path) = deepen(graph, m, &mut layers, root) {
            for (g, r) in path {
                place(m, g, r);
            }
            augmented += 1;
        }
    }
    augmented
}

/// Receivers by layer: layer k holds those first reached from givers k steps from a free
/// giver; the last holds only free receivers. None when no free receiver is reachable.
fn layer(
    graph: &Graph,
    m: &Matching,
    index: &mut OverlapIndex,
    free: &[u32],
) -> Option<Vec<OverlapIndex>> {
    index.reset(graph);
    let (mut layers, mut frontier, mut found) = (Vec::new(), free.to_vec(), Vec::new());
    loop {
        let (mut taken, mut open) = (Vec::new(), Vec::new());
        for &g in &frontier {
            index.overlapping(graph.budgets[g as usize], &mut found);
            for &pos in &found {
                let r = index.receiver(pos);
                if graph.allowed(g, r) {
                    index.kill(pos);
                    let list = if m.giver_of[r as usize] == NONE {
                        &mut open
                    } else {
                        &mut taken
                    };
                    list.push(r);
                }
            }
        }
        if !open.is_empty() {
            layers.push(OverlapIndex::over(graph, open));
            return Some(layers);
        }
        if taken.is_empty() {
            return None;
        }
        frontier = taken.iter().map(|&r| m.giver_of[r as usize]).collect();
        layers.push(OverlapIndex::over(graph, taken));
    }
}

/// An augmenting path from `root` along the layers, as the (giver, receiver) pairs to
/// place; every receiver tried is used up for this phase, found or not (so paths stay
/// disjoint and the phase stays linear).
fn deepen(
    graph: &Graph,
    m: &Matching,
    layers: &mut [OverlapIndex],
    root: u32,
) -> Option<Vec<(u32, u32)>> {
    // (giver, where its search in its layer resumes)
    let mut stack: Vec<(u32, usize)> = vec![(root, 0)];
    let mut path: Vec<(u32, u32)> = Vec::new();
    while let Some(&(g, cursor)) = stack.last() {
        let depth = stack.len() - 1;
        let layer = &mut layers[depth];
        let budget = graph.budgets[g as usize];
        let mut next = layer.next_from(cursor, budget);
        while let Some(pos) = next.filter(|&pos| !graph.allowed(g, layer.receiver(pos))) {
            next = layer.next_from(pos + 1, budget);
        }
        let Some(pos) = next else {
            stack.pop();
            path.pop();
            continue;
        };
        stack[depth].1 = pos + 1;
        layer.kill(pos);
        let r = layer.receiver(pos);
        path.push((g, r));
        if depth + 1 == layers.len() {
            return Some(path);
        }
        stack.push((m.giver_of[r as usize], 0));
    }
    None
}

/// Everything reachable by alternating paths from the unplaceable giver `root`: every
/// receiver those givers could take is already taken by one of them.
fn crowd(graph: &Graph, m: &Matching, index: &mut OverlapIndex, root: u32) -> Crowd {
    index.reset(graph);
    let mut c = Crowd {
        givers: vec![root],
        receivers: Vec::new(),
    };
    let (mut next, mut found) = (0, Vec::new());
    while next < c.givers.len() {
        let g = c.givers[next];
        next += 1;
        index.overlapping(graph.budgets[g as usize], &mut found);
        for &pos in &found {
            let r = index.receiver(pos);
            if graph.allowed(g, r) {
                index.kill(pos);
                c.receivers.push(r);
                // Every reached receiver is taken: a free one would have been augmented.
                let holder = m.giver_of[r as usize];
                if holder != NONE {
                    c.givers.push(holder);
                }
            }
        }
    }
    c
}
