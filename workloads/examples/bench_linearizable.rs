//! Times the lin-kv linearizability checker on generated valid histories.
//!
//! Each history comes from a simulated register: every op takes effect at a random
//! instant between its invocation and completion, so the history is linearizable and
//! the checker has to find an order for every key. Run with `--release`.
//!
//! Usage: `bench_linearizable [ops…]` (default 10000 50000 100000).

use std::collections::HashMap;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use workloads::checker::linearizable;
use workloads::edn::Edn;
use workloads::history::{History, Op, OpType, Process};

const CONCURRENCY: usize = 20;
const KEYS: i64 = 50;
const INFO: f64 = 0.05;

fn main() {
    let sizes: Vec<usize> = {
        let args: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if args.is_empty() {
            vec![10_000, 50_000, 100_000]
        } else {
            args
        }
    };
    for ops in sizes {
        let history = simulate(ops as u64, ops);
        let start = Instant::now();
        let result = linearizable::check(&history);
        let secs = start.elapsed().as_secs_f64();
        let checked = result.get("ops-checked").and_then(Edn::as_i64).unwrap_or(0);
        let keys = result
            .get("keys-checked")
            .and_then(Edn::as_i64)
            .unwrap_or(0);
        let valid = result
            .get("valid?")
            .map(Edn::to_compact)
            .unwrap_or_default();
        println!(
            "linearizability check: {ops} ops, {keys} keys: {secs:.2} s ({} ops/s) \
             [{} checked, valid? {valid}]",
            thousands((ops as f64 / secs.max(1e-9)) as u64),
            thousands(checked as u64),
        );
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn record(process: u64, op_type: OpType, f: &str, value: Edn, time_ns: u64) -> Op {
    Op {
        index: 0,
        time_ns,
        op_type,
        process: Process::Worker(process),
        f: f.to_string(),
        value,
        error: None,
        final_read: false,
        extra: Vec::new(),
    }
}

struct Planned {
    process: u64,
    key: i64,
    f: &'static str,
    arg: Edn,
    info: bool,
}

/// A lin-kv history from a real register. Indefinite ops take effect half the time and
/// retire their process, as Jepsen does.
fn simulate(seed: u64, ops: usize) -> History {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut clock = [0u64; CONCURRENCY];
    let mut process: Vec<u64> = (0..CONCURRENCY as u64).collect();
    let mut plans = Vec::with_capacity(ops);
    // (time, tiebreak, 0 invoke / 1 take effect / 2 complete, op)
    let mut events: Vec<(u64, u64, u8, usize)> = Vec::with_capacity(ops * 3);
    for i in 0..ops {
        let w = i % CONCURRENCY;
        let t0 = clock[w] + rng.gen_range(1..=40);
        let t1 = t0 + rng.gen_range(1..=60);
        let t2 = t1 + rng.gen_range(1..=60);
        clock[w] = t2;
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
        let info = rng.gen_bool(INFO);
        plans.push(Planned {
            process: process[w],
            key: rng.gen_range(0..KEYS),
            f,
            arg,
            info,
        });
        if info {
            process[w] += CONCURRENCY as u64;
        }
        events.push((t0, rng.gen(), 0, i));
        if !info || rng.gen_bool(0.5) {
            events.push((t1, rng.gen(), 1, i));
        }
        events.push((t2, rng.gen(), 2, i));
    }
    events.sort_unstable();

    let mut register: HashMap<i64, i64> = HashMap::new();
    let mut outcome: Vec<Option<Edn>> = vec![None; ops];
    let mut history = History::default();
    for (t, _, what, i) in events {
        let p = &plans[i];
        let time = t * 100_000;
        let pair = |v: Edn| Edn::Vector(vec![Edn::Int(p.key), v]);
        match what {
            0 => {
                history.push(record(
                    p.process,
                    OpType::Invoke,
                    p.f,
                    pair(p.arg.clone()),
                    time,
                ));
            }
            1 => {
                let current = register.get(&p.key).copied();
                outcome[i] = Some(match (p.f, &p.arg) {
                    ("read", _) => current.map_or(Edn::Nil, Edn::Int),
                    ("write", Edn::Int(v)) => {
                        register.insert(p.key, *v);
                        Edn::Bool(true)
                    }
                    (_, arg) => {
                        let items = arg.elements().unwrap_or(&[]);
                        let from = items.first().and_then(Edn::as_i64);
                        let to = items.get(1).and_then(Edn::as_i64).unwrap_or(0);
                        let won = current.is_some() && current == from;
                        if won {
                            register.insert(p.key, to);
                        }
                        Edn::Bool(won)
                    }
                });
            }
            _ => {
                let (op_type, value) = match (&outcome[i], p.info, p.f) {
                    (_, true, _) => (OpType::Info, pair(p.arg.clone())),
                    (Some(v), _, "read") => (OpType::Ok, pair(v.clone())),
                    (Some(Edn::Bool(false)), _, _) => (OpType::Fail, pair(p.arg.clone())),
                    _ => (OpType::Ok, pair(p.arg.clone())),
                };
                history.push(record(p.process, op_type, p.f, value, time));
            }
        }
    }
    history
}
