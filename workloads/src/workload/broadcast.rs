//! `broadcast`: at setup each node receives the whole `topology` map; then a random 50/50
//! mix of broadcasts of the integers 0, 1, 2, … and reads, and a final read per worker.
//! Reads are idempotent. Checked by set-full with `broadcast` as the add.

use rand::rngs::StdRng;
use serde_json::{Map, Value};

use super::{body_type_first, Ask, ClientRules, Cluster, GenOp, Next, Request, RunFacts, Workload};
use crate::edn::Edn;
use crate::history::History;
use crate::schema::{FieldType, Schema};
use crate::topology;

#[derive(Debug)]
pub struct Broadcast {
    next: i64,
    topology_ok: Schema,
    broadcast_ok: Schema,
    read_ok: Schema,
}

impl Broadcast {
    pub fn new() -> Self {
        Broadcast {
            next: 0,
            topology_ok: Schema::reply("topology_ok", &[]),
            broadcast_ok: Schema::reply("broadcast_ok", &[]),
            read_ok: Schema::reply(
                "read_ok",
                &[("messages", FieldType::ListOf(Box::new(FieldType::Any)))],
            ),
        }
    }
}

impl Default for Broadcast {
    fn default() -> Self {
        Self::new()
    }
}

impl Broadcast {
    /// The main phase's mix of operations.
    fn mix(&mut self, rng: &mut StdRng) -> GenOp {
        GenOp::add_next_or_read(rng, &mut self.next, "broadcast")
    }
}

impl Workload for Broadcast {
    fn name(&self) -> &'static str {
        "broadcast"
    }

    fn client(&self) -> ClientRules {
        ClientRules {
            idempotent: &["read"],
            ..ClientRules::default()
        }
    }

    fn next(&mut self, ask: Ask, rng: &mut StdRng) -> Next {
        ask.mix_then_final_read(|| self.mix(rng))
    }

    fn has_final_phase(&self) -> bool {
        true
    }

    fn setup(&self, cluster: &Cluster, _node: usize) -> Option<Request<'_>> {
        let shape = topology::neighbours(cluster.topology, cluster.nodes.len());
        let map: Map<String, Value> = shape
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let names = ns.iter().map(|&j| Value::String(cluster.nodes[j].clone()));
                (cluster.nodes[i].clone(), Value::Array(names.collect()))
            })
            .collect();
        Some(Request {
            body: body_type_first("topology", &[("topology", Value::Object(map))]),
            reply: &self.topology_ok,
        })
    }

    fn request(&self, op: &GenOp) -> Request<'_> {
        match op.f {
            "broadcast" => Request {
                body: body_type_first("broadcast", &[("message", op.value.to_json())]),
                reply: &self.broadcast_ok,
            },
            _ => Request {
                body: body_type_first("read", &[]),
                reply: &self.read_ok,
            },
        }
    }

    fn ok_value(&self, op: &GenOp, reply: &Map<String, Value>) -> Edn {
        match op.f {
            "broadcast" => op.value.clone(),
            _ => super::reply_field(reply, "messages"),
        }
    }

    fn check(&self, history: &History, _facts: &RunFacts) -> Edn {
        crate::checker::set_full::check(history, "broadcast")
    }
}
