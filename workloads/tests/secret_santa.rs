//! The secret-santa workload end to end, against a one-process matcher written in Python
//! against the protocol alone (`fixtures/secret_santa_node.py`), as a third party would:
//! correct, it must be judged valid; broken on purpose in one way, it must be caught for
//! that reason.

mod common;
#[path = "../../matcher-node/tests/pynacl/mod.rs"]
mod pynacl;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use pynacl::python;

use common::{python_node, run, test_args, workdir, write_executable, Run, ONE_NODE_RUN};
use workloads::edn::Edn;
use workloads::history::{History, OpType};

const NODE: &str = include_str!("fixtures/secret_santa_node.py");

/// The node as an executable: a shell wrapper that runs the script with the Python that
/// imports PyNaCl.
fn node(test: &str) -> PathBuf {
    let dir = workdir(&format!("{test}-node"));
    let script = python_node(&dir, "secret_santa_node.py", NODE);
    let wrapper = dir.join("node.sh");
    let text = format!("#!/bin/sh\nexec {} {} \"$@\"\n", python(), script.display());
    write_executable(&wrapper, &text);
    wrapper
}

fn santa(test: &str, node_args: &[&str]) -> Run {
    santa_under(test, &[], node_args)
}

fn santa_under(test: &str, nemesis: &[&str], node_args: &[&str]) -> Run {
    let bin = node(test);
    let mut rest = nemesis.to_vec();
    rest.extend_from_slice(&ONE_NODE_RUN);
    rest.extend_from_slice(&["--seed", "7", "--", "--regions", "3"]);
    rest.extend_from_slice(node_args);
    run(test, &test_args("secret-santa", &bin, &rest))
}

fn history(r: &Run) -> History {
    History::parse_edn(&r.file("history.edn")).unwrap()
}

fn text<'a>(v: &'a Edn, key: &str) -> &'a str {
    v.get(key).and_then(Edn::as_str).unwrap_or("")
}

/// Refused matches that a registration of their exchange overlapped in time, or that
/// came after one whose outcome is unknown.
fn refused_and_raced(h: &History) -> usize {
    let calls = h.calls();
    let overlaps = |a: &workloads::history::Call, b: &workloads::history::Call| {
        let end = |c: &workloads::history::Call| c.complete_pos.unwrap_or(usize::MAX);
        a.invoke_pos < end(b) && b.invoke_pos < end(a)
    };
    let refused = calls
        .iter()
        .filter(|c| c.invoke.f == "match" && c.complete.is_some_and(|d| d.op_type == OpType::Fail));
    refused
        .filter(|m| {
            calls.iter().any(|r| {
                r.invoke.f == "register"
                    && text(&r.invoke.value, "exchange") == text(&m.invoke.value, "exchange")
                    && (overlaps(m, r)
                        || r.invoke_pos < m.invoke_pos
                            && r.complete.map_or(true, |d| d.op_type == OpType::Info))
            })
        })
        .count()
}

#[test]
fn a_correct_matcher_is_valid_and_the_generator_covers_the_protocol() {
    let r = santa("santa-correct", &[]);
    r.expect(0);
    assert!(r.count(":matched-exchanges") >= 3, "{}", r.results());
    assert!(r.count(":refused ") >= 1, "{}", r.results());
    let h = history(&r);
    // Every refused match is judged, but those a registration of the same exchange raced
    // (its set of participants is then uncertain).
    let raced = refused_and_raced(&h) as i64;
    assert_eq!(
        r.count(":refused ") - raced,
        r.count(":judged"),
        "{raced} raced: {}",
        r.results()
    );
    let invokes: Vec<_> = h.invocations().collect();
    // Registrations spread over the three regions, and some without one.
    let regions: BTreeSet<String> = invokes
        .iter()
        .filter(|o| o.f == "register")
        .map(|o| o.value.get("region").map_or("none".into(), Edn::to_compact))
        .collect();
    assert_eq!(regions, ["0", "1", "2", "none"].map(String::from).into());
    // The same match sent by several clients at once.
    let mut match_processes: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for o in invokes.iter().filter(|o| o.f == "match") {
        if let workloads::history::Process::Worker(p) = o.process {
            match_processes
                .entry(text(&o.value, "exchange"))
                .or_default()
                .insert(p);
        }
    }
    assert!(match_processes.values().any(|p| p.len() >= 2));
    // Late additions acknowledged with a later epoch, and every box opened.
    let late_ok = h
        .completions()
        .filter(|o| o.f == "register" && o.op_type == OpType::Ok)
        .filter(|o| o.value.get("epoch").and_then(Edn::as_i64) > Some(0))
        .count();
    assert!(late_ok >= 1, "no late addition was acknowledged");
    let reads: Vec<_> = h
        .completions()
        .filter(|o| o.f == "read" && o.op_type == OpType::Ok)
        .collect();
    assert!(reads.iter().all(|o| o.value.get("box").is_some()));
    // The final phase read every participant ever registered and every audit.
    let finals: BTreeSet<(&str, &str)> = h
        .invocations()
        .filter(|o| o.final_read && o.f == "read")
        .map(|o| (text(&o.value, "exchange"), text(&o.value, "participant")))
        .collect();
    let registered: BTreeSet<(&str, &str)> = invokes
        .iter()
        .filter(|o| o.f == "register")
        .map(|o| (text(&o.value, "exchange"), text(&o.value, "participant")))
        .collect();
    assert_eq!(finals, registered);
    let audited: BTreeSet<&str> = h
        .invocations()
        .filter(|o| o.final_read && o.f == "audit")
        .map(|o| text(&o.value, "exchange"))
        .collect();
    assert_eq!(audited, registered.iter().map(|(x, _)| *x).collect());
}

/// Runs the node broken in one way: the run must be invalid, with `key` counted.
fn caught(broken: &str, keys: &[&str]) {
    let r = santa(&format!("santa-{broken}"), &["--broken", broken]);
    r.expect(1);
    for key in keys {
        assert!(r.count(key) > 0, "{broken}: {key} is 0\n{}", r.results());
    }
}

#[test]
fn a_receiver_in_plaintext_breaks_secrecy() {
    caught("plaintext-receiver", &[":extra-fields"]);
}

#[test]
fn boxes_sealed_to_another_participant_break_secrecy() {
    caught("wrong-key", &[":unopenable", ":opens-for-others"]);
}

#[test]
fn answering_the_first_epoch_after_late_additions_goes_backwards_and_loses_them() {
    caught(
        "stale-epoch",
        &[":backwards", ":late-missing", ":lost", ":stale-after-audit"],
    );
}

#[test]
fn two_givers_for_one_receiver_break_validity() {
    caught("not-permutation", &[":duplicate-receivers"]);
}

#[test]
fn refusing_a_feasible_exchange_breaks_feasibility() {
    caught("refuse-large", &[":refused-feasible"]);
}

#[test]
fn lost_and_duplicated_messages_leave_a_correct_matcher_valid() {
    let r = santa_under(
        "santa-lossy",
        &["--nemesis", "lossy", "--nemesis-interval", "1"],
        &[],
    );
    r.expect(0);
    assert!(r.count(":matched-exchanges") >= 3, "{}", r.results());
}

#[test]
fn a_matcher_that_keeps_matches_in_memory_loses_them_when_killed() {
    let r = santa_under(
        "santa-kill",
        &["--nemesis", "kill", "--nemesis-interval", "1"],
        &[],
    );
    r.expect(1);
    assert!(r.count(":lost") > 0, "{}", r.results());
}
