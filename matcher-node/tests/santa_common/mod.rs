//! A simulated Santa system: 3 giftid nodes (n0-n2), 3 queue nodes (n3-n5) and 5 matcher
//! nodes (n6-n10), the real node types, each with the `init` of a cluster of services;
//! and a record of what the matcher asked the other services on the wire.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use giftid::node::GiftIds;
use maelstrom_core::sim::{Cluster, Service};
use matcher::node::MatcherNode;
use matcher::seal::{keypair, open, open_json, Progress};
use matcher::sm::{CoordSm, Gid};
use queue::node::QueueNode;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

pub type Sim = Cluster<MatcherNode>;

pub const GIFTID: [usize; 3] = [0, 1, 2];
pub const QUEUE: [usize; 3] = [3, 4, 5];
pub const MATCHER: [usize; 5] = [6, 7, 8, 9, 10];
pub const STAGES: [&str; 4] = ["assembly", "painting", "quality-check", "packaging"];

/// What crossed the wire between the matcher and the other services, and the votes a
/// test wants lost.
#[derive(Debug, Clone, Default)]
pub struct Wire {
    seen: Rc<RefCell<Vec<(String, String, Value)>>>,
    pub lose_votes_from: Rc<RefCell<Option<String>>>,
}

impl Wire {
    fn install(&self, c: &mut Sim) {
        let wire = self.clone();
        c.set_wire_rule(move |raw| {
            let kinds = ["enqueue", "cancel", "generate_batch_ok"];
            if kinds.contains(&raw.kind.as_str()) {
                let body = serde_json::from_str(raw.body_json()).unwrap_or(Value::Null);
                let seen = (raw.src.clone(), raw.kind.clone(), body);
                wire.seen.borrow_mut().push(seen);
            }
            let voter = wire.lose_votes_from.borrow().as_deref() == Some(raw.src.as_str());
            let lost = voter && raw.kind == "prepare_ok";
            lost.then(Vec::new)
        });
    }

    fn of_kind(&self, kind: &str) -> Vec<(String, Value)> {
        let seen = self.seen.borrow();
        let it = seen.iter().filter(|(_, k, _)| k == kind);
        it.map(|(src, _, body)| (src.clone(), body.clone()))
            .collect()
    }

    /// Every `enqueue`'s task, copies included.
    pub fn enqueued(&self) -> Vec<Value> {
        let it = self.of_kind("enqueue").into_iter();
        it.map(|(_, body)| body["task"].clone()).collect()
    }

    /// Distinct task ids enqueued.
    pub fn task_ids(&self) -> BTreeSet<String> {
        let ids = self.enqueued().into_iter();
        ids.filter_map(|t| t["id"].as_str().map(str::to_string))
            .collect()
    }

    /// Distinct task ids whose cancel was asked.
    pub fn cancelled(&self) -> BTreeSet<String> {
        let it = self.of_kind("cancel").into_iter();
        it.filter_map(|(_, b)| b["id"].as_str().map(str::to_string))
            .collect()
    }

    /// Every ID the giftid nodes handed out.
    pub fn issued(&self) -> BTreeSet<u64> {
        let mut ids = BTreeSet::new();
        for (src, body) in self.of_kind("generate_batch_ok") {
            assert!(["n0", "n1", "n2"].contains(&src.as_str()), "{src}");
            ids.extend(
                body["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap()),
            );
        }
        ids
    }
}

/// The whole system, its leaders elected, and the wire recorded.
pub fn santa() -> (Sim, Wire) {
    let services = vec![
        Service::of::<GiftIds>("giftid", 3),
        Service::of::<QueueNode>("queue", 3),
        Service::of::<MatcherNode>("matcher", 5),
    ];
    let mut c = Sim::with_services(services, Duration::from_millis(1));
    let wire = Wire::default();
    wire.install(&mut c);
    c.run_for(Duration::from_secs(2));
    (c, wire)
}

/// Sends `body` to node `i` as `client` and waits (simulated time) up to `ms` for the
/// reply.
pub fn call_for(c: &mut Sim, client: &str, i: usize, body: Value, ms: u64) -> Option<Value> {
    let id = c.request(client, i, body);
    for _ in 0..ms / 10 {
        c.run_for(Duration::from_millis(10));
        let inbox = c.take_inbox();
        let reply = inbox
            .into_iter()
            .find(|(to, b)| to == client && b["in_reply_to"] == json!(id));
        if let Some((_, reply)) = reply {
            return Some(reply);
        }
    }
    None
}

/// Calls the nodes `nodes` in turn until one answers with anything but a temporary
/// refusal.
pub fn ask(c: &mut Sim, client: &str, nodes: &[usize], body: Value, tries: usize) -> Value {
    let mut last = Value::Null;
    for t in 0..tries {
        match call_for(c, client, nodes[t % nodes.len()], body.clone(), 5_000) {
            Some(r) if r["type"] == "error" && ![20, 22].contains(&r["code"].as_u64().unwrap()) => {
                last = r
            }
            Some(r) => return r,
            None => {}
        }
        c.run_for(Duration::from_millis(200));
    }
    last
}

/// Participants with their secret keys.
#[derive(Debug)]
pub struct People {
    pub secrets: BTreeMap<String, [u8; 32]>,
    rng: StdRng,
}

impl People {
    pub fn new(seed: u64) -> People {
        People {
            secrets: BTreeMap::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Registers `id` in `exchange`, region `region`; a late one is spliced in.
    pub fn register(&mut self, c: &mut Sim, exchange: &str, id: &str, region: u32, nice: bool) {
        let (secret, public) = keypair(&mut self.rng);
        self.secrets.insert(id.to_string(), secret);
        let body = json!({"type": "register", "exchange": exchange, "participant": id,
            "public_key": public, "region": region, "nice_child": nice});
        let reply = ask(c, "reg", &MATCHER, body, 10);
        assert_eq!(reply["type"], "register_ok", "{id}: {reply}");
    }

    /// `giver`'s gift: (gift id, receiver), from their sealed assignment.
    pub fn gift(&self, c: &mut Sim, exchange: &str, giver: &str) -> (u64, String) {
        let body = json!({"type": "get_assignment", "exchange": exchange, "participant": giver});
        let reply = ask(c, "reader", &MATCHER, body, 10);
        assert_eq!(reply["type"], "get_assignment_ok", "{reply}");
        let envelope = open(reply["sealed"].as_str().unwrap(), &self.secrets[giver]).unwrap();
        (envelope.gift_id, envelope.receiver)
    }

    /// `giver`'s gift's stage, opened from `gift_status`.
    pub fn stage(&self, c: &mut Sim, exchange: &str, giver: &str) -> Progress {
        let body = json!({"type": "gift_status", "exchange": exchange, "participant": giver});
        let reply = ask(c, "status", &MATCHER, body, 10);
        assert_eq!(reply["type"], "gift_status_ok", "{reply}");
        let progress: Progress =
            open_json(reply["sealed"].as_str().unwrap(), &self.secrets[giver]).unwrap();
        assert_eq!(reply["gift_id"], json!(progress.gift_id));
        progress
    }
}

pub fn leader(c: &Sim, group: Gid) -> Option<usize> {
    MATCHER
        .into_iter()
        .find(|&i| c.node(i).is_some_and(|n| n.leads(group)))
}

pub fn coordinator(c: &Sim) -> Option<&CoordSm> {
    leader(c, Gid::Coordinator).and_then(|i| c.node(i)?.coordinator_state())
}

/// Runs until the coordinator's leader has no queue work left, up to `secs`.
pub fn drain(c: &mut Sim, secs: u64) -> bool {
    for _ in 0..secs * 10 {
        c.run_for(Duration::from_millis(100));
        if coordinator(c).is_some_and(|sm| sm.work.is_empty()) {
            return true;
        }
    }
    false
}

/// A task's status at the queue.
pub fn status(c: &mut Sim, id: &str) -> Value {
    ask(c, "elf", &QUEUE, json!({"type": "status", "id": id}), 10)
}

/// The four task ids of a gift.
pub fn tasks_of(gift_id: u64) -> Vec<String> {
    STAGES.iter().map(|s| format!("{gift_id}-{s}")).collect()
}

/// A match whose votes from one region are lost, so that it aborts.
pub fn aborted_match(c: &mut Sim, wire: &Wire, people: &mut People, exchange: &str) {
    let coord = leader(c, Gid::Coordinator).expect("a coordinator");
    let region = (0..3u32)
        .find(|&r| leader(c, Gid::Region(r)).is_some_and(|l| l != coord))
        .expect("a region led elsewhere");
    for (i, r) in [0, 1, 2, region].into_iter().enumerate() {
        people.register(c, exchange, &format!("{exchange}-{i}"), r, false);
    }
    let voter = c.names()[leader(c, Gid::Region(region)).unwrap()].clone();
    *wire.lose_votes_from.borrow_mut() = Some(voter);
    let body = json!({"type": "match", "exchange": exchange});
    let reply = call_for(c, "m", coord, body, 5_000).expect("an answer");
    assert_eq!(reply["type"], "error", "{reply}");
    *wire.lose_votes_from.borrow_mut() = None;
    c.run_for(Duration::from_secs(3));
    let audit = ask(
        c,
        "a",
        &MATCHER,
        json!({"type": "audit", "exchange": exchange}),
        10,
    );
    let events = audit["events"].as_array().expect("events");
    assert!(events.iter().any(|e| e["event"] == "aborted"), "{audit}");
    assert!(!events.iter().any(|e| e["event"] == "committed"), "{audit}");
}
