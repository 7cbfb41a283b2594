//! A simulated matcher cluster and clients that hold their participants' secret keys.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use maelstrom_core::sim::Cluster;
use matcher::node::MatcherNode;
use matcher::seal::{keypair, open, Envelope};
use matcher::sm::Gid;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

pub type Sim = Cluster<MatcherNode>;

/// A cluster of `n` nodes with 1 ms links, given time to elect its leaders.
pub fn cluster(n: usize) -> Sim {
    let mut c = Sim::new(n, Duration::from_millis(1));
    c.run_for(Duration::from_secs(2));
    c
}

/// Sends `body` to node `i` as `client` and waits (simulated time) for its reply.
pub fn call(c: &mut Sim, client: &str, i: usize, body: Value) -> Option<Value> {
    let id = c.request(client, i, body);
    for _ in 0..1_000 {
        c.run_for(Duration::from_millis(10));
        let inbox = c.take_inbox();
        if let Some((_, reply)) = inbox
            .into_iter()
            .find(|(to, b)| to == client && b["in_reply_to"] == json!(id))
        {
            return Some(reply);
        }
    }
    None
}

/// Calls until the reply is not a temporary refusal (11), up to `tries` times.
pub fn call_retrying(c: &mut Sim, client: &str, i: usize, body: Value, tries: usize) -> Value {
    let mut last = Value::Null;
    for t in 0..tries {
        match call(c, client, (i + t) % c.names().len(), body.clone()) {
            Some(reply)
                if reply["type"] == "error" && reply["code"] != 20 && reply["code"] != 22 =>
            {
                last = reply
            }
            Some(reply) => return reply,
            None => {}
        }
        c.run_for(Duration::from_millis(200));
    }
    last
}

/// Participants with their secret keys.
#[derive(Debug, Default)]
pub struct People {
    pub secrets: BTreeMap<String, [u8; 32]>,
    pub publics: BTreeMap<String, String>,
    rng: Option<StdRng>,
}

impl People {
    pub fn new(seed: u64) -> People {
        People {
            rng: Some(StdRng::seed_from_u64(seed)),
            ..People::default()
        }
    }

    pub fn add(&mut self, id: &str) -> String {
        let (secret, public) = keypair(self.rng.as_mut().unwrap());
        self.secrets.insert(id.to_string(), secret);
        self.publics.insert(id.to_string(), public.clone());
        public
    }

    /// Opens a `get_assignment_ok` for `giver`; panics on a box that does not open.
    pub fn open(&self, giver: &str, reply: &Value) -> Envelope {
        let sealed = reply["sealed"].as_str().expect("a sealed box");
        open(sealed, &self.secrets[giver]).expect("the giver's key opens the box")
    }
}

pub fn register(exchange: &str, id: &str, key: &str, region: u32) -> Value {
    json!({"type": "register", "exchange": exchange, "participant": id,
           "public_key": key, "region": region})
}

/// Every participant's opened assignment, read at node `at(i)`.
pub fn read_all(
    c: &mut Sim,
    people: &People,
    exchange: &str,
    ids: &[String],
) -> BTreeMap<String, (Envelope, Value)> {
    let n = c.names().len();
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let body = json!({"type": "get_assignment", "exchange": exchange, "participant": id});
            let reply = call_retrying(c, &format!("reader{i}"), i % n, body, 20);
            assert_eq!(reply["type"], "get_assignment_ok", "{id}: {reply}");
            (id.clone(), (people.open(id, &reply), reply))
        })
        .collect()
}

pub fn leader(c: &Sim, group: Gid) -> Option<usize> {
    (0..c.names().len()).find(|&i| c.node(i).is_some_and(|n| n.leads(group)))
}

/// Registers `n` participants of `exchange` in region `region`, through every node.
pub fn register_many(
    c: &mut Sim,
    people: &mut People,
    exchange: &str,
    n: usize,
    region: u32,
) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{exchange}-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let key = people.add(id);
        let reply = call_retrying(c, "reg", i, register(exchange, id, &key, region), 10);
        assert_eq!(reply["type"], "register_ok", "{reply}");
    }
    ids
}

/// Matches, then reads everyone once, at once, with no retry.
pub fn reads_right_after_match(c: &mut Sim, exchange: &str, ids: &[String]) -> Vec<Value> {
    let matched = call_retrying(
        c,
        "m",
        0,
        json!({"type": "match", "exchange": exchange}),
        10,
    );
    assert_eq!(matched["type"], "match_ok", "{matched}");
    let asked: Vec<(String, u64)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let client = format!("quick{i}");
            let body = json!({"type": "get_assignment", "exchange": exchange, "participant": id});
            let msg_id = c.request(&client, i % c.names().len(), body);
            (client, msg_id)
        })
        .collect();
    c.run_for(Duration::from_secs(5));
    let inbox = c.take_inbox();
    asked
        .iter()
        .map(|(client, id)| {
            inbox
                .iter()
                .find(|(to, b)| to == client && b["in_reply_to"] == json!(id))
                .map(|(_, b)| b.clone())
                .unwrap_or(Value::Null)
        })
        .collect()
}

/// A match whose votes from one region are lost, so that it aborts; meanwhile the
/// region's participants are read again and again. Returns the reads that found an
/// assignment, and the exchange's audit afterwards.
pub fn reads_during_a_lost_vote(c: &mut Sim) -> (usize, Value) {
    let coord = leader(c, Gid::Coordinator).expect("a coordinator");
    let region = (0..3u32)
        .find(|&r| leader(c, Gid::Region(r)).is_some_and(|l| l != coord))
        .expect("a region led elsewhere");
    let voter = c.names()[leader(c, Gid::Region(region)).unwrap()].clone();
    let mut people = People::new(11);
    let ids = register_many(c, &mut people, "lost", 3, region);
    c.set_wire_rule(move |raw| {
        let vote = raw.src == voter && raw.body_json().contains("\"prepare_ok\"");
        vote.then(Vec::new)
    });
    c.request("m", coord, json!({"type": "match", "exchange": "lost"}));
    let mut found = 0;
    for round in 0..15 {
        let id = &ids[round % ids.len()];
        let body = json!({"type": "get_assignment", "exchange": "lost", "participant": id});
        if let Some(reply) = call(c, "reader", round % 5, body) {
            found += usize::from(reply["type"] == "get_assignment_ok");
        }
    }
    c.set_wire_rule(|_| None);
    c.run_for(Duration::from_secs(2));
    let audit = call_retrying(
        c,
        "auditor",
        0,
        json!({"type": "audit", "exchange": "lost"}),
        10,
    );
    (found, audit)
}

/// Whether the coordinator's leader holds an undecided transaction while a region has
/// already committed it.
pub fn committed_before_logged(c: &Sim, exchange: &str) -> Option<usize> {
    let coord = leader(c, Gid::Coordinator)?;
    let undecided = c
        .node(coord)
        .and_then(|n| n.coordinator_state())
        .is_some_and(|sm| sm.txns.values().any(|t| t.decision.is_none()));
    let committed = (0..3).any(|r| {
        leader(c, Gid::Region(r))
            .and_then(|l| c.node(l))
            .and_then(|n| n.region_state(r))
            .and_then(|sm| sm.exchanges.get(exchange))
            .is_some_and(|ex| ex.epoch >= 1)
    });
    (undecided && committed).then_some(coord)
}
