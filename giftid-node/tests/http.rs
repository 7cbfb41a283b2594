//! The HTTP service over real HTTP on loopback: every endpoint, bad input, and a restart
//! that resumes above the persisted high-water mark.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use giftid::http::{router, Service};
use giftid::layout::{decode, GiftType};
use serde_json::Value;

/// A server on a free loopback port, running until the test's runtime is dropped.
fn start(runtime: &tokio::runtime::Runtime, dir: &Path) -> SocketAddr {
    let service = Arc::new(Service::open(7, dir.to_path_buf()).unwrap());
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(service)).await });
        addr
    })
}

/// One HTTP/1.1 exchange: the status code and the JSON body.
fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("headers end");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("giftid-http-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn endpoints_answer_json_with_proper_statuses() {
    let rt = runtime();
    let dir = temp_dir("endpoints");
    let addr = start(&rt, &dir);

    let (status, body) = call(addr, "POST", "/api/v1/gift-id/generate", "");
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_i64().unwrap();
    assert_eq!(decode(id).unwrap().workshop, 7);

    let (status, body) = call(
        addr,
        "POST",
        "/api/v1/gift-id/generate",
        r#"{"gift_type":"coal","count":3}"#,
    );
    assert_eq!(status, 200);
    let ids: Vec<i64> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[1] > w[0]) && ids[0] > id);
    assert!(ids
        .iter()
        .all(|i| decode(*i).unwrap().gift_type == GiftType::Coal));

    let (status, body) = call(addr, "GET", &format!("/api/v1/gift-id/{id}/decode"), "");
    assert_eq!(status, 200);
    assert_eq!(body["workshop"], 7);
    assert_eq!(body["gift_type"], "toy");
    assert_eq!(
        body["timestamp_ms"].as_u64(),
        Some(decode(id).unwrap().unix_ms())
    );

    let (status, body) = call(addr, "GET", "/api/v1/gift-id/health", "");
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["generator"]["issued"], 4);

    for (method, path, body, want) in [
        ("GET", "/api/v1/gift-id/-3/decode", "", 400),
        ("GET", "/api/v1/gift-id/snowman/decode", "", 400),
        (
            "GET",
            "/api/v1/gift-id/99999999999999999999/decode",
            "",
            400,
        ),
        ("POST", "/api/v1/gift-id/generate", "{not json", 400),
        (
            "POST",
            "/api/v1/gift-id/generate",
            r#"{"gift_type":"sock"}"#,
            400,
        ),
        (
            "POST",
            "/api/v1/gift-id/generate",
            r#"{"colour":"red"}"#,
            400,
        ),
        ("POST", "/api/v1/gift-id/generate", r#"{"count":0}"#, 422),
        (
            "POST",
            "/api/v1/gift-id/generate",
            r#"{"count":100000}"#,
            422,
        ),
        ("GET", "/api/v1/elves", "", 404),
    ] {
        let (status, reply) = call(addr, method, path, body);
        assert_eq!(status, want, "{method} {path} {body}: {reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{reply}"
        );
    }
    drop(rt);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_restarted_service_continues_above_its_high_water_mark() {
    let dir = temp_dir("restart");
    let rt = runtime();
    let addr = start(&rt, &dir);
    let (_, body) = call(
        addr,
        "POST",
        "/api/v1/gift-id/generate",
        r#"{"count":1000}"#,
    );
    let last = body["ids"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_i64()
        .unwrap();
    drop(rt);
    let mark: u64 = std::fs::read_to_string(dir.join("high-water-mark"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(mark >= decode(last).unwrap().timestamp);

    let rt = runtime();
    let addr = start(&rt, &dir);
    let (_, body) = call(addr, "POST", "/api/v1/gift-id/generate", "");
    let first = body["id"].as_i64().unwrap();
    assert!(first > last);
    assert!(
        decode(first).unwrap().timestamp > mark,
        "starts above the mark"
    );
    drop(rt);
    std::fs::remove_dir_all(&dir).unwrap();
}
