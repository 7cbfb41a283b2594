//! `gift-ids`: Snowflake-style gift IDs from giftid-node's protocol. Clients ask for single
//! IDs (toy, coal, or no type: toy), batches, and decodes of IDs seen earlier in the run;
//! the checker in [`crate::checker::gift_ids`] judges uniqueness, per-node order, the
//! decoded fields and the timestamps against each node's clock.
//!
//! Ops: `generate` (value: the asked type or nil; ok: the ID), `generate-batch` (value
//! `{:count n, :gift-type t}`; ok: the IDs), `decode` (value: an ID; ok: its fields).

use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{Map, Value};

use super::{body, Ask, ClientRules, GenOp, Next, Request, RunFacts, Workload};
use crate::edn::Edn;
use crate::history::History;
use crate::schema::{FieldType, Schema};

/// The largest batch clients ask for; the node accepts up to 1000.
const MAX_BATCH: i64 = 50;
/// How many recent IDs decode requests pick from.
const RECENT: usize = 256;

#[derive(Debug)]
pub struct GiftIds {
    generate: Schema,
    batch: Schema,
    decode: Schema,
    /// IDs acknowledged so far, newest last, for decode requests.
    recent: Mutex<Vec<i64>>,
}

impl GiftIds {
    pub fn new() -> Self {
        GiftIds {
            generate: Schema::reply("generate_ok", &[("id", FieldType::Int)]),
            batch: Schema::reply(
                "generate_batch_ok",
                &[("ids", FieldType::ListOf(Box::new(FieldType::Int)))],
            ),
            decode: Schema::reply(
                "decode_ok",
                &[
                    ("id", FieldType::Int),
                    ("timestamp_ms", FieldType::Int),
                    ("workshop", FieldType::Int),
                    ("sequence", FieldType::Int),
                    ("gift_type", FieldType::Str),
                ],
            ),
            recent: Mutex::new(Vec::new()),
        }
    }

    fn remember(&self, ids: &[i64]) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.extend_from_slice(ids);
        if recent.len() > 2 * RECENT {
            let cut = recent.len() - RECENT;
            recent.drain(..cut);
        }
    }
}

impl Default for GiftIds {
    fn default() -> Self {
        Self::new()
    }
}

fn random_type(rng: &mut StdRng) -> Edn {
    match rng.gen_range(0..3) {
        0 => Edn::Nil,
        1 => Edn::kw("toy"),
        _ => Edn::kw("coal"),
    }
}

/// The request field for an asked type, if any.
fn type_field(t: &Edn) -> Vec<(&'static str, Value)> {
    match t {
        Edn::Keyword(k) => vec![("gift_type", Value::String(k.clone()))],
        _ => Vec::new(),
    }
}

fn int(reply: &Map<String, Value>, key: &str) -> Edn {
    reply
        .get(key)
        .and_then(Value::as_i64)
        .map_or(Edn::Nil, Edn::Int)
}

impl GiftIds {
    /// The main phase's mix of operations.
    fn mix(&mut self, rng: &mut StdRng) -> GenOp {
        let roll = rng.gen_range(0..100);
        if roll < 15 {
            let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if !recent.is_empty() {
                let id = recent[rng.gen_range(0..recent.len())];
                return GenOp::new("decode", Edn::Int(id));
            }
        }
        if roll < 40 {
            let count = rng.gen_range(1..=MAX_BATCH);
            let value = Edn::map([("count", Edn::Int(count)), ("gift-type", random_type(rng))]);
            return GenOp::new("generate-batch", value);
        }
        GenOp::new("generate", random_type(rng))
    }
}

impl Workload for GiftIds {
    fn name(&self) -> &'static str {
        "gift-ids"
    }

    fn client(&self) -> ClientRules {
        ClientRules {
            // Decoding changes nothing, so a decode that timed out certainly did no harm.
            idempotent: &["decode"],
            reusable: true,
            ..ClientRules::default()
        }
    }

    fn next(&mut self, _ask: Ask, rng: &mut StdRng) -> Next {
        Next::Op(self.mix(rng))
    }

    fn request(&self, op: &GenOp) -> Request<'_> {
        match op.f {
            "decode" => Request {
                body: body("decode", &[("id", op.value.to_json())]),
                reply: &self.decode,
            },
            "generate-batch" => {
                let count = op.value.get("count").cloned().unwrap_or(Edn::Int(1));
                let mut fields = vec![("count", count.to_json())];
                fields.extend(type_field(op.value.get("gift-type").unwrap_or(&Edn::Nil)));
                Request {
                    body: body("generate_batch", &fields),
                    reply: &self.batch,
                }
            }
            _ => Request {
                body: body("generate", &type_field(&op.value)),
                reply: &self.generate,
            },
        }
    }

    fn ok_value(&self, op: &GenOp, reply: &Map<String, Value>) -> Edn {
        match op.f {
            "decode" => Edn::map([
                ("timestamp-ms", int(reply, "timestamp_ms")),
                ("workshop", int(reply, "workshop")),
                ("sequence", int(reply, "sequence")),
                (
                    "gift-type",
                    reply
                        .get("gift_type")
                        .and_then(Value::as_str)
                        .map_or(Edn::Nil, Edn::kw),
                ),
            ]),
            "generate-batch" => {
                let ids: Vec<i64> = reply
                    .get("ids")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default();
                self.remember(&ids);
                Edn::Vector(ids.into_iter().map(Edn::Int).collect())
            }
            _ => {
                let id = int(reply, "id");
                if let Some(id) = id.as_i64() {
                    self.remember(&[id]);
                }
                id
            }
        }
    }

    fn check(&self, history: &History, facts: &RunFacts) -> Edn {
        crate::checker::gift_ids::check(history, facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn requests_carry_the_asked_type_and_decodes_use_seen_ids() {
        let mut w = GiftIds::new();
        let mut rng = StdRng::seed_from_u64(3);
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let op = w.mix(&mut rng);
            let req = w.request(&op);
            kinds.insert(req.body["type"].as_str().unwrap().to_string());
            if op.f == "generate" && op.value == Edn::kw("coal") {
                assert_eq!(req.body["gift_type"], "coal");
            }
            if op.f == "generate" {
                let mut reply = Map::new();
                reply.insert("id".into(), Value::from(42));
                w.ok_value(&op, &reply);
            }
            if op.f == "decode" {
                assert_eq!(req.body["id"], 42);
            }
        }
        let all: Vec<&str> = kinds.iter().map(String::as_str).collect();
        assert_eq!(all, ["decode", "generate", "generate_batch"]);
    }
}
