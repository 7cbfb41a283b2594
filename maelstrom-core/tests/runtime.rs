//! Drives [`Runtime`] directly, without processes or tokio: every behaviour a node binary
//! shows on good and bad input, checked line by line.

use std::time::{Duration, UNIX_EPOCH};

use maelstrom_core::node_dir::{NodeDirs, RunId};
use maelstrom_core::{
    Context, DirStorage, InitError, MemStorage, Message, Node, Now, Outbox, Output, RawMessage,
    RpcError, Runtime, Storage, TimerId,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Msg {
    Echo {
        echo: Value,
    },
    EchoOk {
        echo: Value,
    },
    Boom,
    /// Asks the node to read `key` from lin-kv and report the outcome to `report`.
    Fetch {
        key: String,
        report: String,
    },
    Fetched {
        outcome: String,
    },
    /// lin-kv's read, as the probe sends it.
    Read {
        key: String,
    },
    Arm {
        ms: u64,
        label: String,
    },
    Disarm,
    Fired {
        label: String,
    },
    Remember {
        note: String,
    },
    Remembered,
    /// Asks the node to append `line` to its journal.
    Jot {
        line: String,
    },
    Jotted,
}

#[derive(Debug)]
struct Probe {
    last_timer: Option<TimerId>,
}

impl Node for Probe {
    type Msg = Msg;
    type Timer = (String, String);
    type Call = String;

    fn init(ctx: &Context, storage: &dyn Storage, _: &mut Outbox<Self>) -> Result<Self, InitError> {
        if ctx.node_id == "bad" {
            return Err(InitError::new("node id bad is not allowed"));
        }
        assert!(storage.load("nothing").unwrap().is_none());
        Ok(Probe { last_timer: None })
    }

    fn on_message(&mut self, ctx: &Context, msg: Message<Msg>, out: &mut Outbox<Self>) {
        let (from, payload) = msg.into_parts();
        match payload {
            Msg::Echo { echo } => out.reply(&from, Msg::EchoOk { echo }),
            Msg::Boom => panic!("boom requested by {}", from.src),
            Msg::Fetch { key, report } => {
                let read = Msg::Read { key };
                out.rpc("lin-kv", read, Duration::from_millis(100), report);
            }
            Msg::Arm { ms, label } => {
                self.last_timer = Some(out.set_timer(Duration::from_millis(ms), (from.src, label)));
            }
            Msg::Disarm => {
                if let Some(id) = self.last_timer.take() {
                    out.cancel_timer(id);
                }
            }
            Msg::Remember { note } => {
                out.persist("note", note.into_bytes());
                out.reply(&from, Msg::Remembered);
            }
            Msg::Jot { line } => {
                out.append("journal", format!("{line}\n").into_bytes());
                out.reply(&from, Msg::Jotted);
            }
            Msg::EchoOk { .. }
            | Msg::Fetched { .. }
            | Msg::Read { .. }
            | Msg::Fired { .. }
            | Msg::Remembered
            | Msg::Jotted => {
                let _ = ctx;
            }
        }
    }

    fn on_timer(&mut self, _: &Context, (dest, label): (String, String), out: &mut Outbox<Self>) {
        out.send(dest, Msg::Fired { label });
    }

    fn on_reply(
        &mut self,
        _: &Context,
        report: String,
        reply: Result<RawMessage, RpcError>,
        out: &mut Outbox<Self>,
    ) {
        let outcome = match reply {
            Ok(msg) => {
                let body: Value = serde_json::from_str(msg.body_json()).unwrap_or_default();
                format!("{} {}", msg.kind, body["value"])
            }
            Err(RpcError::Timeout) => "timed out".to_string(),
            Err(RpcError::Remote(e)) => format!("error {}", e.text.unwrap_or_default()),
        };
        out.send(report, Msg::Fetched { outcome });
    }
}

struct Harness {
    runtime: Runtime<Probe>,
    now_ms: u64,
    logs: Vec<String>,
}

impl Harness {
    fn new() -> Self {
        Self::with_storage(Box::new(MemStorage::default()))
    }

    fn with_storage(storage: Box<dyn Storage>) -> Self {
        Harness {
            runtime: Runtime::new(storage),
            now_ms: 0,
            logs: Vec::new(),
        }
    }

    fn now(&self) -> Now {
        Now {
            mono: Duration::from_millis(self.now_ms),
            wall: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + self.now_ms),
        }
    }

    fn collect(&mut self, out: Output) -> Vec<Value> {
        self.logs.extend(out.logs);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).expect("every output line is JSON"))
            .collect()
    }

    fn line(&mut self, line: &str) -> Vec<Value> {
        let mut out = Output::default();
        self.runtime.handle_line(line, self.now(), &mut out);
        self.collect(out)
    }

    fn send(&mut self, src: &str, body: Value) -> Vec<Value> {
        self.line(&json!({"src": src, "dest": "n1", "body": body}).to_string())
    }

    fn init(&mut self) -> Vec<Value> {
        self.send(
            "c0",
            json!({"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3"]}),
        )
    }

    fn advance(&mut self, ms: u64) -> Vec<Value> {
        self.now_ms += ms;
        let mut out = Output::default();
        self.runtime.fire_due(self.now(), &mut out);
        self.collect(out)
    }
}

#[test]
fn init_is_answered_with_init_ok_from_the_assigned_id() {
    let mut h = Harness::new();
    let out = h.init();
    assert_eq!(
        out,
        vec![json!({"src":"n1","dest":"c0","body":{"type":"init_ok","msg_id":1,"in_reply_to":1}})]
    );
    assert_eq!(h.runtime.context().node_ids, vec!["n1", "n2", "n3"]);
    assert_eq!(
        h.runtime.context().peers().collect::<Vec<_>>(),
        vec!["n2", "n3"]
    );
}

#[test]
fn requests_get_replies_with_fresh_msg_ids() {
    let mut h = Harness::new();
    h.init();
    let first = h.send("c1", json!({"type":"echo","echo":"a","msg_id":7}));
    let second = h.send("c1", json!({"type":"echo","echo":{"n":[1,2]},"msg_id":8}));
    assert_eq!(
        first[0],
        json!({"src":"n1","dest":"c1","body":{"type":"echo_ok","echo":"a","msg_id":2,"in_reply_to":7}})
    );
    assert_eq!(second[0]["body"]["echo"], json!({"n":[1,2]}));
    assert_eq!(second[0]["body"]["in_reply_to"], 8);
    assert_eq!(second[0]["body"]["msg_id"], 3);
}

#[test]
fn messages_before_init_are_held_then_handled_in_order() {
    let mut h = Harness::new();
    assert!(h
        .send("n2", json!({"type":"echo","echo":1,"msg_id":1}))
        .is_empty());
    assert!(h
        .send("c5", json!({"type":"echo","echo":2,"msg_id":1}))
        .is_empty());
    assert_eq!(h.runtime.held(), 2);
    let out = h.init();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0]["body"]["type"], "init_ok");
    assert_eq!(out[1]["dest"], "n2");
    assert_eq!(
        out[1]["src"], "n1",
        "held messages are answered from the real id"
    );
    assert_eq!(out[1]["body"]["echo"], 1);
    assert_eq!(out[2]["dest"], "c5");
    assert_eq!(h.runtime.held(), 0);
}

#[test]
fn held_messages_are_bounded_and_the_excess_is_dropped_without_reply() {
    let mut h = Harness::new();
    for i in 0..maelstrom_core::runtime::HELD_LIMIT + 3 {
        let out = h.send("n2", json!({"type":"echo","echo":i,"msg_id":i}));
        assert!(out.is_empty());
    }
    assert_eq!(h.runtime.held(), maelstrom_core::runtime::HELD_LIMIT);
    assert_eq!(
        h.logs
            .iter()
            .filter(|l| l.contains("received before init"))
            .count(),
        3
    );
    let out = h.init();
    assert_eq!(out.len(), 1 + maelstrom_core::runtime::HELD_LIMIT);
}

#[test]
fn a_line_that_is_not_json_is_logged_and_skipped() {
    let mut h = Harness::new();
    h.init();
    for bad in [
        "hello there",
        "{\"src\":",
        "[1,2,3]",
        "{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{\"echo\":1}}",
    ] {
        assert!(h.line(bad).is_empty(), "{bad}");
    }
    assert_eq!(
        h.logs
            .iter()
            .filter(|l| l.starts_with("skipping input line"))
            .count(),
        4
    );
    assert!(
        h.logs.iter().any(|l| l.contains("hello there")),
        "the log quotes the line"
    );
    let out = h.send("c1", json!({"type":"echo","echo":"still here","msg_id":1}));
    assert_eq!(out[0]["body"]["echo"], "still here");
}

#[test]
fn an_unknown_request_type_gets_not_supported_naming_the_type() {
    let mut h = Harness::new();
    h.init();
    let out = h.send("c1", json!({"type":"frobnicate","msg_id":4}));
    assert_eq!(out.len(), 1);
    let body = &out[0]["body"];
    assert_eq!(body["type"], "error");
    assert_eq!(body["code"], 10);
    assert_eq!(body["in_reply_to"], 4);
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("\"frobnicate\"") && text.contains("`echo`"),
        "{text}"
    );
}

#[test]
fn replies_and_errors_of_unknown_type_are_never_answered() {
    let mut h = Harness::new();
    h.init();
    assert!(h
        .send("n2", json!({"type":"frobnicate_ok","in_reply_to":99}))
        .is_empty());
    assert!(h
        .send("n2", json!({"type":"error","code":10,"in_reply_to":98}))
        .is_empty());
    assert!(h
        .send("n2", json!({"type":"error","code":10,"msg_id":5}))
        .is_empty());
}

#[test]
fn a_known_type_with_a_bad_body_gets_malformed_request() {
    let mut h = Harness::new();
    h.init();
    let out = h.send(
        "c1",
        json!({"type":"arm","ms":"soon","label":"x","msg_id":3}),
    );
    assert_eq!(out[0]["body"]["code"], 12);
    assert!(out[0]["body"]["text"].as_str().unwrap().contains("arm"));
}

#[test]
fn a_panicking_handler_is_reported_and_the_request_answered_with_crash() {
    let mut h = Harness::new();
    h.init();
    let out = h.send("c3", json!({"type":"boom","msg_id":11}));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["body"]["code"], 13);
    assert_eq!(out[0]["body"]["in_reply_to"], 11);
    assert!(out[0]["body"]["text"]
        .as_str()
        .unwrap()
        .contains("boom requested by c3"));
    let log = h
        .logs
        .iter()
        .find(|l| l.contains("handler panicked"))
        .unwrap();
    assert!(
        log.contains("\"type\":\"boom\""),
        "the log shows the offending message: {log}"
    );
    let out = h.send("c3", json!({"type":"echo","echo":1,"msg_id":12}));
    assert_eq!(out[0]["body"]["type"], "echo_ok", "the node keeps serving");
}

#[test]
fn rpc_replies_reach_on_reply_with_their_call_tag() {
    let mut h = Harness::new();
    h.init();
    let out = h.send(
        "c1",
        json!({"type":"fetch","key":"k","report":"c9","msg_id":1}),
    );
    assert_eq!(out[0]["dest"], "lin-kv");
    assert_eq!(out[0]["body"], json!({"type":"read","key":"k","msg_id":2}));
    let out = h.line(
        r#"{"src":"lin-kv","dest":"n1","body":{"type":"read_ok","value":42,"in_reply_to":2}}"#,
    );
    assert_eq!(out[0]["dest"], "c9");
    assert_eq!(out[0]["body"]["outcome"], "read_ok 42");
    // The deadline passed long ago by the time it is checked: no second outcome.
    assert!(h.advance(1_000).is_empty());
}

#[test]
fn rpc_error_replies_are_typed() {
    let mut h = Harness::new();
    h.init();
    h.send(
        "c1",
        json!({"type":"fetch","key":"k","report":"c9","msg_id":1}),
    );
    let out = h.line(r#"{"src":"lin-kv","dest":"n1","body":{"type":"error","code":20,"text":"key does not exist","in_reply_to":2}}"#);
    assert_eq!(out[0]["body"]["outcome"], "error key does not exist");
}

#[test]
fn an_unanswered_rpc_times_out_exactly_once() {
    let mut h = Harness::new();
    h.init();
    h.send(
        "c1",
        json!({"type":"fetch","key":"k","report":"c9","msg_id":1}),
    );
    assert_eq!(h.runtime.next_deadline(), Some(Duration::from_millis(100)));
    assert!(h.advance(99).is_empty());
    let out = h.advance(1);
    assert_eq!(out[0]["body"]["outcome"], "timed out");
    assert!(h.advance(1_000).is_empty());
    // A reply that turns up after the timeout is not a reply to anything pending; it is
    // not a known type, and being a reply it is not answered either.
    let late = h.line(
        r#"{"src":"lin-kv","dest":"n1","body":{"type":"read_ok","value":1,"in_reply_to":2}}"#,
    );
    assert!(late.is_empty());
}

#[test]
fn timers_fire_in_order_and_can_be_cancelled() {
    let mut h = Harness::new();
    h.init();
    h.send("c1", json!({"type":"arm","ms":50,"label":"late"}));
    h.send("c2", json!({"type":"arm","ms":20,"label":"early"}));
    h.send("c3", json!({"type":"arm","ms":30,"label":"cancelled"}));
    h.send("c3", json!({"type":"disarm"}));
    assert!(h.advance(19).is_empty());
    let out = h.advance(40);
    let labels: Vec<_> = out.iter().map(|m| m["body"]["label"].clone()).collect();
    assert_eq!(labels, vec![json!("early"), json!("late")]);
    assert!(h.advance(1_000).is_empty());
}

#[test]
fn persisted_state_is_stored_before_the_reply_leaves() {
    #[derive(Clone, Default)]
    struct Shared(std::rc::Rc<std::cell::RefCell<MemStorage>>);
    impl Storage for Shared {
        fn load(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
            self.0.borrow().load(name)
        }
        fn store(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
            self.0.borrow_mut().store(name, bytes)
        }
        fn append(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
            self.0.borrow_mut().append(name, bytes)
        }
    }
    let shared = Shared::default();
    let mut h = Harness::with_storage(Box::new(shared.clone()));
    h.init();
    let out = h.send("c1", json!({"type":"remember","note":"milk","msg_id":1}));
    assert_eq!(out[0]["body"]["type"], "remembered");
    assert_eq!(shared.0.borrow().files["note"], b"milk");
    for (i, line) in ["eggs", "flour"].into_iter().enumerate() {
        let out = h.send("c1", json!({"type":"jot","line":line,"msg_id":2 + i}));
        assert_eq!(out[0]["body"]["type"], "jotted");
    }
    assert_eq!(shared.0.borrow().files["journal"], b"eggs\nflour\n");
}

#[test]
fn a_failed_persist_silences_the_node() {
    struct Broken;
    impl Storage for Broken {
        fn load(&self, _: &str) -> std::io::Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn store(&mut self, _: &str, _: &[u8]) -> std::io::Result<()> {
            Err(std::io::Error::other("disk full"))
        }
    }
    let mut h = Harness::with_storage(Box::new(Broken));
    h.init();
    let mut out = Output::default();
    h.runtime.handle_line(
        r#"{"src":"c1","dest":"n1","body":{"type":"remember","note":"x","msg_id":1}}"#,
        h.now(),
        &mut out,
    );
    assert!(
        out.stdout.is_empty(),
        "no reply may promise what was not stored"
    );
    assert!(out.fatal.unwrap().contains("disk full"));
}

#[test]
fn a_failed_append_silences_the_node() {
    struct Full;
    impl Storage for Full {
        fn load(&self, _: &str) -> std::io::Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn store(&mut self, _: &str, _: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
        fn append(&mut self, _: &str, _: &[u8]) -> std::io::Result<()> {
            Err(std::io::Error::other("disk full"))
        }
    }
    let mut h = Harness::with_storage(Box::new(Full));
    h.init();
    let mut out = Output::default();
    h.runtime.handle_line(
        r#"{"src":"c1","dest":"n1","body":{"type":"jot","line":"x","msg_id":1}}"#,
        h.now(),
        &mut out,
    );
    assert!(out.stdout.is_empty(), "no reply after a failed append");
    let fatal = out.fatal.unwrap();
    assert!(
        fatal.contains("journal") && fatal.contains("disk full"),
        "{fatal}"
    );
}

#[test]
fn a_refused_init_is_answered_with_an_error_and_a_later_init_can_succeed() {
    let mut h = Harness::new();
    let out = h.send(
        "c0",
        json!({"type":"init","msg_id":1,"node_id":"bad","node_ids":["bad"]}),
    );
    assert_eq!(out[0]["body"]["type"], "error");
    assert_eq!(out[0]["body"]["code"], 12);
    assert!(out[0]["body"]["text"]
        .as_str()
        .unwrap()
        .contains("not allowed"));
    assert!(h.runtime.node().is_none());
    assert_eq!(h.init()[0]["body"]["type"], "init_ok");
}

#[test]
fn a_malformed_init_is_answered_from_the_addressed_id() {
    let mut h = Harness::new();
    let out = h.send("c0", json!({"type":"init","msg_id":1,"node_id":"n1"}));
    assert_eq!(out[0]["src"], "n1");
    assert_eq!(out[0]["body"]["code"], 12);
    assert!(h.runtime.node().is_none());
}

#[test]
fn init_names_the_services_of_a_cluster_of_several_binaries() {
    let mut h = Harness::new();
    assert!(h.init().iter().any(|m| m["body"]["type"] == "init_ok"));
    assert!(h.runtime.context().services.is_empty(), "absent: none");
    assert!(h.runtime.context().service("queue").is_empty());

    let mut h = Harness::new();
    let services = json!({"giftid": ["n0"], "queue": ["n1", "n2"], "matcher": ["n3"]});
    let init = json!({"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2"],
        "services": services});
    assert_eq!(h.send("c0", init)[0]["body"]["type"], "init_ok");
    let ctx = h.runtime.context();
    assert_eq!(ctx.node_ids, vec!["n1", "n2"]);
    assert_eq!(ctx.service("queue"), ["n1", "n2"]);
    assert_eq!(ctx.service("giftid"), ["n0"]);
    assert_eq!(ctx.services.len(), 3);
}

#[test]
fn a_malformed_services_field_refuses_init_clearly() {
    for services in [json!(["n0"]), json!({"queue": "n0"}), json!({"queue": [1]})] {
        let mut h = Harness::new();
        let init = json!({"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1"],
            "services": services});
        let out = h.send("c0", init);
        assert_eq!(out[0]["body"]["code"], 12, "{services}");
        let text = out[0]["body"]["text"].as_str().unwrap();
        assert!(text.starts_with("malformed init"), "{text}");
        assert!(h.runtime.node().is_none());
    }
}

#[test]
fn a_second_init_is_ignored() {
    let mut h = Harness::new();
    h.init();
    assert!(h.init().is_empty());
    assert!(h.logs.iter().any(|l| l.contains("second init")));
}

#[test]
fn init_opens_the_named_nodes_own_directory_and_persists_land_there() {
    let cwd = std::env::temp_dir().join(format!("mc-runtime-dirs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cwd);
    let run = RunId::of(std::process::id()).unwrap();
    let dirs = NodeDirs::ByRun {
        base: cwd.clone(),
        run: run.clone(),
    };
    let mut h = Harness::with_storage(Box::new(DirStorage::per_node(dirs.clone())));
    assert_eq!(h.init()[0]["body"]["type"], "init_ok");
    let out = h.send("c1", json!({"type":"remember","note":"milk","msg_id":1}));
    assert_eq!(out[0]["body"]["type"], "remembered");
    let n1 = dirs.resolve("n1").unwrap().dir;
    assert_eq!(std::fs::read(n1.join("note")).unwrap(), b"milk");

    // Any id Maelstrom accepts inits, even one that is no plain file name, and its files
    // land in a directory of its own.
    let mut h = Harness::with_storage(Box::new(DirStorage::per_node(dirs.clone())));
    let out = h.send(
        "c0",
        json!({"type":"init","msg_id":1,"node_id":"../n 1","node_ids":["../n 1"]}),
    );
    assert_eq!(out[0]["body"]["type"], "init_ok", "{out:?}");
    let out = h.send("c1", json!({"type":"remember","note":"tea","msg_id":2}));
    assert_eq!(out[0]["body"]["type"], "remembered");
    let odd = dirs.resolve("../n 1").unwrap().dir;
    assert_eq!(std::fs::read(odd.join("note")).unwrap(), b"tea");
    assert_eq!(odd.parent(), n1.parent());
    std::fs::remove_dir_all(&cwd).unwrap();
}

#[test]
fn an_init_after_a_failed_one_fails_again_when_no_directory_can_be_named() {
    let unnamed = NodeDirs::Unnamed("no /proc here".into());
    let mut h = Harness::with_storage(Box::new(DirStorage::per_node(unnamed)));
    for msg_id in [1, 2] {
        let out = h.send(
            "c0",
            json!({"type":"init","msg_id":msg_id,"node_id":"n1","node_ids":["n1"]}),
        );
        assert_eq!(out[0]["body"]["code"], 13, "init {msg_id}: {out:?}");
        let text = out[0]["body"]["text"].as_str().unwrap();
        assert!(
            text.contains("cannot keep the files of node n1: no /proc here"),
            "{text}"
        );
    }
    assert!(h.runtime.node().is_none());
}

#[test]
fn an_init_after_one_the_node_refused_keeps_its_files_in_the_new_nodes_directory() {
    let cwd = std::env::temp_dir().join(format!("mc-runtime-reinit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cwd);
    let dirs = NodeDirs::ByRun {
        base: cwd.clone(),
        run: RunId::of(std::process::id()).unwrap(),
    };
    let mut h = Harness::with_storage(Box::new(DirStorage::per_node(dirs.clone())));
    let out = h.send(
        "c0",
        json!({"type":"init","msg_id":1,"node_id":"bad","node_ids":["bad"]}),
    );
    assert_eq!(out[0]["body"]["type"], "error");
    assert_eq!(h.init()[0]["body"]["type"], "init_ok");
    let out = h.send("c1", json!({"type":"remember","note":"jam","msg_id":2}));
    assert_eq!(out[0]["body"]["type"], "remembered");
    let n1 = dirs.resolve("n1").unwrap().dir;
    assert_eq!(std::fs::read(n1.join("note")).unwrap(), b"jam");
    std::fs::remove_dir_all(&cwd).unwrap();
}
