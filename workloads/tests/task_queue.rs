//! The task-queue workload end to end, against a one-node in-memory queue written in
//! Python here (so that the engine's per-worker generation, completion hook, local ops and
//! repeated final phase are tested whatever state queue-node is in).

mod common;

use std::collections::{HashMap, HashSet};

use common::{python_node, run, test_args, workdir, ONE_NODE_RUN};
use workloads::edn::Edn;
use workloads::history::{OpType, Process};

/// queue-node's client protocol on one node: leases, attempts, dead letters, dependencies,
/// priorities.
const QUEUE: &str = r#"#!/usr/bin/env python3
import time

from serve import serve

RANK = {"express": 0, "standard": 1, "nice-child": 2}
tasks, order = {}, []

def now():
    return int(time.monotonic() * 1000)

def expire():
    for t in tasks.values():
        if t["lease"] and t["lease"][1] <= now():
            t["lease"] = None
            t["status"] = "failed" if t["attempts"] >= t["max_attempts"] else "pending"

def leased(t, attempt):
    return t["lease"] is not None and t["lease"][0] == attempt

def handle(b):
    expire()
    kind = b["type"]
    if kind == "init":
        return {"type": "init_ok"}
    if kind == "enqueue":
        spec = b["task"]
        i = spec["id"]
        deps = spec.get("deps", [])
        if i in deps:
            return {"type": "error", "code": 22, "text": "cycle"}
        for d in deps:
            if d not in tasks:
                return {"type": "error", "code": 20, "text": "unknown dependency %s" % d}
        if i in tasks:
            return {"type": "enqueue_ok", "id": i, "partition": 0, "duplicate": True}
        tasks[i] = dict(spec, attempts=0, status="pending", lease=None)
        order.append(i)
        return {"type": "enqueue_ok", "id": i, "partition": 0, "duplicate": False}
    if kind == "poll":
        ready = [i for i in order if tasks[i]["status"] == "pending"
                 and all(tasks[d]["status"] == "completed" for d in tasks[i]["deps"])]
        ready.sort(key=lambda i: RANK[tasks[i]["priority"]])
        out = []
        for i in ready[:b.get("max", 1)]:
            t = tasks[i]
            t["attempts"] += 1
            t["status"] = "assigned"
            until = now() + b.get("lease_ms", 5000)
            t["lease"] = (t["attempts"], until)
            out.append({"id": i, "kind": t["kind"], "priority": t["priority"],
                        "attempt": t["attempts"], "max_attempts": t["max_attempts"],
                        "payload": t["payload"], "partition": 0, "stolen": False,
                        "lease_until": until})
        return {"type": "poll_ok", "tasks": out}
    t = tasks.get(b.get("id"))
    if kind in ("start", "ack", "nack", "status") and t is None:
        return {"type": "error", "code": 20, "text": "unknown task"}
    if kind == "start":
        if not leased(t, b["attempt"]):
            return {"type": "error", "code": 22, "text": "lease gone"}
        t["status"] = "in_progress"
        t["lease"] = (b["attempt"], now() + 5000)
        return {"type": "start_ok"}
    if kind == "ack":
        if t["status"] == "completed":
            return {"type": "ack_ok", "duplicate": True}
        if not leased(t, b["attempt"]):
            return {"type": "error", "code": 22, "text": "lease gone"}
        t["status"], t["lease"] = "completed", None
        return {"type": "ack_ok", "duplicate": False}
    if kind == "nack":
        if not leased(t, b["attempt"]):
            return {"type": "error", "code": 22, "text": "lease gone"}
        t["lease"] = None
        dead = t["attempts"] >= t["max_attempts"]
        t["status"] = "failed" if dead else "pending"
        return {"type": "nack_ok", "dead_lettered": dead}
    if kind == "status":
        blocked = [d for d in t["deps"] if tasks[d]["status"] != "completed"]
        return {"type": "status_ok", "id": t["id"], "status": t["status"],
                "attempts": t["attempts"], "max_attempts": t["max_attempts"],
                "blocked_by": blocked}
    if kind == "dlq":
        return {"type": "dlq_ok", "tasks": [
            {"id": i, "attempts": tasks[i]["attempts"], "max_attempts": tasks[i]["max_attempts"]}
            for i in order if tasks[i]["status"] == "failed"]}
    return {"type": "error", "code": 10, "text": "unsupported"}

serve(handle)
"#;

fn int(v: &Edn, key: &str) -> i64 {
    v.get(key).and_then(Edn::as_i64).unwrap()
}

#[test]
fn producers_consumers_local_abandons_and_a_drain_that_ends() {
    let dir = workdir("task-queue-node");
    let script = python_node(&dir, "queue.py", QUEUE);
    let started = std::time::Instant::now();
    let r = run(
        "task-queue",
        &test_args("task-queue", &script, &ONE_NODE_RUN),
    );
    r.expect(0);
    let took = started.elapsed().as_secs();
    assert!(took < 40, "recovery, drain and audit took {took} s");
    let history = r.history();
    let ops = &history.ops;

    // Roles alternate by rounds of one worker per node: on one node, even workers produce
    // and odd ones consume; worker 0 also audits. Nobody crashed here.
    for op in ops {
        let Process::Worker(p) = op.process else {
            continue;
        };
        let producer = matches!(op.f.as_str(), "enqueue" | "dlq" | "status");
        assert_eq!(p % 2 == 0, producer, "{op:?}");
        if matches!(op.f.as_str(), "dlq" | "status") {
            assert_eq!(p, 0, "only worker 0 audits: {op:?}");
        }
    }

    // Every ack, nack, start and abandon names a task its worker was handed, with the
    // attempt it was handed at.
    let mut handed: HashMap<u64, HashSet<(i64, i64)>> = HashMap::new();
    let mut abandons = 0;
    for (i, op) in ops.iter().enumerate() {
        let Process::Worker(p) = op.process else {
            continue;
        };
        match (op.f.as_str(), op.op_type) {
            ("poll", OpType::Ok) => {
                for d in op.value.elements().unwrap() {
                    handed
                        .entry(p)
                        .or_default()
                        .insert((int(d, "id"), int(d, "attempt")));
                }
            }
            ("ack" | "nack" | "start" | "abandon", OpType::Invoke) => {
                let task = (int(&op.value, "id"), int(&op.value, "attempt"));
                assert!(
                    handed[&p].contains(&task),
                    "{op:?} of a task not handed out"
                );
            }
            _ => {}
        }
        if op.f == "abandon" && op.op_type == OpType::Invoke {
            // Local: the ok follows at once, same instant, same value, nothing sent.
            let ok = &ops[i + 1];
            assert_eq!(
                (ok.op_type, ok.process, ok.time_ns, &ok.value),
                (OpType::Ok, op.process, op.time_ns, &op.value)
            );
            abandons += 1;
        }
    }
    assert!(abandons > 0, "no abandon in {} ops", ops.len());
    // Clients sent the init and every request but the abandons; each got its reply.
    let invokes = history.invocations().count() as i64;
    assert_eq!(
        r.count(":clients {:send-count"),
        2 * (1 + invokes - abandons),
        "abandons are not sent"
    );

    // The final phase: repeated drain polls and acks, then one dlq and the statuses.
    let first_final = ops
        .iter()
        .position(|o| o.final_read)
        .expect("a final phase");
    assert!(ops[first_final..].iter().all(|o| o.final_read));
    let drain_polls = ops[first_final..]
        .iter()
        .filter(|o| o.f == "poll" && o.op_type == OpType::Invoke)
        .count();
    assert!(
        drain_polls >= 2 * 10,
        "each of the two consumers polls for 2.5 s: {drain_polls}"
    );
    assert!(ops[first_final..]
        .iter()
        .filter(|o| o.f == "poll" && o.op_type == OpType::Invoke)
        .all(|o| o.value == Edn::map([("max", Edn::Int(8))])));
    let dlq = ops.iter().filter(|o| o.f == "dlq").count();
    assert_eq!(dlq, 2, "one dlq, invoked and ok");
    let acked: HashSet<i64> = ops
        .iter()
        .filter(|o| o.f == "ack" && o.op_type == OpType::Ok)
        .map(|o| int(&o.value, "id"))
        .collect();
    let unacked: Vec<i64> = ops
        .iter()
        .filter(|o| o.f == "enqueue" && o.op_type == OpType::Ok)
        .map(|o| int(&o.value, "id"))
        .filter(|id| !acked.contains(id))
        .collect();
    let statuses: Vec<i64> = ops
        .iter()
        .filter(|o| o.f == "status" && o.op_type == OpType::Invoke)
        .map(|o| int(&o.value, "id"))
        .collect();
    assert_eq!(statuses, unacked);
    // Every task the drain could get was completed: the rest are dead letters or wait
    // for one.
    for op in ops
        .iter()
        .filter(|o| o.f == "status" && o.op_type == OpType::Ok)
    {
        let status = op.value.get("status").unwrap().to_compact();
        assert!(matches!(status.as_str(), ":failed" | ":pending"), "{op:?}");
    }
    let results = r.results();
    assert!(results.contains(":workload {:valid? true"), "{results}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A queue that is never empty: every poll hands out a task never seen before (after
/// 50 ms, to keep the history short).
const BOTTOMLESS: &str = r#"#!/usr/bin/env python3
import time

from serve import serve

REPLIES = {"init": {"type": "init_ok"}, "start": {"type": "start_ok"},
           "ack": {"type": "ack_ok", "duplicate": False},
           "nack": {"type": "nack_ok", "dead_lettered": False},
           "dlq": {"type": "dlq_ok", "tasks": []}}
n = 0

def handle(body):
    global n
    kind = body["type"]
    if kind == "enqueue":
        return {"type": "enqueue_ok", "id": body["task"]["id"], "partition": 0, "duplicate": False}
    if kind == "poll":
        time.sleep(0.05)
        n += 1
        return {"type": "poll_ok", "tasks": [{"id": n, "kind": "painting", "priority": "standard",
                "attempt": 1, "max_attempts": 1, "payload": None, "partition": 0,
                "stolen": False, "lease_until": 0}]}
    return dict(REPLIES.get(kind, {"type": "error", "code": 20, "text": "unknown"}))

serve(handle)
"#;

/// The drain of a queue that never empties stops at the engine's limit: nothing is
/// issued after it, and the run ends with a verdict.
#[test]
fn a_queue_that_never_empties_cannot_hold_the_run_past_the_final_limit() {
    let dir = workdir("task-queue-bottomless-node");
    let script = python_node(&dir, "bottomless.py", BOTTOMLESS);
    let args = [
        "--node-count",
        "1",
        "--concurrency",
        "2",
        "--time-limit",
        "1",
        "--rate",
        "20",
    ];
    let r = run(
        "task-queue-bottomless",
        &test_args("task-queue", &script, &args),
    );
    assert!(matches!(r.status, 0 | 1), "a verdict: {}", r.output);
    assert!(
        r.output
            .contains("The final phase reached its limit of 60 s"),
        "{}",
        r.output
    );
    let history = r.history();
    let finals: Vec<_> = history.invocations().filter(|o| o.final_read).collect();
    let (first, last) = (finals[0].time_ns, finals[finals.len() - 1].time_ns);
    let limit = 60_000_000_000;
    assert!(last >= first + limit - 2_000_000_000, "the drain went on");
    assert!(last < first + limit, "nothing issued after the limit");
    // Worker 0 waited for the consumer, then audited anyway before the limit.
    let dlq = finals.iter().find(|o| o.f == "dlq").expect("an audit");
    assert!(dlq.time_ns >= first + 40_000_000_000 && dlq.time_ns < first + limit);
    let _ = std::fs::remove_dir_all(&dir);
}
