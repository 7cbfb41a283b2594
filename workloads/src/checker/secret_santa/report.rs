//! Reported, never judged: commit latencies, aborts, retries, matches per second.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Model, Span};
use crate::edn::Edn;
use crate::history::{History, OpType};

/// Latency quantiles in milliseconds of completed spans.
fn quantiles<'a>(spans: impl Iterator<Item = &'a Span>) -> Edn {
    let mut ms: Vec<f64> = spans
        .filter(|s| s.time_ns.1 != u64::MAX)
        .map(|s| s.time_ns.1.saturating_sub(s.time_ns.0) as f64 / 1e6)
        .collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if ms.is_empty() {
            return Edn::Nil;
        }
        let i = ((ms.len() as f64 - 1.0) * q).round() as usize;
        Edn::Float((ms[i] * 10.0).round() / 10.0)
    };
    Edn::map([
        ("count", Edn::from(ms.len())),
        ("p50", at(0.5)),
        ("p95", at(0.95)),
        ("p99", at(0.99)),
        ("max", at(1.0)),
    ])
}

pub fn stats(model: &Model, history: &History) -> Edn {
    let matches = model
        .matches
        .iter()
        .filter(|m| m.span.ok())
        .map(|m| &m.span);
    let late = model
        .registrations
        .iter()
        .filter(|r| r.span.ok() && r.epoch.unwrap_or(0) >= 1)
        .map(|r| &r.span);
    // A retry is an invocation that repeats one already made: the same registration, or a
    // match of an exchange after one of its matches went unanswered or failed for a reason
    // other than infeasibility (the concurrent matches of one round are not retries).
    let mut seen = BTreeSet::new();
    let mut retries = 0;
    for r in &model.registrations {
        retries += usize::from(!seen.insert((&r.exchange, &r.participant)));
    }
    for m in &model.matches {
        retries += usize::from(model.matches.iter().any(|o| {
            let refused = o.span.error.as_deref() == Some("precondition-failed");
            o.exchange == m.exchange
                && o.span.before(&m.span)
                && o.span.outcome != OpType::Ok
                && !refused
        }));
    }
    let matched: BTreeSet<&str> = model
        .matches
        .iter()
        .filter(|m| m.span.ok())
        .map(|m| m.exchange.as_str())
        .collect();
    let mut aborted: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for a in &model.audits {
        for e in a
            .events
            .iter()
            .filter(|e| e.event.as_str() == Some("aborted"))
        {
            aborted
                .entry(&a.exchange)
                .or_default()
                .insert(e.txn.to_compact());
        }
    }
    let seconds = history.ops.last().map_or(0.0, |op| op.time_ns as f64 / 1e9);
    let rate = if seconds > 0.0 {
        (matched.len() as f64 / seconds * 100.0).round() / 100.0
    } else {
        0.0
    };
    Edn::map([
        ("match-latency-ms", quantiles(matches)),
        ("late-addition-latency-ms", quantiles(late)),
        ("matched-exchanges", Edn::from(matched.len())),
        (
            "refused-matches",
            Edn::from(
                model
                    .matches
                    .iter()
                    .filter(|m| m.span.outcome == OpType::Fail)
                    .count(),
            ),
        ),
        (
            "aborts",
            Edn::from(aborted.values().map(BTreeSet::len).sum::<usize>()),
        ),
        ("retries", Edn::from(retries)),
        ("matches-per-second", Edn::Float(rate)),
        ("reads", Edn::from(model.reads.len())),
        (
            "ok-reads",
            Edn::from(model.reads.iter().filter(|r| r.span.ok()).count()),
        ),
    ])
}
