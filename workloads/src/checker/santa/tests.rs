//! A correct hand-written history is valid; each flaw alone makes it invalid, and says why.

use giftid::layout::{encode, GiftType};

use super::{check, task_id, STAGES};
use crate::edn::Edn;
use crate::facts::RunFacts;
use crate::history::{History, Op, OpType, Process};

const CLIENT: u64 = 0;
const ELF: u64 = 2;

fn s(x: &str) -> Edn {
    Edn::Str(x.into())
}

/// A gift ID of workshop 1 at millisecond `ms` of 2026.
fn id(ms: u64, seq: u16) -> i64 {
    encode(31_536_000_000 + ms, 1, seq, GiftType::Toy) as i64
}

/// Exchange x0: a, b, c matched (epoch 1: a→b G1, b→c G2, c→a G3), then d added late
/// (epoch 2, a splice: a→d G4, d→b G5 replace G1). a registered as a nice child.
struct Ids {
    g: [i64; 6],
    txn: [i64; 2],
    ev: [i64; 4],
}

fn ids() -> Ids {
    Ids {
        txn: [id(1, 0), id(5, 0)],
        ev: [id(2, 0), id(3, 0), id(6, 0), id(7, 0)],
        g: [0, id(4, 1), id(4, 2), id(4, 3), id(8, 1), id(8, 2)],
    }
}

/// What each test changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flaw {
    None,
    MissingTask,
    AbortedGiftTask,
    DuplicateId,
    OutOfOrder,
    WrongPriority,
    WrongTag,
    ReplacedCompleted,
    ReplacedPending,
    CancelledAfterCompletion,
    /// The replaced gift's assembly handed out and completed after the splice's answer,
    /// though no status showed it cancelled.
    ReplacedBuiltAfterAnswer,
    /// Not a flaw: the replaced gift's assembly started before the splice's answer and
    /// completed after it.
    ReplacedStartedBeforeAnswer,
    /// Not a flaw: epoch 1 is never read, so the gift its splice replaced is never seen
    /// but in the queue (started and completed before the splice).
    ReplacedUnread,
}

#[derive(Default)]
struct H {
    h: History,
    t: u64,
}

impl H {
    fn op(&mut self, p: u64, t: OpType, f: &str, v: Edn, error: Option<Edn>) {
        self.t += 1_000_000;
        let mut op = Op::new(self.t, t, Process::Worker(p), f, v);
        op.error = error;
        self.h.push(op);
    }

    /// Invoked with `inv`, completed `:ok` with `inv` plus `extra`.
    fn ok(&mut self, p: u64, f: &str, inv: Edn, extra: &[(&str, Edn)]) {
        self.op(p, OpType::Invoke, f, inv.clone(), None);
        let mut done = inv;
        for (k, v) in extra {
            done.insert(k, v.clone());
        }
        self.op(p, OpType::Ok, f, done, None);
    }

    fn register(&mut self, who: &str, nice: bool, epoch: i64) {
        let mut v = Edn::map([
            ("exchange", s("x0")),
            ("participant", s(who)),
            ("exclusions", Edn::Vector(vec![])),
        ]);
        if nice {
            v.insert("nice-child", Edn::Bool(true));
        }
        self.ok(CLIENT, "register", v, &[("epoch", Edn::Int(epoch))]);
    }

    fn read(&mut self, giver: &str, receiver: &str, epoch: i64, g: i64) {
        let inv = Edn::map([("exchange", s("x0")), ("participant", s(giver))]);
        let boxed = Edn::map([
            ("exchange", s("x0")),
            ("giver", s(giver)),
            ("receiver", s(receiver)),
            ("epoch", Edn::Int(epoch)),
            ("gift-id", Edn::Int(g)),
        ]);
        let extra = [
            ("epoch", Edn::Int(epoch)),
            ("gift-id", Edn::Int(g)),
            ("box", boxed),
            ("opens-with", Edn::Vector(vec![])),
        ];
        self.ok(CLIENT, "read", inv, &extra);
    }

    /// One delivery of a task, as the queue labels it.
    fn poll(&mut self, task: &str, kind: &str, priority: &str, gift: i64, epoch: i64) {
        let payload = Edn::Map(vec![
            (s("gift_id"), Edn::Int(gift)),
            (s("exchange"), s("x0")),
            (s("epoch"), Edn::Int(epoch)),
        ]);
        let delivery = Edn::map([
            ("id", s(task)),
            ("attempt", Edn::Int(1)),
            ("priority", Edn::kw(priority)),
            ("kind", Edn::kw(kind)),
            ("payload", payload),
            ("partition", Edn::Int(0)),
            ("stolen", Edn::Bool(false)),
        ]);
        let inv = Edn::map([("max", Edn::Int(1))]);
        self.op(ELF, OpType::Invoke, "poll", inv, None);
        self.op(ELF, OpType::Ok, "poll", Edn::Vector(vec![delivery]), None);
    }

    fn ack(&mut self, task: &str) {
        let v = Edn::map([("id", s(task)), ("attempt", Edn::Int(1))]);
        self.ok(ELF, "ack", v, &[("duplicate", Edn::Bool(false))]);
    }

    fn status(&mut self, task: &str, status: Option<&str>) {
        let v = Edn::map([("id", s(task))]);
        self.op(ELF, OpType::Invoke, "status", v.clone(), None);
        match status {
            Some(st) => {
                let done = Edn::map([
                    ("id", s(task)),
                    ("status", Edn::kw(st)),
                    ("attempts", Edn::Int(0)),
                ]);
                self.op(ELF, OpType::Ok, "status", done, None);
            }
            None => {
                let err = Edn::Vector(vec![Edn::kw("key-does-not-exist"), s("no task")]);
                self.op(ELF, OpType::Fail, "status", v, Some(err));
            }
        }
    }

    /// A gift's four tasks, polled and acked in order.
    fn produce(&mut self, gift: i64, priority: &str, epoch: i64, flaw: Flaw, target: bool) {
        let tasks: Vec<String> = STAGES.iter().map(|k| task_id(gift, k)).collect();
        if flaw == Flaw::OutOfOrder && target {
            self.poll(&tasks[1], STAGES[1], priority, gift, epoch);
            self.ack(&tasks[1]);
            self.poll(&tasks[0], STAGES[0], priority, gift, epoch);
            self.ack(&tasks[0]);
            for (t, k) in tasks.iter().zip(STAGES).skip(2) {
                self.poll(t, k, priority, gift, epoch);
                self.ack(t);
            }
            return;
        }
        for (i, (t, k)) in tasks.iter().zip(STAGES).enumerate() {
            if flaw == Flaw::MissingTask && target && i == 3 {
                self.status(t, None);
                continue;
            }
            let (priority, tag) = match (flaw, target && i == 0) {
                (Flaw::WrongPriority, true) => ("express", gift),
                (Flaw::WrongTag, true) => (priority, gift + 2),
                _ => (priority, gift),
            };
            self.poll(t, k, priority, tag, epoch);
            self.ack(t);
        }
    }

    fn audit(&mut self, ids: &Ids, dup: bool) {
        let event = |id: i64, txn: i64, kind: &str, event: &str, epoch: i64| {
            Edn::map([
                ("id", Edn::Int(id)),
                ("txn", Edn::Int(txn)),
                ("kind", s(kind)),
                ("event", s(event)),
                ("epoch", Edn::Int(epoch)),
            ])
        };
        let last = if dup { ids.g[4] } else { ids.ev[3] };
        let events = vec![
            event(ids.ev[0], ids.txn[0], "match", "prepared", 1),
            event(ids.ev[1], ids.txn[0], "match", "committed", 1),
            event(ids.ev[2], ids.txn[1], "splice", "prepared", 2),
            event(last, ids.txn[1], "splice", "committed", 2),
        ];
        let inv = Edn::map([("exchange", s("x0"))]);
        self.ok(CLIENT, "audit", inv, &[("events", Edn::Vector(events))]);
    }
}

fn history(flaw: Flaw) -> History {
    let ids = ids();
    let g = ids.g;
    let mut h = H::default();
    h.register("a", true, 0);
    h.register("b", false, 0);
    h.register("c", false, 0);
    let m = Edn::map([
        ("exchange", s("x0")),
        ("no-mutual", Edn::Bool(false)),
        ("deadline", Edn::Int(1_000 + 72 * 3_600_000)),
        ("deadline-made", Edn::Int(1_000)),
    ]);
    let who = Edn::Vector(vec![s("a"), s("b"), s("c")]);
    h.ok(
        1,
        "match",
        m,
        &[("epoch", Edn::Int(1)), ("participants", who)],
    );
    if flaw == Flaw::ReplacedUnread {
        for k in STAGES {
            let t = task_id(g[1], k);
            h.poll(&t, k, "standard", g[1], 1);
            h.ok(
                ELF,
                "start",
                Edn::map([("id", s(&t)), ("attempt", Edn::Int(1))]),
                &[],
            );
            h.ack(&t);
        }
    } else {
        h.read("a", "b", 1, g[1]);
        h.read("b", "c", 1, g[2]);
        h.read("c", "a", 1, g[3]);
    }
    if flaw == Flaw::AbortedGiftTask {
        // A gift of a transaction that never committed.
        h.poll(
            &task_id(g[5] + 4, "assembly"),
            "assembly",
            "standard",
            g[5] + 4,
            1,
        );
    }
    h.produce(g[2], "standard", 1, flaw, true);
    h.produce(g[3], "nice-child", 1, flaw, false);
    splice(&mut h, g, flaw);
    for (giver, receiver, gift) in [("a", "d", g[4]), ("d", "b", g[5]), ("b", "c", g[2])] {
        h.read(giver, receiver, 2, gift);
    }
    h.read("c", "a", 2, g[3]);
    h.produce(g[4], "standard", 2, flaw, false);
    h.produce(g[5], "standard", 2, flaw, false);
    h.audit(&ids, flaw == Flaw::DuplicateId);
    finish(&mut h, g, flaw);
    h.h
}

/// d registers late and is spliced in, replacing a's gift g[1]; what elves do with g[1]'s
/// assembly around the answer depends on `flaw`.
fn splice(h: &mut H, g: [i64; 6], flaw: Flaw) {
    let late = Edn::map([
        ("exchange", s("x0")),
        ("participant", s("d")),
        ("exclusions", Edn::Vector(vec![])),
        ("late?", Edn::Bool(true)),
    ]);
    let assembly = task_id(g[1], "assembly");
    if flaw == Flaw::ReplacedStartedBeforeAnswer {
        h.poll(&assembly, "assembly", "standard", g[1], 1);
        let start = Edn::map([("id", s(&assembly)), ("attempt", Edn::Int(1))]);
        h.ok(ELF, "start", start, &[]);
    }
    h.ok(CLIENT, "register", late, &[("epoch", Edn::Int(2))]);
    match flaw {
        Flaw::ReplacedBuiltAfterAnswer => {
            h.poll(&assembly, "assembly", "standard", g[1], 1);
            h.ack(&assembly);
        }
        Flaw::ReplacedStartedBeforeAnswer => h.ack(&assembly),
        _ => {}
    }
    if flaw == Flaw::ReplacedCompleted {
        // Seen cancelled, then handed out and completed all the same.
        let t = task_id(g[1], "assembly");
        h.status(&t, Some("cancelled"));
        h.poll(&t, "assembly", "standard", g[1], 1);
        h.ack(&t);
    }
}

/// The gift status of c's gift and the statuses of the replaced gift's tasks.
fn finish(h: &mut H, g: [i64; 6], flaw: Flaw) {
    if flaw == Flaw::CancelledAfterCompletion {
        h.status(&task_id(g[2], "assembly"), Some("cancelled"));
    }
    let status = Edn::map([("exchange", s("x0")), ("participant", s("c"))]);
    let sealed = Edn::map([("gift-id", Edn::Int(g[3])), ("stage", s("packaged"))]);
    let extra = [
        ("epoch", Edn::Int(2)),
        ("gift-id", Edn::Int(g[3])),
        ("status", sealed),
    ];
    h.ok(CLIENT, "gift-status", status, &extra);
    for k in STAGES.iter().filter(|_| flaw != Flaw::ReplacedUnread) {
        let replaced_status = match (flaw, *k) {
            (
                Flaw::ReplacedCompleted
                | Flaw::ReplacedBuiltAfterAnswer
                | Flaw::ReplacedStartedBeforeAnswer,
                "assembly",
            ) => "completed",
            (Flaw::ReplacedPending, "assembly") => "pending",
            _ => "cancelled",
        };
        h.status(&task_id(g[1], k), Some(replaced_status));
    }
}

/// The count of `kind` under `property` of the result.
fn count(result: &Edn, property: &str, kind: &str) -> i64 {
    result
        .get(property)
        .and_then(|p| p.get(kind))
        .and_then(Edn::as_i64)
        .unwrap_or(-1)
}

#[test]
fn a_correct_run_is_valid() {
    let r = check(&history(Flaw::None), &RunFacts::default());
    assert_eq!(
        r.get("valid?"),
        Some(&Edn::Bool(true)),
        "{}",
        r.to_compact()
    );
    let stats = r.get("stats").unwrap();
    assert_eq!(stats.get("tasks-per-gift"), Some(&Edn::Float(4.0)));
    assert_eq!(stats.get("tasks-completed"), Some(&Edn::Int(16)));
    let e2e = r.get("end-to-end").unwrap();
    assert_eq!(e2e.get("gifts-replaced"), Some(&Edn::Int(1)));
    assert_eq!(e2e.get("gifts-to-produce"), Some(&Edn::Int(4)));
}

#[test]
fn each_flaw_alone_is_caught_with_its_reason() {
    let cases = [
        (Flaw::MissingTask, "end-to-end", "missing-tasks"),
        (
            Flaw::AbortedGiftTask,
            "end-to-end",
            "uncommitted-gift-tasks",
        ),
        (Flaw::DuplicateId, "ids", "duplicate-ids"),
        (Flaw::OutOfOrder, "end-to-end", "out-of-order"),
        (Flaw::WrongPriority, "end-to-end", "wrong-priority"),
        (Flaw::WrongTag, "end-to-end", "wrong-tags"),
        (
            Flaw::ReplacedCompleted,
            "end-to-end",
            "cancelled-task-lived",
        ),
        (
            Flaw::ReplacedPending,
            "end-to-end",
            "replaced-not-cancelled",
        ),
        (
            Flaw::CancelledAfterCompletion,
            "end-to-end",
            "cancelled-after-completion",
        ),
        (
            Flaw::ReplacedBuiltAfterAnswer,
            "end-to-end",
            "replaced-not-cancelled",
        ),
    ];
    for (flaw, property, kind) in cases {
        let r = check(&history(flaw), &RunFacts::default());
        assert_eq!(r.get("valid?"), Some(&Edn::Bool(false)), "{kind}");
        assert_eq!(count(&r, property, kind), 1, "{kind}: {}", r.to_compact());
        let examples = r
            .get(property)
            .and_then(|p| p.get(&format!("{kind}-examples")));
        assert!(examples.is_some(), "{kind} says where");
    }
}

#[test]
fn a_replaced_gift_started_before_the_splice_was_answered_may_be_finished() {
    let r = check(
        &history(Flaw::ReplacedStartedBeforeAnswer),
        &RunFacts::default(),
    );
    assert_eq!(
        r.get("valid?"),
        Some(&Edn::Bool(true)),
        "{}",
        r.to_compact()
    );
}

#[test]
fn ids_stamped_after_the_run_are_invalid() {
    let run = RunFacts {
        wall_origin_ms: Some(1_735_689_600_000.0),
        ..RunFacts::default()
    };
    let r = check(&history(Flaw::None), &run);
    assert!(count(&r, "ids", "invalid-ids") > 0, "{}", r.to_compact());
}

#[test]
fn a_gift_replaced_before_any_read_is_no_uncommitted_gift() {
    let r = check(&history(Flaw::ReplacedUnread), &RunFacts::default());
    assert_eq!(
        r.get("valid?"),
        Some(&Edn::Bool(true)),
        "{}",
        r.to_compact()
    );
    assert_eq!(count(&r, "end-to-end", "uncommitted-gift-tasks"), 0);
}

#[test]
fn production_follows_each_givers_gift_to_its_last_epoch() {
    use super::production;
    use std::collections::BTreeMap;
    let epoch = |x: &str, e: i64, gifts: &[(&str, i64)]| {
        let givers = gifts.iter().map(|(p, g)| (p.to_string(), *g)).collect();
        ((x.to_string(), e), givers)
    };
    let epochs = BTreeMap::from([
        // x0: a's gift 1 replaced by a splice in epoch 2; b's gift 2 kept; c unread later.
        epoch("x0", 1, &[("a", 1), ("b", 2), ("c", 3)]),
        epoch("x0", 2, &[("a", 4), ("b", 2), ("d", 5)]),
        // x1: epoch 2 is a new match: gift 6 is still produced.
        epoch("x1", 1, &[("a", 6)]),
        epoch("x1", 2, &[("a", 7)]),
    ]);
    let newest = |x: &str| if x == "x0" { 3 } else { 2 };
    let p = production(&epochs, newest, |x, e| x == "x1" || e == 1);
    let set = |v: &[i64]| v.iter().copied().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(p.replaced, set(&[1]));
    assert_eq!(p.expected, set(&[6, 7]));
    // Epoch 3 of x0 is acknowledged but never read: its gifts' fate is unknown.
    assert_eq!(p.unsure, set(&[2, 3, 4, 5]));
    let p = production(&epochs, |_| 2, |x, e| x == "x1" || e == 1);
    assert_eq!(p.expected, set(&[2, 4, 5, 6, 7]));
    assert_eq!(p.unsure, set(&[3]));
}

#[test]
fn load_counts_each_services_client_operations() {
    let run = RunFacts {
        workers: 3,
        ..RunFacts::default()
    };
    let r = check(&history(Flaw::None), &run);
    let load = r.get("load").unwrap();
    // Process 2 (worker 2) is the elf; 0 and 1 are clients.
    let elf_ops = history(Flaw::None)
        .calls()
        .iter()
        .filter(|c| c.invoke.process == Process::Worker(ELF))
        .count() as i64;
    let queue = load.get("queue").unwrap();
    assert_eq!(queue.get("ops").and_then(Edn::as_i64), Some(elf_ops));
    assert!(
        load.get("matcher")
            .and_then(|m| m.get("ok"))
            .and_then(Edn::as_i64)
            > Some(0)
    );
    assert_eq!(
        check(&history(Flaw::None), &RunFacts::default()).get("load"),
        Some(&Edn::Nil)
    );
    // With the services recorded, each worker's node says its service.
    let nodes: Vec<String> = (0..4).map(|i| format!("n{i}")).collect();
    let routed = RunFacts {
        workers: 3,
        nodes: nodes.clone(),
        worker_nodes: vec![2, 3, 0],
        services: vec![
            ("queue".into(), nodes[..2].to_vec()),
            ("matcher".into(), nodes[2..].to_vec()),
        ],
        ..RunFacts::default()
    };
    let r = check(&history(Flaw::None), &routed);
    assert_eq!(r.get("load"), Some(load));
}

#[test]
fn messages_per_gift_come_from_the_runs_network_figures() {
    let net = Edn::parse(
        r#"{:servers {:send-count 800}
            :services {"queue" {:send-count 500} "matcher" {:send-count 300}}}"#,
    )
    .unwrap();
    let run = RunFacts {
        net: Some(net),
        ..RunFacts::default()
    };
    let r = check(&history(Flaw::None), &run);
    let stats = r.get("stats").unwrap();
    // Five gifts read: four to produce and the one replaced.
    let gifts = stats.get("gifts").and_then(Edn::as_i64).unwrap();
    let per = |sent: f64| Edn::Float((sent / gifts as f64 * 10.0).round() / 10.0);
    assert_eq!(stats.get("messages-per-gift"), Some(&per(800.0)));
    let by = stats.get("messages-per-gift-by-service").unwrap();
    assert_eq!(by.get("queue"), Some(&per(500.0)));
    let without = check(&history(Flaw::None), &RunFacts::default());
    assert_eq!(without.get("stats").unwrap().get("messages-per-gift"), None);
}
