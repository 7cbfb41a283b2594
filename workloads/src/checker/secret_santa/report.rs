//! Reported, never judged: commit latencies, committed transactions, aborts, retries,
//! matches per second.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Model, Span};
use crate::edn::Edn;
use crate::history::{History, OpType};

/// Quantiles of latencies in milliseconds, rounded to 0.1 ms.
fn quantiles(mut ms: Vec<f64>) -> Edn {
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

fn ms(from_ns: u64, to_ns: u64) -> f64 {
    to_ns.saturating_sub(from_ns) as f64 / 1e6
}

/// Latencies of completed spans.
fn span_latencies<'a>(spans: impl Iterator<Item = &'a Span>) -> Vec<f64> {
    spans
        .filter(|s| s.time_ns.1 != u64::MAX)
        .map(|s| ms(s.time_ns.0, s.time_ns.1))
        .collect()
}

/// One latency per committed exchange: from the first `match` invocation of the exchange
/// (by any client) to the first `match_ok` of it. The concurrent matches of one round and
/// later repeats, answered from the committed state, are not commits of their own.
fn commit_latencies(model: &Model) -> Vec<f64> {
    let mut first: BTreeMap<&str, (u64, Option<u64>)> = BTreeMap::new();
    for m in &model.matches {
        let entry = first.entry(m.exchange.as_str()).or_insert((u64::MAX, None));
        entry.0 = entry.0.min(m.span.time_ns.0);
        if m.span.ok() {
            let done = m.span.time_ns.1;
            entry.1 = Some(entry.1.map_or(done, |d| d.min(done)));
        }
    }
    first
        .values()
        .filter_map(|&(invoked, ok)| Some(ms(invoked, ok?)))
        .collect()
}

/// The exchanges some `match` of which came back ok.
fn matched_exchanges(model: &Model) -> BTreeSet<&str> {
    model
        .matches
        .iter()
        .filter(|m| m.span.ok())
        .map(|m| m.exchange.as_str())
        .collect()
}

/// Committed transactions of each kind, `match` and `splice`: the distinct transactions
/// any audit of the exchange lists as committed; an exchange whose `match_ok` came back
/// but that no audit showed counts one committed match.
fn committed(model: &Model) -> (usize, usize) {
    let mut txns: BTreeMap<&str, BTreeSet<(String, String)>> = BTreeMap::new();
    for a in &model.audits {
        for e in &a.events {
            if e.event.as_str() != Some("committed") {
                continue;
            }
            let kind = e.kind.as_str().unwrap_or("").to_string();
            txns.entry(&a.exchange)
                .or_default()
                .insert((kind, e.txn.to_compact()));
        }
    }
    let of_kind = |set: &BTreeSet<(String, String)>, kind: &str| {
        set.iter().filter(|(k, _)| k == kind).count()
    };
    let matched = matched_exchanges(model);
    let empty = BTreeSet::new();
    let exchanges: BTreeSet<&str> = matched
        .iter()
        .copied()
        .chain(txns.keys().copied())
        .collect();
    let mut totals = (0, 0);
    for x in exchanges {
        let set = txns.get(x).unwrap_or(&empty);
        let matches = of_kind(set, "match").max(usize::from(matched.contains(x)));
        totals.0 += matches;
        totals.1 += of_kind(set, "splice");
    }
    totals
}

/// A retry is an invocation that repeats one already made: the same registration, or a
/// match of an exchange after one of its matches went unanswered or failed for a reason
/// other than infeasibility (the concurrent matches of one round are not retries).
fn retries(model: &Model) -> usize {
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
    retries
}

/// Distinct aborted transactions in the audits.
fn aborts(model: &Model) -> usize {
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
    aborted.values().map(BTreeSet::len).sum()
}

pub fn stats(model: &Model, history: &History) -> Edn {
    let answered = model
        .matches
        .iter()
        .filter(|m| m.span.ok())
        .map(|m| &m.span);
    let late = model
        .registrations
        .iter()
        .filter(|r| r.span.ok() && r.epoch.unwrap_or(0) >= 1)
        .map(|r| &r.span);
    let matched = matched_exchanges(model);
    let seconds = history.ops.last().map_or(0.0, |op| op.time_ns as f64 / 1e9);
    let rate = if seconds > 0.0 {
        (matched.len() as f64 / seconds * 100.0).round() / 100.0
    } else {
        0.0
    };
    let (committed_matches, committed_splices) = committed(model);
    let refused = model
        .matches
        .iter()
        .filter(|m| m.span.outcome == OpType::Fail)
        .count();
    Edn::map([
        ("commit-latency-ms", quantiles(commit_latencies(model))),
        ("all-match-latency-ms", quantiles(span_latencies(answered))),
        ("late-addition-latency-ms", quantiles(span_latencies(late))),
        ("matched-exchanges", Edn::from(matched.len())),
        ("committed-matches", Edn::from(committed_matches)),
        ("committed-splices", Edn::from(committed_splices)),
        ("refused-matches", Edn::from(refused)),
        ("aborts", Edn::from(aborts(model))),
        ("retries", Edn::from(retries(model))),
        ("matches-per-second", Edn::Float(rate)),
        ("reads", Edn::from(model.reads.len())),
        (
            "ok-reads",
            Edn::from(model.reads.iter().filter(|r| r.span.ok()).count()),
        ),
    ])
}
