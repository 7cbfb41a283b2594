//! Counter nodes for the harness's own tests (g-counter and pn-counter). By default a
//! state-based PN-counter CRDT: each node keeps the total of its own increments (`n0+`) and
//! of its own decrements (`n0-`), gossips that table to every other node every 100 ms;
//! merges take the maximum, reads return increments minus decrements. With `--local` a node never
//! gossips and reads only its own adds, so final reads disagree.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const GOSSIP: Duration = Duration::from_millis(100);

fn main() {
    let local = std::env::args().any(|a| a == "--local");
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut me = String::new();
    let mut peers: Vec<String> = Vec::new();
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let mut last_gossip = Instant::now();
    loop {
        let msg = match rx.recv_timeout(GOSSIP) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(msg) = msg {
            let body = &msg["body"];
            let reply_to = body["msg_id"].clone();
            let reply = match body["type"].as_str().unwrap_or("") {
                "init" => {
                    me = body["node_id"].as_str().unwrap_or("").to_string();
                    peers = body["node_ids"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|n| n.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    peers.retain(|p| *p != me);
                    Some(json!({"type": "init_ok"}))
                }
                "add" => {
                    let delta = body["delta"].as_i64().unwrap_or(0);
                    let sign = if delta < 0 { '-' } else { '+' };
                    *counts.entry(format!("{me}{sign}")).or_default() += delta.abs();
                    Some(json!({"type": "add_ok"}))
                }
                "read" => {
                    let value: i64 = counts
                        .iter()
                        .map(|(k, n)| if k.ends_with('-') { -n } else { *n })
                        .sum();
                    Some(json!({"type": "read_ok", "value": value}))
                }
                "counts" => {
                    if let Some(theirs) = body["counts"].as_object() {
                        for (node, n) in theirs {
                            let n = n.as_i64().unwrap_or(0);
                            let mine = counts.entry(node.clone()).or_default();
                            *mine = (*mine).max(n);
                        }
                    }
                    None
                }
                _ => Some(json!({"type": "error", "code": 10})),
            };
            if let Some(mut reply) = reply {
                reply["in_reply_to"] = reply_to;
                writeln!(
                    out,
                    "{}",
                    json!({"src": me, "dest": msg["src"], "body": reply})
                )
                .unwrap();
            }
        }
        if !local && !me.is_empty() && last_gossip.elapsed() >= GOSSIP {
            last_gossip = Instant::now();
            for p in &peers {
                let body = json!({"type": "counts", "counts": counts});
                writeln!(out, "{}", json!({"src": me, "dest": p, "body": body})).unwrap();
            }
        }
        out.flush().unwrap();
    }
}
