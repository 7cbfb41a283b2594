//! `g-set`: a grow-only set. A 50/50 mix of adds of 0, 1, 2, … and reads (`read_ok` carries
//! `value`, not `elements`), then a final read per worker. Errors and timeouts are `:info`
//! with an exception (no `with-errors`). Checked by set-full.

use rand::rngs::StdRng;
use serde_json::{Map, Value};

use super::{body, Ask, ClientRules, GenOp, Next, Request, RunFacts, Workload};
use crate::edn::Edn;
use crate::history::History;
use crate::schema::{FieldType, Schema};

#[derive(Debug)]
pub struct GSet {
    next: i64,
    add_ok: Schema,
    read_ok: Schema,
}

impl GSet {
    pub fn new() -> Self {
        GSet {
            next: 0,
            add_ok: Schema::reply("add_ok", &[]),
            read_ok: Schema::reply(
                "read_ok",
                &[("value", FieldType::ListOf(Box::new(FieldType::Any)))],
            ),
        }
    }
}

impl Default for GSet {
    fn default() -> Self {
        Self::new()
    }
}

impl GSet {
    /// The main phase's mix of operations.
    fn mix(&mut self, rng: &mut StdRng) -> GenOp {
        GenOp::add_next_or_read(rng, &mut self.next, "add")
    }
}

impl Workload for GSet {
    fn name(&self) -> &'static str {
        "g-set"
    }

    fn client(&self) -> ClientRules {
        ClientRules::without_errors()
    }

    fn next(&mut self, ask: Ask, rng: &mut StdRng) -> Next {
        ask.mix_then_final_read(|| self.mix(rng))
    }

    fn has_final_phase(&self) -> bool {
        true
    }

    fn request(&self, op: &GenOp) -> Request<'_> {
        match op.f {
            "add" => Request {
                body: body("add", &[("element", op.value.to_json())]),
                reply: &self.add_ok,
            },
            _ => Request {
                body: body("read", &[]),
                reply: &self.read_ok,
            },
        }
    }

    fn ok_value(&self, op: &GenOp, reply: &Map<String, Value>) -> Edn {
        match op.f {
            "add" => op.value.clone(),
            _ => super::reply_field(reply, "value"),
        }
    }

    fn check(&self, history: &History, _facts: &RunFacts) -> Edn {
        crate::checker::set_full::check(history, "add")
    }
}
