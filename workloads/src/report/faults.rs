//! When each fault was active, from the nemesis ops of a history, and one colour per kind
//! of fault, so every picture shades the same periods the same way.

use plotters::style::RGBColor;

use crate::history::{History, Process};

/// The fault kinds the nemesis injects, in the order pictures stack them.
pub const KINDS: [&str; 5] = ["partition", "kill", "pause", "clock", "lossy"];

/// A period during which one kind of fault was active, in history time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    pub kind: String,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// Each `start-K` opens an interval of kind K (unless one is open) and the next `stop-K`
/// closes it; an interval still open ends with the history. Sorted by start.
pub fn intervals(history: &History) -> Vec<Interval> {
    let end_of_history = history.ops.iter().map(|op| op.time_ns).max().unwrap_or(0);
    let mut open: Vec<(String, u64)> = Vec::new();
    let mut done = Vec::new();
    for op in history
        .ops
        .iter()
        .filter(|op| op.process == Process::Nemesis)
    {
        if let Some(kind) = op.f.strip_prefix("start-") {
            if !open.iter().any(|(k, _)| k == kind) {
                open.push((kind.to_string(), op.time_ns));
            }
        } else if let Some(kind) = op.f.strip_prefix("stop-") {
            if let Some(i) = open.iter().position(|(k, _)| k == kind) {
                let (kind, start_ns) = open.remove(i);
                done.push(Interval {
                    kind,
                    start_ns,
                    end_ns: op.time_ns.max(start_ns),
                });
            }
        }
    }
    done.extend(open.into_iter().map(|(kind, start_ns)| Interval {
        kind,
        start_ns,
        end_ns: end_of_history.max(start_ns),
    }));
    done.sort_by_key(|i| (i.start_ns, i.end_ns));
    done
}

/// What the plots shade: the faults, then the phases after the main one.
pub fn periods(history: &History) -> Vec<Interval> {
    let mut out = intervals(history);
    out.extend(phases(history));
    out
}

/// The phases after the main one, as intervals the plots shade like faults: the wait for
/// the cluster to recover (healed, with no operations) and the final phase (final reads, or
/// the drain of a queue). Empty when the history has no final operations.
pub fn phases(history: &History) -> Vec<Interval> {
    let client = |op: &&crate::history::Op| matches!(op.process, Process::Worker(_));
    let Some(final_start) = history
        .ops
        .iter()
        .filter(client)
        .filter(|op| op.final_read)
        .map(|op| op.time_ns)
        .min()
    else {
        return Vec::new();
    };
    let main_end = history
        .ops
        .iter()
        .filter(client)
        .filter(|op| !op.final_read && op.time_ns <= final_start)
        .map(|op| op.time_ns)
        .max();
    let last = history.ops.iter().map(|op| op.time_ns).max().unwrap_or(0);
    let mut out = Vec::new();
    if let Some(end) = main_end.filter(|end| *end < final_start) {
        out.push(Interval {
            kind: RECOVERY.to_string(),
            start_ns: end,
            end_ns: final_start,
        });
    }
    out.push(Interval {
        kind: FINAL.to_string(),
        start_ns: final_start,
        end_ns: last.max(final_start),
    });
    out
}

/// The phase names [`phases`] gives, as the plots' legends show them.
pub const RECOVERY: &str = "recovery wait";
pub const FINAL: &str = "final phase";

/// The kinds present in `intervals`: known kinds in [`KINDS`] order, then others by name.
pub fn kinds(intervals: &[Interval]) -> Vec<&str> {
    let mut kinds: Vec<&str> = intervals.iter().map(|i| i.kind.as_str()).collect();
    kinds.sort_by_key(|k| (KINDS.iter().position(|x| x == k).unwrap_or(KINDS.len()), *k));
    kinds.dedup();
    kinds
}

/// Soft colours that stay behind the points: Jepsen's sand for partitions, and distinct
/// pastels for the others.
pub fn colour(kind: &str) -> RGBColor {
    match kind {
        "partition" => RGBColor(0xE9, 0xDC, 0xA0),
        "kill" => RGBColor(0xF2, 0xB5, 0xA9),
        "pause" => RGBColor(0xB7, 0xDD, 0xD9),
        "clock" => RGBColor(0xD5, 0xC3, 0xE6),
        "lossy" => RGBColor(0xC4, 0xE2, 0xB8),
        RECOVERY => RGBColor(0xE6, 0xE6, 0xE6),
        FINAL => RGBColor(0xC9, 0xD6, 0xE8),
        _ => RGBColor(0xD9, 0xD9, 0xD9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType;
    use crate::report::test_support::*;

    #[test]
    fn pairs_starts_with_stops_per_kind() {
        let mut h = History::default();
        nemesis(&mut h, "start-partition", 100);
        call(&mut h, 0, "read", 150, 160, OpType::Ok);
        nemesis(&mut h, "start-kill", 200);
        nemesis(&mut h, "stop-partition", 300);
        nemesis(&mut h, "stop-kill", 350);
        nemesis(&mut h, "start-clock", 400);
        call(&mut h, 0, "read", 450, 500, OpType::Ok);
        let ms = 1_000_000;
        let got = intervals(&h);
        let want = [
            ("partition", 100, 300),
            ("kill", 200, 350),
            ("clock", 400, 500),
        ];
        assert_eq!(got.len(), want.len());
        for (i, (kind, start, end)) in got.iter().zip(want) {
            assert_eq!(
                (i.kind.as_str(), i.start_ns, i.end_ns),
                (kind, start * ms, end * ms)
            );
        }
        assert_eq!(kinds(&got), ["partition", "kill", "clock"]);
    }

    #[test]
    fn phases_after_the_main_one_are_named() {
        let mut h = History::default();
        call(&mut h, 0, "enqueue", 100, 120, OpType::Ok);
        nemesis(&mut h, "stop-partition", 150);
        assert!(phases(&h).is_empty(), "no final operations");
        call(&mut h, 1, "poll", 900, 950, OpType::Ok);
        for op in h.ops.iter_mut().filter(|op| op.time_ns >= 900_000_000) {
            op.final_read = true;
        }
        let ms = 1_000_000;
        let got: Vec<_> = phases(&h)
            .into_iter()
            .map(|i| (i.kind, i.start_ns / ms, i.end_ns / ms))
            .collect();
        assert_eq!(
            got,
            [
                (RECOVERY.to_string(), 120, 900),
                (FINAL.to_string(), 900, 950)
            ]
        );
        assert_ne!(colour(RECOVERY), colour(FINAL));
    }

    #[test]
    fn stray_stops_and_empty_histories_give_nothing() {
        let mut h = History::default();
        assert!(intervals(&h).is_empty());
        nemesis(&mut h, "stop-partition", 10);
        assert!(intervals(&h).is_empty());
        assert_ne!(colour("partition"), colour("kill"));
        assert_eq!(colour("partition"), RGBColor(0xE9, 0xDC, 0xA0));
    }
}
