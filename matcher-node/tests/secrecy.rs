//! §5's boundary: regions store and send sealed boxes only. After a match and a late
//! addition, no region replica's state, no message between nodes other than the
//! coordinator group's own Raft traffic (PREPARE, COMMIT, parts, votes, region Raft
//! entries) and no reply to a client carries a plaintext receiver, while the coordinator's
//! Raft traffic does (so the check can see one when it is there).

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use serde_json::{json, Value};

/// Whether a JSON text holds an assignment in plaintext.
fn plaintext(text: &str) -> bool {
    text.contains("\"receiver\"")
}

#[test]
fn no_plaintext_receiver_leaves_the_coordinator_group() {
    let mut c = cluster(5);
    let lines: Rc<RefCell<Vec<String>>> = Rc::default();
    let seen = lines.clone();
    c.set_wire_rule(move |raw| {
        seen.borrow_mut().push(raw.body_json().to_string());
        None
    });
    let mut people = People::new(3);
    let ids: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let key = people.add(id);
        call_retrying(
            &mut c,
            "c",
            i % 5,
            register("x", id, &key, i as u32 % 3),
            10,
        );
    }
    let m = call_retrying(
        &mut c,
        "c",
        1,
        json!({"type": "match", "exchange": "x"}),
        10,
    );
    assert_eq!(m["type"], "match_ok");
    let key = people.add("late");
    let r = call_retrying(&mut c, "c", 2, register("x", "late", &key, 2), 10);
    assert_eq!(r["epoch"], 2, "{r}");
    let mut all = ids.clone();
    all.push("late".into());
    read_all(&mut c, &people, "x", &all);
    call_retrying(
        &mut c,
        "c",
        3,
        json!({"type": "audit", "exchange": "x"}),
        10,
    );
    c.run_for(std::time::Duration::from_secs(1));

    let mut coordinator_traffic = 0;
    for line in lines.borrow().iter() {
        let body: Value = serde_json::from_str(line).unwrap();
        if body["type"] == "raft" {
            for pair in body["msgs"].as_array().unwrap() {
                let text = pair[1].to_string();
                if pair[0] == "coordinator" {
                    coordinator_traffic += usize::from(plaintext(&text));
                } else {
                    assert!(!plaintext(&text), "region Raft traffic: {text}");
                }
            }
        } else {
            assert!(!plaintext(line), "between nodes: {line}");
        }
    }
    assert!(
        coordinator_traffic > 0,
        "the check sees plaintext where it is"
    );
    for (_, reply) in c.take_inbox() {
        assert!(!plaintext(&reply.to_string()), "reply: {reply}");
    }
    for i in 0..5 {
        let node = c.node(i).unwrap();
        for r in 0..node.regions() {
            if let Some(sm) = node.region_state(r) {
                let text = serde_json::to_string(sm).unwrap();
                assert!(!plaintext(&text), "region {r} state at n{i}");
                assert!(text.contains("sealed"), "region {r} holds the boxes");
            }
        }
        if let Some(sm) = node.coordinator_state() {
            assert!(plaintext(&serde_json::to_string(sm).unwrap()));
        }
    }
}
