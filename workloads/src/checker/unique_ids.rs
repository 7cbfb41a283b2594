//! Jepsen's unique-ids checker: every acknowledged `generate` must return an id no other
//! acknowledged `generate` returned.

use std::collections::HashMap;

use super::compare_values;
use crate::edn::Edn;
use crate::history::{History, OpType};

/// How many duplicated ids the result lists, as Jepsen.
const SHOWN: usize = 48;

pub fn check(history: &History) -> Edn {
    let attempted = history
        .invocations()
        .filter(|op| op.f == "generate")
        .count();
    let acks: Vec<&Edn> = history
        .completions()
        .filter(|op| op.op_type == OpType::Ok && op.f == "generate")
        .map(|op| &op.value)
        .collect();
    let mut counts: HashMap<String, (&Edn, u64)> = HashMap::new();
    for id in &acks {
        counts.entry(id.to_compact()).or_insert((id, 0)).1 += 1;
    }
    let mut dups: Vec<(&Edn, u64)> = counts.into_values().filter(|(_, n)| *n > 1).collect();
    let duplicated_count = dups.len();
    // Jepsen sorts by count, then reverses: the most duplicated first, ties broken by the
    // larger id. Shown in id order.
    dups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| compare_values(b.0, a.0)));
    dups.truncate(SHOWN);
    dups.sort_by(|a, b| compare_values(a.0, b.0));
    let lo = acks.iter().copied().min_by(|a, b| compare_values(a, b));
    let hi = acks.iter().copied().max_by(|a, b| compare_values(a, b));
    Edn::map([
        ("valid?", Edn::Bool(duplicated_count == 0)),
        ("attempted-count", Edn::from(attempted)),
        ("acknowledged-count", Edn::from(acks.len())),
        ("duplicated-count", Edn::from(duplicated_count)),
        (
            "duplicated",
            Edn::Map(
                dups.into_iter()
                    .map(|(id, n)| (id.clone(), Edn::from(n)))
                    .collect(),
            ),
        ),
        (
            "range",
            Edn::Vector(vec![
                lo.cloned().unwrap_or(Edn::Nil),
                hi.cloned().unwrap_or(Edn::Nil),
            ]),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::tests_support::{complete, invoke};

    fn run(ids: &[Edn]) -> Edn {
        let mut h = History::default();
        for id in ids {
            h.push(invoke(0, "generate", Edn::Nil));
            h.push(complete(0, OpType::Ok, "generate", id.clone()));
        }
        h.push(invoke(1, "generate", Edn::Nil));
        h.push(complete(1, OpType::Info, "generate", Edn::Nil));
        check(&h)
    }

    #[test]
    fn duplicates_are_invalid_and_counted() {
        let r = run(&[
            Edn::Int(3),
            Edn::Int(1),
            Edn::Int(3),
            Edn::Int(2),
            Edn::Int(3),
        ]);
        assert_eq!(
            r.to_compact(),
            "{:valid? false, :attempted-count 6, :acknowledged-count 5, :duplicated-count 1, :duplicated {3 3}, :range [1 3]}"
        );
    }

    #[test]
    fn distinct_ids_of_any_type_are_valid() {
        let r = run(&[Edn::from("n1-0"), Edn::from("n2-0"), Edn::Int(7)]);
        assert_eq!(r.get("valid?"), Some(&Edn::Bool(true)));
        assert_eq!(
            r.get("range"),
            Some(&Edn::Vector(vec![Edn::Int(7), Edn::from("n2-0")]))
        );
        assert_eq!(run(&[]).get("range").unwrap().to_compact(), "[nil nil]");
    }
}
