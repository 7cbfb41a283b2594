//! `:stats`: completions counted by type, overall and per `:f`.
//!
//! As in Jepsen 0.3.7, an `:f` that never succeeded makes the whole check invalid: a
//! node that answers every request with an error (or a malformed reply) must not pass.

use std::collections::BTreeMap;

use super::Validity;
use crate::edn::Edn;
use crate::history::{History, OpType};

#[derive(Default)]
struct Counts {
    count: u64,
    ok: u64,
    fail: u64,
    info: u64,
}

impl Counts {
    fn add(&mut self, t: OpType) {
        self.count += 1;
        match t {
            OpType::Ok => self.ok += 1,
            OpType::Fail => self.fail += 1,
            OpType::Info => self.info += 1,
            OpType::Invoke => {}
        }
    }

    fn to_edn(&self, valid: Validity) -> Vec<(String, Edn)> {
        vec![
            ("valid?".into(), valid.to_edn()),
            ("count".into(), Edn::from(self.count)),
            ("ok-count".into(), Edn::from(self.ok)),
            ("fail-count".into(), Edn::from(self.fail)),
            ("info-count".into(), Edn::from(self.info)),
        ]
    }
}

pub fn check(history: &History) -> Edn {
    let mut all = Counts::default();
    let mut by_f: BTreeMap<&str, Counts> = BTreeMap::new();
    for op in history.completions() {
        all.add(op.op_type);
        by_f.entry(&op.f).or_default().add(op.op_type);
    }
    let mut valid = Validity::True;
    let mut per_f = Vec::new();
    for (f, counts) in &by_f {
        let v = if counts.ok > 0 {
            Validity::True
        } else {
            Validity::False
        };
        valid = valid.merge(v);
        per_f.push((Edn::kw(f), Edn::map(counts.to_edn(v))));
    }
    let mut entries = all.to_edn(valid);
    entries.push(("by-f".into(), Edn::Map(per_f)));
    Edn::map(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::tests_support::{complete, invoke};

    #[test]
    fn an_f_without_any_ok_is_invalid() {
        let mut h = History::default();
        h.push(invoke(0, "read", Edn::Nil));
        h.push(complete(0, OpType::Ok, "read", Edn::Int(1)));
        h.push(invoke(0, "add", Edn::Int(1)));
        h.push(complete(0, OpType::Info, "add", Edn::Int(1)));
        let r = check(&h);
        assert_eq!(r.get("valid?"), Some(&Edn::Bool(false)));
        assert_eq!(r.get("count"), Some(&Edn::Int(2)));
        assert_eq!(r.get("info-count"), Some(&Edn::Int(1)));
        let add = r.get("by-f").unwrap().get("add").unwrap();
        assert_eq!(add.get("valid?"), Some(&Edn::Bool(false)));
    }

    #[test]
    fn all_fs_with_oks_are_valid() {
        let mut h = History::default();
        h.push(invoke(0, "echo", Edn::Nil));
        h.push(complete(0, OpType::Ok, "echo", Edn::Nil));
        assert_eq!(check(&h).get("valid?"), Some(&Edn::Bool(true)));
    }
}
