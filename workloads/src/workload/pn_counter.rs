//! `pn-counter`: a counter with increments and decrements. A 50/50 mix of adds (deltas
//! uniform in −5…4) and reads, then a final read per worker; every final read must be the
//! sum of the ok adds plus any subset of the indefinite ones. Errors and timeouts are
//! `:info` with an exception (no `with-errors`).

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{Map, Value};

use super::{body, Ask, ClientRules, GenOp, Next, Request, RunFacts, Workload};
use crate::edn::Edn;
use crate::history::History;
use crate::schema::{FieldType, Schema};

/// The client side shared by pn-counter and g-counter: requests, schemas, values.
#[derive(Debug)]
pub struct CounterClient {
    add_ok: Schema,
    read_ok: Schema,
}

impl CounterClient {
    pub fn new() -> Self {
        CounterClient {
            add_ok: Schema::reply("add_ok", &[]),
            read_ok: Schema::reply("read_ok", &[("value", FieldType::Int)]),
        }
    }

    /// Maelstrom's mix: a coin flip between an add of `rand-int 10 − 5` and a read.
    pub fn raw_op(rng: &mut StdRng) -> GenOp {
        if rng.gen_bool(0.5) {
            GenOp::new("add", Edn::Int(rng.gen_range(0..10) - 5))
        } else {
            GenOp::new("read", Edn::Nil)
        }
    }

    pub fn request(&self, op: &GenOp) -> Request<'_> {
        match op.f {
            "add" => Request {
                body: body("add", &[("delta", op.value.to_json())]),
                reply: &self.add_ok,
            },
            _ => Request {
                body: body("read", &[]),
                reply: &self.read_ok,
            },
        }
    }

    pub fn ok_value(&self, op: &GenOp, reply: &Map<String, Value>) -> Edn {
        match op.f {
            "add" => op.value.clone(),
            _ => super::reply_field(reply, "value"),
        }
    }
}

impl Default for CounterClient {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Default)]
pub struct PnCounter {
    client: CounterClient,
}

impl PnCounter {
    pub fn new() -> Self {
        Self::default()
    }
}

impl PnCounter {
    /// The main phase's mix of operations.
    fn mix(&mut self, rng: &mut StdRng) -> GenOp {
        CounterClient::raw_op(rng)
    }
}

impl Workload for PnCounter {
    fn name(&self) -> &'static str {
        "pn-counter"
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
        self.client.request(op)
    }

    fn ok_value(&self, op: &GenOp, reply: &Map<String, Value>) -> Edn {
        self.client.ok_value(op, reply)
    }

    fn check(&self, history: &History, _facts: &RunFacts) -> Edn {
        crate::checker::counter::check(history)
    }
}
