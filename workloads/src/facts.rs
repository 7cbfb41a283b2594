//! What the harness knew of a run besides its history: the shape of the cluster and the
//! clocks. Below both the checkers that judge with it and the workloads that hand it on.

/// What the harness knew of a run besides its history, for checkers that judge answers
/// against the node that gave them or its clock.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// Every node, of every service.
    pub nodes: Vec<String>,
    /// Client workers; worker `w`'s process numbers are `w` plus multiples of `workers`.
    pub workers: usize,
    /// The node (an index into `nodes`) each worker talked to; when empty (a stored run
    /// that did not record it), worker `w` talked to node `w % nodes`.
    pub worker_nodes: Vec<usize>,
    /// The services and their node ids, in order; a run of one binary has one, `node`.
    /// Empty when re-analysing a stored run that did not record them.
    pub services: Vec<(String, Vec<String>)>,
    /// Unix milliseconds at history time zero; unknown when re-analysing a stored run.
    pub wall_origin_ms: Option<f64>,
    /// Per node, (history nanoseconds, offset in ms) at every change of its clock; empty
    /// when clocks were not touched.
    pub clock_offsets: Vec<Vec<(u64, f64)>>,
    /// The run's network figures, results.edn's `:net` section, for checkers that report
    /// per unit of their own (messages per gift); `None` when unknown.
    pub net: Option<crate::edn::Edn>,
}

impl RunFacts {
    /// The index of the node a worker process talks to, when the run's shape is known.
    pub fn node_of(&self, process: u64) -> Option<usize> {
        if self.workers == 0 || self.nodes.is_empty() {
            return None;
        }
        let worker = process as usize % self.workers;
        match self.worker_nodes.get(worker) {
            Some(&node) => Some(node),
            None => Some(worker % self.nodes.len()),
        }
    }

    /// The name of the service node `node` (an index into `nodes`) belongs to.
    pub fn service_of_node(&self, node: usize) -> Option<&str> {
        let name = self.nodes.get(node)?;
        self.services
            .iter()
            .find(|(_, nodes)| nodes.contains(name))
            .map(|(s, _)| s.as_str())
    }

    /// The node ids of service `name`.
    pub fn service(&self, name: &str) -> Option<&[String]> {
        self.services
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, nodes)| nodes.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_map_to_recorded_nodes_or_spread_over_all() {
        let nodes: Vec<String> = ["n0", "n1", "n2"].map(String::from).to_vec();
        let mut facts = RunFacts {
            nodes: nodes.clone(),
            workers: 4,
            ..RunFacts::default()
        };
        assert_eq!(facts.node_of(5), Some(1), "process 5 is worker 1");
        assert_eq!(facts.node_of(3), Some(0), "worker 3 wraps to n0");
        facts.worker_nodes = vec![2, 2, 0, 1];
        facts.services = vec![
            ("a".into(), vec!["n0".into()]),
            ("b".into(), vec!["n1".into(), "n2".into()]),
        ];
        assert_eq!(facts.node_of(5), Some(2));
        assert_eq!(facts.node_of(7), Some(1));
        assert_eq!(facts.service_of_node(2), Some("b"));
        assert_eq!(facts.service_of_node(0), Some("a"));
        assert_eq!(facts.service_of_node(9), None);
        assert_eq!(facts.service("b").map(<[String]>::len), Some(2));
        assert_eq!(RunFacts::default().node_of(0), None);
    }
}
