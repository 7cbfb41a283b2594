//! The matcher binary on bad input: each refusal with its code and a reason, never a
//! crash; and command-line mistakes refused with a clear message and a nonzero exit.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_matcher-node");
const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// Sends each body to a one-node cluster and returns the replies in order.
fn exchange_with_node(bodies: &[Value]) -> Vec<Value> {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::SeqCst);
    let name = format!("matcher-process-{}-{run}", std::process::id());
    let dir = std::env::temp_dir().join(name);
    let mut child = Command::new(BIN)
        .env("MAELSTROM_NODE_DIR", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the matcher binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let init = json!({"src": "c0", "dest": "n0",
        "body": {"type": "init", "msg_id": 1, "node_id": "n0", "node_ids": ["n0"]}});
    writeln!(stdin, "{init}").unwrap();
    // One request at a time: later ones may depend on earlier ones.
    let mut replies: Vec<Option<Value>> = vec![None; bodies.len()];
    for (i, body) in bodies.iter().enumerate() {
        let mut body = body.clone();
        body["msg_id"] = json!(i + 10);
        let line = json!({"src": "c1", "dest": "n0", "body": body});
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while replies[i].is_none() && Instant::now() < deadline {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            let msg: Value = serde_json::from_str(&line).expect("JSON on stdout");
            if msg["body"]["in_reply_to"] == json!(i + 10) {
                replies[i] = Some(msg["body"].clone());
            }
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the node is still running"
    );
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    replies
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| panic!("no reply to {}", bodies[i])))
        .collect()
}

fn reg(fields: Value) -> Value {
    let mut body = json!({"type": "register", "exchange": "x", "participant": "a",
                          "public_key": KEY});
    for (k, v) in fields.as_object().unwrap() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body
}

#[test]
fn bad_input_gets_its_error_code_and_a_reason() {
    let short_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    let cases: Vec<(Value, i64, &str)> = vec![
        (reg(json!({"exchange": null})), 12, "exchange"),
        (reg(json!({"participant": null})), 12, "participant"),
        (reg(json!({"participant": 5})), 12, "invalid type"),
        (reg(json!({"participant": ""})), 12, "empty"),
        (reg(json!({"exchange": ""})), 12, "empty"),
        (
            reg(json!({"public_key": null})),
            12,
            "public_key is missing",
        ),
        (reg(json!({"public_key": short_key})), 12, "31 bytes"),
        (reg(json!({"public_key": "not base64!"})), 12, "base64"),
        (
            reg(json!({"budget": {"min": 9, "max": 3}})),
            12,
            "above max",
        ),
        (
            reg(json!({"budget": {"min": -1, "max": 3}})),
            12,
            "negative",
        ),
        (
            reg(json!({"budget": {"min": "1", "max": 3}})),
            12,
            "invalid type",
        ),
        (reg(json!({"exclusions": ["a"]})), 12, "exclude itself"),
        (reg(json!({"exclusions": "b"})), 12, "invalid type"),
        (reg(json!({"region": 1})), 12, "region 1"),
        (reg(json!({"region": "0"})), 12, "region"),
        (json!({"type": "santa_please"}), 10, "santa_please"),
        (json!({"type": "match"}), 12, "exchange"),
        (
            json!({"type": "match", "exchange": "x", "no_mutual": "yes"}),
            12,
            "invalid type",
        ),
        (
            json!({"type": "get_assignment", "exchange": "x"}),
            12,
            "participant",
        ),
        (
            json!({"type": "get_assignment", "exchange": "nope", "participant": "a"}),
            20,
            "unknown exchange",
        ),
        (
            json!({"type": "match", "exchange": "nope"}),
            20,
            "unknown exchange",
        ),
        (
            json!({"type": "audit", "exchange": "nope"}),
            20,
            "unknown exchange",
        ),
        (json!({"type": "audit"}), 12, "exchange"),
        (json!({"type": "prepare", "slice": 3}), 12, "prepare"),
        (reg(json!({"nice_child": "yes"})), 12, "invalid type"),
        (
            json!({"type": "match", "exchange": "x", "deadline": -5}),
            12,
            "invalid value",
        ),
        (
            json!({"type": "gift_status", "exchange": "x", "participant": ""}),
            12,
            "participant id is empty",
        ),
        (
            json!({"type": "gift_status", "exchange": "x"}),
            12,
            "participant",
        ),
        (
            json!({"type": "gift_status", "exchange": "x", "participant": "a"}),
            10,
            "no queue service",
        ),
    ];
    let bodies: Vec<Value> = cases.iter().map(|(b, _, _)| b.clone()).collect();
    let replies = exchange_with_node(&bodies);
    for ((body, code, reason), reply) in cases.iter().zip(&replies) {
        assert_eq!(reply["type"], "error", "{body} -> {reply}");
        assert_eq!(reply["code"], json!(code), "{body} -> {reply}");
        let text = reply["text"].as_str().unwrap_or_default();
        assert!(text.contains(reason), "{body} -> {reply}: no {reason:?}");
    }
}

#[test]
fn unknown_participants_and_unmatched_exchanges_are_not_found() {
    let k2 = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let get = |p: &str| json!({"type": "get_assignment", "exchange": "x", "participant": p});
    let replies = exchange_with_node(&[
        reg(json!({})),
        reg(json!({"participant": "b", "public_key": k2})),
        get("a"),
        json!({"type": "audit", "exchange": "x"}),
        json!({"type": "match", "exchange": "x"}),
        get("ghost"),
        get("a"),
        reg(json!({"budget": {"min": 1, "max": 2}})),
    ]);
    assert_eq!(replies[0]["type"], "register_ok", "{}", replies[0]);
    assert_eq!(replies[2]["code"], 20, "not matched: {}", replies[2]);
    assert_eq!(
        replies[3],
        json!({"type": "audit_ok", "events": [],
        "msg_id": replies[3]["msg_id"], "in_reply_to": replies[3]["in_reply_to"]})
    );
    assert_eq!(
        replies[4]["participants"],
        json!(["a", "b"]),
        "{}",
        replies[4]
    );
    assert_eq!(replies[5]["code"], 20, "{}", replies[5]);
    assert_eq!(replies[6]["type"], "get_assignment_ok", "{}", replies[6]);
    // Sorted: serde_json keeps insertion order when another crate of the workspace turns
    // on its `preserve_order` feature.
    let keys: std::collections::BTreeSet<&String> =
        replies[6].as_object().unwrap().keys().collect();
    let expected = [
        "epoch",
        "gift_id",
        "in_reply_to",
        "msg_id",
        "sealed",
        "type",
    ];
    assert!(keys.iter().eq(expected.iter()), "{keys:?}");
    assert_eq!(
        replies[7]["code"], 22,
        "changed after the match: {}",
        replies[7]
    );
}

#[test]
fn every_broken_mode_and_a_region_count_are_accepted() {
    for args in [
        &["--broken", "no-2pc"][..],
        &["--broken", "read-at-prepare"],
        &["--broken", "commit-before-log"],
        &["--broken", "enqueue-before-log"],
        &["--regions", "4"],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bad_flags_are_refused_with_a_clear_message() {
    for args in [
        &["--regions", "0"][..],
        &["--regions", "many"],
        &["--broken", "nope"],
        &["--frobnicate"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
}
