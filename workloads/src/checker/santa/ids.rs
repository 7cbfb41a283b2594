//! Gift IDs across the system: every ID the history shows is a valid gift ID, and none
//! names two things (two gifts, or a gift and an audit event or transaction). Their order
//! per workshop in the audit is the secret-santa checker's audit property.

use std::collections::BTreeMap;

use super::facts::Facts;
use super::parse_task_id;
use crate::checker::gift_ids::decode;
use crate::checker::secret_santa::Property;
use crate::edn::Edn;
use crate::facts::RunFacts;

/// How far past the run's wall clock an ID's timestamp may lie (the clock nemesis's
/// offsets and a generator's lead stay far below).
const FUTURE_SLACK_MS: i64 = 3_600_000;

/// What an ID names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// A gift: exchange, giver, receiver.
    Gift(String, String, String),
    /// An audit event: exchange, transaction, event.
    Event(String, String, String),
    /// A transaction: exchange.
    Txn(String),
    /// A gift named by a task or a gift status, not read: exchange.
    Named,
}

impl Owner {
    fn to_edn(&self) -> Edn {
        match self {
            Owner::Gift(x, g, r) => Edn::Vector(vec![
                Edn::kw("gift"),
                Edn::Str(x.clone()),
                Edn::Str(g.clone()),
                Edn::Str(r.clone()),
            ]),
            Owner::Event(x, t, e) => Edn::Vector(vec![
                Edn::kw("event"),
                Edn::Str(x.clone()),
                Edn::Str(t.clone()),
                Edn::Str(e.clone()),
            ]),
            Owner::Txn(x) => Edn::Vector(vec![Edn::kw("txn"), Edn::Str(x.clone())]),
            Owner::Named => Edn::kw("gift"),
        }
    }

    fn is_gift(&self) -> bool {
        matches!(self, Owner::Gift(..) | Owner::Named)
    }
}

struct Judge {
    prop: Property,
    owners: BTreeMap<i64, Owner>,
    /// Unix ms no ID may be stamped after, when the run's wall clock is known.
    latest_ms: Option<i64>,
}

impl Judge {
    /// One sighting of `id` as `owner`, from `source`.
    fn see(&mut self, id: Option<&Edn>, owner: Owner, source: &str) {
        let Some(n) = id.and_then(Edn::as_i64).filter(|n| *n > 0) else {
            let detail = Edn::map([
                ("id", id.cloned().unwrap_or(Edn::Nil)),
                ("source", Edn::kw(source)),
            ]);
            self.prop.flag("invalid-ids", detail);
            return;
        };
        let future = decode(n)
            .zip(self.latest_ms)
            .is_some_and(|(p, latest)| p.unix_ms > latest);
        if future {
            let detail = Edn::map([("id", Edn::Int(n)), ("source", Edn::kw(source))]);
            self.prop.flag("invalid-ids", detail);
        }
        match self.owners.get(&n) {
            None => {
                self.owners.insert(n, owner);
            }
            Some(first) if *first == owner => {}
            // A task or status names a gift: it agrees with any gift.
            Some(first) if owner == Owner::Named && first.is_gift() => {}
            Some(Owner::Named) if owner.is_gift() => {
                self.owners.insert(n, owner);
            }
            Some(first) => {
                let detail = Edn::map([
                    ("id", Edn::Int(n)),
                    ("first", first.to_edn()),
                    ("then", owner.to_edn()),
                ]);
                self.prop.flag("duplicate-ids", detail);
            }
        }
    }
}

pub fn check(facts: &Facts, run: &RunFacts) -> Property {
    let history_end_ms = facts
        .model
        .reads
        .iter()
        .map(|r| r.span.time_ns.0 / 1_000_000)
        .max()
        .unwrap_or(0);
    let mut j = Judge {
        prop: Property::new("ids", &["invalid-ids", "duplicate-ids"]),
        owners: BTreeMap::new(),
        latest_ms: run
            .wall_origin_ms
            .map(|o| o as i64 + history_end_ms as i64 + FUTURE_SLACK_MS),
    };
    for r in facts.model.reads.iter().filter(|r| r.span.ok()) {
        let Some(receiver) = r.receiver() else {
            continue;
        };
        let owner = Owner::Gift(r.exchange.clone(), r.participant.clone(), receiver.into());
        j.see(r.gift_id.as_ref(), owner.clone(), "assignment");
        if let Some(p) = &r.plain {
            j.see(Some(&p.gift_id), owner, "assignment-box");
        }
    }
    for a in facts.model.audits.iter().filter(|a| a.span.ok()) {
        for ev in &a.events {
            let x = a.exchange.clone();
            let event = ev.event.as_str().unwrap_or("").to_string();
            j.see(Some(&ev.txn), Owner::Txn(x.clone()), "audit-txn");
            let owner = Owner::Event(x, ev.txn.to_compact(), event);
            j.see(Some(&ev.id), owner, "audit-event");
        }
    }
    for s in &facts.statuses {
        for id in [s.gift_id, s.box_gift_id] {
            j.see(id.map(Edn::Int).as_ref(), Owner::Named, "gift-status");
        }
    }
    for (id, t) in &facts.tasks {
        if let Some((g, _)) = parse_task_id(id) {
            j.see(Some(&Edn::Int(g)), Owner::Named, "task-id");
        }
        for d in &t.deliveries {
            j.see(
                d.payload_gift.map(Edn::Int).as_ref(),
                Owner::Named,
                "task-payload",
            );
        }
    }
    j.prop.note("ids-seen", Edn::from(j.owners.len()));
    j.prop
}
