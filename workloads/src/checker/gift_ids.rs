//! The gift-ids checker. It decodes every acknowledged ID itself, from the layout the
//! specification gives (`timestamp:41 | workshop:10 | sequence:12 | type:1` from
//! 2025-01-01T00:00:00Z), rather than trusting the node's `decode`, and judges:
//!
//! - duplicates: no ID acknowledged twice;
//! - order: an ID from a node exceeds every ID that node returned before the request was
//!   sent, and a batch is ascending;
//! - mismatches: the workshop is the answering node's, the type the one asked for, the
//!   node's own `decode` agrees, and the timestamp lies within the documented bound of
//!   real time, widened by whatever offset the clock nemesis gave that node's clock.
//!
//! Availability (the share of requests answered) is reported; `--availability` judges it.

use std::collections::HashMap;

use super::float32;
use crate::edn::Edn;
use crate::facts::RunFacts;
use crate::history::{History, Op, OpType, Process};

const EPOCH_UNIX_MS: i64 = 1_735_689_600_000;
const TIMESTAMP_SHIFT: u32 = 23;
const WORKSHOP_SHIFT: u32 = 13;
/// How far ahead of real time a correct generator may stamp: sequence borrowing plus the
/// restart lease (giftid-node's README).
const LEAD_BOUND_MS: f64 = 2_000.0;
/// Scheduling and clock-file latency between the harness and the node.
const SLACK_MS: f64 = 250.0;
/// Examples listed per kind of problem.
const SHOWN: usize = 10;

/// An ID's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts {
    pub unix_ms: i64,
    pub workshop: i64,
    pub sequence: i64,
    pub coal: bool,
}

/// The fields of a gift ID; `None` for a negative one.
pub(crate) fn decode(id: i64) -> Option<Parts> {
    (id >= 0).then(|| Parts {
        unix_ms: EPOCH_UNIX_MS + (id >> TIMESTAMP_SHIFT),
        workshop: (id >> WORKSHOP_SHIFT) & 1023,
        sequence: (id >> 1) & 4095,
        coal: id & 1 == 1,
    })
}

/// The workshop each node stands for: `n7` is 7 when every name is `n<k>` with distinct
/// `k` below 1024, else the node's position (as giftid-node decides).
fn workshops(nodes: &[String]) -> Vec<i64> {
    let numbered: Option<Vec<i64>> = nodes
        .iter()
        .map(|n| {
            n.strip_prefix('n')?
                .parse::<i64>()
                .ok()
                .filter(|k| *k < 1024)
        })
        .collect();
    match numbered {
        Some(ks) if ks.iter().collect::<std::collections::BTreeSet<_>>().len() == ks.len() => ks,
        _ => (0..nodes.len() as i64).collect(),
    }
}

/// One acknowledged generate or batch.
struct Issued<'a> {
    node: Option<usize>,
    invoked_ns: u64,
    completed_ns: u64,
    ids: Vec<i64>,
    coal: bool,
    op: &'a Op,
}

#[derive(Default)]
struct Findings {
    duplicated: Vec<(i64, u64)>,
    order: Vec<Edn>,
    order_count: usize,
    mismatches: Vec<Edn>,
    mismatch_count: usize,
}

impl Findings {
    fn order(&mut self, example: impl FnOnce() -> Edn) {
        self.order_count += 1;
        if self.order.len() < SHOWN {
            self.order.push(example());
        }
    }

    fn mismatch(&mut self, example: impl FnOnce() -> Edn) {
        self.mismatch_count += 1;
        if self.mismatches.len() < SHOWN {
            self.mismatches.push(example());
        }
    }
}

/// The clock offsets (ms) a node had, lowest and highest, from the start until `until_ns`.
fn offset_range(trace: Option<&Vec<(u64, f64)>>, until_ns: u64) -> (f64, f64) {
    let mut range = (0.0f64, 0.0f64);
    for (t, ms) in trace.into_iter().flatten() {
        if *t > until_ns {
            break;
        }
        range = (range.0.min(*ms), range.1.max(*ms));
    }
    range
}

fn process_of(op: &Op) -> u64 {
    match op.process {
        Process::Worker(p) => p,
        Process::Nemesis => 0,
    }
}

/// What the acknowledged ops issued, and the counts of ops.
#[derive(Default)]
struct Tally<'a> {
    issued: Vec<Issued<'a>>,
    attempted: usize,
    acknowledged: usize,
    decodes: usize,
}

pub fn check(history: &History, facts: &RunFacts) -> Edn {
    let workshops = workshops(&facts.nodes);
    let mut findings = Findings::default();
    let tally = tally(history, facts, &mut findings);
    let issued = &tally.issued;
    // Duplicates across the whole run.
    let mut counts: HashMap<i64, u64> = HashMap::new();
    for id in issued.iter().flat_map(|i| &i.ids) {
        *counts.entry(*id).or_default() += 1;
    }
    let ids_count = counts.values().sum::<u64>();
    findings.duplicated = counts.into_iter().filter(|(_, n)| *n > 1).collect();
    findings.duplicated.sort_unstable();
    check_order(issued, facts.nodes.len(), &mut findings);
    for i in issued {
        check_fields(i, &workshops, facts, &mut findings);
    }
    result(&tally, ids_count, findings, facts.wall_origin_ms.is_some())
}

/// Reads every op: decodes checked, generated IDs collected with their batch checks.
fn tally<'a>(history: &'a History, facts: &RunFacts, findings: &mut Findings) -> Tally<'a> {
    let mut t = Tally::default();
    for (inv, done) in history.pairs() {
        t.attempted += 1;
        let Some(done) = done.filter(|d| d.op_type == OpType::Ok) else {
            continue;
        };
        t.acknowledged += 1;
        let asked = match inv.f.as_str() {
            "generate-batch" => inv.value.get("gift-type").cloned().unwrap_or(Edn::Nil),
            _ => inv.value.clone(),
        };
        let ids: Vec<i64> = match inv.f.as_str() {
            "generate" => done.value.as_i64().into_iter().collect(),
            "generate-batch" => done
                .value
                .elements()
                .map(|es| es.iter().filter_map(Edn::as_i64).collect())
                .unwrap_or_default(),
            "decode" => {
                t.decodes += 1;
                check_decode(inv, done, findings);
                continue;
            }
            _ => continue,
        };
        if inv.f == "generate-batch" {
            check_batch(inv, done, &ids, findings);
        }
        t.issued.push(Issued {
            node: facts.node_of(process_of(inv)),
            invoked_ns: inv.time_ns,
            completed_ns: done.time_ns,
            ids,
            coal: asked == Edn::kw("coal"),
            op: done,
        });
    }
    t
}

/// A batch has as many IDs as asked for, in ascending order.
fn check_batch(inv: &Op, done: &Op, ids: &[i64], findings: &mut Findings) {
    let asked_count = inv.value.get("count").and_then(Edn::as_i64);
    if asked_count != Some(ids.len() as i64) {
        findings.mismatch(|| {
            Edn::map([
                ("problem", Edn::kw("batch-size")),
                ("asked", asked_count.map_or(Edn::Nil, Edn::Int)),
                ("got", Edn::from(ids.len())),
                ("op", super::op_edn(done)),
            ])
        });
    }
    for w in ids.windows(2) {
        if w[1] <= w[0] {
            findings.order(|| {
                Edn::map([
                    ("problem", Edn::kw("batch-not-ascending")),
                    ("ids", Edn::Vector(vec![Edn::Int(w[0]), Edn::Int(w[1])])),
                    ("op", super::op_edn(done)),
                ])
            });
        }
    }
}

/// The checker's result map, keys in the order results.edn shows them.
fn result(t: &Tally, ids_count: u64, findings: Findings, timestamps_checked: bool) -> Edn {
    let duplicated_count = findings.duplicated.len();
    let all = t.issued.iter().flat_map(|i| &i.ids);
    let range = (all.clone().min().copied(), all.max().copied());
    let valid = duplicated_count == 0 && findings.order_count == 0 && findings.mismatch_count == 0;
    let fraction = if t.attempted == 0 {
        1.0
    } else {
        t.acknowledged as f64 / t.attempted as f64
    };
    let duplicated = findings
        .duplicated
        .iter()
        .take(SHOWN * 4)
        .map(|(id, n)| (Edn::Int(*id), Edn::from(*n)))
        .collect();
    Edn::map([
        ("valid?", Edn::Bool(valid)),
        ("attempted-count", Edn::from(t.attempted)),
        ("acknowledged-count", Edn::from(t.acknowledged)),
        ("availability", float32(fraction)),
        ("id-count", Edn::from(ids_count)),
        ("decode-count", Edn::from(t.decodes)),
        ("duplicated-count", Edn::from(duplicated_count)),
        ("duplicated", Edn::Map(duplicated)),
        ("order-violation-count", Edn::from(findings.order_count)),
        ("order-violations", Edn::Vector(findings.order)),
        ("mismatch-count", Edn::from(findings.mismatch_count)),
        ("mismatches", Edn::Vector(findings.mismatches)),
        ("timestamps-checked?", Edn::Bool(timestamps_checked)),
        (
            "range",
            Edn::Vector(vec![
                range.0.map_or(Edn::Nil, Edn::Int),
                range.1.map_or(Edn::Nil, Edn::Int),
            ]),
        ),
    ])
}

/// Per node: every op's smallest ID must exceed the largest ID of every op of that node
/// that completed before it was invoked.
fn check_order(issued: &[Issued], nodes: usize, findings: &mut Findings) {
    for node in 0..nodes {
        let mine: Vec<&Issued> = issued.iter().filter(|i| i.node == Some(node)).collect();
        let mut by_completion: Vec<(u64, i64, &Issued)> = mine
            .iter()
            .filter_map(|i| Some((i.completed_ns, *i.ids.iter().max()?, *i)))
            .collect();
        by_completion.sort_by_key(|(t, ..)| *t);
        let mut by_invocation = mine.clone();
        by_invocation.sort_by_key(|i| i.invoked_ns);
        let (mut next, mut max_before): (usize, Option<(i64, &Issued)>) = (0, None);
        for op in by_invocation {
            while next < by_completion.len() && by_completion[next].0 < op.invoked_ns {
                let (_, id, who) = by_completion[next];
                if !matches!(max_before, Some((m, _)) if id <= m) {
                    max_before = Some((id, who));
                }
                next += 1;
            }
            let (Some(low), Some((high, earlier))) = (op.ids.iter().min(), max_before) else {
                continue;
            };
            if *low <= high {
                findings.order(|| {
                    Edn::map([
                        ("problem", Edn::kw("not-above-earlier-ids")),
                        ("node", Edn::from(format!("n{node}"))),
                        ("id", Edn::Int(*low)),
                        ("earlier-id", Edn::Int(high)),
                        ("earlier-op", super::op_edn(earlier.op)),
                        ("op", super::op_edn(op.op)),
                    ])
                });
            }
        }
    }
}

/// Workshop, type and timestamp of every ID of one op.
fn check_fields(i: &Issued, workshops: &[i64], facts: &RunFacts, findings: &mut Findings) {
    let expected_workshop = i.node.and_then(|n| workshops.get(n)).copied();
    let bounds = facts.wall_origin_ms.map(|origin| {
        let trace = i.node.and_then(|n| facts.clock_offsets.get(n));
        let (low_offset, high_offset) = offset_range(trace, i.completed_ns);
        let invoked = origin + i.invoked_ns as f64 / 1e6;
        let completed = origin + i.completed_ns as f64 / 1e6;
        (
            invoked + low_offset.min(0.0) - SLACK_MS,
            completed + high_offset.max(0.0) + LEAD_BOUND_MS + SLACK_MS,
        )
    });
    for id in &i.ids {
        let problem = match decode(*id) {
            None => Some(("not-a-gift-id", Edn::Nil)),
            Some(p) if expected_workshop.is_some_and(|w| w != p.workshop) => {
                Some(("wrong-workshop", Edn::Int(p.workshop)))
            }
            Some(p) if p.coal != i.coal => Some(("wrong-gift-type", Edn::Bool(p.coal))),
            Some(p) => match bounds {
                Some((low, high)) if (p.unix_ms as f64) < low || (p.unix_ms as f64) > high => {
                    Some((
                        "timestamp-out-of-bounds",
                        Edn::map([
                            ("timestamp-ms", Edn::Int(p.unix_ms)),
                            (
                                "bounds-ms",
                                Edn::Vector(vec![Edn::Int(low as i64), Edn::Int(high as i64)]),
                            ),
                        ]),
                    ))
                }
                _ => None,
            },
        };
        if let Some((what, got)) = problem {
            findings.mismatch(|| {
                Edn::map([
                    ("problem", Edn::kw(what)),
                    ("id", Edn::Int(*id)),
                    ("got", got),
                    ("op", super::op_edn(i.op)),
                ])
            });
        }
    }
}

/// The node's decode must agree with the layout.
fn check_decode(inv: &Op, done: &Op, findings: &mut Findings) {
    let Some(parts) = inv.value.as_i64().and_then(decode) else {
        return;
    };
    let expected = Edn::map([
        ("timestamp-ms", Edn::Int(parts.unix_ms)),
        ("workshop", Edn::Int(parts.workshop)),
        ("sequence", Edn::Int(parts.sequence)),
        (
            "gift-type",
            Edn::kw(if parts.coal { "coal" } else { "toy" }),
        ),
    ]);
    if done.value != expected {
        findings.mismatch(|| {
            Edn::map([
                ("problem", Edn::kw("decode-disagrees")),
                ("id", inv.value.clone()),
                ("expected", expected),
                ("op", super::op_edn(done)),
            ])
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::tests_support::op_at;

    const MS: u64 = 1_000_000;
    /// Unix ms at history time zero in these tests.
    const ORIGIN: f64 = 1_800_000_000_000.0;

    fn id(unix_ms: i64, workshop: i64, seq: i64, coal: bool) -> i64 {
        ((unix_ms - EPOCH_UNIX_MS) << TIMESTAMP_SHIFT)
            | (workshop << WORKSHOP_SHIFT)
            | (seq << 1)
            | coal as i64
    }

    fn facts() -> RunFacts {
        RunFacts {
            nodes: vec!["n0".into(), "n1".into()],
            workers: 2,
            wall_origin_ms: Some(ORIGIN),
            clock_offsets: Vec::new(),
            ..RunFacts::default()
        }
    }

    /// Process `p` asks at `t` ms and hears at `t + 1` ms.
    fn generate(h: &mut History, p: u64, t: u64, asked: Edn, got: i64) {
        h.push(op_at(p, OpType::Invoke, "generate", asked, t * MS));
        h.push(op_at(
            p,
            OpType::Ok,
            "generate",
            Edn::Int(got),
            (t + 1) * MS,
        ));
    }

    fn at(t: u64) -> i64 {
        ORIGIN as i64 + t as i64
    }

    fn count(r: &Edn, key: &str) -> i64 {
        r.get(key).and_then(Edn::as_i64).unwrap()
    }

    #[test]
    fn a_correct_run_is_valid() {
        let mut h = History::default();
        generate(&mut h, 0, 10, Edn::Nil, id(at(10), 0, 0, false));
        generate(&mut h, 1, 10, Edn::kw("coal"), id(at(10), 1, 0, true));
        generate(&mut h, 0, 20, Edn::kw("toy"), id(at(20), 0, 0, false));
        let batch = Edn::map([("count", Edn::Int(2)), ("gift-type", Edn::kw("coal"))]);
        h.push(op_at(1, OpType::Invoke, "generate-batch", batch, 30 * MS));
        let ids = vec![
            Edn::Int(id(at(30), 1, 0, true)),
            Edn::Int(id(at(30), 1, 1, true)),
        ];
        h.push(op_at(
            1,
            OpType::Ok,
            "generate-batch",
            Edn::Vector(ids),
            31 * MS,
        ));
        let probe = id(at(30), 1, 1, true);
        h.push(op_at(0, OpType::Invoke, "decode", Edn::Int(probe), 40 * MS));
        let fields = Edn::map([
            ("timestamp-ms", Edn::Int(at(30))),
            ("workshop", Edn::Int(1)),
            ("sequence", Edn::Int(1)),
            ("gift-type", Edn::kw("coal")),
        ]);
        h.push(op_at(0, OpType::Ok, "decode", fields, 41 * MS));
        let r = check(&h, &facts());
        assert_eq!(r.get("valid?"), Some(&Edn::Bool(true)), "{}", r.to_pretty());
        assert_eq!(count(&r, "id-count"), 5);
        assert_eq!(count(&r, "decode-count"), 1);
    }

    #[test]
    fn duplicates_order_and_field_problems_are_each_caught() {
        let mut h = History::default();
        let first = id(at(10), 0, 5, false);
        generate(&mut h, 0, 10, Edn::Nil, first);
        // Same node, later request, smaller id: an order violation.
        generate(&mut h, 0, 20, Edn::Nil, id(at(10), 0, 4, false));
        // The other node repeats the first id: a duplicate, and the wrong workshop.
        generate(&mut h, 1, 30, Edn::Nil, first);
        // Coal asked, toy given.
        generate(&mut h, 1, 40, Edn::kw("coal"), id(at(40), 1, 0, false));
        // Ten seconds ahead of real time.
        generate(&mut h, 1, 50, Edn::Nil, id(at(10_050), 1, 0, false));
        let r = check(&h, &facts());
        assert_eq!(r.get("valid?"), Some(&Edn::Bool(false)));
        assert_eq!(count(&r, "duplicated-count"), 1);
        assert_eq!(count(&r, "order-violation-count"), 1);
        let problems: Vec<String> = r
            .get("mismatches")
            .and_then(Edn::elements)
            .unwrap()
            .iter()
            .map(|m| m.get("problem").unwrap().to_compact())
            .collect();
        assert_eq!(
            problems,
            [
                ":wrong-workshop",
                ":wrong-gift-type",
                ":timestamp-out-of-bounds"
            ]
        );
    }

    #[test]
    fn overlapping_requests_may_come_back_in_any_order() {
        let mut h = History::default();
        h.push(op_at(0, OpType::Invoke, "generate", Edn::Nil, 10 * MS));
        h.push(op_at(2, OpType::Invoke, "generate", Edn::Nil, 10 * MS));
        h.push(op_at(
            0,
            OpType::Ok,
            "generate",
            Edn::Int(id(at(10), 0, 1, false)),
            12 * MS,
        ));
        h.push(op_at(
            2,
            OpType::Ok,
            "generate",
            Edn::Int(id(at(10), 0, 0, false)),
            13 * MS,
        ));
        let mut f = facts();
        f.workers = 4;
        let r = check(&h, &f);
        assert_eq!(r.get("valid?"), Some(&Edn::Bool(true)), "{}", r.to_pretty());
    }

    #[test]
    fn a_node_clock_offset_widens_the_bound_and_a_wrong_decode_is_caught() {
        let mut h = History::default();
        // n1's clock ran 30 s ahead from 5 ms on; an id 30 s ahead is fine.
        generate(&mut h, 1, 10, Edn::Nil, id(at(30_010), 1, 0, false));
        h.push(op_at(
            0,
            OpType::Invoke,
            "decode",
            Edn::Int(id(at(10), 1, 0, false)),
            20 * MS,
        ));
        let wrong = Edn::map([
            ("timestamp-ms", Edn::Int(at(10))),
            ("workshop", Edn::Int(2)),
            ("sequence", Edn::Int(0)),
            ("gift-type", Edn::kw("toy")),
        ]);
        h.push(op_at(0, OpType::Ok, "decode", wrong, 21 * MS));
        let mut f = facts();
        f.clock_offsets = vec![vec![(0, 0.0)], vec![(0, 0.0), (5 * MS, 30_000.0)]];
        let r = check(&h, &f);
        assert_eq!(count(&r, "mismatch-count"), 1, "{}", r.to_pretty());
        let m = &r.get("mismatches").and_then(Edn::elements).unwrap()[0];
        assert_eq!(m.get("problem"), Some(&Edn::kw("decode-disagrees")));
        // Without the offset, the same id is out of bounds.
        f.clock_offsets.clear();
        assert_eq!(count(&check(&h, &f), "mismatch-count"), 2);
    }

    #[test]
    fn workshops_follow_node_numbers_or_positions() {
        let names = |ns: &[&str]| ns.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(workshops(&names(&["n3", "n7"])), [3, 7]);
        assert_eq!(workshops(&names(&["a", "n7"])), [0, 1]);
        assert_eq!(workshops(&names(&["n1", "n1"])), [0, 1]);
        assert_eq!(workshops(&names(&["n1024"])), [0]);
    }
}
