//! `lin-kv`: reads, writes and compare-and-sets on integer keys, as Maelstrom's workload
//! (values `rand-int 5`, writes to cas 1:2, half the operations reads), checked for
//! linearizability key by key by [`crate::checker::linearizable`].
//!
//! Ops carry Jepsen's independent tuples: `:value [k v]`, with `v` nil for a read's
//! invocation, the value written, or `[from to]` for a cas. A few keys are live at a time,
//! and a key retires after [`OPS_PER_KEY`] operations, which keeps each key's history
//! short enough to search, as Maelstrom's rotation of keys does.

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{Map, Value};

use super::{body, reply_field, Ask, ClientRules, GenOp, Next, Request, RunFacts, Workload};
use crate::edn::Edn;
use crate::history::History;
use crate::schema::{FieldType, Schema};

/// Keys written and read at the same time.
const LIVE_KEYS: usize = 3;
/// Operations on a key before it is replaced by a fresh one.
const OPS_PER_KEY: u32 = 200;

#[derive(Debug)]
pub struct LinKv {
    read: Schema,
    write: Schema,
    cas: Schema,
    /// (key, operations so far) of every live key.
    live: Vec<(i64, u32)>,
    next_key: i64,
}

impl LinKv {
    pub fn new() -> Self {
        LinKv {
            read: Schema::reply("read_ok", &[("value", FieldType::Any)]),
            write: Schema::reply("write_ok", &[]),
            cas: Schema::reply("cas_ok", &[]),
            live: (0..LIVE_KEYS as i64).map(|k| (k, 0)).collect(),
            next_key: LIVE_KEYS as i64,
        }
    }
}

impl Default for LinKv {
    fn default() -> Self {
        Self::new()
    }
}

/// The key and the rest of an op's `[k v]` value.
fn split(value: &Edn) -> (Edn, Edn) {
    match value.elements() {
        Some([k, v]) => (k.clone(), v.clone()),
        _ => (Edn::Nil, Edn::Nil),
    }
}

impl LinKv {
    /// The main phase's mix of operations.
    fn mix(&mut self, rng: &mut StdRng) -> GenOp {
        let slot = rng.gen_range(0..self.live.len());
        let (key, used) = &mut self.live[slot];
        let k = Edn::Int(*key);
        *used += 1;
        if *used >= OPS_PER_KEY {
            *key = self.next_key;
            *used = 0;
            self.next_key += 1;
        }
        let tuple = |v| Edn::Vector(vec![k.clone(), v]);
        match rng.gen_range(0..6) {
            0..=2 => GenOp::new("read", tuple(Edn::Nil)),
            3 => GenOp::new("write", tuple(Edn::Int(rng.gen_range(0..5)))),
            _ => {
                let pair = Edn::Vector(vec![
                    Edn::Int(rng.gen_range(0..5)),
                    Edn::Int(rng.gen_range(0..5)),
                ]);
                GenOp::new("cas", tuple(pair))
            }
        }
    }
}

impl Workload for LinKv {
    fn name(&self) -> &'static str {
        "lin-kv"
    }

    fn client(&self) -> ClientRules {
        ClientRules {
            idempotent: &["read"],
            reusable: true,
            latency_factor: 10,
            min_timeout_ms: 1_000,
            ..ClientRules::default()
        }
    }

    fn next(&mut self, _ask: Ask, rng: &mut StdRng) -> Next {
        Next::Op(self.mix(rng))
    }

    fn request(&self, op: &GenOp) -> Request<'_> {
        let (k, v) = split(&op.value);
        match op.f {
            "write" => Request {
                body: body("write", &[("key", k.to_json()), ("value", v.to_json())]),
                reply: &self.write,
            },
            "cas" => {
                let (from, to) = split(&v);
                Request {
                    body: body(
                        "cas",
                        &[
                            ("key", k.to_json()),
                            ("from", from.to_json()),
                            ("to", to.to_json()),
                        ],
                    ),
                    reply: &self.cas,
                }
            }
            _ => Request {
                body: body("read", &[("key", k.to_json())]),
                reply: &self.read,
            },
        }
    }

    fn ok_value(&self, op: &GenOp, reply: &Map<String, Value>) -> Edn {
        match op.f {
            "read" => {
                let (k, _) = split(&op.value);
                Edn::Vector(vec![k, reply_field(reply, "value")])
            }
            _ => op.value.clone(),
        }
    }

    fn check(&self, history: &History, _facts: &RunFacts) -> Edn {
        crate::checker::linearizable::check(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn requests_follow_maelstroms_shapes_and_keys_rotate() {
        let mut w = LinKv::new();
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2_000 {
            let op = w.mix(&mut rng);
            let req = w.request(&op);
            let kind = req.body["type"].as_str().unwrap().to_string();
            assert_eq!(kind, op.f);
            assert!(req.body["key"].is_i64());
            if kind == "cas" {
                assert!(req.body["from"].is_i64() && req.body["to"].is_i64());
            }
            seen.insert(req.body["key"].as_i64().unwrap());
        }
        assert!(seen.len() > LIVE_KEYS, "keys retire: {seen:?}");
        let mut reply = Map::new();
        reply.insert("value".into(), Value::from(3));
        let read = GenOp::new("read", Edn::Vector(vec![Edn::Int(7), Edn::Nil]));
        assert_eq!(w.ok_value(&read, &reply).to_compact(), "[7 3]");
    }
}
