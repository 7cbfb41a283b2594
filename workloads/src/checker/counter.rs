//! The g-counter / pn-counter checker: every successful *final* read must equal the sum of
//! the acknowledged adds plus the deltas of some subset of the adds whose outcome is
//! unknown (`:info`). Failed adds count for nothing; reads during the run are not judged,
//! since a counter may lag while the network is cut.

use std::collections::BTreeSet;

use super::op_edn;
use crate::edn::Edn;
use crate::history::{History, OpType};

/// Bounds the set of reachable sums so a pathological history cannot exhaust memory.
const MAX_REACHABLE: usize = 1 << 20;

pub fn check(history: &History) -> Edn {
    let mut base: i64 = 0;
    let mut reachable: BTreeSet<i64> = BTreeSet::from([0]);
    let mut truncated = false;
    for (invoke, completion) in history.pairs() {
        if invoke.f != "add" {
            continue;
        }
        let Some(delta) = invoke.value.as_i64() else {
            continue;
        };
        match completion.map(|c| c.op_type) {
            Some(OpType::Ok) => base += delta,
            Some(OpType::Fail) => {}
            // An add still open at the end is as uncertain as an :info one.
            _ => {
                if delta != 0 && !truncated {
                    let shifted: Vec<i64> = reachable.iter().map(|s| s + delta).collect();
                    reachable.extend(shifted);
                    truncated = reachable.len() > MAX_REACHABLE;
                }
            }
        }
    }
    let acceptable: Vec<i64> = reachable.iter().map(|s| s + base).collect();
    let final_reads: Vec<_> = history
        .completions()
        .filter(|op| op.op_type == OpType::Ok && op.f == "read" && op.final_read)
        .collect();
    let errors: Vec<Edn> = final_reads
        .iter()
        .filter(|op| match op.value.as_i64() {
            Some(v) => acceptable.binary_search(&v).is_err(),
            None => true,
        })
        .map(|op| op_edn(op))
        .collect();
    Edn::map([
        ("valid?", Edn::Bool(errors.is_empty())),
        ("errors", Edn::List(errors)),
        (
            "final-reads",
            Edn::List(final_reads.iter().map(|op| op.value.clone()).collect()),
        ),
        ("acceptable", Edn::List(ranges(&acceptable))),
    ])
}

/// Sorted integers as `[lo hi]` runs of consecutive values.
fn ranges(sorted: &[i64]) -> Vec<Edn> {
    let mut out = Vec::new();
    let mut iter = sorted.iter().copied();
    let Some(mut lo) = iter.next() else {
        return out;
    };
    let mut hi = lo;
    for x in iter {
        if x == hi + 1 {
            hi = x;
        } else {
            out.push(Edn::Vector(vec![Edn::Int(lo), Edn::Int(hi)]));
            lo = x;
            hi = x;
        }
    }
    out.push(Edn::Vector(vec![Edn::Int(lo), Edn::Int(hi)]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::tests_support::{complete, invoke};

    fn history(adds: &[(i64, OpType)], finals: &[i64]) -> History {
        let mut h = History::default();
        for (delta, outcome) in adds {
            h.push(invoke(0, "add", Edn::Int(*delta)));
            h.push(complete(0, *outcome, "add", Edn::Int(*delta)));
        }
        for (p, value) in finals.iter().enumerate() {
            h.push(invoke(p as u64 + 1, "read", Edn::Nil));
            let mut read = complete(p as u64 + 1, OpType::Ok, "read", Edn::Int(*value));
            read.final_read = true;
            h.push(read);
        }
        h
    }

    #[test]
    fn final_reads_must_match_the_acknowledged_sum() {
        let adds = [(3, OpType::Ok), (4, OpType::Ok), (2, OpType::Fail)];
        let good = check(&history(&adds, &[7, 7]));
        assert_eq!(
            good.to_compact(),
            "{:valid? true, :errors (), :final-reads (7 7), :acceptable ([7 7])}"
        );
        let bad = check(&history(&adds, &[7, 3]));
        assert_eq!(bad.get("valid?"), Some(&Edn::Bool(false)));
        assert_eq!(bad.get("errors").unwrap().elements().unwrap().len(), 1);
    }

    #[test]
    fn info_adds_may_or_may_not_count() {
        let adds = [(1, OpType::Ok), (2, OpType::Info), (4, OpType::Info)];
        let r = check(&history(&adds, &[3, 7, 5]));
        assert_eq!(r.get("valid?"), Some(&Edn::Bool(true)));
        assert_eq!(
            r.get("acceptable").unwrap().to_compact(),
            "([1 1] [3 3] [5 5] [7 7])"
        );
        assert_eq!(
            check(&history(&adds, &[4])).get("valid?"),
            Some(&Edn::Bool(false))
        );
    }

    #[test]
    fn no_final_read_is_valid() {
        assert_eq!(
            check(&history(&[(1, OpType::Ok)], &[])).get("valid?"),
            Some(&Edn::Bool(true))
        );
    }
}
