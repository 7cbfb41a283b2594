//! The echo example as a real process: what the harness and Maelstrom will see.

mod common;
use common::example;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

fn spawn_echo() -> std::process::Child {
    Command::new(example("echo"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn echo")
}

#[test]
fn echo_binary_answers_every_line_and_exits_cleanly_on_eof() {
    let mut child = spawn_echo();
    let mut stdin = child.stdin.take().unwrap();
    let lines = [
        // A peer's message before init: held, answered after init from n0.
        json!({"src":"n1","dest":"n0","body":{"type":"echo","echo":"early","msg_id":1}}).to_string(),
        json!({"id":0,"src":"c0","dest":"n0","body":{"type":"init","msg_id":1,"node_id":"n0","node_ids":["n0","n1"]}}).to_string(),
        json!({"src":"c1","dest":"n0","body":{"type":"echo","echo":"Please echo 1","msg_id":1}}).to_string(),
        "this is not json".to_string(),
        json!({"src":"c1","dest":"n0","body":{"type":"echo","echo":[1,{"deep":true}],"msg_id":2}}).to_string(),
        json!({"src":"c1","dest":"n0","body":{"type":"teleport","msg_id":3}}).to_string(),
        "{\"src\":\"c1\",\"dest\":\"n0\",\"body\":{\"type\":\"echo\",\"echo\":\"\u{00e9}t\u{00e9}\",\"msg_id\":4}}".to_string(),
    ];
    for line in &lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);

    let stdout = BufReader::new(child.stdout.take().unwrap());
    let replies: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).expect("stdout carries only JSON lines"))
        .collect();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();

    assert!(status.success(), "exit status {status:?}; stderr: {stderr}");
    let summary: Vec<(String, String, Value)> = replies
        .iter()
        .map(|m| {
            let body = &m["body"];
            assert_eq!(m["src"], "n0");
            assert_eq!(m.as_object().unwrap().len(), 3, "only src, dest, body: {m}");
            assert!(body["msg_id"].is_u64(), "{m}");
            (
                m["dest"].as_str().unwrap().to_string(),
                body["type"].as_str().unwrap().to_string(),
                body["in_reply_to"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("c0".into(), "init_ok".into(), json!(1)),
            ("n1".into(), "echo_ok".into(), json!(1)),
            ("c1".into(), "echo_ok".into(), json!(1)),
            ("c1".into(), "echo_ok".into(), json!(2)),
            ("c1".into(), "error".into(), json!(3)),
            ("c1".into(), "echo_ok".into(), json!(4)),
        ]
    );
    assert_eq!(replies[1]["body"]["echo"], "early");
    assert_eq!(replies[2]["body"]["echo"], "Please echo 1");
    assert_eq!(replies[3]["body"]["echo"], json!([1, {"deep": true}]));
    assert_eq!(replies[4]["body"]["code"], 10);
    assert!(replies[4]["body"]["text"]
        .as_str()
        .unwrap()
        .contains("teleport"));
    assert_eq!(replies[5]["body"]["echo"], "\u{00e9}t\u{00e9}");
    assert!(stderr.contains("this is not json"), "stderr: {stderr}");
    assert!(stderr.contains("teleport"), "stderr: {stderr}");
}

#[test]
fn echo_binary_skips_bytes_that_are_not_utf8() {
    let mut child = spawn_echo();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"{\"src\":\"c0\",\"dest\":\"n0\",\"body\":{\"type\":\"init\",\"msg_id\":1,\"node_id\":\"n0\",\"node_ids\":[\"n0\"]}}\n\xff\xfe garbage\n{\"src\":\"c1\",\"dest\":\"n0\",\"body\":{\"type\":\"echo\",\"echo\":5,\"msg_id\":9}}")
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(
        lines[1]["body"]["in_reply_to"], 9,
        "a last line without newline is handled"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("not UTF-8"));
}
