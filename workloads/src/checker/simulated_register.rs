//! Linearizable lin-kv histories from a simulated register, for the linearizability
//! checker's tests and its benchmark: both need the same realistic, known-good input.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::edn::Edn;
use crate::history::{History, Op, OpType, Process};

/// One op as planned: who runs it, on which key, and whether its process crashes.
struct Planned {
    process: u64,
    key: i64,
    f: &'static str,
    arg: Edn,
    info: bool,
}

/// (time, tiebreak, what: 0 invoke, 1 take effect, 2 complete, op)
type Event = (u64, u64, u8, usize);

/// A linearizable lin-kv history: each op takes effect on a real register at a random
/// instant between its invocation and completion. Indefinite ops take effect half the
/// time; their process is replaced, as Jepsen does.
pub fn simulate(seed: u64, ops: usize, keys: i64, concurrency: usize, info: f64) -> History {
    let (plans, events) = plan(seed, ops, keys, concurrency, info);
    play(&plans, events)
}

/// The ops and their events, drawn from `seed`.
fn plan(
    seed: u64,
    ops: usize,
    keys: i64,
    concurrency: usize,
    info: f64,
) -> (Vec<Planned>, Vec<Event>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut clock = vec![0u64; concurrency];
    let mut process: Vec<u64> = (0..concurrency as u64).collect();
    let mut plans = Vec::with_capacity(ops);
    let mut events: Vec<Event> = Vec::with_capacity(ops * 3);
    for i in 0..ops {
        let w = i % concurrency;
        let t0 = clock[w] + rng.gen_range(1..=40);
        let t1 = t0 + rng.gen_range(1..=60);
        let t2 = t1 + rng.gen_range(1..=60);
        clock[w] = t2;
        let key = rng.gen_range(0..keys);
        let (f, arg) = match rng.gen_range(0..6) {
            0..=2 => ("read", Edn::Nil),
            3 => ("write", Edn::Int(rng.gen_range(0..5))),
            _ => (
                "cas",
                Edn::Vector(vec![
                    Edn::Int(rng.gen_range(0..5)),
                    Edn::Int(rng.gen_range(0..5)),
                ]),
            ),
        };
        let info = rng.gen_bool(info);
        plans.push(Planned {
            process: process[w],
            key,
            f,
            arg,
            info,
        });
        if info {
            process[w] += concurrency as u64;
        }
        events.push((t0, rng.gen(), 0, i));
        if !info || rng.gen_bool(0.5) {
            events.push((t1, rng.gen(), 1, i));
        }
        events.push((t2, rng.gen(), 2, i));
    }
    events.sort_unstable();
    (plans, events)
}

/// Plays the events on a register, recording invocations and completions.
fn play(plans: &[Planned], events: Vec<Event>) -> History {
    let mut register: HashMap<i64, i64> = HashMap::new();
    let mut result: Vec<Option<Edn>> = vec![None; plans.len()];
    let mut h = History::default();
    for (t, _, what, i) in events {
        let p = &plans[i];
        let time = t * 100_000;
        let pair = |v: Edn| Edn::Vector(vec![Edn::Int(p.key), v]);
        match what {
            0 => {
                let worker = Process::Worker(p.process);
                h.push(Op::new(
                    time,
                    OpType::Invoke,
                    worker,
                    p.f,
                    pair(p.arg.clone()),
                ));
            }
            1 => result[i] = Some(take_effect(&mut register, p)),
            _ => {
                let (t, value) = match (&result[i], p.info, p.f) {
                    (_, true, _) => (OpType::Info, pair(p.arg.clone())),
                    (Some(v), _, "read") => (OpType::Ok, pair(v.clone())),
                    (Some(Edn::Bool(false)), _, _) => (OpType::Fail, pair(p.arg.clone())),
                    _ => (OpType::Ok, pair(p.arg.clone())),
                };
                h.push(Op::new(time, t, Process::Worker(p.process), p.f, value));
            }
        }
    }
    h
}

/// The op applied to the register: a read's value, or whether a write or cas took.
fn take_effect(register: &mut HashMap<i64, i64>, p: &Planned) -> Edn {
    let cur = register.get(&p.key).copied();
    match (p.f, &p.arg) {
        ("read", _) => cur.map_or(Edn::Nil, Edn::Int),
        ("write", Edn::Int(v)) => {
            register.insert(p.key, *v);
            Edn::Bool(true)
        }
        (_, arg) => {
            let items = arg.elements().unwrap_or(&[]);
            let (from, to) = (items.first().and_then(Edn::as_i64), items.get(1));
            let won = from.is_some() && cur == from;
            if let (true, Some(to)) = (won, to.and_then(Edn::as_i64)) {
                register.insert(p.key, to);
            }
            Edn::Bool(won)
        }
    }
}
