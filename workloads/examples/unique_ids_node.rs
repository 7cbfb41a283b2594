//! Unique-id nodes for the harness's own tests. Correct by default (`<node>-<counter>`);
//! with the argument `--from-one` every node counts 1, 2, 3, … (duplicates across nodes);
//! with `--extra-field` each `generate_ok` also carries a `workshop` key, which Maelstrom's
//! closed reply schema refuses.

use std::io::{self, BufRead, Write};

use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let from_one = args.iter().any(|a| a == "--from-one");
    let extra = args.iter().any(|a| a == "--extra-field");
    let mut me = String::new();
    let mut counter = 0u64;
    let mut out = io::BufWriter::new(io::stdout().lock());
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let body = &msg["body"];
        counter += 1;
        let mut reply = match body["type"].as_str() {
            Some("init") => {
                me = body["node_id"].as_str().unwrap_or("?").to_string();
                json!({"type": "init_ok"})
            }
            Some("generate") if from_one => json!({"type": "generate_ok", "id": counter - 1}),
            Some("generate") => json!({"type": "generate_ok", "id": format!("{me}-{counter}")}),
            _ => json!({"type": "error", "code": 10}),
        };
        if extra && reply["type"] == "generate_ok" {
            reply["workshop"] = json!(3);
        }
        reply["in_reply_to"] = body["msg_id"].clone();
        writeln!(
            out,
            "{}",
            json!({"src": me, "dest": msg["src"], "body": reply})
        )
        .unwrap();
        out.flush().unwrap();
    }
}
