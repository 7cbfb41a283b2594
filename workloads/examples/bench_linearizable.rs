//! Times the lin-kv linearizability checker on generated valid histories.
//!
//! Each history comes from [`simulate`]: a register on which every op takes effect at a
//! random instant between its invocation and completion, so the history is linearizable
//! and the checker has to find an order for every key. Run with `--release`.
//!
//! Usage: `bench_linearizable [ops…]` (default 10000 50000 100000).

use std::time::Instant;
use workloads::engine::progress::thousands;

use workloads::checker::linearizable;
use workloads::checker::simulated_register::simulate;
use workloads::edn::Edn;

const CONCURRENCY: usize = 20;
const KEYS: i64 = 50;
const INFO: f64 = 0.05;

fn main() {
    let sizes: Vec<usize> = {
        let args: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if args.is_empty() {
            vec![10_000, 50_000, 100_000]
        } else {
            args
        }
    };
    for ops in sizes {
        let history = simulate(ops as u64, ops, KEYS, CONCURRENCY, INFO);
        let start = Instant::now();
        let result = linearizable::check(&history);
        let secs = start.elapsed().as_secs_f64();
        let checked = result.get("ops-checked").and_then(Edn::as_i64).unwrap_or(0);
        let keys = result
            .get("keys-checked")
            .and_then(Edn::as_i64)
            .unwrap_or(0);
        let valid = result
            .get("valid?")
            .map(Edn::to_compact)
            .unwrap_or_default();
        println!(
            "linearizability check: {ops} ops, {keys} keys: {secs:.2} s ({} ops/s) \
             [{} checked, valid? {valid}]",
            thousands((ops as f64 / secs.max(1e-9)) as u64),
            thousands(checked as u64),
        );
    }
}
