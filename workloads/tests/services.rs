//! A cluster of several binaries end to end: two services, `a` (the example echo node)
//! and `b` (a Python node that also pings `a`'s first node for every echo it answers),
//! under the kill nemesis. Checks the node ids, each node's `init` (its own service's
//! `node_ids` and every service in `services`, the same after a restart), that `b`'s
//! binary alone gets its `--service-args`, and the per-service counts in results.edn
//! against the messages the run logged.

use std::collections::BTreeMap;

use serde_json::{json, Value};

mod common;

use common::{example, harness, workdir, write_executable, Run};

/// Answers `init` and `echo`; for each echo, a `ping` to the first node of service `a`
/// (which answers it with an error that this node ignores). Says its arguments on stderr.
const B_NODE: &str = r#"#!/usr/bin/env python3
import json, sys

print("args:", " ".join(sys.argv[1:]), file=sys.stderr, flush=True)
me, peer, n = None, None, 0

def send(dest, body):
    print(json.dumps({"src": me, "dest": dest, "body": body}), flush=True)

for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    kind = body.get("type")
    if kind == "init":
        me, peer = body["node_id"], body["services"]["a"][0]
        send(msg["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
    elif kind == "echo":
        n += 1
        send(peer, {"type": "ping", "msg_id": n})
        send(msg["src"], {"type": "echo_ok", "echo": body["echo"], "in_reply_to": body["msg_id"]})
"#;

/// `(src, dest, body)` of every message the run logged as sent (`--log-net-send`).
fn sent(log: &str) -> Vec<(String, String, Value)> {
    log.lines()
        .filter_map(|l| l.split_once(":send {:src ").map(|(_, rest)| rest))
        .map(|rest| {
            let (src, rest) = rest.split_once(", :dest ").unwrap();
            let (dest, body) = rest.split_once(", :body ").unwrap();
            let body = body.strip_suffix('}').unwrap();
            let unquote = |s: &str| s.trim_matches('"').to_string();
            (
                unquote(src),
                unquote(dest),
                serde_json::from_str(body).unwrap(),
            )
        })
        .collect()
}

/// The EDN map under `"name"` in `:services`, as compact text.
fn service<'a>(results: &'a str, name: &str) -> &'a str {
    let at = results
        .find(&format!("\"{name}\" {{:nodes"))
        .unwrap_or_else(|| panic!("no service {name}:\n{results}"));
    let rest = &results[at..];
    &rest[..rest.find(":by-node").unwrap()]
}

/// The `:to` map of a service: messages its nodes sent to each service's nodes.
fn to_counts(service: &str) -> BTreeMap<String, u64> {
    let at = service.find(":to {").unwrap() + ":to {".len();
    let inner = &service[at..at + service[at..].find('}').unwrap()];
    inner
        .split(", ")
        .map(|pair| {
            let (name, n) = pair.split_once(' ').unwrap();
            (name.trim_matches('"').to_string(), n.parse().unwrap())
        })
        .collect()
}

/// The integer after `key` in `text`.
fn number(text: &str, key: &str) -> u64 {
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("{key} not in {text}"));
    text[at + key.len()..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn two_services_get_their_own_inits_binaries_and_counts() {
    let dir = workdir("services");
    let b_node = dir.join("b-node");
    write_executable(&b_node, B_NODE);
    let a_spec = format!("a={}:2", example("echo_node").display());
    let b_spec = format!("b={}:3", b_node.display());
    let args = [
        "test",
        "-w",
        "echo",
        "--service",
        &a_spec,
        "--service",
        &b_spec,
        "--service-args",
        "b=--flag 'x y'",
        "--concurrency",
        "5",
        "--time-limit",
        "3",
        "--rate",
        "40",
        "--nemesis",
        "kill",
        "--nemesis-interval",
        "0.5",
        "--seed",
        "3",
        "--log-net-send",
        "--",
        "--common",
    ];
    let (status, output) = harness(&dir, &args, &[]);
    let r = Run {
        status,
        output,
        dir,
    };
    // Requests lost to killed nodes time out, which echo's checker counts against the
    // run: a verdict either way, and every restarted node answered its init.
    assert!(
        [0, 1].contains(&r.status),
        "exit {}:\n{}",
        r.status,
        r.output
    );
    assert_eq!(r.count(":failed-restarts"), 0, "{}", r.results());
    assert!(
        r.output.contains("Services: a n0 n1 (") && r.output.contains("; b n2 n3 n4 ("),
        "{}",
        r.output
    );
    let messages = sent(&r.file("jepsen.log"));
    let services = json!({"a": ["n0", "n1"], "b": ["n2", "n3", "n4"]});
    let mut inits: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (_, dest, body) in messages.iter().filter(|(_, _, b)| b["type"] == "init") {
        inits.entry(dest.clone()).or_default().push(body.clone());
    }
    assert_eq!(
        inits.keys().collect::<Vec<_>>(),
        ["n0", "n1", "n2", "n3", "n4"]
    );
    for (node, bodies) in &inits {
        let own = if ["n0", "n1"].contains(&node.as_str()) {
            &services["a"]
        } else {
            &services["b"]
        };
        let want = json!({"type": "init", "node_id": node, "node_ids": own,
                          "services": services, "msg_id": 1});
        assert!(bodies.iter().all(|b| *b == want), "{node}: {bodies:?}");
    }
    assert!(
        inits.values().any(|b| b.len() > 1),
        "a restart sends init again"
    );
    // b's binary alone got the common and its own arguments, at every start.
    for node in ["n2", "n3", "n4"] {
        let log = r.file(&format!("node-logs/{node}.log"));
        let starts = log.matches("args: --common --flag x y\n").count();
        assert_eq!(starts, inits[node].len(), "{node}: {log}");
    }
    assert_eq!(r.file("node-logs/n0.log"), "", "echo_node writes nothing");

    let results = r.results();
    let sent_by = |nodes: &[&str]| {
        messages
            .iter()
            .filter(|(src, _, _)| nodes.contains(&src.as_str()))
            .count() as u64
    };
    let (a, b) = (service(&results, "a"), service(&results, "b"));
    assert_eq!(number(a, ":send-count"), sent_by(&["n0", "n1"]), "{a}");
    assert_eq!(
        number(b, ":send-count"),
        sent_by(&["n2", "n3", "n4"]),
        "{b}"
    );
    let pings = messages
        .iter()
        .filter(|(_, _, b)| b["type"] == "ping")
        .count() as u64;
    assert!(pings > 0, "{results}");
    let (a_to, b_to) = (to_counts(a), to_counts(b));
    assert_eq!(b_to["a"], pings, "{b}");
    assert_eq!(b_to["b"], 0, "b's nodes never talk to each other: {b}");
    assert_eq!(a_to["a"], 0, "{a}");
    let errors_to_b = messages
        .iter()
        .filter(|(src, dest, _)| src == "n0" && dest.starts_with('n'))
        .count() as u64;
    assert_eq!(a_to["b"], errors_to_b, "{a}");
    assert!(errors_to_b > 0 && errors_to_b <= pings, "{a}");
    assert!(
        results.contains(":nodes [\"n2\" \"n3\" \"n4\"]"),
        "{results}"
    );
    let info: Value = serde_json::from_str(&r.file("run.json")).unwrap();
    assert_eq!(info["services"][1]["name"], "b", "{info}");
    assert_eq!(info["services"][1]["nodes"], services["b"], "{info}");
    assert_eq!(
        info["services"][1]["args"],
        json!(["--common", "--flag", "x y"])
    );
    assert_eq!(info["worker_nodes"], json!([0, 1, 2, 3, 4]), "{info}");
}
