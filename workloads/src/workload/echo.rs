//! `echo`: each request carries `"Please echo <0..127>"` and the reply must carry it back.
//! Not idempotent; the client is not reusable. The ok value is the whole reply body.

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{Map, Value};

use super::{body, Ask, GenOp, Next, Request, RunFacts, Workload};
use crate::edn::Edn;
use crate::history::History;
use crate::schema::{FieldType, Schema};

#[derive(Debug)]
pub struct Echo {
    reply: Schema,
}

impl Echo {
    pub fn new() -> Self {
        Echo {
            reply: Schema::reply("echo_ok", &[("echo", FieldType::Any)]),
        }
    }
}

impl Default for Echo {
    fn default() -> Self {
        Self::new()
    }
}

impl Echo {
    /// The main phase's mix of operations.
    fn mix(&mut self, rng: &mut StdRng) -> GenOp {
        let n: u32 = rng.gen_range(0..128);
        GenOp::new("echo", Edn::Str(format!("Please echo {n}")))
    }
}

impl Workload for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn next(&mut self, _ask: Ask, rng: &mut StdRng) -> Next {
        Next::Op(self.mix(rng))
    }

    fn request(&self, op: &GenOp) -> Request<'_> {
        Request {
            body: body("echo", &[("echo", op.value.to_json())]),
            reply: &self.reply,
        }
    }

    fn ok_value(&self, _op: &GenOp, reply: &Map<String, Value>) -> Edn {
        Edn::from_json(&Value::Object(reply.clone()), true)
    }

    fn check(&self, history: &History, _facts: &RunFacts) -> Edn {
        crate::checker::echo::check(history)
    }
}
