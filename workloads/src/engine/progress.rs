//! The progress line, logged every [`EVERY`] while operations run, so that a long run is
//! not silent until its verdict:
//! `[12.0 s] 1,234 ops (1,200 ok, 4 fail, 30 info) · faults: partition {n0 n1} | {n2}`.
//! Time counts from the start of the main phase, as the history's times do.

use std::collections::BTreeSet;

use crate::history::{Op, OpType, Process};
use crate::nemesis::partition::Grudge;
use crate::net::Nanos;

/// How often the line is logged.
pub const EVERY: Nanos = 5_000_000_000;

/// Client operations so far: invoked, and how the completed ones ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

/// When the next line is due, and the history read so far.
#[derive(Debug)]
pub struct Progress {
    next_at: Nanos,
    seen: usize,
    counts: Counts,
}

impl Progress {
    /// Lines start [`EVERY`] after `origin`, the start of the main phase.
    pub fn new(origin: Nanos) -> Self {
        Progress {
            next_at: origin + EVERY,
            seen: 0,
            counts: Counts::default(),
        }
    }

    pub fn next_at(&self) -> Nanos {
        self.next_at
    }

    /// The line due at `now`, if one is: counts the client operations added to `ops` since
    /// the last line. `elapsed` is the time since the main phase began.
    pub fn poll(
        &mut self,
        now: Nanos,
        elapsed: Nanos,
        ops: &[Op],
        faults: &[String],
    ) -> Option<String> {
        if now < self.next_at {
            return None;
        }
        while now >= self.next_at {
            self.next_at += EVERY;
        }
        for op in ops.get(self.seen..).unwrap_or_default() {
            self.counts.add(op);
        }
        self.seen = ops.len();
        Some(line(elapsed, self.counts, faults))
    }
}

impl Counts {
    fn add(&mut self, op: &Op) {
        if op.process == Process::Nemesis {
            return;
        }
        match op.op_type {
            OpType::Invoke => self.invoked += 1,
            OpType::Ok => self.ok += 1,
            OpType::Fail => self.fail += 1,
            OpType::Info => self.info += 1,
        }
    }
}

/// `[12.0 s] 1,234 ops (1,200 ok, 4 fail, 30 info) · faults: none`.
pub fn line(elapsed: Nanos, c: Counts, faults: &[String]) -> String {
    let faults = if faults.is_empty() {
        "none".to_string()
    } else {
        faults.join(", ")
    };
    format!(
        "[{:.1} s] {} ops ({} ok, {} fail, {} info) · faults: {faults}",
        elapsed as f64 / 1e9,
        thousands(c.invoked),
        thousands(c.ok),
        thousands(c.fail),
        thousands(c.info),
    )
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A partition in words: its components, `{n0 n1} | {n2}`, when every node hears exactly
/// the nodes of its own component; otherwise (a ring, a bridge) the shape's name.
pub fn partition_words(names: &[String], grudge: &Grudge, shape: &str) -> String {
    let n = names.len() as u32;
    let hears = |i: u32| -> BTreeSet<u32> {
        let blocked = grudge.iter().find(|(d, _)| *d == i).map(|(_, s)| s.clone());
        (0..n)
            .filter(|j| !blocked.as_ref().is_some_and(|b| b.contains(j)))
            .collect()
    };
    let mut groups: Vec<BTreeSet<u32>> = Vec::new();
    for i in 0..n {
        let group = hears(i);
        let clean = group.contains(&i) && group.iter().all(|&j| hears(j) == group);
        if !clean {
            return shape.to_string();
        }
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
        .iter()
        .map(|g| {
            let members: Vec<&str> = g.iter().map(|&i| names[i as usize].as_str()).collect();
            format!("{{{}}}", members.join(" "))
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::Edn;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    fn op(process: Process, op_type: OpType) -> Op {
        Op::new(0, op_type, process, "echo", Edn::Nil)
    }

    #[test]
    fn the_line_reads_time_ops_and_faults() {
        let c = Counts {
            invoked: 1234,
            ok: 1200,
            fail: 4,
            info: 30,
        };
        let faults = ["partition {n0 n1} | {n2}".to_string(), "paused n3".into()];
        assert_eq!(
            line(12_049_000_000, c, &faults),
            "[12.0 s] 1,234 ops (1,200 ok, 4 fail, 30 info) · faults: partition {n0 n1} | {n2}, paused n3"
        );
        assert!(line(0, Counts::default(), &[]).ends_with("· faults: none"));
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn lines_come_every_few_seconds_and_count_only_client_operations() {
        let mut p = Progress::new(SEC_2);
        let mut ops = vec![
            op(Process::Worker(0), OpType::Invoke),
            op(Process::Nemesis, OpType::Info),
            op(Process::Worker(0), OpType::Ok),
        ];
        assert_eq!(p.poll(SEC_2 + EVERY - 1, 0, &ops, &[]), None);
        let first = p.poll(SEC_2 + EVERY, EVERY, &ops, &[]).unwrap();
        assert!(first.contains("1 ops (1 ok, 0 fail, 0 info)"), "{first}");
        assert_eq!(p.poll(SEC_2 + EVERY + 1, EVERY, &ops, &[]), None);
        ops.push(op(Process::Worker(1), OpType::Invoke));
        ops.push(op(Process::Worker(1), OpType::Info));
        // A late poll catches up instead of printing every missed line.
        let second = p.poll(SEC_2 + 3 * EVERY + 5, 3 * EVERY, &ops, &[]).unwrap();
        assert!(
            second.starts_with("[15.0 s] 2 ops (1 ok, 0 fail, 1 info)"),
            "{second}"
        );
        assert_eq!(p.next_at(), SEC_2 + 4 * EVERY);
    }

    const SEC_2: Nanos = 2_000_000_000;

    #[test]
    fn clean_partitions_show_their_components_and_others_their_shape() {
        let both =
            |a: u32, b: u32| -> Grudge { vec![(a, BTreeSet::from([b])), (b, BTreeSet::from([a]))] };
        let halves: Grudge = vec![
            (0, BTreeSet::from([2])),
            (1, BTreeSet::from([2])),
            (2, BTreeSet::from([0, 1])),
        ];
        assert_eq!(
            partition_words(&names(3), &halves, "majority"),
            "{n0 n1} | {n2}"
        );
        // n0 and n1 cannot talk, but n2 hears both: not a split into components.
        assert_eq!(partition_words(&names(3), &both(0, 1), "bridge"), "bridge");
        assert_eq!(
            partition_words(&names(2), &both(0, 1), "one"),
            "{n0} | {n1}"
        );
        assert_eq!(partition_words(&names(2), &Vec::new(), "one"), "{n0 n1}");
    }
}
