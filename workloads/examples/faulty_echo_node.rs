//! An echo node that misbehaves in one chosen way, for the harness's own tests:
//!
//! * `--garbage`: before each reply, prints a line that is not JSON and one that is JSON
//!   but not a valid envelope (the replies themselves are correct).
//! * `--unknown-dest`: with each reply, also sends a message to `n99`, which does not exist.
//! * `--crash-after N`: exits with status 3 on the N-th echo request, after a note on stderr.
//! * `--no-init`: never answers `init`.
//! * `--bad-init`: answers `init` with the wrong type.

use std::io::{self, BufRead, Write};

use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let crash_after: Option<u64> = args
        .iter()
        .position(|a| a == "--crash-after")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok());
    let mut out = io::stdout().lock();
    let mut echoes = 0u64;
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let body = &msg["body"];
        let me = msg["dest"].clone();
        let reply = match body["type"].as_str() {
            Some("init") if has("--no-init") => {
                eprintln!("ignoring init on purpose");
                continue;
            }
            Some("init") if has("--bad-init") => json!({"type": "init_not_ok"}),
            Some("init") => json!({"type": "init_ok"}),
            Some("echo") => {
                echoes += 1;
                if crash_after == Some(echoes) {
                    eprintln!("crashing on purpose after {echoes} echo requests");
                    std::process::exit(3);
                }
                if has("--garbage") {
                    writeln!(out, "hello, this is not JSON").unwrap();
                    writeln!(
                        out,
                        "{}",
                        json!({"src": me, "dest": msg["src"], "body": {}, "extra": 1})
                    )
                    .unwrap();
                }
                if has("--unknown-dest") {
                    writeln!(
                        out,
                        "{}",
                        json!({"src": me, "dest": "n99", "body": {"type": "hi"}})
                    )
                    .unwrap();
                }
                json!({"type": "echo_ok", "echo": body["echo"]})
            }
            _ => json!({"type": "error", "code": 10}),
        };
        let mut reply = reply;
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
