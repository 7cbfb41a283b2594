//! Throughput of the stdin/stdout driver, measured against baselines in the same run.
//!
//! Pipes N echo requests (default 1,000,000; `ECHO_BENCH_REQUESTS` overrides) through three
//! processes and reports requests per second for each:
//! - `cat`: the pipe itself, the ceiling for any node;
//! - a minimal serde_json loop (this binary re-run with `--baseline`): parse, build the
//!   reply, write, with nothing else;
//! - the echo example on maelstrom-core's driver.
//!
//! The runtime's overhead is the ratio of the last two. Build the example first:
//! `cargo build --release --examples -p maelstrom-core` (or `make bench-core`).

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};

fn main() {
    if std::env::args().any(|a| a == "--baseline") {
        minimal_loop();
        return;
    }
    let requests: usize = std::env::var("ECHO_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let input = build_input(requests);
    let echo = example("echo");
    let me = std::env::current_exe().expect("bench binary path");

    println!(
        "driver benchmark: {requests} echo requests, {} MB of input",
        input.len() / 1_000_000
    );
    let cat = measure(
        "cat (pipe ceiling)",
        Command::new("cat"),
        &input,
        requests + 1,
    );
    let mut baseline_cmd = Command::new(&me);
    baseline_cmd.arg("--baseline");
    let baseline = measure(
        "minimal serde_json loop",
        baseline_cmd,
        &input,
        requests + 1,
    );
    let runtime = measure(
        "maelstrom-core echo",
        Command::new(&echo),
        &input,
        requests + 1,
    );
    println!();
    println!("echo through maelstrom-core: {:.0} requests/s", runtime);
    println!(
        "minimal loop / maelstrom-core: {:.2}x (target: at most 2.00x)",
        baseline / runtime
    );
    println!("cat / maelstrom-core: {:.2}x", cat / runtime);
}

fn example(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("bench binary path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("examples").join(name);
    if !path.exists() {
        eprintln!(
            "{} is missing: run `cargo build --release --examples -p maelstrom-core`",
            path.display()
        );
        std::process::exit(2);
    }
    path
}

fn build_input(requests: usize) -> Vec<u8> {
    let mut input = Vec::with_capacity(requests * 100);
    let init = json!({"id":0,"src":"c0","dest":"n0","body":{"type":"init","msg_id":1,"node_id":"n0","node_ids":["n0"]}});
    writeln!(input, "{init}").unwrap();
    for i in 0..requests {
        let client = i % 8 + 1;
        let line = json!({"id": i + 1, "src": format!("c{client}"), "dest": "n0",
            "body": {"echo": format!("Please echo {}", i % 128), "type": "echo", "msg_id": i / 8 + 1}});
        writeln!(input, "{line}").unwrap();
    }
    input
}

/// Runs `command` with `input` on stdin and returns output lines per second; checks that
/// every request got exactly one line back.
fn measure(label: &str, mut command: Command, input: &[u8], expected_lines: usize) -> f64 {
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {label}: {err}"));
    let mut stdin = child.stdin.take().unwrap();
    let feed = input.to_vec();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&feed).unwrap();
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0usize;
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
    }
    writer.join().unwrap();
    child.wait().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(
        lines, expected_lines,
        "{label} answered {lines} lines, expected {expected_lines}"
    );
    let rate = lines as f64 / secs;
    println!("{label:<28} {:>8.3} s {:>12.0} lines/s", secs, rate);
    rate
}

/// The least a node can do: parse each line, build the reply, write it.
fn minimal_loop() {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let lines = BufReader::with_capacity(64 * 1024, stdin.lock()).lines();
    for (next_id, line) in (1u64..).zip(lines) {
        let line = line.unwrap();
        let msg: Value = serde_json::from_str(&line).unwrap();
        let body = &msg["body"];
        let kind = if body["type"] == "init" {
            "init_ok"
        } else {
            "echo_ok"
        };
        let reply = json!({"src": msg["dest"], "dest": msg["src"],
            "body": {"type": kind, "echo": body["echo"], "msg_id": next_id, "in_reply_to": body["msg_id"]}});
        serde_json::to_writer(&mut out, &reply).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
}
