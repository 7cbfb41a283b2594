//! `unique-ids`: `generate` → `generate_ok` with an `id` of any kind, which must be unique
//! across the whole run. The client is reusable (it keeps its id after an `:info`).

use rand::rngs::StdRng;
use serde_json::{Map, Value};

use super::{body, reply_field, GenOp, Request, RunFacts, Workload};
use crate::edn::Edn;
use crate::history::History;
use crate::schema::{FieldType, Schema};

#[derive(Debug)]
pub struct UniqueIds {
    reply: Schema,
}

impl UniqueIds {
    pub fn new() -> Self {
        UniqueIds {
            reply: Schema::reply("generate_ok", &[("id", FieldType::Any)]),
        }
    }
}

impl Default for UniqueIds {
    fn default() -> Self {
        Self::new()
    }
}

impl Workload for UniqueIds {
    fn name(&self) -> &'static str {
        "unique-ids"
    }

    fn reusable_client(&self) -> bool {
        true
    }

    fn next_op(&mut self, _rng: &mut StdRng) -> GenOp {
        GenOp::new("generate", Edn::Nil)
    }

    fn request(&self, _op: &GenOp) -> Request<'_> {
        Request {
            body: body("generate", &[]),
            reply: &self.reply,
        }
    }

    fn ok_value(&self, _op: &GenOp, reply: &Map<String, Value>) -> Edn {
        reply_field(reply, "id")
    }

    fn check(&self, history: &History, _facts: &RunFacts) -> Edn {
        crate::checker::unique_ids::check(history)
    }
}
