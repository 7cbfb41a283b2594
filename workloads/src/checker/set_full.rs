//! Jepsen's `set-full` checker, as Maelstrom uses it for `broadcast` and `g-set`.
//!
//! Each added element gets an outcome from the reads that follow it:
//! - *known* from the moment its add was acknowledged or a read first showed it;
//! - *stable* if the latest read invocation that saw it comes after the latest one that
//!   missed it;
//! - *lost* if it was known, and a read invoked after it became known, and after every
//!   read that saw it, missed it;
//! - *never read* otherwise.
//!
//! The run is invalid if anything was lost, unknown if nothing became stable. Stable
//! elements that some read missed after they were known are *stale* (slow to show up,
//! not wrong). Latencies are in milliseconds from known to stable (or lost).
//! Unlike Jepsen 0.3.7, whose duplicate test can never fire, duplicates are counted for
//! real: an element a single read returned more than once.

use std::collections::{BTreeMap, HashMap};

use super::{compare_values, op_edn, Validity};
use crate::edn::Edn;
use crate::history::{History, Op, OpType};

#[derive(Default)]
struct Element<'a> {
    known: Option<&'a Op>,
    /// Latest read invocation that saw / missed the element.
    last_present: Option<&'a Op>,
    last_absent: Option<&'a Op>,
}

enum Outcome {
    Stable,
    Lost,
    NeverRead,
}

struct Judged<'a> {
    value: Edn,
    outcome: Outcome,
    stable_latency: Option<i64>,
    lost_latency: Option<i64>,
    element: &'a Element<'a>,
}

fn later<'a>(current: Option<&'a Op>, candidate: &'a Op) -> Option<&'a Op> {
    match current {
        Some(op) if op.index >= candidate.index => Some(op),
        _ => Some(candidate),
    }
}

/// Elements in the order they were first added, what the reads showed of each, and the
/// elements some single read returned more than once (with the most copies seen).
type Scan<'a> = (
    Vec<(String, Edn)>,
    HashMap<String, Element<'a>>,
    BTreeMap<String, (Edn, usize)>,
);

fn scan<'a>(history: &'a History, add_f: &str) -> Scan<'a> {
    let invocation_of: HashMap<usize, &Op> = history
        .pairs()
        .into_iter()
        .filter_map(|(i, c)| c.map(|c| (c.index, i)))
        .collect();
    let mut order: Vec<(String, Edn)> = Vec::new();
    let mut elements: HashMap<String, Element> = HashMap::new();
    let mut duplicated: BTreeMap<String, (Edn, usize)> = BTreeMap::new();

    for op in history.ops.iter().filter(|op| op.is_client()) {
        if op.f == add_f {
            let key = op.value.to_compact();
            match op.op_type {
                OpType::Invoke => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = elements.entry(key) {
                        order.push((slot.key().clone(), op.value.clone()));
                        slot.insert(Element::default());
                    }
                }
                OpType::Ok => {
                    if let Some(e) = elements.get_mut(&key) {
                        e.known.get_or_insert(op);
                    }
                }
                _ => {}
            }
        } else if op.f == "read" && op.op_type == OpType::Ok {
            let Some(invoke) = invocation_of.get(&op.index).copied() else {
                continue;
            };
            let seen = read_counts(op, &mut duplicated);
            for (key, e) in elements.iter_mut() {
                if seen.contains_key(key) {
                    e.known.get_or_insert(op);
                    e.last_present = later(e.last_present, invoke);
                } else {
                    e.last_absent = later(e.last_absent, invoke);
                }
            }
        }
    }
    (order, elements, duplicated)
}

/// How many times a read returned each element; elements returned more than once are
/// noted in `duplicated`.
fn read_counts(
    read: &Op,
    duplicated: &mut BTreeMap<String, (Edn, usize)>,
) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in read.value.elements().unwrap_or(&[]) {
        *seen.entry(item.to_compact()).or_default() += 1;
    }
    for (key, n) in &seen {
        if *n > 1 {
            let entry = duplicated
                .entry(key.clone())
                .or_insert_with(|| (Edn::parse(key).unwrap_or(Edn::Nil), 0));
            entry.1 = entry.1.max(*n);
        }
    }
    seen
}

/// Checks a history whose adds have `:f add_f` and whose reads are `:f :read` returning
/// a collection of elements.
pub fn check(history: &History, add_f: &str) -> Edn {
    let (order, elements, duplicated) = scan(history, add_f);
    let judged: Vec<Judged> = order
        .iter()
        .map(|(key, value)| judge(value.clone(), &elements[key]))
        .collect();
    let pick = |want: fn(&Outcome) -> bool| -> Vec<&Judged> {
        let mut v: Vec<&Judged> = judged.iter().filter(|j| want(&j.outcome)).collect();
        v.sort_by(|a, b| compare_values(&a.value, &b.value));
        v
    };
    let stable = pick(|o| matches!(o, Outcome::Stable));
    let lost = pick(|o| matches!(o, Outcome::Lost));
    let never_read = pick(|o| matches!(o, Outcome::NeverRead));
    let stale: Vec<&Judged> = stable
        .iter()
        .copied()
        .filter(|j| j.stable_latency.unwrap_or(0) > 0)
        .collect();
    let mut worst = stale.clone();
    worst.sort_by_key(|j| std::cmp::Reverse(j.stable_latency));
    worst.truncate(8);

    let attempts = order.len();
    result(
        &stable,
        &lost,
        &never_read,
        &stale,
        &worst,
        attempts,
        duplicated,
    )
}

/// The checker's result map, keys in Jepsen's order.
fn result(
    stable: &[&Judged],
    lost: &[&Judged],
    never_read: &[&Judged],
    stale: &[&Judged],
    worst: &[&Judged],
    attempts: usize,
    duplicated: BTreeMap<String, (Edn, usize)>,
) -> Edn {
    let valid = if !lost.is_empty() {
        Validity::False
    } else if stable.is_empty() {
        Validity::Unknown
    } else {
        Validity::True
    };
    let values = |js: &[&Judged]| Edn::List(js.iter().map(|j| j.value.clone()).collect());
    let mut entries = vec![
        (
            "worst-stale",
            Edn::List(worst.iter().map(|j| describe(j)).collect()),
        ),
        ("duplicated-count", Edn::from(duplicated.len())),
        ("valid?", valid.to_edn()),
        ("lost-count", Edn::from(lost.len())),
        ("lost", values(lost)),
        ("stable-count", Edn::from(stable.len())),
        ("stale-count", Edn::from(stale.len())),
        ("stale", values(stale)),
        ("never-read-count", Edn::from(never_read.len())),
    ];
    if let Some(q) = quantiles(stable.iter().filter_map(|j| j.stable_latency).collect()) {
        entries.push(("stable-latencies", q));
    }
    entries.push(("attempt-count", Edn::from(attempts)));
    if let Some(q) = quantiles(lost.iter().filter_map(|j| j.lost_latency).collect()) {
        entries.push(("lost-latencies", q));
    }
    entries.push(("never-read", values(never_read)));
    entries.push((
        "duplicated",
        Edn::Map(
            duplicated
                .into_values()
                .map(|(v, n)| (v, Edn::from(n)))
                .collect(),
        ),
    ));
    Edn::map(entries)
}

fn judge<'a>(value: Edn, e: &'a Element<'a>) -> Judged<'a> {
    let idx = |op: Option<&Op>| op.map(|o| o.index as i64).unwrap_or(-1);
    let (lp, la) = (idx(e.last_present), idx(e.last_absent));
    let stable = e.last_present.is_some() && la < lp;
    let lost =
        matches!((e.known, e.last_absent), (Some(k), Some(a)) if lp < la && k.index < a.index);
    let known_ns = e.known.map(|k| k.time_ns as i64).unwrap_or(0);
    let after = |op: Option<&Op>| op.map(|o| o.time_ns as i64 + 1).unwrap_or(0);
    let ms = |t: i64| (t - known_ns).max(0) / 1_000_000;
    Judged {
        value,
        outcome: if stable {
            Outcome::Stable
        } else if lost {
            Outcome::Lost
        } else {
            Outcome::NeverRead
        },
        stable_latency: stable.then(|| ms(after(e.last_absent))),
        lost_latency: lost.then(|| ms(after(e.last_present))),
        element: e,
    }
}

fn describe(j: &Judged) -> Edn {
    let opt = |l: Option<i64>| l.map(Edn::Int).unwrap_or(Edn::Nil);
    // Maelstrom hands set-full its adds renamed to `:add`; print them the same way.
    let op = |o: Option<&Op>| {
        o.map(|o| {
            let mut o = o.clone();
            if o.f != "read" {
                o.f = "add".into();
            }
            op_edn(&o)
        })
        .unwrap_or(Edn::Nil)
    };
    let outcome = match j.outcome {
        Outcome::Stable => "stable",
        Outcome::Lost => "lost",
        Outcome::NeverRead => "never-read",
    };
    Edn::map([
        ("element", j.value.clone()),
        ("outcome", Edn::kw(outcome)),
        ("stable-latency", opt(j.stable_latency)),
        ("lost-latency", opt(j.lost_latency)),
        ("known", op(j.element.known)),
        ("last-absent", op(j.element.last_absent)),
    ])
}

/// Jepsen's frequency distribution at 0, 0.5, 0.95, 0.99 and 1; `None` when empty.
fn quantiles(mut values: Vec<i64>) -> Option<Edn> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let n = values.len();
    let at = |p: f64| values[((n as f64 * p).floor() as usize).min(n - 1)];
    Some(Edn::Map(vec![
        (Edn::Int(0), Edn::Int(at(0.0))),
        (Edn::Float(0.5), Edn::Int(at(0.5))),
        (Edn::Float(0.95), Edn::Int(at(0.95))),
        (Edn::Float(0.99), Edn::Int(at(0.99))),
        (Edn::Int(1), Edn::Int(at(1.0))),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::tests_support::op_at;

    struct Builder {
        h: History,
        t: u64,
    }

    impl Builder {
        fn op(&mut self, p: u64, t: OpType, f: &str, v: Edn) {
            self.t += 1_000_000;
            self.h.push(op_at(p, t, f, v, self.t));
        }
        fn add(&mut self, p: u64, x: i64) {
            self.op(p, OpType::Invoke, "broadcast", Edn::Int(x));
            self.op(p, OpType::Ok, "broadcast", Edn::Int(x));
        }
        fn read(&mut self, p: u64, xs: &[i64]) {
            self.op(p, OpType::Invoke, "read", Edn::Nil);
            self.op(
                p,
                OpType::Ok,
                "read",
                Edn::Vector(xs.iter().map(|x| Edn::Int(*x)).collect()),
            );
        }
    }

    #[test]
    fn everything_read_at_the_end_is_stable() {
        let mut b = Builder {
            h: History::default(),
            t: 0,
        };
        b.add(0, 1);
        b.read(1, &[]);
        b.add(0, 2);
        b.read(1, &[1, 2]);
        let r = check(&b.h, "broadcast");
        assert_eq!(r.get("valid?"), Some(&Edn::Bool(true)));
        assert_eq!(r.get("stable-count"), Some(&Edn::Int(2)));
        assert_eq!(r.get("stale").unwrap().to_compact(), "(1)");
        assert_eq!(r.get("lost-count"), Some(&Edn::Int(0)));
        assert!(r.get("lost-latencies").is_none());
    }

    #[test]
    fn an_element_missing_from_the_last_reads_is_lost() {
        let mut b = Builder {
            h: History::default(),
            t: 0,
        };
        b.add(0, 1);
        b.add(0, 2);
        b.read(1, &[1, 2]);
        b.read(1, &[1]);
        let r = check(&b.h, "broadcast");
        assert_eq!(r.get("valid?"), Some(&Edn::Bool(false)));
        assert_eq!(r.get("lost").unwrap().to_compact(), "(2)");
        assert!(r.get("lost-latencies").is_some());
    }

    #[test]
    fn an_acknowledged_element_never_seen_is_lost() {
        let mut b = Builder {
            h: History::default(),
            t: 0,
        };
        b.add(0, 7);
        b.read(1, &[]);
        let r = check(&b.h, "broadcast");
        assert_eq!(r.get("lost").unwrap().to_compact(), "(7)");
    }

    #[test]
    fn nothing_read_is_unknown_and_duplicates_count() {
        let mut b = Builder {
            h: History::default(),
            t: 0,
        };
        b.op(0, OpType::Invoke, "broadcast", Edn::Int(1));
        b.op(0, OpType::Info, "broadcast", Edn::Int(1));
        let r = check(&b.h, "broadcast");
        assert_eq!(r.get("valid?"), Some(&Edn::kw("unknown")));
        assert_eq!(r.get("never-read").unwrap().to_compact(), "(1)");
        b.read(1, &[1, 1]);
        let r = check(&b.h, "broadcast");
        assert_eq!(r.get("duplicated-count"), Some(&Edn::Int(1)));
    }
}
