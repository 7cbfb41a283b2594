//! Drives the gift-ID node through maelstrom-core's runtime, without processes: the
//! protocol on good and bad input, hostile clocks, and restarts in the same directory.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use giftid::layout::{decode, GiftType};
use giftid::node::GiftIds;
use maelstrom_core::{DirStorage, MemStorage, Now, Output, Runtime, Storage};
use serde_json::{json, Value};

const WALL0: u64 = 1_800_000_000_000;

struct Node {
    runtime: Runtime<GiftIds>,
    mono_ms: u64,
    /// Added to the wall clock: the clock nemesis, by hand.
    skew_ms: i64,
    next_msg_id: u64,
}

impl Node {
    fn start(storage: Box<dyn Storage>, nodes: &[&str]) -> (Node, Value) {
        let mut node = Node {
            runtime: Runtime::new(storage),
            mono_ms: 0,
            skew_ms: 0,
            next_msg_id: 0,
        };
        let init = node.request(json!({"type": "init", "node_id": "n7", "node_ids": nodes}));
        (node, init)
    }

    fn now(&self) -> Now {
        let wall = (WALL0 + self.mono_ms) as i64 + self.skew_ms;
        Now {
            mono: Duration::from_millis(self.mono_ms),
            wall: UNIX_EPOCH + Duration::from_millis(wall as u64),
        }
    }

    fn request(&mut self, mut body: Value) -> Value {
        self.next_msg_id += 1;
        body["msg_id"] = json!(self.next_msg_id);
        let line = json!({"src": "c1", "dest": "n7", "body": body}).to_string();
        let mut out = Output::default();
        self.runtime.handle_line(&line, self.now(), &mut out);
        assert!(out.fatal.is_none(), "{:?}", out.fatal);
        let text = String::from_utf8(out.stdout).unwrap();
        let reply: Value = serde_json::from_str(text.lines().last().expect("a reply")).unwrap();
        reply["body"].clone()
    }

    fn generate(&mut self) -> u64 {
        let reply = self.request(json!({"type": "generate"}));
        assert_eq!(reply["type"], "generate_ok", "{reply}");
        reply["id"].as_u64().unwrap()
    }
}

#[test]
fn generate_answers_with_an_id_only_and_decodes_to_its_parts() {
    let (mut n, init) = Node::start(Box::new(MemStorage::default()), &["n0", "n7"]);
    assert_eq!(init["type"], "init_ok");
    let reply = n.request(json!({"type": "generate"}));
    let mut keys: Vec<&str> = reply
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["id", "in_reply_to", "msg_id", "type"],
        "Maelstrom's closed schema"
    );
    let id = reply["id"].as_u64().unwrap();
    let parts = decode(id as i64).unwrap();
    assert_eq!((parts.workshop, parts.gift_type), (7, GiftType::Toy));
    assert_eq!(parts.unix_ms(), WALL0);

    let coal = n.request(json!({"type": "generate", "gift_type": "coal", "extra": 1}));
    assert_eq!(
        decode(coal["id"].as_i64().unwrap()).unwrap().gift_type,
        GiftType::Coal
    );

    let batch = n.request(json!({"type": "generate_batch", "count": 5, "gift_type": "coal"}));
    let ids: Vec<u64> = batch["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[1] > w[0]) && ids[0] > id);

    let decoded = n.request(json!({"type": "decode", "id": id}));
    assert_eq!(decoded["type"], "decode_ok");
    assert_eq!(decoded["workshop"], 7);
    assert_eq!(decoded["timestamp_ms"], WALL0);
    assert_eq!(decoded["gift_type"], "toy");

    let health = n.request(json!({"type": "health"}));
    assert_eq!(health["issued"], 7);
    assert_eq!(health["workshop"], 7);
}

#[test]
fn bad_requests_get_clear_errors() {
    let (mut n, _) = Node::start(Box::new(MemStorage::default()), &["n7"]);
    for (body, code) in [
        (json!({"type": "decode", "id": -5}), 12),
        (json!({"type": "decode", "id": "abc"}), 12),
        (json!({"type": "decode", "id": 1.5}), 12),
        (json!({"type": "generate_batch", "count": 0}), 12),
        (json!({"type": "generate_batch", "count": 5000}), 12),
        (json!({"type": "generate", "gift_type": "sock"}), 12),
        (json!({"type": "wrap"}), 10),
    ] {
        let reply = n.request(body.clone());
        assert_eq!(reply["type"], "error", "{body}");
        assert_eq!(reply["code"], code, "{body}: {reply}");
        assert!(!reply["text"].as_str().unwrap().is_empty());
    }
    assert!(n.generate() > 0, "still serving");
}

#[test]
fn a_cluster_too_big_for_the_layout_fails_init() {
    let names: Vec<String> = (0..1025).map(|i| format!("w{i}x")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut runtime: Runtime<GiftIds> = Runtime::new(Box::new(MemStorage::default()));
    let line = json!({"src": "c0", "dest": "n7", "body": {"type": "init", "msg_id": 1, "node_id": "w7x", "node_ids": names}});
    let mut out = Output::default();
    let now = Now {
        mono: Duration::ZERO,
        wall: UNIX_EPOCH + Duration::from_millis(WALL0),
    };
    runtime.handle_line(&line.to_string(), now, &mut out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("\"type\":\"error\"") && text.contains("1025 nodes"),
        "{text}"
    );
}

#[test]
fn clock_jumps_and_stalls_never_repeat_or_decrease_ids() {
    let (mut n, _) = Node::start(Box::new(MemStorage::default()), &["n7"]);
    let mut last = n.generate();
    for (skew, step) in [
        (-1, 0),
        (-30_000, 1),
        (-30_000, 0),
        (5_000, 1),
        (0, 1),
        (-2, 3),
    ] {
        n.skew_ms = skew;
        n.mono_ms += step;
        for _ in 0..100 {
            let id = n.generate();
            assert!(id > last, "skew {skew}: {id} after {last}");
            last = id;
        }
    }
    let health = n.request(json!({"type": "health"}));
    assert!(
        health["clock_regressions"].as_u64().unwrap() >= 3,
        "{health}"
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("giftid-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_restart_after_the_clock_went_back_continues_above_the_high_water_mark() {
    let dir = temp_dir("restart");
    let (mut n, _) = Node::start(Box::new(DirStorage::new(&dir)), &["n7"]);
    let mut last = 0;
    for _ in 0..5000 {
        n.mono_ms += 1;
        last = n.generate();
    }
    assert!(dir.join("high-water-mark").is_file());
    // Killed; the clock is set back a minute before the restart.
    let (mut r, init) = Node::start(Box::new(DirStorage::new(&dir)), &["n7"]);
    assert_eq!(init["type"], "init_ok");
    r.skew_ms = -60_000;
    let first = r.generate();
    assert!(first > last, "{first} after {last}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_corrupt_high_water_mark_fails_init_rather_than_risking_duplicates() {
    let dir = temp_dir("corrupt");
    std::fs::write(dir.join("high-water-mark"), "yesterday").unwrap();
    let (_, init) = Node::start(Box::new(DirStorage::new(&dir)), &["n7"]);
    assert_eq!(init["type"], "error");
    assert!(init["text"].as_str().unwrap().contains("corrupt"));
    std::fs::remove_dir_all(&dir).unwrap();
}
