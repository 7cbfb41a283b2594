//! Broadcast nodes for the harness's own tests. By default a fault-tolerant one: every new
//! message is forwarded to each topology neighbour and re-sent every 250 ms until that
//! neighbour acknowledges it, so it survives partitions. With `--once` it forwards each new
//! message a single time and never retries, so messages sent across a partition are lost.
//! With `--g-set` it speaks the g-set workload instead (`add` of an `element`, `read_ok`
//! with `value`) and gossips to every other node, as g-set sends no topology.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, BufRead, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const RETRY: Duration = Duration::from_millis(250);

fn main() {
    let once = std::env::args().any(|a| a == "--once");
    let g_set = std::env::args().any(|a| a == "--g-set");
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
    let mut neighbours: Vec<String> = Vec::new();
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    let mut next_id = 0u64;
    // msg_id → (neighbour, message, last sent)
    let mut unacked: HashMap<u64, (String, i64, Instant)> = HashMap::new();
    loop {
        let msg = match rx.recv_timeout(RETRY / 2) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(msg) = msg {
            let body = &msg["body"];
            let src = msg["src"].as_str().unwrap_or("").to_string();
            let reply_to = body["msg_id"].clone();
            match body["type"].as_str().unwrap_or("") {
                "init" => {
                    me = body["node_id"].as_str().unwrap_or("").to_string();
                    if g_set {
                        neighbours = body["node_ids"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|n| n.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default();
                        neighbours.retain(|n| *n != me);
                    }
                    send(
                        &mut out,
                        &me,
                        &src,
                        json!({"type": "init_ok", "in_reply_to": reply_to}),
                    );
                }
                "topology" => {
                    neighbours = body["topology"][&me]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|n| n.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    send(
                        &mut out,
                        &me,
                        &src,
                        json!({"type": "topology_ok", "in_reply_to": reply_to}),
                    );
                }
                "read" if g_set => {
                    send(
                        &mut out,
                        &me,
                        &src,
                        json!({"type": "read_ok", "value": seen, "in_reply_to": reply_to}),
                    );
                }
                "read" => {
                    send(
                        &mut out,
                        &me,
                        &src,
                        json!({"type": "read_ok", "messages": seen, "in_reply_to": reply_to}),
                    );
                }
                "broadcast" | "gossip" | "add" => {
                    let m = body["message"]
                        .as_i64()
                        .or(body["element"].as_i64())
                        .unwrap_or(0);
                    let ack = match body["type"].as_str().unwrap_or("") {
                        "broadcast" => "broadcast_ok",
                        "add" => "add_ok",
                        _ => "gossip_ok",
                    };
                    send(
                        &mut out,
                        &me,
                        &src,
                        json!({"type": ack, "in_reply_to": reply_to}),
                    );
                    if seen.insert(m) {
                        for n in neighbours.iter().filter(|n| **n != src) {
                            next_id += 1;
                            send(
                                &mut out,
                                &me,
                                n,
                                json!({"type": "gossip", "message": m, "msg_id": next_id}),
                            );
                            if !once {
                                unacked.insert(next_id, (n.clone(), m, Instant::now()));
                            }
                        }
                    }
                }
                "gossip_ok" => {
                    if let Some(id) = body["in_reply_to"].as_u64() {
                        unacked.remove(&id);
                    }
                }
                _ => {}
            }
        }
        let now = Instant::now();
        for (id, (dest, m, sent)) in unacked.iter_mut() {
            if now.duration_since(*sent) >= RETRY {
                *sent = now;
                send(
                    &mut out,
                    &me,
                    dest,
                    json!({"type": "gossip", "message": *m, "msg_id": *id}),
                );
            }
        }
        out.flush().unwrap();
    }
}

fn send(out: &mut impl Write, me: &str, dest: &str, body: Value) {
    writeln!(out, "{}", json!({"src": me, "dest": dest, "body": body})).unwrap();
}
