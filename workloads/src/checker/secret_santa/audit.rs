//! The audit log: event ids are valid, unique gift IDs, ascending as listed (per workshop
//! when IDs come from several generators, [`IdOrder`]), oldest first
//! (no committed epoch listed after a newer one, no transaction prepared after its
//! outcome); each transaction has at most one outcome; committed epochs are contiguous
//! from 1; and the audit agrees with what was read (an epoch read before the audit is
//! committed in it, and the example says what the audit shows of it instead: a
//! transaction of it aborted, one undecided, or none logged; no read after it is older
//! than its last committed epoch).

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Audit, Model, Span};
use super::{IdOrder, Property};
use crate::checker::gift_ids::decode;
use crate::edn::Edn;

fn example(problem: &str, a: &Audit, detail: Edn) -> Edn {
    Edn::map([
        ("problem", Edn::kw(problem)),
        ("exchange", Edn::Str(a.exchange.clone())),
        ("detail", detail),
        ("op", a.span.example()),
    ])
}

fn gift_id(e: &Edn) -> Option<i64> {
    e.as_i64().filter(|i| *i > 0)
}

/// The ordering key of an event id: all one sequence, or one per workshop.
fn sequence_of(id: i64, order: IdOrder) -> i64 {
    match order {
        IdOrder::Global => 0,
        IdOrder::PerWorkshop => decode(id).map_or(-1, |p| p.workshop),
    }
}

/// One audit on its own: ids, order, kinds, outcomes, epochs. Answers its committed epochs.
fn one(a: &Audit, order: IdOrder, prop: &mut Property) -> BTreeSet<i64> {
    let mut lasts: BTreeMap<i64, i64> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, &str> = BTreeMap::new();
    let mut committed = BTreeSet::new();
    for ev in &a.events {
        let (Some(id), Some(_)) = (gift_id(&ev.id), gift_id(&ev.txn)) else {
            prop.flag("bad-ids", example("not-a-gift-id", a, ev.id.clone()));
            continue;
        };
        let last = lasts.entry(sequence_of(id, order)).or_insert(0);
        if *last >= id {
            prop.flag("unordered", example("not-ascending", a, ev.id.clone()));
        }
        *last = id;
        let kind_ok = matches!(ev.kind.as_str(), Some("match" | "splice"));
        let event = ev.event.as_str().unwrap_or("");
        let epoch = ev.epoch.as_i64().filter(|e| *e >= 1);
        if !kind_ok || !matches!(event, "prepared" | "committed" | "aborted") || epoch.is_none() {
            prop.flag("bad-events", example("bad-event", a, ev.id.clone()));
            continue;
        }
        if event == "prepared" {
            if outcomes.contains_key(&ev.txn.to_compact()) {
                prop.flag(
                    "unordered",
                    example("prepared-after-outcome", a, ev.id.clone()),
                );
            }
            continue;
        }
        if let Some(first) = outcomes.insert(ev.txn.to_compact(), event) {
            let detail = Edn::Vector(vec![ev.txn.clone(), Edn::kw(first), Edn::kw(event)]);
            prop.flag("conflicting-outcomes", example("two-outcomes", a, detail));
        }
        if event == "committed" {
            if let Some(e) = epoch {
                // Oldest first: a committed epoch listed after a newer one.
                if committed.last().is_some_and(|newest| *newest > e) {
                    prop.flag("unordered", example("epochs-out-of-order", a, Edn::Int(e)));
                }
                if !committed.insert(e) {
                    prop.flag(
                        "epoch-gaps",
                        example("epoch-committed-twice", a, Edn::Int(e)),
                    );
                }
            }
        }
    }
    let contiguous = committed.iter().copied().eq(1..=committed.len() as i64);
    if !contiguous {
        let detail = Edn::Vector(committed.iter().map(|e| Edn::Int(*e)).collect());
        prop.flag("epoch-gaps", example("not-contiguous-from-1", a, detail));
    }
    committed
}

pub fn check(model: &Model, order: IdOrder) -> Property {
    let mut prop = Property::new(
        "audit",
        &[
            "bad-ids",
            "unordered",
            "shared-ids",
            "bad-events",
            "conflicting-outcomes",
            "epoch-gaps",
            "uncommitted-reads",
            "stale-after-audit",
        ],
    );
    let mut owner: BTreeMap<i64, &str> = BTreeMap::new();
    let acks = model.acks();
    let mut aborts: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for a in model.audits.iter().filter(|a| a.span.ok()) {
        let committed = one(a, order, &mut prop);
        for ev in &a.events {
            if ev.event.as_str() == Some("aborted") {
                aborts
                    .entry(&a.exchange)
                    .or_default()
                    .insert(ev.txn.to_compact());
            }
            let Some(id) = gift_id(&ev.id) else { continue };
            if let Some(x) = owner.insert(id, &a.exchange) {
                if x != a.exchange {
                    prop.flag(
                        "shared-ids",
                        example("id-in-two-exchanges", a, Edn::Int(id)),
                    );
                }
            }
        }
        judge_reads(a, &committed, &acks, &mut prop);
    }
    prop.note(
        "aborted-transactions",
        Edn::from(aborts.values().map(BTreeSet::len).sum::<usize>()),
    );
    prop
}

/// The audit against what was read and acknowledged around it.
fn judge_reads(
    a: &Audit,
    committed: &BTreeSet<i64>,
    acks: &[(&Span, &str, i64)],
    prop: &mut Property,
) {
    let newest = committed.last().copied().unwrap_or(0);
    for (span, _, e) in acks.iter().filter(|(_, x, _)| *x == a.exchange) {
        if span.before(&a.span) && !committed.contains(e) {
            let detail = Edn::map([
                ("epoch", Edn::Int(*e)),
                ("audit-shows", Edn::kw(fate(a, *e))),
                ("newest-committed", Edn::Int(newest)),
                ("read", span.example()),
            ]);
            prop.flag(
                "uncommitted-reads",
                example("read-epoch-not-committed", a, detail),
            );
        }
        if a.span.before(span) && *e < newest {
            let detail = Edn::map([
                ("read", Edn::Int(*e)),
                ("committed", Edn::Int(newest)),
                ("later", span.example()),
            ]);
            prop.flag("stale-after-audit", example("older-than-audit", a, detail));
        }
    }
}

/// What an audit shows of epoch `e`, which no transaction of it committed: a transaction of
/// it aborted, one prepared and undecided, or nothing at all.
fn fate(a: &Audit, e: i64) -> &'static str {
    let events = a.events.iter().filter(|ev| ev.epoch.as_i64() == Some(e));
    let mut fate = "never-logged";
    for ev in events {
        match ev.event.as_str() {
            Some("aborted") => fate = "aborted",
            Some("prepared") if fate == "never-logged" => fate = "undecided",
            _ => {}
        }
    }
    fate
}
