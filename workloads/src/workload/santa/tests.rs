use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::SeedableRng;
use serde_json::json;

use super::*;
use crate::topology::Topology;
use crate::workload::task_queue::tests::done;

const HOUR_MS: i64 = 3_600_000;

fn shaped(workers: usize) -> Santa {
    let mut w = Santa::new();
    let nodes: Vec<String> = (0..11).map(|i| format!("n{i}")).collect();
    w.begin(&Cluster {
        nodes: nodes.clone(),
        topology: Topology::Grid,
        workers,
        node_args: Vec::new(),
        services: vec![
            ("giftid".into(), nodes[..3].to_vec()),
            ("queue".into(), nodes[3..6].to_vec()),
            ("matcher".into(), nodes[6..].to_vec()),
        ],
    });
    w
}

fn ask(phase: Phase, worker: usize, now_ms: u64) -> Ask {
    Ask {
        phase,
        worker,
        now_ms,
        issued: 0,
    }
}

fn with(op: &GenOp, extra: &[(&str, Edn)]) -> Edn {
    let mut v = op.value.clone();
    for (k, x) in extra {
        v.insert(k, x.clone());
    }
    v
}

#[test]
fn two_thirds_are_clients_on_the_matcher_and_a_third_elves_on_the_queue() {
    for workers in 1..=12 {
        let w = shaped(workers);
        let elves = (0..workers).filter(|k| w.elf[*k]).count();
        if workers >= 2 {
            assert!(elves >= 1 && elves < workers, "{workers}: {elves}");
        } else {
            assert_eq!(elves, 0);
        }
        assert!(elves <= workers.div_ceil(3), "{workers}: {elves}");
        for k in 0..workers {
            let want = if w.elf[k] { "queue" } else { "matcher" };
            assert_eq!(w.service_of(k), Some(want));
        }
    }
    assert_eq!(crate::workload::by_name("santa").unwrap().name(), "santa");
}

/// Drives the clients' main phase, every request answered ok at once.
fn client_ops(seed: u64, n: usize) -> (Santa, Vec<GenOp>) {
    let mut w = shaped(3);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = Vec::new();
    let mut participants: BTreeMap<String, Vec<Edn>> = BTreeMap::new();
    for t in 0..n as u64 {
        let op = match w.next(ask(Phase::Main, 0, t), &mut rng) {
            Next::Op(op) => op,
            _ => continue,
        };
        let x = op.value.get("exchange").cloned().unwrap_or(Edn::Nil);
        let value = match op.f {
            "register" => {
                let p = op.value.get("participant").cloned().unwrap();
                participants.entry(x.to_compact()).or_default().push(p);
                with(&op, &[("epoch", Edn::Int(0))])
            }
            "match" => {
                let who = participants
                    .get(&x.to_compact())
                    .cloned()
                    .unwrap_or_default();
                with(
                    &op,
                    &[("epoch", Edn::Int(1)), ("participants", Edn::Vector(who))],
                )
            }
            _ => op.value.clone(),
        };
        w.completed(0, &op, &done(0, &op, OpType::Ok, value, t));
        log.push(op);
    }
    (w, log)
}

#[test]
fn clients_register_nice_children_match_with_clear_deadlines_and_read_after_commits() {
    let (mut nice, mut near, mut far, mut none) = (0, 0, 0, 0);
    for seed in 0..20 {
        let (w, log) = client_ops(seed, 400);
        for (i, op) in log.iter().enumerate() {
            let body = Value::Object(w.request(op).body);
            match op.f {
                "register" if op.value.get("nice-child").is_some() => {
                    nice += 1;
                    assert_eq!(body["nice_child"], json!(true));
                }
                "match" => match op.value.get("deadline").and_then(Edn::as_i64) {
                    None => {
                        none += 1;
                        assert!(body.get("deadline").is_none());
                    }
                    Some(d) => {
                        let made = op.value.get("deadline-made").and_then(Edn::as_i64).unwrap();
                        let ahead = d - made;
                        assert!(ahead <= 12 * HOUR_MS || ahead >= 48 * HOUR_MS, "{ahead}");
                        if ahead <= 12 * HOUR_MS {
                            near += 1;
                        } else {
                            far += 1;
                        }
                        assert_eq!(body["deadline"], json!(d));
                        // Made from the wall clock of this run.
                        assert!(made > 1_700_000_000_000, "{made}");
                    }
                },
                _ => {}
            }
            // Every match answered ok is followed by reads of the exchange's participants.
            if op.f == "match" && log.get(i + 1).is_some_and(|n| n.f != "match") {
                let x = op.value.get("exchange");
                let next_reads = log[i + 1..]
                    .iter()
                    .take_while(|n| n.f == "read" || n.f == "register")
                    .filter(|n| n.f == "read" && n.value.get("exchange") == x)
                    .count();
                assert!(next_reads >= 1, "reads follow the match of {x:?}");
            }
        }
        let statuses = log.iter().filter(|o| o.f == "gift-status").count();
        assert!(statuses > 0, "seed {seed}: gift statuses are read");
    }
    assert!(
        nice > 0 && near > 0 && far > 0 && none > 0,
        "{nice} {near} {far} {none}"
    );
}

#[test]
fn a_gift_status_box_is_opened_with_the_givers_key() {
    let (w, log) = client_ops(4, 50);
    let reg = log.iter().find(|o| o.f == "register").unwrap();
    let key = STANDARD
        .decode(reg.value.get("public-key").and_then(Edn::as_str).unwrap())
        .unwrap();
    let key: [u8; 32] = key.try_into().unwrap();
    let mut op = reg.clone();
    op.f = "gift-status";
    op.value = Edn::map([
        ("exchange", reg.value.get("exchange").cloned().unwrap()),
        (
            "participant",
            reg.value.get("participant").cloned().unwrap(),
        ),
    ]);
    let req = w.request(&op);
    assert_eq!(req.body["type"], json!("gift_status"));
    let plain = json!({"gift_id": 42, "stage": "painting"}).to_string();
    let sealed = crypto_box::PublicKey::from_bytes(key)
        .seal(&mut StdRng::seed_from_u64(1), plain.as_bytes())
        .unwrap();
    let reply = json!({"type": "gift_status_ok", "epoch": 2, "gift_id": 42,
        "sealed": STANDARD.encode(sealed), "in_reply_to": 1});
    let reply = reply.as_object().unwrap();
    assert!(req.reply.check(reply).is_ok());
    let v = w.ok_value(&op, reply);
    assert_eq!(
        v.get("status").map(Edn::to_compact).as_deref(),
        Some("{:gift-id 42, :stage \"painting\"}")
    );
    let other = crypto_box::SecretKey::generate(&mut StdRng::seed_from_u64(2));
    let sealed = other
        .public_key()
        .seal(&mut StdRng::seed_from_u64(1), plain.as_bytes())
        .unwrap();
    let reply = json!({"type": "gift_status_ok", "epoch": 2, "gift_id": 42,
        "sealed": STANDARD.encode(sealed)});
    let v = w.ok_value(&op, reply.as_object().unwrap());
    assert!(v.get("status").is_none() && v.get("box-error").is_some());
}

fn delivery(id: &str, gift: i64) -> Edn {
    let (_, stage) = crate::checker::santa::parse_task_id(id).unwrap();
    Edn::map([
        ("id", Edn::Str(id.into())),
        ("attempt", Edn::Int(1)),
        ("priority", Edn::kw("standard")),
        ("kind", Edn::kw(STAGES[stage])),
        (
            "payload",
            Edn::Map(vec![(Edn::Str("gift_id".into()), Edn::Int(gift))]),
        ),
        ("partition", Edn::Int(0)),
        ("stolen", Edn::Bool(false)),
    ])
}

#[test]
fn elves_hold_string_ids_and_answer_with_them() {
    let mut w = shaped(3);
    let mut rng = StdRng::seed_from_u64(5);
    let poll = match w.next(ask(Phase::Main, 2, 0), &mut rng) {
        Next::Op(op) => op,
        other => panic!("{other:?}"),
    };
    assert_eq!(poll.f, "poll");
    let tasks = Edn::Vector(vec![delivery("7-assembly", 7)]);
    w.completed(2, &poll, &done(2, &poll, OpType::Ok, tasks, 1));
    let next = match w.next(ask(Phase::Main, 2, 2), &mut rng) {
        Next::Op(op) | Next::Local(op) => op,
        other => panic!("{other:?}"),
    };
    assert_eq!(next.value.get("id"), Some(&Edn::Str("7-assembly".into())));
    if next.f != "abandon" {
        let body = Value::Object(w.request(&next).body);
        assert_eq!(body["id"], json!("7-assembly"));
    }
    let reply = json!({"type": "poll_ok", "tasks": [{"id": "7-painting", "kind": "painting",
        "priority": "express", "attempt": 1, "max_attempts": 1000, "partition": 2,
        "stolen": false, "lease_until": 9, "payload": {"gift_id": 7, "exchange": "x0", "epoch": 1}}]});
    let v = w.ok_value(&poll, reply.as_object().unwrap());
    assert_eq!(
        v.to_compact(),
        "[{:id \"7-painting\", :attempt 1, :priority :express, :kind :painting, \
         :payload {\"gift_id\" 7, \"exchange\" \"x0\", \"epoch\" 1}, :partition 2, :stolen false}]"
    );
    let status = json!({"type": "status_ok", "id": "7-painting", "status": "cancelled",
        "attempts": 0, "max_attempts": 1000, "blocked_by": ["7-assembly"], "in_reply_to": 3});
    let op = status_op(Edn::Str("7-painting".into()));
    assert!(w
        .request(&op)
        .reply
        .check(status.as_object().unwrap())
        .is_ok());
}

/// After the clients' reads, the elf drains exactly the expected tasks, then asks the
/// status of the replaced gift's tasks and of every expected one.
#[test]
fn the_drain_ends_when_every_expected_task_is_acked_then_statuses_follow() {
    let mut w = shaped(3);
    let mut rng = StdRng::seed_from_u64(6);
    // No exchange: the clients' final work is empty at once.
    assert_eq!(w.next(ask(Phase::Final, 0, 0), &mut rng), Next::Done);
    let (g1, g2, g3, g4) = (101, 102, 103, 104);
    let x = |e: i64, gifts: &[(&str, i64)]| {
        let givers = gifts.iter().map(|(p, g)| (p.to_string(), *g)).collect();
        (("x0".to_string(), e), givers)
    };
    w.gifts = BTreeMap::from([
        x(1, &[("a", g1), ("b", g2)]),
        x(2, &[("a", g3), ("b", g2), ("d", g4)]),
    ]);
    w.newest = BTreeMap::from([("x0".to_string(), 2)]);
    let mut queue: Vec<String> = [g2, g3, g4]
        .iter()
        .flat_map(|g| STAGES.iter().map(move |k| task_id(*g, k)))
        .collect();
    // The first was acked in the main phase: the drain does not wait for it again.
    let first = queue.remove(0);
    let ack = GenOp::new(
        "ack",
        Edn::map([("id", Edn::Str(first)), ("attempt", Edn::Int(1))]),
    );
    w.completed(2, &ack, &done(2, &ack, OpType::Ok, ack.value.clone(), 0));
    queue.reverse();
    let mut statuses = Vec::new();
    let mut starts = 0;
    for t in 0..10_000u64 {
        let op = match w.next(ask(Phase::Final, 2, t), &mut rng) {
            Next::Op(op) => op,
            Next::Wait(_) => continue,
            Next::Done => break,
            Next::Local(op) => panic!("{op:?}"),
        };
        let value = match op.f {
            "poll" => Edn::Vector(queue.pop().map(|id| delivery(&id, 0)).into_iter().collect()),
            "ack" => with(&op, &[("duplicate", Edn::Bool(false))]),
            // Elves start what they drain before acking it.
            "start" => {
                starts += 1;
                op.value.clone()
            }
            "status" => {
                statuses.push(
                    op.value
                        .get("id")
                        .and_then(Edn::as_str)
                        .unwrap()
                        .to_string(),
                );
                op.value.clone()
            }
            other => panic!("{other}"),
        };
        w.completed(2, &op, &done(2, &op, OpType::Ok, value, t));
        assert!(
            t < 500,
            "the drain ends once all twelve are acked, not on the quiet bound"
        );
    }
    let replaced: Vec<String> = STAGES.iter().map(|k| task_id(g1, k)).collect();
    assert_eq!(statuses[..4], replaced[..]);
    assert_eq!(statuses.len(), 16);
    assert!(queue.is_empty());
    assert!(starts > 0, "the drain starts tasks before acking them");
}

/// A client's final read that never comes back holds the statuses back only as long as
/// the task-queue audit would wait.
#[test]
fn statuses_do_not_wait_forever_for_the_clients() {
    let (mut w, _) = client_ops(7, 200);
    let mut rng = StdRng::seed_from_u64(7);
    let stuck = w.next(ask(Phase::Final, 0, 0), &mut rng);
    assert!(matches!(stuck, Next::Op(_)), "{stuck:?}");
    let mut t = 0;
    let end = loop {
        assert!(t < 60_000, "the elf never finished");
        let op = match w.next(ask(Phase::Final, 2, t), &mut rng) {
            Next::Op(op) => op,
            Next::Wait(ms) => {
                t += ms;
                continue;
            }
            Next::Done => break t,
            Next::Local(op) => panic!("{op:?}"),
        };
        let value = match op.f {
            "poll" => Edn::Vector(Vec::new()),
            _ => op.value.clone(),
        };
        w.completed(2, &op, &done(2, &op, OpType::Ok, value, t));
        t += 10;
    };
    assert!((40_000..41_000).contains(&end), "{end}");
}
