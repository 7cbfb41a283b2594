//! Checkers: pure functions from a history to a result map with a `:valid?`.
//!
//! Each module checks one property the way Jepsen 0.3.7 (as used by Maelstrom) does, with
//! the same keys in the same order, so that a run's `results.edn` reads like Maelstrom's
//! and reaches the same verdict on the same history. [`compose`] merges them into the
//! top-level results map.

pub mod availability;
pub mod counter;
pub mod echo;
pub mod exceptions;
pub mod gift_ids;
pub mod linearizable;
pub mod net;
pub mod santa;
pub mod secret_santa;
pub mod set_full;
pub mod simulated_register;
pub mod stats;
pub mod task_queue;
pub mod unique_ids;

use crate::edn::Edn;
use crate::history::Op;

/// A checker's verdict. `Unknown` means the checker could not decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    True,
    False,
    Unknown,
}

impl Validity {
    /// Jepsen's `merge-valid`: false beats unknown beats true.
    pub fn merge(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (False, _) | (_, False) => False,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => True,
        }
    }

    pub fn from_edn(e: Option<&Edn>) -> Validity {
        match e {
            Some(Edn::Bool(true)) => Validity::True,
            Some(Edn::Bool(false)) => Validity::False,
            _ => Validity::Unknown,
        }
    }

    pub fn to_edn(self) -> Edn {
        match self {
            Validity::True => Edn::Bool(true),
            Validity::False => Edn::Bool(false),
            Validity::Unknown => Edn::kw("unknown"),
        }
    }
}

/// The top-level results map: each checker's result under its name, in the given order,
/// then the merged `:valid?`.
pub fn compose(results: Vec<(&str, Edn)>) -> Edn {
    let mut valid = Validity::True;
    let mut entries = Vec::with_capacity(results.len() + 1);
    for (name, result) in results {
        valid = valid.merge(Validity::from_edn(result.get("valid?")));
        entries.push((name.to_string(), result));
    }
    entries.push(("valid?".to_string(), valid.to_edn()));
    Edn::map(entries)
}

/// Jepsen reports `{:valid? true}` for the timeline once `timeline.html` is written.
pub fn timeline_result() -> Edn {
    Edn::map([("valid?", Edn::Bool(true))])
}

/// An op as Jepsen prints it inside results: `#jepsen.history.Op{…}`.
pub fn op_edn(op: &Op) -> Edn {
    Edn::Tagged("jepsen.history.Op".into(), Box::new(op.to_edn()))
}

/// Clojure's `(float x)`: single precision, printed with the digits it has.
pub fn float32(x: f64) -> Edn {
    let single = x as f32;
    Edn::Float(format!("{single}").parse().unwrap_or(x))
}

/// A total order over values that may mix types (ids can be numbers or strings):
/// numbers first by value, then everything else by its printed form.
pub fn compare_values(a: &Edn, b: &Edn) -> std::cmp::Ordering {
    fn number(e: &Edn) -> Option<f64> {
        match e {
            Edn::Int(i) => Some(*i as f64),
            Edn::Float(f) => Some(*f),
            _ => None,
        }
    }
    match (number(a), number(b)) {
        (Some(x), Some(y)) => match (a, b) {
            (Edn::Int(i), Edn::Int(j)) => i.cmp(j),
            _ => x.total_cmp(&y),
        },
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.to_compact().cmp(&b.to_compact()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_prefers_false_then_unknown() {
        use Validity::*;
        assert_eq!(True.merge(Unknown), Unknown);
        assert_eq!(Unknown.merge(False), False);
        assert_eq!(True.merge(True), True);
    }

    #[test]
    fn compose_appends_the_merged_verdict() {
        let ok = Edn::map([("valid?", Edn::Bool(true))]);
        let bad = Edn::map([("valid?", Edn::Bool(false))]);
        let r = compose(vec![("stats", ok.clone()), ("workload", bad)]);
        assert_eq!(r.get("valid?"), Some(&Edn::Bool(false)));
        assert_eq!(
            compose(vec![("stats", ok)]).get("valid?"),
            Some(&Edn::Bool(true))
        );
    }

    #[test]
    fn float32_prints_like_clojure_float() {
        assert_eq!(float32(64.0 / 31.0).to_compact(), "2.064516");
        assert_eq!(float32(1.0).to_compact(), "1.0");
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use crate::edn::Edn;
    use crate::history::{Op, OpType, Process};

    pub fn op_at(process: u64, op_type: OpType, f: &str, value: Edn, time_ns: u64) -> Op {
        Op::new(time_ns, op_type, Process::Worker(process), f, value)
    }

    pub fn invoke(process: u64, f: &str, value: Edn) -> Op {
        op_at(process, OpType::Invoke, f, value, 0)
    }

    pub fn complete(process: u64, op_type: OpType, f: &str, value: Edn) -> Op {
        op_at(process, op_type, f, value, 0)
    }
}
