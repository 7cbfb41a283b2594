//! giftid-node as a real process under the harness: Maelstrom's unique-ids workload with
//! total availability through partitions, the gift-ids workload under every fault, and a
//! generator that trusts the wall clock caught by the clock nemesis.

mod common;

use common::{binary, run, test_args};

fn gift_ids(test: &str, nemesis: &[&str], node_args: &[&str]) -> common::Run {
    let bin = binary("giftid-node");
    let mut rest = vec![
        "--node-count",
        "3",
        "--time-limit",
        "6",
        "--rate",
        "150",
        "--nemesis-interval",
        "1",
        "--seed",
        "11",
    ];
    rest.extend_from_slice(nemesis);
    if !node_args.is_empty() {
        rest.push("--");
        rest.extend_from_slice(node_args);
    }
    run(test, &test_args("gift-ids", &bin, &rest))
}

#[test]
fn maelstroms_unique_ids_is_totally_available_through_partitions() {
    let bin = binary("giftid-node");
    let args = [
        "--node-count",
        "3",
        "--time-limit",
        "5",
        "--rate",
        "100",
        "--nemesis",
        "partition",
        "--nemesis-interval",
        "1",
        "--availability",
        "total",
    ];
    let r = run("giftid-unique-ids", &test_args("unique-ids", &bin, &args));
    r.expect(0);
    assert!(r.file("history.txt").contains(":start-partition"));
    assert_eq!(r.count(":duplicated-count"), 0);
}

#[test]
fn gift_ids_stay_unique_and_ordered_under_every_fault() {
    let r = gift_ids(
        "gift-ids-chaos",
        &[
            "--nemesis",
            "all",
            "--partition-shapes",
            "one,majority,bridge",
        ],
        &[],
    );
    r.expect(0);
    let results = r.results();
    assert!(results.contains(":timestamps-checked? true"), "{results}");
    assert!(r.count(":id-count") > 500, "{results}");
    assert!(r.count(":decode-count") > 0, "{results}");
    let history = r.file("history.txt");
    assert!(
        history.contains(":nemesis\t:info\t:start-"),
        "no fault was injected"
    );
}

#[test]
fn a_generator_that_trusts_the_wall_clock_is_caught_by_the_clock_nemesis() {
    let good = gift_ids("gift-ids-clock", &["--nemesis", "clock"], &[]);
    good.expect(0);
    let broken = gift_ids(
        "gift-ids-regress",
        &["--nemesis", "clock"],
        &["--broken", "ignore-clock-regressions"],
    );
    broken.expect(1);
    assert!(
        broken.count(":order-violation-count") > 0,
        "{}",
        broken.results()
    );
}
