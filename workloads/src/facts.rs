//! What the harness knew of a run besides its history: the shape of the cluster and the
//! clocks. Below both the checkers that judge with it and the workloads that hand it on.

/// What the harness knew of a run besides its history, for checkers that judge answers
/// against the node that gave them or its clock.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    pub nodes: Vec<String>,
    /// Client workers; worker `w` talks to node `w % nodes`, and its process numbers are
    /// `w` plus multiples of `workers`.
    pub workers: usize,
    /// Unix milliseconds at history time zero; unknown when re-analysing a stored run.
    pub wall_origin_ms: Option<f64>,
    /// Per node, (history nanoseconds, offset in ms) at every change of its clock; empty
    /// when clocks were not touched.
    pub clock_offsets: Vec<Vec<(u64, f64)>>,
}

impl RunFacts {
    /// The index of the node a worker process talks to, when the run's shape is known.
    pub fn node_of(&self, process: u64) -> Option<usize> {
        (self.workers > 0 && !self.nodes.is_empty())
            .then(|| (process as usize % self.workers) % self.nodes.len())
    }
}
