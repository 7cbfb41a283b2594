//! queue-node as real processes under the harness: valid under partitions on 5 nodes (so
//! requests also pass through nodes that do not replicate the task's partition), and the
//! three deliberately broken queues caught by the task-queue checker.

mod common;

use common::{binary, caught_by_one_of, run_faulted, CATCH_SEEDS};

fn task_queue(test: &str, nemesis: &str, seed: &str, node_args: &[&str]) -> common::Run {
    let shape = [
        "--node-count",
        "5",
        "--concurrency",
        "2n",
        "--time-limit",
        "8",
        "--rate",
        "300",
    ];
    let bin = binary("queue-node");
    run_faulted(test, "task-queue", &bin, &shape, nemesis, seed, node_args)
}

#[test]
fn no_task_is_lost_or_delivered_early_under_partitions() {
    let r = task_queue("queue-partition", "partition", "3", &[]);
    r.expect(0);
    assert!(r.file("history.txt").contains(":start-partition"));
    assert_eq!(r.count(":lost-count"), 0);
    assert_eq!(r.count(":early-deliveries-count"), 0);
    assert_eq!(r.count(":dlq-errors-count"), 0);
    for kind in [
        ":over-budget-count",
        ":repeated-attempts-count",
        ":attempt-regressions-count",
        ":last-nack-not-dead-count",
    ] {
        assert_eq!(r.count(kind), 0, "{kind}");
    }
    assert!(r.count(":completed") > 100, "{}", r.results());
    assert!(
        r.count(":redeliveries") > 0,
        "abandoned and nacked tasks come back"
    );
    assert!(
        r.count(":dead-lettered") > 0,
        "budgets of one attempt run out"
    );
    assert!(r.count(":stolen") > 0, "nodes without ready work steal");
}

/// A queue broken with `flaw` under `nemesis`, which some seed of [`CATCH_SEEDS`] must
/// catch: the run ends invalid and `caught` holds.
fn caught(test: &str, nemesis: &str, flaw: &str, caught: impl Fn(&common::Run) -> bool) {
    caught_by_one_of(
        &CATCH_SEEDS,
        |seed| {
            let name = format!("{test}-{seed}");
            task_queue(&name, nemesis, seed, &["--broken", flaw])
        },
        |r| r.status == 1 && caught(r),
    );
}

/// Whether results.edn counts some `key`.
fn some(r: &common::Run, key: &str) -> bool {
    r.counted(key).is_some_and(|n| n > 0)
}

#[test]
fn acknowledging_enqueues_before_replication_loses_tasks_in_partitions() {
    caught(
        "queue-early-ack",
        "partition",
        "ack-before-replication",
        |r| some(r, ":lost-count"),
    );
}

#[test]
fn leases_forgotten_by_a_new_leader_leave_tasks_unfinished_forever() {
    caught("queue-forget-leases", "kill", "forget-leases", |r| {
        some(r, ":lost-count")
    });
}

#[test]
fn a_nack_that_gives_the_attempt_back_is_caught_by_counting_deliveries() {
    caught("queue-nack-refund", "partition", "nack-refund", |r| {
        some(r, ":repeated-attempts-count") && some(r, ":last-nack-not-dead-count")
    });
}
