//! Broadcast topologies: for each node, the neighbours it is told about in the `topology`
//! message. Shapes and neighbour order follow Maelstrom (grid: down, up, right, left).

/// The broadcast topology sent to the nodes at setup (`--topology`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Grid,
    Line,
    Tree2,
    Tree3,
    Tree4,
    Total,
}

impl Topology {
    pub const ALL: [Topology; 6] = [
        Topology::Grid,
        Topology::Line,
        Topology::Tree2,
        Topology::Tree3,
        Topology::Tree4,
        Topology::Total,
    ];

    /// The option's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Topology::Grid => "grid",
            Topology::Line => "line",
            Topology::Tree2 => "tree2",
            Topology::Tree3 => "tree3",
            Topology::Tree4 => "tree4",
            Topology::Total => "total",
        }
    }

    /// A topology by its word; `tree` is `tree2`.
    pub fn parse(word: &str) -> Option<Topology> {
        match word {
            "tree" => Some(Topology::Tree2),
            _ => Self::ALL.into_iter().find(|t| t.name() == word),
        }
    }
}

/// Neighbour lists, indexed like the node list.
pub fn neighbours(shape: Topology, n: usize) -> Vec<Vec<usize>> {
    match shape {
        Topology::Grid => grid(n),
        Topology::Line => (0..n)
            .map(|i| {
                let mut v = Vec::new();
                if i > 0 {
                    v.push(i - 1);
                }
                if i + 1 < n {
                    v.push(i + 1);
                }
                v
            })
            .collect(),
        Topology::Tree2 => tree(n, 2),
        Topology::Tree3 => tree(n, 3),
        Topology::Tree4 => tree(n, 4),
        Topology::Total => (0..n)
            .map(|i| (0..n).filter(|&j| j != i).collect())
            .collect(),
    }
}

/// A ceil(√n)-wide grid filled row by row.
fn grid(n: usize) -> Vec<Vec<usize>> {
    let side = (n as f64).sqrt().ceil() as i64;
    let at = |i: i64, j: i64| -> Option<usize> {
        if i < 0 || j < 0 || j >= side {
            return None;
        }
        let idx = (i * side + j) as usize;
        (idx < n).then_some(idx)
    };
    (0..n)
        .map(|idx| {
            let (i, j) = (idx as i64 / side, idx as i64 % side);
            [at(i + 1, j), at(i - 1, j), at(i, j + 1), at(i, j - 1)]
                .into_iter()
                .flatten()
                .collect()
        })
        .collect()
}

/// A complete `k`-ary tree in node order: parent first, then children.
fn tree(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|i| {
            let mut v = Vec::new();
            if i > 0 {
                v.push((i - 1) / k);
            }
            v.extend((1..=k).map(|c| i * k + c).filter(|&c| c < n));
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symmetric(t: &[Vec<usize>]) -> bool {
        t.iter()
            .enumerate()
            .all(|(i, ns)| ns.iter().all(|&j| t[j].contains(&i)))
    }

    #[test]
    fn grid_of_five_is_three_wide() {
        let t = grid(5);
        assert_eq!(t[0], vec![3, 1]);
        assert_eq!(t[1], vec![4, 2, 0]);
        assert_eq!(t[4], vec![1, 5 - 2]);
        assert!(symmetric(&t));
        assert!(t.iter().all(|ns| ns.len() <= 4));
    }

    #[test]
    fn every_shape_is_symmetric_and_connected() {
        for shape in Topology::ALL {
            for n in 1..30 {
                let t = neighbours(shape, n);
                assert!(symmetric(&t), "{shape:?} {n}");
                let mut seen = vec![false; n];
                let mut stack = vec![0];
                while let Some(i) = stack.pop() {
                    if !std::mem::replace(&mut seen[i], true) {
                        stack.extend(&t[i]);
                    }
                }
                assert!(seen.iter().all(|&s| s), "{shape:?} {n} disconnected");
            }
        }
    }

    #[test]
    fn tree_has_parent_and_children() {
        let t = tree(7, 2);
        assert_eq!(t[0], vec![1, 2]);
        assert_eq!(t[1], vec![0, 3, 4]);
        assert_eq!(t[6], vec![2]);
    }
}
