//! The named fault scenarios and the suites that run under them, defined once.
//!
//! A *fault* is a named set of nemesis options (`partition`, `kill`, …, `chaos` for all of
//! them). A *suite* is a workload with the node that runs it and the options it needs, plus
//! the verdict expected under each fault: most suites must stay valid, and some exist to
//! show a fault catching a node that is only correct without it. The Makefile's scenario
//! targets (`scenarios.mk`) and the CI matrix are generated from these tables by
//! `workloads scenarios`, and a test fails when the checked-in files drift from them.

use std::fmt::Write;

/// A named combination of faults.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub name: &'static str,
    pub about: &'static str,
    /// Harness options that inject it.
    pub options: &'static str,
}

pub const FAULTS: &[Fault] = &[
    Fault {
        name: "none",
        about: "no faults",
        options: "",
    },
    Fault {
        name: "partition",
        about: "network partitions in Maelstrom's shapes",
        options: "--nemesis partition --nemesis-interval 2",
    },
    Fault {
        name: "kill",
        about: "SIGKILL and restart of nodes in their own directories",
        options: "--nemesis kill --nemesis-interval 2",
    },
    Fault {
        name: "pause",
        about: "SIGSTOP and SIGCONT of nodes",
        options: "--nemesis pause --nemesis-interval 2",
    },
    Fault {
        name: "clock",
        about: "wall-clock jumps and drift (libfaketime)",
        options: "--nemesis clock --nemesis-interval 2",
    },
    Fault {
        name: "lossy",
        about: "dropped, duplicated and reordered messages",
        options: "--nemesis lossy --nemesis-interval 2 --lossy-rate 0.2",
    },
    Fault {
        name: "chaos",
        about: "every fault at once, every partition shape",
        options: "--nemesis all --partition-shapes one,minority-third,majority,majorities-ring,bridge --nemesis-interval 2",
    },
];

/// What a run must conclude: `Invalid` when the fault must catch the node (exit status 1).
pub use crate::store::Expect;

/// One fault a suite runs under: what it must conclude, and options for that run only.
#[derive(Debug, Clone, Copy)]
pub struct Under {
    pub fault: &'static str,
    pub expect: Expect,
    pub options: &'static str,
    /// The target's default `TIME`, when 10 s is too short to conclude (`TIME=` on the
    /// command line still wins).
    pub time: Option<u32>,
}

const fn under(fault: &'static str, expect: Expect) -> Under {
    Under {
        fault,
        expect,
        options: "",
        time: None,
    }
}

/// A workload run by one node binary, and what each fault must do to it.
#[derive(Debug, Clone, Copy)]
pub struct Suite {
    /// The targets' prefix: the workload's name, or a variant of it.
    pub name: &'static str,
    pub workload: &'static str,
    /// The node binary and its arguments, relative to the release examples directory; or,
    /// for a cluster of several binaries, its services as `NAME=BIN:COUNT` words (each
    /// becoming a `--service`, BIN relative to the same directory).
    pub node: &'static str,
    pub options: &'static str,
    pub faults: &'static [Under],
}

use Expect::{Invalid, Valid};

pub const SUITES: &[Suite] = &[
    Suite {
        name: "echo",
        workload: "echo",
        node: "echo",
        options: "--node-count 1 --rate 10",
        // Not `kill`: Maelstrom's echo checker wants every request answered, and a request
        // sent to a dead node is lost, as on a real network.
        faults: &[under("none", Valid), under("pause", Valid)],
    },
    Suite {
        name: "unique-ids",
        workload: "unique-ids",
        node: "unique_ids",
        options: "--node-count 3 --rate 100",
        faults: &[
            under("none", Valid),
            Under {
                fault: "partition",
                expect: Valid,
                options: "--availability total",
                time: None,
            },
            // Its counter lives in memory: a restarted node hands out its old ids again. The
            // nemesis's pacing kills nodes in use and lets them serve again afterwards.
            under("kill", Invalid),
        ],
    },
    Suite {
        name: "broadcast",
        workload: "broadcast",
        node: "broadcast",
        options: "--node-count 5 --rate 20 --latency 20",
        faults: &[
            under("none", Valid),
            under("partition", Valid),
            under("kill", Valid),
            under("pause", Valid),
            under("lossy", Valid),
            under("chaos", Valid),
        ],
    },
    Suite {
        // Forwards each message once and never retries: fine on a perfect network only.
        name: "broadcast-once",
        workload: "broadcast",
        node: "broadcast_node -- --once",
        options: "--node-count 5 --rate 20 --latency 20 --topology line",
        faults: &[under("none", Valid), under("lossy", Invalid)],
    },
    Suite {
        name: "g-counter",
        workload: "g-counter",
        node: "g_counter",
        options: "--node-count 3 --rate 20",
        faults: &[
            under("none", Valid),
            under("partition", Valid),
            under("clock", Valid),
            under("lossy", Valid),
        ],
    },
    Suite {
        // Maelstrom's own unique-ids workload against the gift ID node.
        name: "giftid-unique-ids",
        workload: "unique-ids",
        node: "../giftid-node",
        options: "--node-count 3 --rate 200",
        faults: &[
            Under {
                fault: "partition",
                expect: Valid,
                options: "--availability total",
                time: None,
            },
            under("kill", Valid),
        ],
    },
    Suite {
        name: "gift-ids",
        workload: "gift-ids",
        node: "../giftid-node",
        options: "--node-count 3 --rate 200",
        faults: &[
            AVAILABLE_UNDER_NONE,
            Under {
                fault: "partition",
                ..AVAILABLE_UNDER_NONE
            },
            under("kill", Valid),
            under("pause", Valid),
            Under {
                fault: "clock",
                ..AVAILABLE_UNDER_NONE
            },
            under("chaos", Valid),
        ],
    },
    Suite {
        // Trusts the wall clock: a backwards jump repeats and reorders IDs.
        name: "gift-ids-regress",
        workload: "gift-ids",
        node: "../giftid-node -- --broken ignore-clock-regressions",
        options: "--node-count 3 --rate 200",
        faults: &[under("none", Valid), under("clock", Invalid)],
    },
    Suite {
        // Raft from maelstrom-core: reads by read-index, followers forward to the leader.
        name: "lin-kv",
        workload: "lin-kv",
        node: "lin-kv",
        options: "--node-count 5 --concurrency 2n --rate 100",
        faults: &[
            under("none", Valid),
            under("partition", Valid),
            under("kill", Valid),
            under("pause", Valid),
            // Every fault at once can stop a majority for most of ten seconds, leaving no
            // operation that succeeded to judge.
            Under {
                time: Some(30),
                ..under("chaos", Valid)
            },
        ],
    },
    Suite {
        // Answers reads from local state on any node: stale once a partition splits it.
        name: "lin-kv-stale-reads",
        workload: "lin-kv",
        node: "lin-kv -- --flaw stale-reads",
        options: "--node-count 5 --concurrency 2n --rate 100",
        faults: &[under("partition", Invalid)],
    },
    Suite {
        // queue-node: Raft-replicated partitions on 3 of the 5 nodes, so requests are also
        // routed through nodes that do not replicate the task's partition.
        name: "task-queue",
        workload: "task-queue",
        node: "../queue-node",
        options: "--node-count 5 --concurrency 2n --rate 300",
        faults: RAFT_GROUPS_SURVIVE,
    },
    Suite {
        // Answers `enqueue_ok` before a majority holds the task: a leader cut off by a
        // partition acknowledges tasks that never commit.
        name: "task-queue-early-ack",
        workload: "task-queue",
        node: "../queue-node -- --broken ack-before-replication",
        options: "--node-count 5 --concurrency 2n --rate 300",
        // Only a partition that cuts a leader off loses tasks. `one` partitions cut off the
        // nodes in turn, so 30 s (at least five of them) surely cut off every leader.
        faults: &[Under {
            fault: "partition",
            expect: Invalid,
            options: "--partition-shapes one",
            time: Some(30),
        }],
    },
    Suite {
        // Keeps lease timers in the leader's memory: after a leader dies, the tasks it
        // leased to consumers that then crashed are never handed out again.
        name: "task-queue-forget-leases",
        workload: "task-queue",
        node: "../queue-node -- --broken forget-leases",
        options: "--node-count 5 --concurrency 2n --rate 300",
        faults: &[under("kill", Invalid)],
    },
    Suite {
        // A nack gives the attempt back: the task comes back under the same attempt number
        // and is never dead-lettered, which only counting deliveries in the history shows.
        name: "task-queue-nack-refund",
        workload: "task-queue",
        node: "../queue-node -- --broken nack-refund",
        options: "--node-count 5 --concurrency 2n --rate 300",
        faults: &[under("partition", Invalid)],
    },
    Suite {
        // matcher-node: each region a Raft group, a coordinator group, two-phase commit
        // across regions; sealed boxes opened and every epoch judged by the workload.
        name: "secret-santa",
        workload: "secret-santa",
        node: "../matcher-node",
        options: "--node-count 5 --concurrency 2n --rate 50",
        faults: RAFT_GROUPS_SURVIVE,
    },
    Suite {
        // Sends COMMIT before the decision is logged (it is logged a round later): a
        // coordinator leader killed in between leaves regions committed to a transaction
        // its successor aborts, and reads return an epoch the audit never committed.
        name: "secret-santa-commit-before-log",
        workload: "secret-santa",
        node: "../matcher-node -- --broken commit-before-log",
        options: "--node-count 5 --concurrency 2n --rate 50",
        faults: &[Under {
            time: Some(20),
            ..under("kill", Invalid)
        }],
    },
    Suite {
        // A region makes its slice readable at PREPARE: when the transaction then aborts (a
        // vote lost to a racing registration, or to a partition), reads return an epoch the
        // audit shows aborted. A straggler must land in the few milliseconds between the
        // coordinator's read of the regions and PREPARE: at twice the rate, the gaps
        // between operations are half as long and such races twice as frequent (caught on
        // 9 of 10 seeds at 50 ops/s, 10 of 10 at 100).
        name: "secret-santa-read-at-prepare",
        workload: "secret-santa",
        node: "../matcher-node -- --broken read-at-prepare",
        options: "--node-count 5 --concurrency 2n --rate 100",
        faults: &[Under {
            time: Some(20),
            ..under("partition", Invalid)
        }],
    },
    Suite {
        // No two-phase commit: the decision is logged at once and regions install their
        // slices one after another, so reads see some regions in the new epoch and others
        // not yet, and a cut-off region never.
        name: "secret-santa-no-2pc",
        workload: "secret-santa",
        node: "../matcher-node -- --broken no-2pc",
        options: "--node-count 5 --concurrency 2n --rate 50",
        faults: &[Under {
            time: Some(20),
            ..under("partition", Invalid)
        }],
    },
    Suite {
        // Enqueues an epoch's production tasks when it logs the transaction, before any
        // vote: a transaction that then aborts (a straggler's registration changed a
        // region, or the coordinator leader was killed) leaves tasks for gifts nobody
        // was ever given. Aborts are what show it: at 50 ops/s for 20 s, 3 of 10 seeds
        // had one; at 100 ops/s for 30 s, every seed tried had three or more.
        name: "santa-enqueue-before-log",
        workload: "santa",
        node: SANTA_SERVICES,
        options: "--concurrency 2n --rate 100 --service-args matcher=--broken=enqueue-before-log",
        faults: &[Under {
            time: Some(30),
            ..under("kill", Invalid)
        }],
    },
    Suite {
        // The whole system: gift IDs from the giftid service, matches committed by the
        // matcher's two-phase commit, each committed gift's four production tasks on the
        // task queue, worked by elves; judged end to end on one history.
        name: "santa",
        workload: "santa",
        node: SANTA_SERVICES,
        options: "--concurrency 2n --rate 50",
        faults: &[
            under("none", Valid),
            under("partition", Valid),
            under("kill", Valid),
            under("pause", Valid),
            Under {
                time: Some(30),
                ..under("chaos", Valid)
            },
        ],
    },
];

/// Santa's three services: 3 gift ID nodes, 3 task-queue nodes, 5 matcher nodes.
const SANTA_SERVICES: &str =
    "giftid=../giftid-node:3 queue=../queue-node:3 matcher=../matcher-node:5";

/// The nodes built on Raft groups stay valid under every fault; all at once, as for
/// lin-kv, can stop a group's majority for long, so that run lasts 30 s.
const RAFT_GROUPS_SURVIVE: &[Under] = &[
    under("none", Valid),
    under("partition", Valid),
    under("kill", Valid),
    under("pause", Valid),
    under("lossy", Valid),
    Under {
        time: Some(30),
        ..under("chaos", Valid)
    },
];

/// Gift IDs need no coordination, so nodes that are up answer 99% of requests or more.
const AVAILABLE_UNDER_NONE: Under = Under {
    fault: "none",
    expect: Valid,
    options: "--availability 0.99",
    time: None,
};

pub fn fault(name: &str) -> Option<&'static Fault> {
    FAULTS.iter().find(|f| f.name == name)
}

/// Every (suite, fault, expectation), in table order; the make target is
/// `<workload>-<fault>`.
pub fn scenarios() -> impl Iterator<Item = (&'static Suite, &'static Fault, &'static Under)> {
    SUITES.iter().flat_map(|suite| {
        suite.faults.iter().map(move |under| {
            let fault = fault(under.fault).unwrap_or_else(|| {
                panic!("suite {} names unknown fault {}", suite.name, under.fault)
            });
            (suite, fault, under)
        })
    })
}

pub fn target(suite: &Suite, fault: &Fault) -> String {
    format!("{}-{}", suite.name, fault.name)
}

/// `scenarios.mk`: one target per scenario, and the list of them.
pub fn makefile() -> String {
    let mut out = String::from(
        "# Generated by `workloads scenarios --makefile` from workloads/src/scenario.rs; do not edit.\n\n",
    );
    let targets: Vec<String> = scenarios().map(|(s, f, _)| target(s, f)).collect();
    let _ = writeln!(out, "SCENARIOS := {}\n", targets.join(" "));
    let invalid: Vec<String> = scenarios()
        .filter(|(_, _, under)| under.expect == Expect::Invalid)
        .map(|(s, f, _)| target(s, f))
        .collect();
    let _ = writeln!(out, "EXPECT_INVALID := {}\n", invalid.join(" "));
    let _ = writeln!(out, ".PHONY: $(SCENARIOS)\n");
    for (suite, fault, under) in scenarios() {
        out.push_str(&render(suite, fault, under));
    }
    out
}

/// One scenario's make target.
fn render(suite: &Suite, fault: &Fault, under: &Under) -> String {
    let mut out = String::new();
    let expect = under.expect;
    let (bin, node_args) = match suite.node.split_once(" -- ") {
        Some((bin, args)) => (bin, format!("-- {args}")),
        None => (suite.node, String::new()),
    };
    let nodes = node_flags(bin);
    // `--expect invalid` (our harness only): recorded in run.json, so reports mark the
    // invalid run of a broken node as expected.
    let expect_flag = match expect {
        Expect::Valid => "",
        Expect::Invalid => "$(EXPECT_INVALID_FLAG)",
    };
    let command = format!(
        "$(MAELSTROM) test -w {} {nodes} {} {} {} {expect_flag} --time-limit $(TIME) $(SEED_FLAG) {node_args}",
        suite.workload, suite.options, fault.options, under.options
    )
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ");
    let _ = writeln!(
        out,
        "## {} under {}; expected {}.",
        suite.name,
        fault.about,
        expect.word()
    );
    if let Some(time) = under.time {
        let _ = writeln!(out, "{}: TIME = {time}", target(suite, fault));
    }
    let _ = writeln!(out, "{}:", target(suite, fault));
    match expect {
        Expect::Valid => {
            let _ = writeln!(out, "\t{command}\n");
        }
        Expect::Invalid => {
            let _ = writeln!(
                out,
                "\t{command}; status=$$?; if [ $$status -eq 1 ]; then echo \"invalid, as expected: the fault caught the node\"; else echo \"expected an invalid run (exit 1), got exit $$status\"; exit 1; fi\n"
            );
        }
    }
    out
}

/// The options naming a suite's nodes: `--bin` for one binary, a `--service` per
/// `NAME=BIN:COUNT` word for several.
fn node_flags(node: &str) -> String {
    if !node.contains('=') {
        return format!("--bin $(EXAMPLES)/{node}");
    }
    node.split_whitespace()
        .map(|service| match service.split_once('=') {
            Some((name, bin)) => format!("--service {name}=$(EXAMPLES)/{bin}"),
            None => panic!("a service is NAME=BIN:COUNT, not {service}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What `workloads scenarios` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Table,
    Makefile,
    CiMatrix,
}

/// `workloads scenarios`: the generated files, or a table of the scenarios.
pub fn print(listing: Listing) -> i32 {
    if listing == Listing::Makefile {
        print!("{}", makefile());
    } else if listing == Listing::CiMatrix {
        println!("{}", ci_matrix());
    } else {
        println!("{:<24} {:<8} {:<10} faults", "target", "expect", "workload");
        for (suite, fault, under) in scenarios() {
            println!(
                "{:<24} {:<8} {:<10} {}",
                target(suite, fault),
                under.expect.word(),
                suite.workload,
                fault.about
            );
        }
    }
    0
}

/// The CI matrices, one YAML flow sequence a line: `scenario` (every scenario, once) and
/// `chaos` (the scenarios under every fault at once, swept over three seeds).
pub fn ci_matrix() -> String {
    let targets: Vec<String> = scenarios().map(|(s, f, _)| target(s, f)).collect();
    let chaos: Vec<String> = scenarios()
        .filter(|(_, f, _)| f.name == "chaos")
        .map(|(s, f, _)| target(s, f))
        .collect();
    format!(
        "scenario: [{}]\nchaos: [{}]",
        targets.join(", "),
        chaos.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn repo_file(name: &str) -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn every_suite_names_known_faults_once() {
        for suite in SUITES {
            let mut names: Vec<_> = suite.faults.iter().map(|u| u.fault).collect();
            for name in &names {
                assert!(fault(name).is_some(), "{}: {name}", suite.name);
            }
            names.sort_unstable();
            names.dedup();
            assert_eq!(
                names.len(),
                suite.faults.len(),
                "{} repeats a fault",
                suite.name
            );
        }
    }

    #[test]
    fn an_expected_invalid_scenario_passes_only_on_exit_status_1() {
        static SUITE: Suite = Suite {
            name: "unique-ids",
            workload: "unique-ids",
            node: "unique_ids -- --flag",
            options: "",
            faults: &[under("none", Expect::Invalid)],
        };
        let fault = fault("none").unwrap();
        let recipe = render(&SUITE, fault, &SUITE.faults[0]);
        assert!(recipe.contains("if [ $$status -eq 1 ]"), "{recipe}");
        assert!(
            recipe.contains("$(EXPECT_INVALID_FLAG) --time-limit"),
            "{recipe}"
        );
        let valid = render(&SUITE, fault, &under("none", Expect::Valid));
        assert!(valid.ends_with("$(SEED_FLAG) -- --flag\n\n"), "{valid}");
        assert!(
            valid.contains("--bin $(EXAMPLES)/unique_ids --time-limit"),
            "{valid}"
        );
    }

    #[test]
    fn no_command_repeats_an_option_and_no_suite_is_named_like_a_scenario() {
        for (suite, fault, under) in scenarios() {
            let recipe = render(suite, fault, under);
            let mut options: Vec<&str> = recipe
                .split_whitespace()
                .take_while(|w| *w != "--")
                .filter(|w| w.starts_with("--") && *w != "--service")
                .collect();
            let all = options.len();
            options.sort_unstable();
            options.dedup();
            assert_eq!(
                options.len(),
                all,
                "{} repeats an option",
                target(suite, fault)
            );
            // `make <name>-seeds` sweeps a scenario or a suite by this name.
            assert!(SUITES.iter().all(|s| s.name != target(suite, fault)));
        }
        let santa = render(
            &SUITES[SUITES.len() - 1],
            fault("none").unwrap(),
            &under("none", Valid),
        );
        assert!(
            santa.contains(" --service giftid=$(EXAMPLES)/../giftid-node:3 --service queue="),
            "{santa}"
        );
        let chaos = ci_matrix();
        assert!(
            chaos.contains("\nchaos: [broadcast-chaos, gift-ids-chaos,"),
            "{chaos}"
        );
    }

    #[test]
    fn checked_in_makefile_fragment_matches_the_tables() {
        assert_eq!(
            repo_file("scenarios.mk"),
            makefile(),
            "scenarios.mk is stale: run `make scenarios`"
        );
    }

    #[test]
    fn ci_matrix_matches_the_tables() {
        let workflow = repo_file(".github/workflows/ci.yml");
        for line in ci_matrix().lines() {
            assert!(
                workflow.lines().any(|l| l.trim() == line),
                "a matrix in .github/workflows/ci.yml is stale: expected `{line}` (run `make scenarios`)"
            );
        }
    }
}
