//! Whole queue nodes in one process on simulated time: routing, replication, leases across
//! leader failure, stealing and health, without spawning anything.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use maelstrom_core::sim::Cluster;
use queue::node::QueueNode;
use serde_json::{json, Value};

const MS: Duration = Duration::from_millis(1);

/// Sends one request and runs the cluster until its answer arrives.
fn call(cluster: &mut Cluster<QueueNode>, node: usize, body: Value) -> Value {
    let client = "c1";
    let id = cluster.request(client, node, body);
    for _ in 0..5_000 {
        cluster.run_for(MS);
        let inbox = cluster.take_inbox();
        if let Some((_, reply)) = inbox
            .into_iter()
            .find(|(c, b)| c == client && b["in_reply_to"] == json!(id))
        {
            return reply;
        }
    }
    panic!("no reply within 5 s");
}

/// Polls until something comes: a node learns of other partitions' ready work from
/// heartbeats, so work enqueued elsewhere reaches it a heartbeat later.
fn poll_some(cluster: &mut Cluster<QueueNode>, node: usize, max: u32) -> Value {
    for _ in 0..50 {
        let reply = call(cluster, node, json!({"type": "poll", "max": max}));
        if reply["tasks"].as_array().is_some_and(|t| !t.is_empty()) {
            return reply;
        }
        cluster.run_for(20 * MS);
    }
    panic!("node {node} handed out nothing for a second");
}

/// A cluster whose partitions all have leaders.
fn cluster(n: usize) -> Cluster<QueueNode> {
    let mut cluster = Cluster::new(n, MS);
    cluster.run_for(Duration::from_secs(2));
    cluster
}

fn enqueue(cluster: &mut Cluster<QueueNode>, node: usize, id: u64, deps: &[u64]) -> Value {
    call(
        cluster,
        node,
        json!({"type": "enqueue", "task": {"id": id, "kind": "packaging", "deps": deps}}),
    )
}

/// Polls node `node` until it hands out nothing for a second; returns (id, attempt) pairs.
fn drain(cluster: &mut Cluster<QueueNode>, node: usize, ack: bool) -> Vec<(u64, u64)> {
    let mut got = Vec::new();
    let mut idle = 0;
    while idle < 10 {
        let reply = call(
            cluster,
            node,
            json!({"type": "poll", "max": 8, "lease_ms": 500}),
        );
        let tasks = reply["tasks"].as_array().cloned().unwrap_or_default();
        if tasks.is_empty() {
            idle += 1;
            cluster.run_for(100 * MS);
        }
        for t in tasks {
            let (id, attempt) = (t["id"].as_u64().unwrap(), t["attempt"].as_u64().unwrap());
            got.push((id, attempt));
            if ack {
                let r = call(
                    cluster,
                    node,
                    json!({"type": "ack", "id": id, "attempt": attempt}),
                );
                assert_eq!(r["type"], "ack_ok", "{r}");
            }
        }
    }
    got
}

#[test]
fn any_node_takes_any_request_and_every_task_is_delivered() {
    let mut c = cluster(3);
    for id in 0..60u64 {
        let reply = enqueue(&mut c, (id % 3) as usize, id, &[]);
        assert_eq!(reply["type"], "enqueue_ok", "{reply}");
    }
    let mut seen = BTreeSet::new();
    for node in 0..3 {
        seen.extend(drain(&mut c, node, true).into_iter().map(|(id, _)| id));
    }
    assert_eq!(seen, (0..60).collect());
    let status = call(&mut c, 2, json!({"type": "status", "id": 17}));
    assert_eq!(status["status"], "completed", "{status}");
}

#[test]
fn dependencies_across_partitions_hold_tasks_back() {
    let mut c = cluster(3);
    // Ids spread over all partitions; each task after the first depends on the one before.
    assert_eq!(enqueue(&mut c, 0, 100, &[])["type"], "enqueue_ok");
    for id in 101..110u64 {
        let reply = enqueue(&mut c, (id % 3) as usize, id, &[id - 1]);
        assert_eq!(reply["type"], "enqueue_ok", "{reply}");
    }
    let unknown = enqueue(&mut c, 1, 200, &[999]);
    assert_eq!(unknown["code"], 20, "{unknown}");
    let cycle = enqueue(&mut c, 1, 201, &[201]);
    assert_eq!(cycle["code"], 22, "{cycle}");
    // Only the head of the chain is ready; each ack releases the next.
    let mut order = Vec::new();
    for _ in 0..10 {
        let got = poll_some(&mut c, 0, 8)["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(got.len(), 1, "one ready task at a time: {got:?}");
        let (id, attempt) = (
            got[0]["id"].as_u64().unwrap(),
            got[0]["attempt"].as_u64().unwrap(),
        );
        order.push(id);
        call(
            &mut c,
            0,
            json!({"type": "ack", "id": id, "attempt": attempt}),
        );
    }
    assert_eq!(order, (100..110).collect::<Vec<_>>());
}

#[test]
fn acknowledged_tasks_and_leases_survive_the_leaders_crash() {
    let mut c = cluster(3);
    for id in 0..30u64 {
        assert_eq!(enqueue(&mut c, 0, id, &[])["type"], "enqueue_ok");
    }
    // Lease everything from node 0 and walk away, as a crashed consumer would.
    let taken = {
        let mut taken = Vec::new();
        for _ in 0..20 {
            let reply = call(
                &mut c,
                0,
                json!({"type": "poll", "max": 8, "lease_ms": 500}),
            );
            taken.extend(reply["tasks"].as_array().cloned().unwrap_or_default());
        }
        taken
    };
    assert_eq!(taken.len(), 30);
    // Every partition's leader dies in turn: each partition then runs on a new leader.
    for victim in 0..3 {
        c.crash(victim);
        c.run_for(Duration::from_secs(2));
        c.restart(victim);
        c.run_for(Duration::from_secs(1));
    }
    let again: BTreeSet<u64> = (0..3)
        .flat_map(|node| drain(&mut c, node, true))
        .map(|(id, attempt)| {
            assert!(attempt >= 2, "task {id} came back at attempt {attempt}");
            id
        })
        .collect();
    assert_eq!(again, (0..30).collect(), "leases of a dead leader expire");
}

#[test]
fn nacks_use_up_the_budget_into_the_dead_letter_queue() {
    let mut c = cluster(3);
    let task = json!({"id": 5, "kind": "painting", "max_attempts": 2});
    assert_eq!(
        call(&mut c, 1, json!({"type": "enqueue", "task": task}))["type"],
        "enqueue_ok"
    );
    for attempt in 1..=2 {
        let reply = poll_some(&mut c, 2, 1);
        assert_eq!(reply["tasks"][0]["attempt"], attempt, "{reply}");
        let nack = call(
            &mut c,
            0,
            json!({"type": "nack", "id": 5, "attempt": attempt}),
        );
        assert_eq!(nack["dead_lettered"], attempt == 2, "{nack}");
    }
    let dlq = call(&mut c, 1, json!({"type": "dlq"}));
    assert_eq!(
        dlq["tasks"],
        json!([{"id": 5, "attempts": 2, "max_attempts": 2}])
    );
    assert_eq!(
        call(&mut c, 0, json!({"type": "replay", "id": 5}))["type"],
        "replay_ok"
    );
    let reply = poll_some(&mut c, 2, 1);
    assert_eq!(reply["tasks"][0]["attempt"], 1, "{reply}");
    let stale = call(&mut c, 2, json!({"type": "ack", "id": 5, "attempt": 2}));
    assert_eq!(stale["code"], 22, "{stale}");
    let ack = call(&mut c, 2, json!({"type": "ack", "id": 5, "attempt": 1}));
    assert_eq!(ack["duplicate"], false, "{ack}");
    let again = call(&mut c, 1, json!({"type": "ack", "id": 5, "attempt": 1}));
    assert_eq!(again["duplicate"], true, "{again}");
}

#[test]
fn an_idle_node_steals_and_health_tells_who_leads() {
    let mut c = cluster(5);
    let mut leaders = BTreeSet::new();
    let mut idle = None;
    for node in 0..5 {
        let health = call(&mut c, node, json!({"type": "health"}));
        let leads: Vec<u64> = health["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["role"] == "leader")
            .map(|p| p["partition"].as_u64().unwrap())
            .collect();
        if leads.is_empty() {
            idle = Some(node);
        }
        leaders.extend(leads);
        assert_eq!(health["peers"].as_object().unwrap().len(), 4, "{health}");
        assert!(health["peers"]
            .as_object()
            .unwrap()
            .values()
            .all(|s| s == "alive"));
    }
    assert_eq!(leaders, (0..5).collect(), "every partition has a leader");
    for id in 0..40u64 {
        enqueue(&mut c, (id % 5) as usize, id, &[]);
    }
    c.run_for(300 * MS);
    // A node that leads nothing still gets work, all of it stolen.
    let node = idle.unwrap_or(0);
    let reply = poll_some(&mut c, node, 4);
    let tasks = reply["tasks"].as_array().unwrap();
    assert!(!tasks.is_empty(), "{reply}");
    if idle.is_some() {
        assert!(tasks.iter().all(|t| t["stolen"] == true), "{reply}");
    }
    c.crash(3);
    c.run_for(Duration::from_secs(2));
    let health = call(&mut c, 0, json!({"type": "health"}));
    assert_eq!(health["peers"]["n3"], "dead", "{health}");
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let mut c = cluster(3);
    let bad_id = call(
        &mut c,
        0,
        json!({"type": "enqueue", "task": {"id": -1, "kind": "painting"}}),
    );
    assert_eq!(bad_id["code"], 12, "{bad_id}");
    assert!(
        bad_id["text"].as_str().unwrap().contains("task id"),
        "{bad_id}"
    );
    let no_budget = call(
        &mut c,
        1,
        json!({"type": "enqueue", "task": {"id": 3, "kind": "painting", "max_attempts": 0}}),
    );
    assert_eq!(no_budget["code"], 12, "{no_budget}");
    let unknown = call(&mut c, 2, json!({"type": "sleigh"}));
    assert_eq!(unknown["code"], 10, "{unknown}");
    let never = call(&mut c, 2, json!({"type": "ack", "id": 77, "attempt": 1}));
    assert_eq!(never["code"], 20, "{never}");
    let status = call(&mut c, 0, json!({"type": "status", "id": 3}));
    assert_eq!(status["code"], 20, "nothing was enqueued: {status}");
}

/// The node that leads `partition`, by the nodes' own health reports.
fn leader_of(cluster: &mut Cluster<QueueNode>, partition: u64) -> Option<usize> {
    (0..cluster.names().len()).find(|&node| {
        let health = call(cluster, node, json!({"type": "health"}));
        health["partitions"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["partition"] == json!(partition) && p["role"] == "leader")
        })
    })
}

fn body_of(raw: &maelstrom_core::RawMessage) -> Value {
    serde_json::from_str(raw.body_json()).unwrap_or(Value::Null)
}

/// Issue 20 for the queue: a `nack` passed on to its partition's leader is duplicated,
/// the first copy's answer is lost, and the second copy arrives after the first applied.
/// It must take effect once and be answered `nack_ok`, not "the lease is gone".
/// From now on, the first batch that passes on a `kind` request is delivered twice, and
/// the answer to the first copy is lost. The stage it returns: 0 while waiting for that
/// batch, 1 while its answer is to be lost, 2 once it was.
fn duplicate_the_batch_and_lose_its_answer(
    c: &mut Cluster<QueueNode>,
    kind: &'static str,
) -> Rc<Cell<u8>> {
    let stage = Rc::new(Cell::new(0u8));
    let s = stage.clone();
    c.set_wire_rule(move |raw| {
        let body = body_of(raw);
        let passes_on = body["reqs"]
            .as_array()
            .is_some_and(|reqs| reqs.iter().any(|r| r[1]["type"] == kind));
        match body["type"].as_str() {
            Some("batch") if passes_on && s.get() == 0 => {
                s.set(1);
                Some(vec![MS, MS + 50 * MS])
            }
            Some("batch_ok") if s.get() == 1 => {
                s.set(2);
                Some(vec![])
            }
            _ => None,
        }
    });
    stage
}

#[test]
fn a_duplicated_forwarded_nack_takes_effect_once_and_is_answered_ok() {
    let mut c = cluster(3);
    let reply = enqueue(&mut c, 0, 7, &[]);
    assert_eq!(reply["type"], "enqueue_ok", "{reply}");
    let p = reply["partition"].as_u64().unwrap();
    let leader = leader_of(&mut c, p).expect("a leader");
    let task = &poll_some(&mut c, leader, 1)["tasks"][0];
    assert_eq!(task["id"], 7, "{task}");
    let attempt = task["attempt"].as_u64().unwrap();
    let stage = duplicate_the_batch_and_lose_its_answer(&mut c, "nack");
    let follower = (leader + 1) % 3;
    let nack = json!({"type": "nack", "id": 7, "attempt": attempt});
    let reply = call(&mut c, follower, nack);
    assert_eq!(
        stage.get(),
        2,
        "the nack went through the leader in a batch"
    );
    assert_eq!(reply["type"], "nack_ok", "{reply}");
    let status = call(&mut c, leader, json!({"type": "status", "id": 7}));
    assert_eq!(status["status"], "pending", "{status}");
    assert_eq!(status["attempts"], json!(attempt), "{status}");
}

fn leads(cluster: &mut Cluster<QueueNode>, node: usize, partition: u64) -> bool {
    let health = call(cluster, node, json!({"type": "health"}));
    health["partitions"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|q| q["partition"] == json!(partition) && q["role"] == "leader")
    })
}

/// Cuts off `partition`'s leader after `offset` more time, lets the other replicas elect
/// a leader and enqueue a task there, and asks the old leader for the task's status
/// while it still believes it leads: `None` when it stepped down before that.
fn status_from_deposed_leader(offset: Duration, partition: u64) -> Option<Value> {
    let mut c = cluster(3);
    c.run_for(offset);
    let old = leader_of(&mut c, partition)?;
    let id = (1000..)
        .find(|&id| queue::task::TaskId::Num(id).partition(3) == partition as u32)
        .unwrap();
    c.isolate(old);
    let others: Vec<usize> = (0..3).filter(|&n| n != old).collect();
    let mut new = None;
    while new.is_none() && leads(&mut c, old, partition) {
        c.run_for(5 * MS);
        new = others
            .iter()
            .copied()
            .find(|&n| leads(&mut c, n, partition));
    }
    let reply = enqueue(&mut c, new?, id, &[]);
    assert_eq!(reply["type"], "enqueue_ok", "{reply}");
    if !leads(&mut c, old, partition) {
        return None;
    }
    Some(call(&mut c, old, json!({"type": "status", "id": id})))
}

/// Issue 15 item 4: a leader cut off from its replicas believes it leads until it misses
/// a quorum for an election timeout. A task enqueued through the new leader meanwhile
/// must never be reported unknown by the old one: `status` is served only after a
/// read-index round confirms the leadership.
#[test]
fn a_deposed_leader_never_answers_status_from_stale_state() {
    let mut windows = 0;
    for k in 0..30u64 {
        let Some(status) = status_from_deposed_leader(MS * (k as u32 * 23), k % 3) else {
            continue;
        };
        windows += 1;
        assert_ne!(status["code"], 20, "a stale 'unknown task': {status}");
        assert!(
            status["type"] == "status_ok" || status["code"] == 11,
            "{status}"
        );
        if windows == 3 {
            break;
        }
    }
    assert!(windows > 0, "no deposed leader was ever asked");
}

/// `count` ids from `from` on, in partition `partition` of three.
fn ids_in(partition: u32, from: u64, count: usize) -> Vec<u64> {
    (from..)
        .filter(|&n| queue::task::TaskId::Num(n).partition(3) == partition)
        .take(count)
        .collect()
}

/// Dependents of dead-lettered tasks in another partition wait for good (unless a replay
/// comes), and are asked about in batches; hundreds of them must not keep the leader from
/// ever asking about a later dependency that did complete.
#[test]
fn dependents_of_many_dead_letters_do_not_starve_a_later_dependency() {
    let mut c = cluster(3);
    let dead = ids_in(1, 1_000, 300);
    for &id in &dead {
        let task = json!({"id": id, "kind": "painting", "max_attempts": 1});
        let reply = call(&mut c, 0, json!({"type": "enqueue", "task": task}));
        assert_eq!(reply["type"], "enqueue_ok", "{reply}");
    }
    let waiting = ids_in(0, 1_000_000, dead.len());
    for (&id, &dep) in waiting.iter().zip(&dead) {
        assert_eq!(enqueue(&mut c, 0, id, &[dep])["type"], "enqueue_ok");
    }
    // Every dead one is handed out at its last attempt and its lease runs out.
    let mut handed = 0;
    for _ in 0..100 {
        if handed == dead.len() {
            break;
        }
        let reply = call(
            &mut c,
            0,
            json!({"type": "poll", "max": 1000, "lease_ms": 100}),
        );
        handed += reply["tasks"].as_array().map_or(0, Vec::len);
        c.run_for(20 * MS);
    }
    c.run_for(Duration::from_secs(1));
    let dlq = call(&mut c, 2, json!({"type": "dlq"}));
    assert_eq!(dlq["tasks"].as_array().map(Vec::len), Some(dead.len()));
    // A later dependency in the same partition completes: its dependent becomes ready.
    let (dep, last) = (ids_in(1, 10_000_000, 1)[0], ids_in(0, 20_000_000, 1)[0]);
    assert_eq!(enqueue(&mut c, 0, dep, &[])["type"], "enqueue_ok");
    assert_eq!(enqueue(&mut c, 0, last, &[dep])["type"], "enqueue_ok");
    let got = poll_some(&mut c, 0, 8);
    assert_eq!(got["tasks"][0]["id"], dep, "{got}");
    let ack = json!({"type": "ack", "id": dep, "attempt": 1});
    assert_eq!(call(&mut c, 0, ack)["type"], "ack_ok");
    let got = poll_some(&mut c, 1, 8);
    assert_eq!(got["tasks"][0]["id"], last, "{got}");
}

/// Sums one figure (a JSON pointer into a partition's health, such as `/depths/blocked`)
/// over the partitions each node leads, by the nodes' health reports.
fn led_sum(cluster: &mut Cluster<QueueNode>, pointer: &str) -> u64 {
    (0..cluster.names().len())
        .map(|node| {
            let health = call(cluster, node, json!({"type": "health"}));
            health["partitions"].as_array().map_or(0, |ps| {
                ps.iter()
                    .filter(|p| p["role"] == "leader")
                    .filter_map(|p| p.pointer(pointer)?.as_u64())
                    .sum::<u64>()
            })
        })
        .sum()
}

/// A producer withdraws a task it handed out: the cancel goes from a follower to the
/// partition's leader in a batch, ends the consumer's lease, and holds through the
/// leader's crash: the task is never delivered again, and its dependent in another
/// partition stays blocked.
#[test]
fn a_cancel_through_a_follower_outlives_the_leaders_crash() {
    let mut c = cluster(3);
    let (task, dependent) = (ids_in(0, 500, 1)[0], ids_in(1, 500, 1)[0]);
    assert_eq!(enqueue(&mut c, 0, task, &[])["type"], "enqueue_ok");
    assert_eq!(enqueue(&mut c, 1, dependent, &[task])["type"], "enqueue_ok");
    let leader = leader_of(&mut c, 0).expect("a leader");
    let got = poll_some(&mut c, leader, 4);
    assert_eq!(got["tasks"], json!([got["tasks"][0]]), "one ready: {got}");
    assert_eq!(got["tasks"][0]["id"], task, "{got}");
    let batched = Rc::new(Cell::new(false));
    let b = batched.clone();
    c.set_wire_rule(move |raw| {
        let body = body_of(raw);
        if body["type"] == "batch" && body["reqs"][0][1]["type"] == "cancel" {
            b.set(true);
        }
        None
    });
    let follower = (leader + 1) % 3;
    let reply = call(&mut c, follower, json!({"type": "cancel", "id": task}));
    assert_eq!(reply["type"], "cancel_ok", "{reply}");
    assert_eq!(reply["cancelled"], true, "{reply}");
    assert!(batched.get(), "the cancel went to the leader in a batch");
    let ack = json!({"type": "ack", "id": task, "attempt": 1});
    let refused = call(&mut c, follower, ack.clone());
    assert_eq!(refused["code"], 22, "{refused}");
    c.crash(leader);
    c.run_for(Duration::from_secs(2));
    c.restart(leader);
    c.run_for(Duration::from_secs(1));
    let new = leader_of(&mut c, 0).expect("a leader");
    for node in 0..3 {
        let status = call(&mut c, node, json!({"type": "status", "id": task}));
        assert_eq!(status["status"], "cancelled", "node {node}: {status}");
    }
    let again = call(&mut c, (new + 2) % 3, json!({"type": "cancel", "id": task}));
    assert_eq!(again["cancelled"], false, "{again}");
    let replay = call(&mut c, leader, json!({"type": "replay", "id": task}));
    assert_eq!(replay["code"], 22, "{replay}");
    assert_eq!(call(&mut c, new, ack)["code"], 22);
    let unknown = call(&mut c, 0, json!({"type": "cancel", "id": 424_242}));
    assert_eq!(unknown["code"], 20, "{unknown}");
    // Well past the old lease, nothing is handed out anywhere.
    c.run_for(Duration::from_secs(1));
    for node in 0..3 {
        let reply = call(&mut c, node, json!({"type": "poll", "max": 8}));
        assert_eq!(reply["tasks"], json!([]), "node {node}: {reply}");
    }
    let status = call(&mut c, 2, json!({"type": "status", "id": dependent}));
    assert_eq!(status["status"], "pending", "{status}");
    assert_eq!(status["blocked_by"], json!([task]), "{status}");
    assert_eq!(led_sum(&mut c, "/depths/cancelled"), 1);
    assert_eq!(led_sum(&mut c, "/depths/blocked"), 1);
    for rank in 0..3 {
        let ready = led_sum(&mut c, &format!("/depths/ready/{rank}"));
        assert_eq!(ready, 0, "priority rank {rank}");
    }
}

/// As for `nack`: a `cancel` passed on to its partition's leader is duplicated and the
/// first copy's answer is lost. The second copy must be answered with what the first
/// did (`cancelled: true`), not with `false` as a repeat of the cancel would be.
#[test]
fn a_duplicated_forwarded_cancel_is_answered_with_what_it_did() {
    let mut c = cluster(3);
    let reply = enqueue(&mut c, 0, 7, &[]);
    let p = reply["partition"].as_u64().unwrap();
    let leader = leader_of(&mut c, p).expect("a leader");
    let stage = duplicate_the_batch_and_lose_its_answer(&mut c, "cancel");
    let reply = call(&mut c, (leader + 1) % 3, json!({"type": "cancel", "id": 7}));
    assert_eq!(stage.get(), 2, "the first answer was lost");
    assert_eq!(reply["type"], "cancel_ok", "{reply}");
    assert_eq!(reply["cancelled"], true, "{reply}");
    let status = call(&mut c, leader, json!({"type": "status", "id": 7}));
    assert_eq!(status["status"], "cancelled", "{status}");
}

/// A node of another service that restarts numbers its `msg_id`s from 1 again: the queue
/// must not take its new request for a repeat of an old one (answering it with the old
/// reply and dropping it) nor for one superseded by its old newer ones.
#[test]
fn a_restarted_node_of_another_service_is_served_anew() {
    use maelstrom_core::sim::Service;
    let services = vec![
        Service::of::<QueueNode>("queue", 3),
        Service::of::<QueueNode>("producer", 1),
    ];
    let mut c: Cluster<QueueNode> = Cluster::with_services(services, MS);
    c.run_for(Duration::from_secs(2));
    // n3, of the producer service, enqueues task 1 as msg 1, then, restarted, task 2 as
    // msg 1 again.
    for (id, at) in [(1, 0), (2, 1)] {
        let body = json!({"type": "enqueue", "msg_id": 1,
            "task": {"id": id, "kind": "assembly"}});
        let line = json!({"src": "n3", "dest": format!("n{at}"), "body": body});
        c.inject(&line.to_string());
        c.run_for(Duration::from_millis(500));
    }
    for id in [1, 2] {
        let reply = call(&mut c, 2, json!({"type": "status", "id": id}));
        assert_eq!(reply["type"], "status_ok", "task {id}: {reply}");
    }
}
