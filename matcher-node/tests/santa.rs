//! The matcher with the giftid and queue services, all real nodes in one simulated
//! cluster: what a commit enqueues, what an abort does not, a coordinator crash between
//! commit and enqueue, splices, a giftid partition and `gift_status`.

mod santa_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use matcher::seal::keypair;
use matcher::sm::Gid;
use rand::rngs::StdRng;
use rand::SeedableRng;
use santa_common::*;
use serde_json::{json, Value};

/// Unix ms of the simulated cluster's wall clock now.
fn wall_ms(c: &Sim) -> u64 {
    1_800_000_000_000 + c.now().as_millis() as u64
}

/// Registers `n` participants of `exchange` over the regions (the odd ones nice
/// children); returns their ids.
fn register_all(c: &mut Sim, people: &mut People, exchange: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{exchange}-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        people.register(c, exchange, id, (i % 3) as u32, i % 2 == 1);
    }
    ids
}

fn match_ok(c: &mut Sim, body: Value) -> Value {
    let reply = ask(c, "m", &MATCHER, body, 10);
    assert_eq!(reply["type"], "match_ok", "{reply}");
    reply
}

/// Four participants registered and matched in `exchange`, their tasks enqueued: their
/// ids and gifts.
fn matched(
    c: &mut Sim,
    people: &mut People,
    exchange: &str,
) -> (Vec<String>, BTreeMap<String, (u64, String)>) {
    let ids = register_all(c, people, exchange, 4);
    match_ok(c, json!({"type": "match", "exchange": exchange}));
    assert!(drain(c, 30));
    let gifts = gifts(c, people, exchange, &ids);
    (ids, gifts)
}

/// Every giver's gift: giver -> (gift id, receiver).
fn gifts(
    c: &mut Sim,
    people: &People,
    exchange: &str,
    ids: &[String],
) -> BTreeMap<String, (u64, String)> {
    let gifts = ids
        .iter()
        .map(|id| (id.clone(), people.gift(c, exchange, id)));
    gifts.collect()
}

/// The four tasks of one gift as the contract has them.
fn expected_tasks(gift_id: u64, exchange: &str, epoch: u64, priority: &str) -> Vec<Value> {
    let ids = tasks_of(gift_id);
    (0..4)
        .map(|s| {
            let deps: Vec<&String> = ids[..s].iter().rev().take(1).collect();
            json!({"id": ids[s], "kind": STAGES[s], "priority": priority, "deps": deps,
                "payload": {"gift_id": gift_id, "exchange": exchange, "epoch": epoch},
                "max_attempts": 1000})
        })
        .collect()
}

/// Checks that every copy of every enqueue on the wire is one of `expected`, and that
/// each expected task exists at the queue.
fn check_tasks(c: &mut Sim, wire: &Wire, expected: &[Value]) {
    let by_id: BTreeMap<&str, &Value> = expected
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t))
        .collect();
    for task in wire.enqueued() {
        let id = task["id"].as_str().unwrap();
        assert_eq!(
            Some(&&task),
            by_id.get(id),
            "an enqueue not expected, or altered"
        );
    }
    let ids: BTreeSet<String> = by_id.keys().map(|s| s.to_string()).collect();
    assert_eq!(
        wire.task_ids(),
        ids,
        "exactly the tasks of the committed gifts"
    );
    for id in &ids {
        let s = status(c, id);
        assert_eq!(s["type"], "status_ok", "{id}: {s}");
        assert_eq!(s["max_attempts"], 1000);
    }
}

#[test]
fn a_committed_match_enqueues_four_tasks_per_gift_with_giftid_ids() {
    let (mut c, wire) = santa();
    let mut people = People::new(1);
    let plain = register_all(&mut c, &mut people, "plain", 6);
    match_ok(&mut c, json!({"type": "match", "exchange": "plain"}));
    let soon = register_all(&mut c, &mut people, "soon", 3);
    let deadline = wall_ms(&c) + 3_600_000;
    match_ok(
        &mut c,
        json!({"type": "match", "exchange": "soon", "deadline": deadline}),
    );
    let later = register_all(&mut c, &mut people, "later", 3);
    let far = wall_ms(&c) + 3 * 86_400_000;
    match_ok(
        &mut c,
        json!({"type": "match", "exchange": "later", "deadline": far}),
    );
    assert!(drain(&mut c, 30), "the queue work is done");

    let mut expected = Vec::new();
    let mut gift_ids = BTreeSet::new();
    for (exchange, ids, express) in [
        ("plain", &plain, false),
        ("soon", &soon, true),
        ("later", &later, false),
    ] {
        for (gift_id, receiver) in gifts(&mut c, &people, exchange, ids).into_values() {
            let nice = receiver
                .rsplit('-')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
                % 2
                == 1;
            let priority = match (express, nice) {
                (true, _) => "express",
                (false, true) => "nice-child",
                (false, false) => "standard",
            };
            expected.extend(expected_tasks(gift_id, exchange, 1, priority));
            gift_ids.insert(gift_id);
        }
    }
    check_tasks(&mut c, &wire, &expected);

    let issued = wire.issued();
    assert!(
        gift_ids.is_subset(&issued),
        "every gift ID comes from a giftid node"
    );
    let sm = coordinator(&c).expect("a coordinator");
    assert!(
        sm.txns.keys().all(|t| issued.contains(t)),
        "transaction ids too"
    );
    for exchange in ["plain", "soon", "later"] {
        let audit = ask(
            &mut c,
            "a",
            &MATCHER,
            json!({"type": "audit", "exchange": exchange}),
            5,
        );
        for e in audit["events"].as_array().unwrap() {
            assert!(
                issued.contains(&e["id"].as_u64().unwrap()),
                "audit event {e}"
            );
        }
    }
}

#[test]
fn an_aborted_transaction_enqueues_nothing() {
    let (mut c, wire) = santa();
    let mut people = People::new(2);
    aborted_match(&mut c, &wire, &mut people, "lost");
    assert!(drain(&mut c, 10));
    assert!(wire.enqueued().is_empty(), "{:?}", wire.enqueued());
    // The exchange still matches afterwards, and that commit is enqueued.
    match_ok(&mut c, json!({"type": "match", "exchange": "lost"}));
    assert!(drain(&mut c, 30));
    assert_eq!(wire.task_ids().len(), 4 * 4);
    let epochs: BTreeSet<u64> = wire
        .enqueued()
        .iter()
        .map(|t| t["payload"]["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1].into(), "the committed epoch's");
}

#[test]
fn a_new_coordinator_leader_finishes_the_enqueues_of_a_crashed_one() {
    for seed in 0..3u64 {
        let (mut c, wire) = santa();
        c.run_for(Duration::from_millis(seed * 13));
        let mut people = People::new(seed);
        let ids = register_all(&mut c, &mut people, "x", 8);
        let coord = leader(&c, Gid::Coordinator).expect("a coordinator");
        c.request("m", coord, json!({"type": "match", "exchange": "x"}));
        let mut crashed = false;
        for _ in 0..5_000 {
            c.run_for(Duration::from_millis(1));
            let pending = coordinator(&c).is_some_and(|sm| !sm.work.is_empty());
            if pending && !wire.enqueued().is_empty() {
                c.crash(coord);
                crashed = true;
                break;
            }
        }
        assert!(crashed, "seed {seed}: the enqueues started");
        let sent_before = wire.enqueued().len();
        assert!(sent_before < 8 * 4, "seed {seed}: crashed before the end");
        c.run_for(Duration::from_secs(3));
        c.restart(coord);
        assert!(drain(&mut c, 30), "seed {seed}: the new leader finished");
        let mut expected = Vec::new();
        for (gift_id, receiver) in gifts(&mut c, &people, "x", &ids).into_values() {
            let nice = receiver
                .rsplit('-')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
                % 2
                == 1;
            let priority = if nice { "nice-child" } else { "standard" };
            expected.extend(expected_tasks(gift_id, "x", 1, priority));
        }
        check_tasks(&mut c, &wire, &expected);
        assert!(
            wire.enqueued().len() > wire.task_ids().len(),
            "seed {seed}: some redone"
        );
        for id in wire.task_ids() {
            let s = status(&mut c, &id);
            assert_eq!(
                (s["status"].clone(), s["attempts"].clone()),
                (json!("pending"), json!(0)),
                "{id}: once in effect"
            );
        }
    }
}

#[test]
fn a_splice_enqueues_the_new_gifts_and_cancels_the_replaced_one() {
    let (mut c, wire) = santa();
    let mut people = People::new(4);
    let (ids, before) = matched(&mut c, &mut people, "x");
    people.register(&mut c, "x", "late", 1, false);
    // The splice is answered once the replaced gift's tasks are cancelled.
    let mut cancelled_at_answer = Vec::new();
    for (gift_id, _) in before.values() {
        let ids = tasks_of(*gift_id);
        if ids
            .iter()
            .all(|id| status(&mut c, id)["status"] == "cancelled")
        {
            cancelled_at_answer.push(*gift_id);
        }
    }
    assert!(drain(&mut c, 30));
    let mut all = ids.clone();
    all.push("late".into());
    let after = gifts(&mut c, &people, "x", &all);
    let (giver, _) = after
        .iter()
        .find(|(_, (_, r))| r == "late")
        .expect("someone gives to late");
    let replaced = before[giver].0;
    let new: BTreeSet<u64> = [after[giver].0, after["late"].0].into();
    assert!(!new.contains(&replaced));

    let mut expected = Vec::new();
    for (gift_id, _) in before.values() {
        expected.extend(expected_tasks(*gift_id, "x", 1, "standard"));
    }
    for gift_id in &new {
        let receiver = &after.values().find(|(g, _)| g == gift_id).unwrap().1;
        let nice = receiver != "late"
            && receiver
                .rsplit('-')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
                % 2
                == 1;
        let priority = if nice { "nice-child" } else { "standard" };
        expected.extend(expected_tasks(*gift_id, "x", 2, priority));
    }
    // The receivers of the first epoch decide its priorities.
    for t in expected.iter_mut().filter(|t| t["payload"]["epoch"] == 1) {
        let gift_id = t["payload"]["gift_id"].as_u64().unwrap();
        let receiver = &before.values().find(|(g, _)| *g == gift_id).unwrap().1;
        let nice = receiver
            .rsplit('-')
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap()
            % 2
            == 1;
        t["priority"] = json!(if nice { "nice-child" } else { "standard" });
    }
    check_tasks(&mut c, &wire, &expected);
    let cancelled: BTreeSet<String> = tasks_of(replaced).into_iter().collect();
    assert_eq!(
        wire.cancelled(),
        cancelled,
        "the replaced gift's four tasks, nothing else"
    );
    assert_eq!(cancelled_at_answer, vec![replaced]);
    for id in &cancelled {
        let s = status(&mut c, id);
        assert_eq!(s["status"], "cancelled", "{id}: {s}");
    }
    assert_eq!(
        people.stage(&mut c, "x", giver).stage,
        "assembly",
        "the giver's gift is now the spliced one, not the cancelled one"
    );
}

#[test]
fn a_splice_is_answered_only_once_the_gift_it_replaced_is_cancelled() {
    let (mut c, _wire) = santa();
    let mut people = People::new(6);
    let (_, before) = matched(&mut c, &mut people, "y");
    for q in QUEUE {
        c.isolate(q);
    }
    let (_, public) = keypair(&mut StdRng::seed_from_u64(66));
    let body = json!({"type": "register", "exchange": "y", "participant": "late",
        "public_key": public, "region": 1});
    let coord = leader(&c, Gid::Coordinator).expect("a coordinator");
    let reply = call_for(&mut c, "late", coord, body.clone(), 3_000);
    let answer = reply.as_ref().map(|r| r["type"].clone());
    assert!(
        answer.is_none() || answer == Some(json!("error")),
        "no register_ok while the queue cannot cancel: {reply:?}"
    );
    c.heal();
    let reply = ask(&mut c, "late", &MATCHER, body, 10);
    assert_eq!(reply["type"], "register_ok", "{reply}");
    let cancelled: Vec<u64> = (before.values().map(|(g, _)| *g))
        .filter(|g| (tasks_of(*g).iter()).all(|id| status(&mut c, id)["status"] == "cancelled"))
        .collect();
    assert_eq!(
        cancelled.len(),
        1,
        "the replaced gift, cancelled at the answer"
    );
}

#[test]
fn commits_go_on_from_the_pool_through_a_giftid_partition_and_wait_when_it_is_gone() {
    let (mut c, wire) = santa();
    let mut people = People::new(5);
    register_all(&mut c, &mut people, "warm", 3);
    match_ok(&mut c, json!({"type": "match", "exchange": "warm"}));
    c.run_for(Duration::from_secs(1));
    let coord = leader(&c, Gid::Coordinator).expect("a coordinator");
    assert!(
        c.node(coord).unwrap().pooled_ids() > 0,
        "the pool is filled"
    );
    for g in GIFTID {
        c.isolate(g);
    }
    let ids = register_all(&mut c, &mut people, "cut", 5);
    match_ok(&mut c, json!({"type": "match", "exchange": "cut"}));
    let issued = wire.issued();
    for (gift_id, _) in gifts(&mut c, &people, "cut", &ids).into_values() {
        assert!(
            issued.contains(&gift_id),
            "from the pool, not a local generator"
        );
    }

    // A new leader starts with an empty pool: its transactions wait for the service,
    // and the very request that waited commits once it is back.
    c.crash(coord);
    register_all(&mut c, &mut people, "wait", 3);
    let new = leader(&c, Gid::Coordinator).expect("a new coordinator");
    assert_eq!(c.node(new).unwrap().pooled_ids(), 0, "the pool is volatile");
    let body = json!({"type": "match", "exchange": "wait"});
    let asked = c.request("w", new, body);
    c.run_for(Duration::from_millis(2_500));
    let answered = |c: &mut Sim| {
        let mut inbox = c.take_inbox().into_iter();
        inbox.find(|(to, b)| to == "w" && b["in_reply_to"] == json!(asked))
    };
    assert_eq!(answered(&mut c), None, "no answer while no ID can be had");
    let epoch = coordinator(&c).and_then(|sm| sm.exchanges.get("wait").map(|e| e.epoch));
    assert_eq!(epoch.unwrap_or(0), 0);
    c.heal();
    c.run_for(Duration::from_millis(2_000));
    let reply = answered(&mut c)
        .expect("an answer once the giftid nodes are back")
        .1;
    assert_eq!(reply["type"], "match_ok", "{reply}");
    c.restart(coord);
    let issued = wire.issued();
    let late: Vec<String> = (0..3).map(|i| format!("wait-{i}")).collect();
    for (gift_id, _) in gifts(&mut c, &people, "wait", &late).into_values() {
        assert!(issued.contains(&gift_id));
    }
}

#[test]
fn gift_status_is_sealed_and_follows_the_tasks() {
    let (mut c, _wire) = santa();
    let mut people = People::new(6);
    let ids = register_all(&mut c, &mut people, "x", 3);
    match_ok(&mut c, json!({"type": "match", "exchange": "x"}));
    let first = people.stage(&mut c, "x", &ids[0]);
    assert!(
        ["queued", "assembly"].contains(&first.stage.as_str()),
        "{first:?}"
    );
    assert!(drain(&mut c, 30));
    let (gift_id, _) = people.gift(&mut c, "x", &ids[0]);
    let mut seen = vec![people.stage(&mut c, "x", &ids[0])];
    assert_eq!(seen[0].gift_id, gift_id);
    assert_eq!(seen[0].stage, "assembly");
    // An elf does one ready task at a time; the stage moves with every completion.
    for _ in 0..40 {
        let polled = ask(
            &mut c,
            "elf",
            &QUEUE,
            json!({"type": "poll", "max": 1, "lease_ms": 5000}),
            5,
        );
        for t in polled["tasks"].as_array().cloned().unwrap_or_default() {
            let ack = json!({"type": "ack", "id": t["id"], "attempt": t["attempt"]});
            let acked = ask(&mut c, "elf", &QUEUE, ack, 5);
            assert_eq!(acked["type"], "ack_ok", "{acked}");
        }
        let now = people.stage(&mut c, "x", &ids[0]);
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        if seen.last().unwrap().stage == "packaged" {
            break;
        }
    }
    let stages: Vec<&str> = seen.iter().map(|p| p.stage.as_str()).collect();
    assert_eq!(
        stages,
        [
            "assembly",
            "painting",
            "quality-check",
            "packaging",
            "packaged"
        ]
    );
    // Sealed: the box opens only with the giver's key.
    let body = json!({"type": "gift_status", "exchange": "x", "participant": ids[0]});
    let reply = ask(&mut c, "s", &MATCHER, body, 5);
    let other = &people.secrets[&ids[1]];
    assert!(matcher::seal::open_json::<Value>(reply["sealed"].as_str().unwrap(), other).is_err());
    let none = json!({"type": "gift_status", "exchange": "x", "participant": "nobody"});
    assert_eq!(ask(&mut c, "s", &MATCHER, none, 5)["code"], 20);
}
