//! The giver→receiver compatibility graph, kept implicit: budget bands make it dense, so
//! it is the participants' budgets plus their (few) exclusions as indices, never n² edges.

use rustc_hash::FxHashMap;

use crate::constraints::{Budget, Participant};

/// Compatibility by index; the same rule as `constraints::compatible`.
#[derive(Debug)]
pub(crate) struct Graph {
    pub budgets: Vec<Budget>,
    /// Participant i may not be paired with `excluded[offsets[i]..offsets[i + 1]]`
    /// (sorted; both directions merged). One flat array: built by a sort, not by
    /// scattered pushes into a vector per participant.
    offsets: Vec<usize>,
    excluded: Vec<u32>,
}

impl Graph {
    /// Builds the graph, or names an id given twice.
    pub fn new(participants: &[Participant]) -> Result<Graph, String> {
        let mut index: FxHashMap<&str, u32> = FxHashMap::default();
        index.reserve(participants.len());
        for (i, p) in participants.iter().enumerate() {
            if index.insert(p.id.as_str(), i as u32).is_some() {
                return Err(p.id.clone());
            }
        }
        // (owner << 32 | excluded) for both directions of every exclusion.
        let mut pairs: Vec<u64> = Vec::new();
        for (i, p) in participants.iter().enumerate() {
            for &j in p.exclusions.iter().filter_map(|e| index.get(e.as_str())) {
                pairs.push((i as u64) << 32 | u64::from(j));
                pairs.push(u64::from(j) << 32 | i as u64);
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        let mut offsets = vec![0; participants.len() + 1];
        for pair in &pairs {
            offsets[(pair >> 32) as usize + 1] += 1;
        }
        for i in 0..participants.len() {
            offsets[i + 1] += offsets[i];
        }
        let excluded = pairs.iter().map(|&pair| pair as u32).collect();
        let budgets = participants.iter().map(|p| p.budget).collect();
        Ok(Graph {
            budgets,
            offsets,
            excluded,
        })
    }

    pub fn len(&self) -> usize {
        self.budgets.len()
    }

    /// Whether `g` may give to `r`, apart from their budgets.
    pub fn allowed(&self, g: u32, r: u32) -> bool {
        let (from, to) = (self.offsets[g as usize], self.offsets[g as usize + 1]);
        g != r && self.excluded[from..to].binary_search(&r).is_err()
    }

    pub fn edge(&self, g: u32, r: u32) -> bool {
        self.allowed(g, r) && self.budgets[g as usize].overlaps(&self.budgets[r as usize])
    }
}

/// The receivers not yet visited by a search, queried by budget overlap: receivers sorted
/// by budget min, and a max-tree of budget max over the ones still alive. A query returns
/// every alive receiver whose range overlaps the giver's in O((k + 1) log n) for k results.
#[derive(Debug)]
pub(crate) struct OverlapIndex {
    mins: Vec<u64>,
    order: Vec<u32>,
    /// budget max + 1 of alive receivers (0 = visited), leaves from `size`.
    tree: Vec<u128>,
    size: usize,
}

impl OverlapIndex {
    pub fn new(graph: &Graph) -> OverlapIndex {
        OverlapIndex::over(graph, (0..graph.len() as u32).collect())
    }

    /// An index of some receivers only, all alive.
    pub fn over(graph: &Graph, mut order: Vec<u32>) -> OverlapIndex {
        order.sort_unstable_by_key(|&r| graph.budgets[r as usize].min);
        let mins = order
            .iter()
            .map(|&r| graph.budgets[r as usize].min)
            .collect();
        let size = order.len().next_power_of_two().max(1);
        let mut index = OverlapIndex {
            mins,
            order,
            tree: vec![0; 2 * size],
            size,
        };
        index.reset(graph);
        index
    }

    /// Makes every receiver alive again.
    pub fn reset(&mut self, graph: &Graph) {
        self.tree.iter_mut().for_each(|v| *v = 0);
        for (pos, &r) in self.order.iter().enumerate() {
            self.tree[self.size + pos] = u128::from(graph.budgets[r as usize].max) + 1;
        }
        for node in (1..self.size).rev() {
            self.tree[node] = self.tree[2 * node].max(self.tree[2 * node + 1]);
        }
    }

    /// Alive receivers whose budget overlaps `budget`, as positions (see `receiver`).
    pub fn overlapping(&self, budget: Budget, out: &mut Vec<usize>) {
        out.clear();
        let end = self.end(budget);
        let threshold = u128::from(budget.min) + 1;
        let mut stack = vec![(1usize, 0usize, self.size)];
        while let Some((node, lo, hi)) = stack.pop() {
            if lo >= end || self.tree[node] < threshold {
                continue;
            }
            if hi - lo == 1 {
                out.push(lo);
            } else {
                let mid = (lo + hi) / 2;
                stack.push((2 * node + 1, mid, hi));
                stack.push((2 * node, lo, mid));
            }
        }
    }

    /// The first alive receiver at or after `start` whose budget overlaps `budget`.
    pub fn next_from(&self, start: usize, budget: Budget) -> Option<usize> {
        let end = self.end(budget);
        let threshold = u128::from(budget.min) + 1;
        let mut stack = vec![(1usize, 0usize, self.size)];
        while let Some((node, lo, hi)) = stack.pop() {
            if lo >= end || hi <= start || self.tree[node] < threshold {
                continue;
            }
            if hi - lo == 1 {
                return Some(lo);
            }
            let mid = (lo + hi) / 2;
            stack.push((2 * node + 1, mid, hi));
            stack.push((2 * node, lo, mid));
        }
        None
    }

    /// How many positions a search for `budget` covers: a random start below this.
    pub fn end(&self, budget: Budget) -> usize {
        self.mins.partition_point(|&m| m <= budget.max)
    }

    /// The first alive receiver overlapping `budget` that `take` accepts, searching from
    /// `start` and wrapping around once.
    pub fn find_from(
        &self,
        start: usize,
        budget: Budget,
        mut take: impl FnMut(u32) -> bool,
    ) -> Option<usize> {
        let (mut pos, mut wrapped) = (self.next_from(start, budget), false);
        loop {
            match pos {
                Some(p) if wrapped && p >= start => return None,
                Some(p) if take(self.order[p]) => return Some(p),
                Some(p) => pos = self.next_from(p + 1, budget),
                None if !wrapped && start > 0 => {
                    wrapped = true;
                    pos = self.next_from(0, budget);
                }
                None => return None,
            }
        }
    }

    pub fn receiver(&self, pos: usize) -> u32 {
        self.order[pos]
    }

    /// Marks the receiver at `pos` visited.
    pub fn kill(&mut self, pos: usize) {
        let mut node = self.size + pos;
        self.tree[node] = 0;
        while node > 1 {
            node /= 2;
            self.tree[node] = self.tree[2 * node].max(self.tree[2 * node + 1]);
        }
    }
}
