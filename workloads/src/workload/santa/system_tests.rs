//! The workload against a small in-process model of the three services (a matcher that
//! commits at once and enqueues every committed gift's tasks, a queue that hands out ready
//! tasks by priority): every request must fit its reply schema, and the checker must find
//! the resulting history valid.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use giftid::layout::{encode, GiftType};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};

use super::*;
use crate::checker::secret_santa::oracle::{compatible, Person};
use crate::history::Process;
use crate::topology::Topology;

type Reply = Result<Value, (&'static str, String)>;

#[derive(Default)]
struct Exchange {
    people: Vec<(Person, String, bool)>,
    epoch: i64,
    deadline: Option<i64>,
    /// giver → (receiver, gift id)
    gifts: BTreeMap<String, (String, i64)>,
    events: Vec<Value>,
}

#[derive(Debug)]
struct Task {
    kind: &'static str,
    dep: Option<String>,
    priority: &'static str,
    payload: Value,
    status: &'static str,
    attempts: u64,
}

#[derive(Default)]
struct System {
    ms: u64,
    exchanges: BTreeMap<String, Exchange>,
    tasks: BTreeMap<String, Task>,
    rng_seed: u64,
    /// The matcher's flaw `enqueue-before-log`: every match first tries a transaction
    /// that aborts, after enqueueing its gifts' tasks.
    enqueue_before_log: bool,
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or("").to_string()
}

impl System {
    fn id(&mut self) -> i64 {
        self.ms += 1;
        encode(31_536_000_000 + self.ms, 3, 0, GiftType::Toy) as i64
    }

    fn person(&self, x: &str, p: &str) -> Option<&(Person, String, bool)> {
        self.exchanges.get(x)?.people.iter().find(|q| q.0.id == p)
    }

    fn commit(&mut self, x: &str, kind: &str, gifts: Vec<(String, String)>) -> i64 {
        let (txn, prepared) = (self.id(), self.id());
        let ids: Vec<i64> = gifts.iter().map(|_| self.id()).collect();
        let committed = self.id();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let ex = self.exchanges.get_mut(x).unwrap();
        ex.epoch += 1;
        let epoch = ex.epoch;
        for (id, event) in [(prepared, "prepared"), (committed, "committed")] {
            ex.events
                .push(json!({"id": id, "txn": txn, "kind": kind, "event": event, "epoch": epoch}));
        }
        let express = ex.deadline.is_some_and(|d| d - wall <= 86_400_000);
        let mut new = Vec::new();
        for ((giver, receiver), g) in gifts.into_iter().zip(ids) {
            let nice = ex.people.iter().any(|p| p.0.id == receiver && p.2);
            let priority = match (express, nice) {
                (true, _) => "express",
                (false, true) => "nice-child",
                _ => "standard",
            };
            ex.gifts.insert(giver, (receiver, g));
            new.push((g, priority));
        }
        for (g, priority) in new {
            for (i, kind) in STAGES.iter().enumerate() {
                self.tasks.insert(
                    task_id(g, kind),
                    Task {
                        kind,
                        dep: (i > 0).then(|| task_id(g, STAGES[i - 1])),
                        priority,
                        payload: json!({"gift_id": g, "exchange": x, "epoch": epoch}),
                        status: "pending",
                        attempts: 0,
                    },
                );
            }
        }
        epoch
    }

    /// A perfect matching of givers to compatible receivers (Kuhn's augmenting paths) with
    /// no mutual pair when asked, trying a few orders.
    fn assign(&self, x: &str, no_mutual: bool) -> Option<Vec<(String, String)>> {
        let people: Vec<&Person> = self.exchanges[x].people.iter().map(|p| &p.0).collect();
        let n = people.len();
        let mut rng = StdRng::seed_from_u64(self.rng_seed);
        for _ in 0..50 {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            let mut to: Vec<Option<usize>> = vec![None; n];
            fn augment(
                g: usize,
                people: &[&Person],
                order: &[usize],
                to: &mut Vec<Option<usize>>,
                seen: &mut Vec<bool>,
            ) -> bool {
                for &r in order {
                    if seen[r] || !compatible(people[g], people[r]) {
                        continue;
                    }
                    seen[r] = true;
                    if to[r].map_or(true, |h| augment(h, people, order, to, seen)) {
                        to[r] = Some(g);
                        return true;
                    }
                }
                false
            }
            let all = order
                .clone()
                .into_iter()
                .all(|g| augment(g, &people, &order, &mut to, &mut vec![false; n]));
            let pairs: Vec<(usize, usize)> = (0..n).filter_map(|r| Some((to[r]?, r))).collect();
            let mutual = pairs.iter().any(|(g, r)| pairs.contains(&(*r, *g)));
            if all && !(no_mutual && mutual) {
                let id = |i: usize| people[i].id.clone();
                return Some(pairs.into_iter().map(|(g, r)| (id(g), id(r))).collect());
            }
        }
        // Random tries can miss the few assignments with no mutual pair: search them all.
        let mut to = vec![None; n];
        let found = exhaustive(&people, no_mutual, 0, &mut to);
        let id = |i: usize| people[i].id.clone();
        found.then(|| (0..n).map(|g| (id(g), id(to[g].unwrap()))).collect())
    }

    fn register(&mut self, b: &Value) -> Reply {
        let (x, p) = (s(b, "exchange"), s(b, "participant"));
        let person = Person {
            id: p.clone(),
            exclusions: serde_json::from_value(b["exclusions"].clone()).unwrap_or_default(),
            budget: b["budget"]
                .as_object()
                .map(|m| (m["min"].as_i64().unwrap(), m["max"].as_i64().unwrap())),
        };
        let nice = b["nice_child"] == json!(true);
        let ex = self.exchanges.entry(x.clone()).or_default();
        if ex.people.iter().any(|q| q.0.id == p) {
            return Ok(json!({"type": "register_ok", "epoch": ex.epoch}));
        }
        ex.people.push((person, s(b, "public_key"), nice));
        if ex.epoch == 0 {
            return Ok(json!({"type": "register_ok", "epoch": 0}));
        }
        // A splice: some A→B becomes A→L, L→B.
        let l = ex.people.last().unwrap().0.clone();
        let find = |id: &str| ex.people.iter().find(|q| q.0.id == id).map(|q| &q.0);
        let edge = ex.gifts.iter().find(|(a, (r, _))| {
            compatible(find(a).unwrap(), &l) && compatible(&l, find(r).unwrap())
        });
        let Some((a, (r, old))) = edge.map(|(a, (r, g))| (a.clone(), (r.clone(), *g))) else {
            ex.people.pop();
            return Err((
                "precondition-failed",
                "no place for the late addition".into(),
            ));
        };
        for kind in STAGES {
            let t = self.tasks.get_mut(&task_id(old, kind)).unwrap();
            if matches!(t.status, "pending" | "assigned") {
                t.status = "cancelled";
            }
        }
        let epoch = self.commit(&x, "splice", vec![(a, p.clone()), (p, r)]);
        Ok(json!({"type": "register_ok", "epoch": epoch}))
    }

    fn match_(&mut self, b: &Value) -> Reply {
        let x = s(b, "exchange");
        let Some(ex) = self.exchanges.get_mut(&x) else {
            return Err(("key-does-not-exist", "unknown exchange".into()));
        };
        ex.deadline = ex.deadline.or(b["deadline"].as_i64());
        let mut who: Vec<String> = ex.people.iter().map(|p| p.0.id.clone()).collect();
        who.sort();
        if ex.epoch > 0 {
            // Matched already: the committed epoch, as the matcher answers.
            return Ok(json!({"type": "match_ok", "epoch": ex.epoch, "participants": who}));
        }
        let Some(pairs) = self.assign(&x, b["no_mutual"] == json!(true)) else {
            return Err(("precondition-failed", "infeasible".into()));
        };
        if self.enqueue_before_log {
            self.commit(&x, "match", pairs.clone());
            let ex = self.exchanges.get_mut(&x).unwrap();
            // The transaction aborts: its epoch and gifts are undone, its tasks stay.
            ex.epoch -= 1;
            ex.gifts.clear();
            if let Some(last) = ex.events.last_mut() {
                last["event"] = json!("aborted");
            }
        }
        let epoch = self.commit(&x, "match", pairs);
        Ok(json!({"type": "match_ok", "epoch": epoch, "participants": who}))
    }

    fn sealed(&self, x: &str, p: &str, plain: Value) -> String {
        let key = STANDARD.decode(&self.person(x, p).unwrap().1).unwrap();
        let key: [u8; 32] = key.try_into().unwrap();
        let sealed = crypto_box::PublicKey::from_bytes(key)
            .seal(
                &mut StdRng::seed_from_u64(self.ms),
                plain.to_string().as_bytes(),
            )
            .unwrap();
        STANDARD.encode(sealed)
    }

    fn read(&mut self, b: &Value, status: bool) -> Reply {
        let (x, p) = (s(b, "exchange"), s(b, "participant"));
        let ex = self.exchanges.get(&x);
        let Some((r, g)) = ex.and_then(|e| e.gifts.get(&p)).cloned() else {
            return Err(("key-does-not-exist", "no assignment".into()));
        };
        let epoch = ex.unwrap().epoch;
        if !status {
            let plain =
                json!({"exchange": x, "giver": p, "receiver": r, "epoch": epoch, "gift_id": g});
            let sealed = self.sealed(&x, &p, plain);
            return Ok(
                json!({"type": "get_assignment_ok", "epoch": epoch, "gift_id": g, "sealed": sealed}),
            );
        }
        let stage = STAGES
            .iter()
            .find(|k| self.tasks[&task_id(g, k)].status != "completed")
            .map_or("packaged", |k| k);
        let sealed = self.sealed(&x, &p, json!({"gift_id": g, "stage": stage}));
        Ok(json!({"type": "gift_status_ok", "epoch": epoch, "gift_id": g, "sealed": sealed}))
    }

    fn poll(&mut self, b: &Value) -> Reply {
        let max = b["max"].as_u64().unwrap_or(1) as usize;
        let mut ready: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.status == "pending")
            .filter(|(_, t)| {
                t.dep
                    .as_ref()
                    .map_or(true, |d| self.tasks[d].status == "completed")
            })
            .map(|(id, _)| id.clone())
            .collect();
        let rank = |p: &str| {
            ["express", "standard", "nice-child"]
                .iter()
                .position(|q| *q == p)
        };
        ready.sort_by_key(|id| rank(self.tasks[id].priority));
        let mut out = Vec::new();
        for id in ready.into_iter().take(max) {
            let t = self.tasks.get_mut(&id).unwrap();
            t.status = "assigned";
            t.attempts += 1;
            out.push(json!({"id": id, "kind": t.kind, "priority": t.priority,
                "attempt": t.attempts, "max_attempts": 1000, "payload": t.payload,
                "partition": 0, "stolen": false, "lease_until": 0}));
        }
        Ok(json!({"type": "poll_ok", "tasks": out}))
    }

    fn task_op(&mut self, f: &str, b: &Value) -> Reply {
        let id = s(b, "id");
        let Some(t) = self.tasks.get_mut(&id) else {
            return Err(("key-does-not-exist", "no task".into()));
        };
        if f == "status" {
            return Ok(json!({"type": "status_ok", "id": id, "status": t.status,
                "attempts": t.attempts, "max_attempts": 1000, "blocked_by": []}));
        }
        let held = b["attempt"].as_u64() == Some(t.attempts)
            && matches!(t.status, "assigned" | "in_progress");
        if f == "ack" && t.status == "completed" {
            return Ok(json!({"type": "ack_ok", "duplicate": true}));
        }
        if !held {
            return Err(("precondition-failed", "stale lease".into()));
        }
        Ok(match f {
            "start" => {
                t.status = "in_progress";
                json!({"type": "start_ok"})
            }
            "ack" => {
                t.status = "completed";
                json!({"type": "ack_ok", "duplicate": false})
            }
            _ => {
                t.status = "pending";
                json!({"type": "nack_ok", "dead_lettered": false})
            }
        })
    }

    fn handle(&mut self, body: &Map<String, Value>) -> Reply {
        let b = Value::Object(body.clone());
        match s(&b, "type").as_str() {
            "register" => self.register(&b),
            "match" => self.match_(&b),
            "get_assignment" => self.read(&b, false),
            "gift_status" => self.read(&b, true),
            "audit" => {
                let events = self
                    .exchanges
                    .get(&s(&b, "exchange"))
                    .map(|e| e.events.clone());
                Ok(json!({"type": "audit_ok", "events": events.unwrap_or_default()}))
            }
            "poll" => self.poll(&b),
            f @ ("start" | "ack" | "nack" | "status") => self.task_op(f, &b),
            other => panic!("unexpected request {other}"),
        }
    }
}

/// Runs one worker's operation against the system, as the engine would record it.
fn run_op(w: &mut Santa, sys: &mut System, h: &mut History, k: usize, op: GenOp, t: u64) {
    let p = Process::Worker(k as u64);
    let mut inv = Op::new(t * 1_000_000, OpType::Invoke, p, op.f, op.value.clone());
    inv.final_read = op.final_read;
    h.push(inv);
    let req = w.request(&op);
    let (ty, value, error) = match sys.handle(&req.body) {
        Ok(mut reply) => {
            reply["in_reply_to"] = json!(1);
            let reply = reply.as_object().unwrap().clone();
            assert!(req.reply.check(&reply).is_ok(), "{} reply {reply:?}", op.f);
            (OpType::Ok, w.ok_value(&op, &reply), None)
        }
        Err((name, text)) => (
            OpType::Fail,
            op.value.clone(),
            Some(Edn::Vector(vec![Edn::kw(name), Edn::Str(text)])),
        ),
    };
    let mut d = Op::new(t * 1_000_000 + 500_000, ty, p, op.f, value);
    d.error = error;
    d.final_read = op.final_read;
    h.push(d.clone());
    w.completed(k, &op, &d);
}

/// One phase: each millisecond, the next worker in turn is asked (the main phase's
/// rate), or every free one (the final phase), until `until` or every worker is done.
fn phase(w: &mut Santa, sys: &mut System, h: &mut History, phase: Phase, from: u64, until: u64) {
    let workers = w.elf.len();
    let mut rng = StdRng::seed_from_u64(sys.rng_seed);
    let (mut resume, mut done, mut issued) =
        (vec![from; workers], vec![false; workers], vec![0; workers]);
    for t in from..until {
        let asked: Vec<usize> = match phase {
            Phase::Main => vec![t as usize % workers],
            Phase::Final => (0..workers).collect(),
        };
        for k in asked {
            if done[k] || resume[k] > t {
                continue;
            }
            let ask = Ask {
                phase,
                worker: k,
                now_ms: t,
                issued: issued[k],
            };
            match w.next(ask, &mut rng) {
                Next::Op(op) => {
                    issued[k] += 1;
                    run_op(w, sys, h, k, op, t);
                }
                Next::Local(op) => {
                    issued[k] += 1;
                    if op.f == "abandon" {
                        // Its lease runs out at once.
                        let id = op.value.get("id").and_then(Edn::as_str).unwrap_or("");
                        if let Some(task) = sys.tasks.get_mut(id).filter(|t| t.status == "assigned")
                        {
                            task.status = "pending";
                        }
                    }
                    let p = Process::Worker(k as u64);
                    h.push(Op::new(
                        t * 1_000_000,
                        OpType::Invoke,
                        p,
                        op.f,
                        op.value.clone(),
                    ));
                    let d = Op::new(t * 1_000_000, OpType::Ok, p, op.f, op.value.clone());
                    h.push(d.clone());
                    w.completed(k, &op, &d);
                }
                Next::Wait(ms) => resume[k] = t + ms,
                Next::Done if phase == Phase::Final => done[k] = true,
                Next::Done => {}
            }
        }
        if done.iter().all(|d| *d) {
            return;
        }
    }
}

/// A whole run against the model system; the checker's result.
fn run(seed: u64, enqueue_before_log: bool) -> Edn {
    let mut w = Santa::new();
    let nodes: Vec<String> = (0..6).map(|i| format!("n{i}")).collect();
    w.begin(&Cluster {
        nodes: nodes.clone(),
        topology: Topology::Grid,
        workers: 6,
        node_args: Vec::new(),
        services: vec![
            ("queue".into(), nodes[..3].to_vec()),
            ("matcher".into(), nodes[3..].to_vec()),
        ],
    });
    let mut sys = System {
        rng_seed: seed,
        enqueue_before_log,
        ..System::default()
    };
    let mut h = History::default();
    phase(&mut w, &mut sys, &mut h, Phase::Main, 0, 2_500);
    phase(&mut w, &mut sys, &mut h, Phase::Final, 2_500, 62_500);
    w.check(&h, &RunFacts::default())
}

#[test]
fn a_matcher_that_enqueues_before_the_commit_is_caught() {
    let r = run(1, true);
    assert_eq!(r.get("valid?"), Some(&Edn::Bool(false)));
    let e2e = r.get("end-to-end").unwrap();
    let n = e2e.get("uncommitted-gift-tasks").and_then(Edn::as_i64);
    assert!(n > Some(0), "{}", e2e.to_compact());
}

#[test]
fn a_run_against_a_correct_system_is_valid() {
    for seed in [1, 2] {
        let r = run(seed, false);
        let e2e = r.get("end-to-end").unwrap();
        assert_eq!(
            r.get("valid?"),
            Some(&Edn::Bool(true)),
            "seed {seed}: {}",
            r.to_compact()
        );
        assert!(
            e2e.get("gifts-replaced").and_then(Edn::as_i64) > Some(0),
            "{}",
            e2e.to_compact()
        );
        let stats = r.get("stats").unwrap();
        assert_eq!(
            stats.get("tasks-per-gift"),
            Some(&Edn::Float(4.0)),
            "{}",
            stats.to_compact()
        );
    }
}

/// Gives giver `g` onwards a receiver each (`to[giver]`), every receiver once, compatible,
/// and with no mutual pair when `no_mutual`; false when there is no such assignment.
fn exhaustive(people: &[&Person], no_mutual: bool, g: usize, to: &mut Vec<Option<usize>>) -> bool {
    if g == people.len() {
        return true;
    }
    for r in 0..people.len() {
        let taken = to.contains(&Some(r));
        let mutual = no_mutual && to[r] == Some(g);
        if taken || mutual || !compatible(people[g], people[r]) {
            continue;
        }
        to[g] = Some(r);
        if exhaustive(people, no_mutual, g + 1, to) {
            return true;
        }
        to[g] = None;
    }
    false
}
