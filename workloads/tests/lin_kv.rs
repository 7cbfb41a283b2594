//! maelstrom-core's Raft-backed lin-kv example as real processes under the harness: valid
//! through partitions and kills, and a node that reads from local state caught by the
//! linearizability checker once a partition splits it.

mod common;

use common::{example, run_faulted};

fn lin_kv(test: &str, nemesis: &str, seed: &str, node_args: &[&str]) -> common::Run {
    let shape = [
        "--node-count",
        "5",
        "--concurrency",
        "2n",
        "--time-limit",
        "10",
        "--rate",
        "100",
    ];
    let bin = example("lin-kv");
    run_faulted(test, "lin-kv", &bin, &shape, nemesis, seed, node_args)
}

#[test]
fn raft_lin_kv_stays_linearizable_through_partitions_and_kills() {
    let r = lin_kv("lin-kv-faults", "partition,kill", "3", &[]);
    r.expect(0);
    assert!(r.count(":ops-checked") > 50, "{}", r.results());
    let history = r.file("history.txt");
    assert!(history.contains(":start-partition") && history.contains(":start-kill"));
}

#[test]
fn reading_local_state_is_caught_under_partitions() {
    let r = lin_kv("lin-kv-stale", "partition", "1", &["--flaw", "stale-reads"]);
    r.expect(1);
    let results = r.results();
    assert!(results.contains(":failed-key"), "{results}");
}
