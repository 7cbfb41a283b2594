//! The `secret-santa` workload's checker: Secret Santa exchanges matched by two-phase
//! commit (issue 14 §6). It judges, each only where the history proves a violation (an
//! indeterminate op is given the benefit of the doubt, Jepsen's rule):
//!
//! - [`epochs`]: atomicity (after healing an exchange is readable for every participant of
//!   its newest committed epoch or for none), validity (each epoch's opened assignments
//!   form one permutation that keeps every constraint, of the participants `match_ok`
//!   listed), agreement (one receiver and gift ID per participant and epoch; no epoch going
//!   backwards once acknowledged), durability (every acknowledged epoch readable after
//!   healing) and splices (epoch e+1 is epoch e with one gift A→B replaced by A→L, L→B);
//! - [`oracle`]: feasibility, with the checker's own augmenting-path search;
//! - [`secrecy`]: boxes open with the giver's key and no other, their plaintext agrees with
//!   the reply, and no reply carries a field beyond the protocol's;
//! - [`audit`]: valid, unique, ascending event ids, one outcome per transaction, committed
//!   epochs contiguous from 1 and in agreement with what was read;
//!
//! and reports commit latencies, aborts, retries and matches per second ([`report`]).
//! "Before" is history order: A surely precedes B when A completed before B was invoked.

mod audit;
mod epochs;
mod model;
pub mod oracle;
mod report;
mod secrecy;

#[cfg(test)]
mod tests;

use crate::edn::Edn;
use crate::history::History;

pub use model::Model;

/// Examples listed per kind of problem.
const SHOWN: usize = 10;

/// Problems of one property: (kind, count, examples), kinds in a fixed order.
#[derive(Debug, Clone)]
pub struct Property {
    name: &'static str,
    kinds: Vec<(&'static str, usize, Vec<Edn>)>,
    /// Reported alongside, never judged.
    notes: Vec<(&'static str, Edn)>,
}

impl Property {
    pub(crate) fn new(name: &'static str, kinds: &[&'static str]) -> Self {
        Property {
            name,
            kinds: kinds.iter().map(|k| (*k, 0, Vec::new())).collect(),
            notes: Vec::new(),
        }
    }

    /// Records one problem of `kind` (declared in [`Property::new`]).
    pub(crate) fn flag(&mut self, kind: &'static str, example: Edn) {
        let entry = self.kinds.iter_mut().find(|(k, _, _)| *k == kind);
        let Some((_, count, examples)) = entry else {
            debug_assert!(false, "undeclared kind {kind}");
            return;
        };
        *count += 1;
        if examples.len() < SHOWN {
            examples.push(example);
        }
    }

    pub(crate) fn note(&mut self, key: &'static str, value: Edn) {
        self.notes.push((key, value));
    }

    pub fn count(&self, kind: &str) -> usize {
        self.kinds
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map_or(0, |(_, c, _)| *c)
    }

    pub fn valid(&self) -> bool {
        self.kinds.iter().all(|(_, c, _)| *c == 0)
    }

    pub(crate) fn to_edn(&self) -> Edn {
        let mut entries = vec![("valid?".to_string(), Edn::Bool(self.valid()))];
        for (key, value) in &self.notes {
            entries.push((key.to_string(), value.clone()));
        }
        for (kind, count, _) in &self.kinds {
            entries.push((kind.to_string(), Edn::from(*count)));
        }
        for (kind, _, examples) in &self.kinds {
            if !examples.is_empty() {
                entries.push((format!("{kind}-examples"), Edn::Vector(examples.clone())));
            }
        }
        Edn::map(entries)
    }
}

/// How the audit's event ids must be ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdOrder {
    /// Ascending as listed: one generator (the matcher's own).
    Global,
    /// Ascending per workshop: IDs from several generators (the giftid service), each
    /// time-ordered, interleaved.
    PerWorkshop,
}

/// Every property's verdict, for tests that look at one.
pub fn judge(model: &Model) -> Vec<Property> {
    judge_with(model, IdOrder::Global)
}

/// [`judge`] with the audit's ids ordered as `order` says.
pub fn judge_with(model: &Model, order: IdOrder) -> Vec<Property> {
    vec![
        epochs::atomicity(model),
        epochs::validity(model),
        epochs::agreement(model),
        epochs::durability(model),
        epochs::splices(model),
        oracle::feasibility(model),
        secrecy::check(model),
        audit::check(model, order),
    ]
}

/// The checker's result map (`:workload` in results.edn).
pub fn check(history: &History) -> Edn {
    check_with(history, IdOrder::Global)
}

/// [`check`] with the audit's ids ordered as `order` says.
pub fn check_with(history: &History, order: IdOrder) -> Edn {
    let model = Model::of(history);
    let properties = judge_with(&model, order);
    let valid = properties.iter().all(Property::valid);
    let mut entries = vec![
        ("valid?".to_string(), Edn::Bool(valid)),
        ("exchanges".to_string(), Edn::from(model.exchanges().len())),
    ];
    for p in &properties {
        entries.push((p.name.to_string(), p.to_edn()));
    }
    entries.push(("stats".to_string(), report::stats(&model, history)));
    Edn::map(entries)
}
