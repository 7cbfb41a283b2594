//! `g-counter`: pn-counter's generator with negative adds filtered out. As in Jepsen, the
//! filter re-asks the mix after a rejected add, so adds (deltas 0…4) come about once per two
//! reads. Checked like pn-counter.

use rand::rngs::StdRng;
use serde_json::{Map, Value};

use super::pn_counter::CounterClient;
use super::{Ask, ClientRules, GenOp, Next, Request, RunFacts, Workload};
use crate::edn::Edn;
use crate::history::History;

#[derive(Debug, Default)]
pub struct GCounter {
    client: CounterClient,
}

impl GCounter {
    pub fn new() -> Self {
        Self::default()
    }
}

impl GCounter {
    /// The main phase's mix of operations.
    fn mix(&mut self, rng: &mut StdRng) -> GenOp {
        loop {
            let op = CounterClient::raw_op(rng);
            if !matches!(op.value, Edn::Int(d) if d < 0) {
                return op;
            }
        }
    }
}

impl Workload for GCounter {
    fn name(&self) -> &'static str {
        "g-counter"
    }

    fn client(&self) -> ClientRules {
        ClientRules::without_errors()
    }

    fn next(&mut self, ask: Ask, rng: &mut StdRng) -> Next {
        ask.mix_then_final_read(|| self.mix(rng))
    }

    fn has_final_phase(&self) -> bool {
        true
    }

    fn request(&self, op: &GenOp) -> Request<'_> {
        self.client.request(op)
    }

    fn ok_value(&self, op: &GenOp, reply: &Map<String, Value>) -> Edn {
        self.client.ok_value(op, reply)
    }

    fn check(&self, history: &History, _facts: &RunFacts) -> Edn {
        crate::checker::counter::check(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn about_one_add_per_two_reads_with_non_negative_deltas() {
        let mut w = GCounter::new();
        let mut rng = StdRng::seed_from_u64(1);
        let ops: Vec<GenOp> = (0..30_000).map(|_| w.mix(&mut rng)).collect();
        let adds: Vec<i64> = ops
            .iter()
            .filter_map(|o| match o.value {
                Edn::Int(d) if o.f == "add" => Some(d),
                _ => None,
            })
            .collect();
        assert!(adds.iter().all(|d| (0..=4).contains(d)));
        let ratio = adds.len() as f64 / (ops.len() - adds.len()) as f64;
        assert!((0.45..0.55).contains(&ratio), "{ratio}");
    }
}
