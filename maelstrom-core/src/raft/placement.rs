//! Where a numbered Raft group's replicas live: `copies` consecutive nodes starting at the
//! group's number, wrapping around, so that groups spread evenly and every node computes
//! the same members from the cluster's node list alone.

/// The members of group `number`: `copies` nodes (all of them, when fewer), in a fixed
/// order every node computes alike.
pub fn replicas(node_ids: &[String], number: u32, copies: usize) -> Vec<String> {
    let n = node_ids.len();
    (0..copies.min(n))
        .map(|i| node_ids[(number as usize + i) % n].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_wrap_around_and_never_repeat_a_node() {
        let nodes: Vec<String> = (0..5).map(|i| format!("n{i}")).collect();
        assert_eq!(replicas(&nodes, 4, 3), ["n4", "n0", "n1"]);
        assert_eq!(replicas(&nodes[..2], 1, 3), ["n1", "n0"]);
        assert!(replicas(&[], 0, 3).is_empty());
    }
}
