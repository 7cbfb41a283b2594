//! Crashes at each step of two-phase commit, over many seeds: the coordinator's leader
//! after logging the transaction, after each vote, after logging the decision and after
//! each region applied COMMIT; and a region's leader while it holds a prepared slice.
//! Afterwards no exchange is partial (everyone's box or nobody's), a `match_ok` that
//! went out is never lost, and matching again commits a valid assignment.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use matcher::node::MatcherNode;
use matcher::sm::Gid;
use serde_json::{json, Value};

const SEEDS: u64 = 8;
const EXCHANGE: &str = "north";

#[derive(Debug, Clone, Copy)]
enum Step {
    Logged,
    Voted(usize),
    Decided,
    Committed(usize),
    RegionPrepared,
}

fn leader_node(c: &Sim, group: Gid) -> Option<&MatcherNode> {
    leader(c, group).and_then(|i| c.node(i))
}

/// Regions whose leader applied a PREPARE of the exchange (`commit`: a COMMIT).
fn regions_at(c: &Sim, commit: bool) -> usize {
    (0..3)
        .filter(|&r| {
            let Some(ex) = leader_node(c, Gid::Region(r))
                .and_then(|n| n.region_state(r))
                .and_then(|sm| sm.exchanges.get(EXCHANGE))
            else {
                return false;
            };
            match commit {
                true => ex.epoch >= 1,
                false => ex.prepared.is_some() || !ex.decided.is_empty(),
            }
        })
        .count()
}

/// The node to crash once `step` is reached, if it is.
fn victim(c: &Sim, step: Step, seed: u64) -> Option<usize> {
    let coord = leader(c, Gid::Coordinator)?;
    let txn = c
        .node(coord)?
        .coordinator_state()?
        .txns
        .values()
        .find(|t| t.exchange == EXCHANGE);
    let hit = match step {
        Step::Logged => txn.is_some(),
        Step::Voted(k) => regions_at(c, false) >= k,
        Step::Decided => txn.is_some_and(|t| t.decision.is_some()),
        Step::Committed(k) => regions_at(c, true) >= k,
        Step::RegionPrepared => {
            let r = (seed % 3) as u32;
            let prepared = leader_node(c, Gid::Region(r))
                .and_then(|n| n.region_state(r))
                .and_then(|sm| sm.exchanges.get(EXCHANGE))
                .is_some_and(|ex| ex.prepared.is_some());
            return prepared.then(|| leader(c, Gid::Region(r))).flatten();
        }
    };
    hit.then_some(coord)
}

/// Reads everyone until no read is refused for now; returns each reply.
fn settle_reads(c: &mut Sim, people: &People, ids: &[String]) -> Vec<Value> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let body = json!({"type": "get_assignment", "exchange": EXCHANGE, "participant": id});
            let reply = call_retrying(c, &format!("r{i}"), i, body, 30);
            if reply["type"] == "get_assignment_ok" {
                people.open(id, &reply);
            }
            reply
        })
        .collect()
}

fn scenario(seed: u64, step: Step) {
    let mut c = cluster(5);
    c.run_for(Duration::from_millis(seed * 37 % 400));
    let mut people = People::new(seed);
    let n = 4 + (seed % 5) as usize;
    let ids: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let key = people.add(id);
        let body = register(EXCHANGE, id, &key, ((i as u64 + seed) % 3) as u32);
        let reply = call_retrying(&mut c, "reg", i, body, 10);
        assert_eq!(reply["type"], "register_ok", "{reply}");
    }
    let id = c.request(
        "m",
        (seed % 5) as usize,
        json!({"type": "match", "exchange": EXCHANGE}),
    );
    let mut first: Option<Value> = None;
    let mut crashed = None;
    for _ in 0..3_000 {
        c.run_for(Duration::from_millis(1));
        for (to, body) in c.take_inbox() {
            if to == "m" && body["in_reply_to"] == json!(id) {
                first = Some(body);
            }
        }
        let early = committed_before_logged(&c, EXCHANGE);
        assert!(
            early.is_none(),
            "seed {seed}: a region committed before the decision"
        );
        if let Some(v) = victim(&c, step, seed) {
            c.crash(v);
            crashed = Some(v);
            break;
        }
    }
    let crashed = crashed.unwrap_or_else(|| panic!("seed {seed}: {step:?} never reached"));
    c.run_for(Duration::from_millis(300 + seed * 50));
    c.restart(crashed);
    for _ in 0..500 {
        c.run_for(Duration::from_millis(10));
        for (to, body) in c.take_inbox() {
            if to == "m" && body["in_reply_to"] == json!(id) {
                first = Some(body);
            }
        }
    }
    // All or nothing, before anyone matches again.
    let reads = settle_reads(&mut c, &people, &ids);
    let epochs: BTreeSet<String> = reads
        .iter()
        .map(|r| match r["type"].as_str() {
            Some("get_assignment_ok") => format!("epoch {}", r["epoch"]),
            _ => format!("error {}", r["code"]),
        })
        .collect();
    assert_eq!(
        epochs.len(),
        1,
        "seed {seed} {step:?}: partial exchange {epochs:?}"
    );
    if first.as_ref().is_some_and(|f| f["type"] == "match_ok") {
        assert_eq!(
            reads[0]["type"], "get_assignment_ok",
            "seed {seed} {step:?}: lost commit"
        );
    }
    let matched = call_retrying(
        &mut c,
        "m2",
        0,
        json!({"type": "match", "exchange": EXCHANGE}),
        20,
    );
    assert_eq!(
        matched["type"], "match_ok",
        "seed {seed} {step:?}: {matched}"
    );
    if let Some(f) = first.filter(|f| f["type"] == "match_ok") {
        assert_eq!(
            f["epoch"], matched["epoch"],
            "seed {seed} {step:?}: lost commit"
        );
    }
    let all = read_all(&mut c, &people, EXCHANGE, &ids);
    let receivers: BTreeSet<&str> = all.values().map(|(e, _)| e.receiver.as_str()).collect();
    assert_eq!(
        receivers.len(),
        n,
        "seed {seed} {step:?}: not a permutation"
    );
    assert!(all
        .values()
        .all(|(e, _)| json!(e.epoch) == matched["epoch"]));
}

fn sweep(step: Step) {
    for seed in 0..SEEDS {
        scenario(seed, step);
    }
}

#[test]
fn coordinator_crashes_after_logging_the_transaction() {
    sweep(Step::Logged);
}

#[test]
fn coordinator_crashes_after_each_vote() {
    for k in 1..=3 {
        sweep(Step::Voted(k));
    }
}

#[test]
fn coordinator_crashes_after_logging_the_decision() {
    sweep(Step::Decided);
}

#[test]
fn coordinator_crashes_after_each_commit() {
    for k in 1..=3 {
        sweep(Step::Committed(k));
    }
}

#[test]
fn region_leader_crashes_while_prepared() {
    sweep(Step::RegionPrepared);
}
