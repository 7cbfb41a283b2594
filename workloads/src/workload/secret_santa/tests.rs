use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use serde_json::json;

use super::*;
use crate::checker::secret_santa::oracle::{self, Verdict};
use crate::history::Process;
use crate::topology::Topology;

fn shaped(nodes: usize, node_args: &[&str]) -> SecretSanta {
    let mut w = SecretSanta::new();
    w.begin(&Cluster {
        nodes: (0..nodes).map(|i| format!("n{i}")).collect(),
        topology: Topology::Grid,
        workers: 4,
        node_args: node_args.iter().map(|s| s.to_string()).collect(),
        services: Vec::new(),
    });
    w
}

fn ask(phase: Phase, worker: usize) -> Ask {
    Ask {
        phase,
        worker,
        now_ms: 0,
        issued: 0,
    }
}

fn done(op: &GenOp, t: OpType, value: Edn, error: Option<Edn>) -> Op {
    let mut o = Op::new(0, t, Process::Worker(0), op.f, value);
    o.error = error;
    o
}

fn s(v: &Edn, k: &str) -> String {
    text(v, k).unwrap_or_default()
}

#[test]
fn regions_come_from_the_node_arguments_or_the_default() {
    assert_eq!(regions_of(&[], 5), 3);
    assert_eq!(regions_of(&[], 2), 2);
    let args = ["--regions".to_string(), "4".to_string()];
    assert_eq!(regions_of(&args, 1), 4);
    assert_eq!(shaped(5, &["--regions", "5"]).regions, 5);
}

#[test]
fn infeasible_designs_are_infeasible_by_the_checkers_own_search() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut designs = BTreeSet::new();
    for _ in 0..2_000 {
        let (design, no_mutual, people, late) = plan(&mut rng, 3);
        designs.insert(format!("{design:?}"));
        assert!((1..=40).contains(&people.len()));
        assert!(design == Design::Alone || people.len() >= 2);
        assert!(late.is_empty() || design == Design::Random);
        for p in people.iter().chain(&late) {
            assert!(!p.exclusions.contains(&p.id));
            assert!(p.region.map_or(true, |r| (0..3).contains(&r)));
        }
        let as_oracle: Vec<oracle::Person> = people
            .iter()
            .map(|p| oracle::Person {
                id: p.id.clone(),
                exclusions: p.exclusions.clone(),
                budget: p.budget,
            })
            .collect();
        if design.infeasible() {
            assert_eq!(
                oracle::decide(&as_oracle, no_mutual),
                Verdict::Infeasible,
                "{design:?}"
            );
        }
    }
    assert_eq!(designs.len(), 6, "{designs:?}");
}

/// Drives the generator with every request answered at once, as a correct matcher would
/// (refusing exchanges the oracle cannot match); records what was asked.
/// Drives the main phase, completing ops in batches; also answers how many reads went to
/// an exchange with a match or a registration in flight.
fn drive(steps: usize) -> (SecretSanta, Vec<GenOp>, usize) {
    let mut w = shaped(3, &[]);
    let mut rng = StdRng::seed_from_u64(9);
    let mut sent = Vec::new();
    let mut hot_reads = 0;
    let mut pending: Vec<GenOp> = Vec::new();
    let mut epochs: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..steps {
        if let Next::Op(op) = w.next(ask(Phase::Main, i % 4), &mut rng) {
            let x = s(&op.value, "exchange");
            let racing =
                |p: &GenOp| matches!(p.f, "match" | "register") && s(&p.value, "exchange") == x;
            if op.f == "read" && pending.iter().any(racing) {
                hot_reads += 1;
            }
            sent.push(op.clone());
            pending.push(op);
        }
        // Complete in batches of three, so concurrent matches overlap.
        if pending.len() >= 3 {
            for op in pending.drain(..) {
                let x = s(&op.value, "exchange");
                let epoch = epochs.get(&x).copied().unwrap_or(0);
                let (t, mut value, error) = (OpType::Ok, op.value.clone(), None);
                let outcome = match op.f {
                    "match" => {
                        let ex = w.exchanges.iter().find(|e| e.id == x).unwrap();
                        if ex.design.infeasible() {
                            let err = Edn::Vector(vec![Edn::kw("precondition-failed")]);
                            (OpType::Fail, value, Some(err))
                        } else {
                            epochs.insert(x, epoch.max(1));
                            value.insert("epoch", Edn::Int(epoch.max(1)));
                            (t, value, error)
                        }
                    }
                    "register" if op.value.get("late?") == Some(&Edn::Bool(true)) => {
                        epochs.insert(x, epoch + 1);
                        value.insert("epoch", Edn::Int(epoch + 1));
                        (t, value, error)
                    }
                    _ => (t, value, error),
                };
                w.completed(0, &op, &done(&op, outcome.0, outcome.1, outcome.2));
            }
        }
    }
    (w, sent, hot_reads)
}

#[test]
fn exchanges_register_then_match_concurrently_then_add_late_participants() {
    let (w, sent, hot_reads) = drive(3_000);
    assert_eq!(w.exchanges.len(), MAX_EXCHANGES);
    let mut stragglers = 0;
    let mut registered: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut flags: BTreeMap<String, BTreeSet<bool>> = BTreeMap::new();
    let mut matches: BTreeMap<String, usize> = BTreeMap::new();
    for (i, op) in sent.iter().enumerate() {
        let x = s(&op.value, "exchange");
        let ex = w.exchanges.iter().find(|e| e.id == x).unwrap();
        match op.f {
            "register" => {
                let late = op.value.get("late?") == Some(&Edn::Bool(true));
                let who = s(&op.value, "participant");
                if ex.stragglers.iter().any(|p| p.id == who) {
                    // Sent right after the first match, while the others still go out.
                    assert!(!late && matches.contains_key(&x), "at {i}: racing a match");
                    stragglers += usize::from(matches[&x] < CONCURRENT_MATCHES);
                } else {
                    assert_eq!(late, matches.contains_key(&x), "late exactly after a match");
                }
                registered
                    .entry(x)
                    .or_default()
                    .insert(s(&op.value, "participant"));
            }
            "match" => {
                if ex.design.infeasible() {
                    let all = ex.people.iter().map(|p| p.id.clone()).collect();
                    assert_eq!(
                        registered.get(&x),
                        Some(&all),
                        "at {i}: registered fully first"
                    );
                }
                let flag = op.value.get("no-mutual") == Some(&Edn::Bool(true));
                flags.entry(x.clone()).or_default().insert(flag);
                *matches.entry(x).or_default() += 1;
            }
            _ => {}
        }
    }
    assert!(
        flags.values().all(|f| f.len() == 1),
        "one no_mutual flag per exchange"
    );
    assert!(flags.values().any(|f| f.contains(&true)));
    assert!(matches.values().all(|&n| n >= CONCURRENT_MATCHES));
    assert!(sent
        .iter()
        .any(|o| o.value.get("late?") == Some(&Edn::Bool(true))));
    let reads = sent.iter().filter(|o| o.f == "read").count();
    assert!(reads > sent.len() / 5, "{reads} reads of {}", sent.len());
    assert!(stragglers > 0, "registrations race matches");
    assert!(
        hot_reads > reads / 20,
        "{hot_reads} of {reads} reads race a change"
    );
    assert!(sent.iter().any(|o| o.f == "audit"));
}

#[test]
fn the_final_phase_reads_everyone_retries_unknowns_then_audits() {
    let (mut w, _, _) = drive(400);
    let mut rng = StdRng::seed_from_u64(2);
    let mut finals = Vec::new();
    let mut retried = false;
    while let Next::Op(op) = w.next(ask(Phase::Final, 0), &mut rng) {
        assert!(op.final_read);
        if op.f == "read" && !retried {
            retried = true;
            let err = Edn::Vector(vec![Edn::kw("temporarily-unavailable")]);
            w.completed(
                0,
                &op,
                &done(&op, OpType::Fail, op.value.clone(), Some(err)),
            );
        }
        finals.push(op);
    }
    let reads: Vec<(String, String)> = finals
        .iter()
        .filter(|o| o.f == "read")
        .map(|o| (s(&o.value, "exchange"), s(&o.value, "participant")))
        .collect();
    let unique: BTreeSet<_> = reads.iter().cloned().collect();
    assert_eq!(reads.len(), unique.len() + 1, "one retry");
    let expected: BTreeSet<(String, String)> = w
        .exchanges
        .iter()
        .flat_map(|x| {
            x.everyone()
                .filter(|p| !matches!(p.reg, Reg::Todo { tries: 0 }))
                .map(|p| (x.id.clone(), p.id.clone()))
        })
        .collect();
    assert_eq!(unique, expected);
    let first_audit = finals.iter().position(|o| o.f == "audit").unwrap();
    assert!(finals[first_audit..].iter().all(|o| o.f == "audit"));
    assert_eq!(finals.len() - first_audit, w.exchanges.len());
}

#[test]
fn requests_have_the_protocols_fields_and_boxes_are_opened_by_the_client() {
    let (w, sent, _) = drive(200);
    let reg = sent.iter().find(|o| o.f == "register").unwrap();
    let body = w.request(reg).body;
    assert_eq!(body["type"], "register");
    for key in ["exchange", "participant", "public_key", "exclusions"] {
        assert!(body.contains_key(key), "{key}");
    }
    assert!(!body.contains_key("late?") && !body.contains_key("public-key"));
    let m = GenOp::new(
        "match",
        Edn::map([
            ("exchange", Edn::Str("x1".into())),
            ("no-mutual", Edn::Bool(true)),
        ]),
    );
    assert_eq!(
        serde_json::Value::Object(w.request(&m).body),
        json!({"exchange": "x1", "no_mutual": true, "type": "match"})
    );

    // A box sealed to the reader opens; a box sealed to someone else does not, and says whose.
    let x = &w.exchanges[1];
    let (giver, other) = (&x.people[0], &x.people[1]);
    let seal_to = |p: &Person, receiver: &str| {
        let key: [u8; 32] = STANDARD.decode(&p.public_key).unwrap().try_into().unwrap();
        let plain = json!({"exchange": x.id, "giver": giver.id, "receiver": receiver, "epoch": 1, "gift_id": 77});
        let sealed = crypto_box::PublicKey::from_bytes(key)
            .seal(&mut StdRng::seed_from_u64(3), plain.to_string().as_bytes())
            .unwrap();
        json!({"type": "get_assignment_ok", "epoch": 1, "gift_id": 77, "sealed": STANDARD.encode(sealed), "in_reply_to": 1})
    };
    let read = read_op(&x.id, &giver.id);
    let reply = seal_to(giver, &other.id);
    assert!(w
        .request(&read)
        .reply
        .check(reply.as_object().unwrap())
        .is_ok());
    let v = w.ok_value(&read, reply.as_object().unwrap());
    assert_eq!(
        v.get("box").and_then(|b| b.get("receiver")),
        Some(&Edn::Str(other.id.clone()))
    );
    assert_eq!(v.get("opens-with"), Some(&Edn::Vector(vec![])));
    let v = w.ok_value(
        &read_op(&x.id, &other.id),
        seal_to(giver, "p9").as_object().unwrap(),
    );
    assert!(v.get("box-error").is_some());
    let leaked = json!({"type": "get_assignment_ok", "epoch": 1, "gift_id": 7, "sealed": "", "receiver": "p1", "in_reply_to": 1});
    assert!(w
        .request(&read)
        .reply
        .check(leaked.as_object().unwrap())
        .is_err());
}
