//! A g-counter node built on Maelstrom's `lin-kv` service, for the harness's own tests of
//! the services: `add` runs a read / compare-and-set loop on one shared key (created with
//! `create_if_not_exists`), `read` reads it. Requests to the service are asynchronous: each
//! client request waits in a table keyed by the service request's `msg_id`.

use std::collections::HashMap;
use std::io::{self, BufRead, Write};

use serde_json::{json, Value};

const KEY: &str = "counter";

/// A client request in progress.
struct Job {
    client: Value,
    client_msg_id: Value,
    /// `Some(delta)` for an add, `None` for a read.
    delta: Option<i64>,
}

struct Node<W: Write> {
    out: W,
    me: String,
    next_id: u64,
    jobs: HashMap<u64, Job>,
}

impl<W: Write> Node<W> {
    fn send(&mut self, dest: &Value, body: Value) {
        writeln!(
            self.out,
            "{}",
            json!({"src": self.me, "dest": dest, "body": body})
        )
        .unwrap();
    }

    fn reply(&mut self, job: &Job, mut body: Value) {
        body["in_reply_to"] = job.client_msg_id.clone();
        self.send(&job.client.clone(), body);
    }

    fn rpc(&mut self, mut body: Value, job: Job) {
        self.next_id += 1;
        body["msg_id"] = json!(self.next_id);
        self.send(&json!("lin-kv"), body);
        self.jobs.insert(self.next_id, job);
    }
}

fn main() {
    let mut node = Node {
        out: io::BufWriter::new(io::stdout().lock()),
        me: String::new(),
        next_id: 0,
        jobs: HashMap::new(),
    };
    for line in io::stdin().lock().lines().map_while(Result::ok) {
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let body = &msg["body"];
        let job = Job {
            client: msg["src"].clone(),
            client_msg_id: body["msg_id"].clone(),
            delta: body["delta"].as_i64(),
        };
        match body["type"].as_str().unwrap_or("") {
            "init" => {
                node.me = body["node_id"].as_str().unwrap_or("").to_string();
                node.reply(&job, json!({"type": "init_ok"}));
            }
            "add" | "read" => node.rpc(json!({"type": "read", "key": KEY}), job),
            kind @ ("read_ok" | "cas_ok" | "error") => {
                let Some(job) = body["in_reply_to"]
                    .as_u64()
                    .and_then(|id| node.jobs.remove(&id))
                else {
                    continue;
                };
                let current = match kind {
                    "read_ok" => body["value"].as_i64(),
                    "error" if body["code"] == 20 => Some(0),
                    _ => None,
                };
                match (kind, job.delta, current) {
                    ("cas_ok", _, _) => node.reply(&job, json!({"type": "add_ok"})),
                    (_, None, Some(v)) => node.reply(&job, json!({"type": "read_ok", "value": v})),
                    (_, Some(d), Some(v)) => {
                        let cas = json!({"type": "cas", "key": KEY, "from": v, "to": v + d,
                                         "create_if_not_exists": kind == "error"});
                        node.rpc(cas, job);
                    }
                    // A lost CAS race (code 22): read again and retry.
                    _ => node.rpc(json!({"type": "read", "key": KEY}), job),
                }
            }
            _ => {}
        }
        node.out.flush().unwrap();
    }
}
