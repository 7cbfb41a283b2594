//! A correct echo node for the harness's own tests: answers `init` and `echo`, and
//! `not-supported` (code 10) to anything else.

use std::io::{self, BufRead, Write};

use serde_json::{json, Value};

fn main() {
    let mut out = io::stdout().lock();
    let mut next_id = 0u64;
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let body = &msg["body"];
        next_id += 1;
        let reply = match body["type"].as_str() {
            Some("init") => json!({"type": "init_ok"}),
            Some("echo") => json!({"type": "echo_ok", "echo": body["echo"]}),
            _ => json!({"type": "error", "code": 10, "text": "not supported"}),
        };
        let mut reply = reply;
        reply["msg_id"] = json!(next_id);
        reply["in_reply_to"] = body["msg_id"].clone();
        let env = json!({"src": msg["dest"], "dest": msg["src"], "body": reply});
        writeln!(out, "{env}").unwrap();
        out.flush().unwrap();
    }
}
