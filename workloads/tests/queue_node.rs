//! queue-node as real processes under the harness: valid under partitions on 5 nodes (so
//! requests also pass through nodes that do not replicate the task's partition), and the
//! three deliberately broken queues caught by the task-queue checker.

mod common;

use common::{binary, run_faulted};

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

#[test]
fn acknowledging_enqueues_before_replication_loses_tasks_in_partitions() {
    let r = task_queue(
        "queue-early-ack",
        "partition",
        "3",
        &["--broken", "ack-before-replication"],
    );
    r.expect(1);
    assert!(r.count(":lost-count") > 0, "{}", r.results());
}

#[test]
fn leases_forgotten_by_a_new_leader_leave_tasks_unfinished_forever() {
    let r = task_queue(
        "queue-forget-leases",
        "kill",
        "3",
        &["--broken", "forget-leases"],
    );
    r.expect(1);
    assert!(r.count(":lost-count") > 0, "{}", r.results());
}

#[test]
fn a_nack_that_gives_the_attempt_back_is_caught_by_counting_deliveries() {
    let r = task_queue(
        "queue-nack-refund",
        "partition",
        "3",
        &["--broken", "nack-refund"],
    );
    r.expect(1);
    assert!(r.count(":repeated-attempts-count") > 0, "{}", r.results());
    assert!(r.count(":last-nack-not-dead-count") > 0, "{}", r.results());
}
