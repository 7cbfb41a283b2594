//! `:exceptions`: operations that ended in an exception (a malformed reply, a client
//! crash), grouped by class with a count and an example, as Jepsen's
//! unhandled-exceptions checker. They never invalidate a run by themselves; they explain it.

use std::collections::BTreeMap;

use super::op_edn;
use crate::edn::Edn;
use crate::history::{History, Op};

fn class_of(exception: &Edn) -> Edn {
    if let Some(class) = exception.get("class") {
        return class.clone();
    }
    if let Some(first) = exception
        .get("via")
        .and_then(Edn::elements)
        .and_then(|v| v.first())
    {
        if let Some(t) = first.get("type") {
            return t.clone();
        }
    }
    Edn::Symbol("unknown".into())
}

pub fn check(history: &History) -> Edn {
    let mut groups: BTreeMap<String, (Edn, Vec<&Op>)> = BTreeMap::new();
    for op in history.completions() {
        if let Some(exception) = op.extra("exception") {
            let class = class_of(exception);
            groups
                .entry(class.to_compact())
                .or_insert_with(|| (class, Vec::new()))
                .1
                .push(op);
        }
    }
    if groups.is_empty() {
        return Edn::map([("valid?", Edn::Bool(true))]);
    }
    let mut groups: Vec<_> = groups.into_values().collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.1.len()));
    let list = groups
        .into_iter()
        .map(|(class, ops)| {
            Edn::map([
                ("count", Edn::from(ops.len())),
                ("class", class),
                ("example", op_edn(ops[0])),
            ])
        })
        .collect();
    Edn::map([("valid?", Edn::Bool(true)), ("exceptions", Edn::List(list))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::tests_support::complete;
    use crate::history::OpType;

    #[test]
    fn groups_exceptions_by_class() {
        let mut h = History::default();
        for _ in 0..3 {
            let mut op = complete(0, OpType::Info, "generate", Edn::Nil);
            op.extra.push((
                "exception".into(),
                Edn::map([(
                    "via",
                    Edn::Vector(vec![Edn::map([(
                        "type",
                        Edn::Symbol("clojure.lang.ExceptionInfo".into()),
                    )])]),
                )]),
            ));
            h.push(op);
        }
        let r = check(&h);
        assert_eq!(r.get("valid?"), Some(&Edn::Bool(true)));
        let first = &r.get("exceptions").unwrap().elements().unwrap()[0];
        assert_eq!(first.get("count"), Some(&Edn::Int(3)));
        assert_eq!(
            first.get("class"),
            Some(&Edn::Symbol("clojure.lang.ExceptionInfo".into()))
        );
        assert!(check(&History::default()).get("exceptions").is_none());
    }
}
