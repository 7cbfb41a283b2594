//! A simulated matcher cluster and clients that hold their participants' secret keys.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use maelstrom_core::sim::Cluster;
use matcher::node::MatcherNode;
use matcher::seal::{keypair, open, Envelope};
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
