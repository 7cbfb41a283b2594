//! `unique-ids`: `generate` → `generate_ok` with an `id` of any kind, which must be unique
//! across the whole run. The client is reusable (it keeps its id after an `:info`).

use rand::rngs::StdRng;
use serde_json::{Map, Value};

use super::{body, reply_field, Ask, ClientRules, GenOp, Next, Request, RunFacts, Workload};
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

impl UniqueIds {
    /// The main phase's mix of operations.
    fn mix(&mut self, _rng: &mut StdRng) -> GenOp {
        GenOp::new("generate", Edn::Nil)
    }
}

impl Workload for UniqueIds {
    fn name(&self) -> &'static str {
        "unique-ids"
    }

    fn client(&self) -> ClientRules {
        ClientRules {
            reusable: true,
            ..ClientRules::default()
        }
    }

    fn next(&mut self, _ask: Ask, _rng: &mut StdRng) -> Next {
        Next::Op(self.mix(_rng))
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
