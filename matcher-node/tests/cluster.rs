//! The matcher end to end on a simulated 5-node cluster: register, match, read every
//! sealed box, audit, and a late addition.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use common::*;
use matcher::sm::Gid;
use serde_json::{json, Value};

#[test]
fn register_match_read_audit_and_splice() {
    let mut c = cluster(5);
    let mut people = People::new(7);
    let ids: Vec<String> = (0..8).map(|i| format!("elf{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let key = people.add(id);
        let reply = call_retrying(
            &mut c,
            "c1",
            i % 5,
            register("north", id, &key, i as u32 % 3),
            10,
        );
        assert_eq!(
            reply,
            json!({"type": "register_ok", "epoch": 0, "in_reply_to": reply["in_reply_to"], "msg_id": reply["msg_id"]})
        );
    }
    let matched = call_retrying(
        &mut c,
        "c2",
        3,
        json!({"type": "match", "exchange": "north"}),
        10,
    );
    assert_eq!(matched["type"], "match_ok", "{matched}");
    assert_eq!(matched["epoch"], 1);
    assert_eq!(matched["participants"], json!(ids));

    let boxes = read_all(&mut c, &people, "north", &ids);
    let receivers: BTreeSet<&str> = boxes.values().map(|(e, _)| e.receiver.as_str()).collect();
    assert_eq!(receivers.len(), ids.len(), "a permutation");
    for (giver, (envelope, reply)) in &boxes {
        assert_eq!(&envelope.giver, giver);
        assert_ne!(&envelope.receiver, giver);
        assert_eq!(envelope.epoch, 1);
        assert_eq!(json!(envelope.gift_id), reply["gift_id"]);
        assert!(reply.get("receiver").is_none());
    }

    // Matching again answers the same epoch.
    let again = call_retrying(
        &mut c,
        "c3",
        0,
        json!({"type": "match", "exchange": "north"}),
        10,
    );
    assert_eq!(again["epoch"], 1);

    let audit = call_retrying(
        &mut c,
        "c4",
        1,
        json!({"type": "audit", "exchange": "north"}),
        10,
    );
    let events = audit["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["prepared", "committed"], "{audit}");
    assert!(!audit.to_string().contains("elf"), "the audit names nobody");

    // A late addition splices into one gift.
    let key = people.add("late");
    let reply = call_retrying(&mut c, "c5", 2, register("north", "late", &key, 1), 10);
    assert_eq!(reply["type"], "register_ok", "{reply}");
    assert_eq!(reply["epoch"], 2);
    let mut all = ids.clone();
    all.push("late".into());
    let after = read_all(&mut c, &people, "north", &all);
    let before: BTreeMap<&str, (&str, u64)> = boxes
        .iter()
        .map(|(g, (e, _))| (g.as_str(), (e.receiver.as_str(), e.gift_id)))
        .collect();
    let changed: Vec<&String> = after
        .iter()
        .filter(|(g, (e, _))| before.get(g.as_str()) != Some(&(e.receiver.as_str(), e.gift_id)))
        .map(|(g, _)| g)
        .collect();
    assert_eq!(changed.len(), 2, "A→L and L→B: {changed:?}");
    assert!(after.values().all(|(e, _)| e.epoch == 2));
    // Registering the same participant again is idempotent.
    let again = call_retrying(&mut c, "c6", 4, register("north", "late", &key, 1), 10);
    assert_eq!(again["epoch"], 2);
}

#[test]
fn refusals_carry_their_codes() {
    let mut c = cluster(3);
    let unknown = call_retrying(
        &mut c,
        "c1",
        0,
        json!({"type": "match", "exchange": "nowhere"}),
        5,
    );
    assert_eq!(unknown["code"], 20, "{unknown}");
    let audit = call_retrying(
        &mut c,
        "c1",
        1,
        json!({"type": "audit", "exchange": "nowhere"}),
        5,
    );
    assert_eq!(audit["code"], 20, "{audit}");
    let mut people = People::new(1);
    let key = people.add("solo");
    call_retrying(&mut c, "c1", 0, register("lonely", "solo", &key, 0), 5);
    let few = call_retrying(
        &mut c,
        "c1",
        2,
        json!({"type": "match", "exchange": "lonely"}),
        5,
    );
    assert_eq!(few["code"], 22, "{few}");
    let audit = call_retrying(
        &mut c,
        "c1",
        1,
        json!({"type": "audit", "exchange": "lonely"}),
        5,
    );
    assert_eq!(audit["events"], json!([]), "{audit}");
    let read = json!({"type": "get_assignment", "exchange": "lonely", "participant": "solo"});
    let read = call_retrying(&mut c, "c1", 1, read, 5);
    assert_eq!(read["code"], 20, "{read}");
    // Two who exclude each other cannot be matched; the reason names them.
    let k2 = people.add("a");
    let k3 = people.add("b");
    let mut a = register("family", "a", &k2, 0);
    a["exclusions"] = json!(["b"]);
    call_retrying(&mut c, "c1", 0, a, 5);
    call_retrying(&mut c, "c1", 1, register("family", "b", &k3, 1), 5);
    let refused = call_retrying(
        &mut c,
        "c1",
        2,
        json!({"type": "match", "exchange": "family"}),
        5,
    );
    assert_eq!(refused["code"], 22, "{refused}");
}

#[test]
fn reads_right_after_match_ok_see_the_new_epoch() {
    let mut c = cluster(5);
    let mut people = People::new(5);
    let mut ids = register_many(&mut c, &mut people, "quick", 3, 0);
    ids.extend(register_many(&mut c, &mut people, "quick-b", 0, 1));
    for (i, r) in [(3, 1), (4, 2)] {
        let id = format!("quick-{i}");
        let key = people.add(&id);
        call_retrying(&mut c, "reg", i, register("quick", &id, &key, r), 10);
        ids.push(id);
    }
    let reads = reads_right_after_match(&mut c, "quick", &ids);
    for (id, read) in ids.iter().zip(&reads) {
        assert_eq!(read["type"], "get_assignment_ok", "{id}: {read}");
        assert_eq!(read["epoch"], 1);
    }
}

#[test]
fn no_read_shows_a_slice_whose_transaction_aborts() {
    let mut c = cluster(5);
    let (found, audit) = reads_during_a_lost_vote(&mut c);
    assert_eq!(found, 0, "a read showed an undecided slice");
    let events = audit["events"].as_array().expect("events");
    assert!(events.iter().any(|e| e["event"] == "aborted"), "{audit}");
}

/// A coordinator leader whose clock runs ahead stamps its audit events far in the future;
/// the leader after it must still stamp later events above them, or the audit (sorted by
/// event ID) would list a splice before the match it splices into.
#[test]
fn audit_events_stay_in_order_across_a_failover_to_a_slower_clock() {
    let mut c = cluster(5);
    let mut people = People::new(11);
    let fast = leader(&c, Gid::Coordinator).expect("a coordinator leader");
    c.skew_clock(fast, 30_000);
    register_many(&mut c, &mut people, "east", 6, 0);
    let matched = call_retrying(
        &mut c,
        "m",
        fast,
        json!({"type": "match", "exchange": "east"}),
        10,
    );
    assert_eq!(matched["type"], "match_ok", "{matched}");
    c.crash(fast);
    c.run_for(std::time::Duration::from_secs(3));
    let next = leader(&c, Gid::Coordinator).expect("a new coordinator leader");
    assert_ne!(next, fast);
    let key = people.add("late");
    let at = (fast + 1) % 5;
    let reply = call_retrying(&mut c, "l", at, register("east", "late", &key, 1), 20);
    assert_eq!(reply["type"], "register_ok", "{reply}");
    let audit = call_retrying(
        &mut c,
        "a",
        at,
        json!({"type": "audit", "exchange": "east"}),
        10,
    );
    let listed: Vec<(String, String)> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().into(),
                e["event"].as_str().unwrap().into(),
            )
        })
        .collect();
    let happened = [
        ("match", "prepared"),
        ("match", "committed"),
        ("splice", "prepared"),
        ("splice", "committed"),
    ]
    .map(|(k, e)| (k.to_string(), e.to_string()));
    assert_eq!(listed, happened, "{audit}");
}

/// Without faults, each region hears a transaction's decision once: an acknowledgement
/// waiting to be logged does not make the coordinator send the decision again.
#[test]
fn each_region_hears_a_decision_once_without_faults() {
    let mut c = cluster(5);
    let sent: Rc<RefCell<BTreeMap<(String, u64), usize>>> = Rc::default();
    let seen = sent.clone();
    c.set_wire_rule(move |raw| {
        let body: Value = serde_json::from_str(raw.body_json()).unwrap_or(Value::Null);
        let req = &body["req"];
        if body["type"] == "fwd" && req["type"] == "decide" {
            let key = (body["group"].to_string(), req["txn"].as_u64().unwrap_or(0));
            *seen.borrow_mut().entry(key).or_default() += 1;
        }
        None
    });
    let mut people = People::new(9);
    for (i, id) in ["d0", "d1", "d2", "d3", "d4", "d5"].iter().enumerate() {
        let key = people.add(id);
        call_retrying(
            &mut c,
            "c",
            i % 5,
            register("once", id, &key, i as u32 % 3),
            10,
        );
    }
    let m = call_retrying(
        &mut c,
        "c",
        2,
        json!({"type": "match", "exchange": "once"}),
        10,
    );
    assert_eq!(m["type"], "match_ok", "{m}");
    // Long enough for several heartbeats, resends and the acknowledgements' log entries.
    c.run_for(std::time::Duration::from_secs(2));
    let sent = sent.borrow();
    assert!(!sent.is_empty(), "no decision crossed the network");
    assert!(sent.values().all(|n| *n == 1), "decisions sent: {sent:?}");
}
