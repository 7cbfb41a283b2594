//! Jepsen's `timeline.html`: a column per process and a box per operation, so concurrency,
//! slow operations and the nemesis's steps can be read off one page.
//!
//! As in Jepsen, the vertical axis is the op's position in the history, not wall time, so
//! the real-time order linearizability depends on is exact and every box is legible. A box
//! spans from its invocation to its completion; an `:info` box runs to the end of the
//! history, since such an op may take effect at any later point. The page is plain HTML
//! with absolutely positioned boxes and no script, so it stays usable for 100k ops.

use std::collections::HashMap;
use std::fmt::Write;

use super::{escape, fmt_ms, shorten};
use crate::history::{History, Op, OpType, Process};

/// Pixels per history position.
const ROW: usize = 16;
/// Pixels between process columns.
const COLUMN: usize = 106;
/// Above this many ops, hover titles print ops on one line to keep the file small.
const PRETTY_LIMIT: usize = 20_000;

const STYLE: &str = "body { font-family: Helvetica, Arial, sans-serif; font-size: 11px; margin: 10px; }
h1 { font-size: 20px; }
.hdr { position: sticky; top: 0; height: 20px; background: #fff; z-index: 2; }
.hdr div { position: absolute; width: 104px; text-align: center; font-weight: bold; }
.ops { position: relative; }
.op { position: absolute; box-sizing: border-box; width: 104px; padding: 2px; border-radius: 2px; overflow: hidden; white-space: nowrap; color: #000; box-shadow: 0 1px 3px rgba(0,0,0,0.12), 0 1px 2px rgba(0,0,0,0.24); }
.op.invoke { background: #eeeeee; }
.op.ok { background: #6DB6FE; }
.op.info { background: #FFAA26; }
.op.fail { background: #FEB5DA; }
.op:target { box-shadow: 0 14px 28px rgba(0,0,0,0.25), 0 10px 10px rgba(0,0,0,0.22); z-index: 1; }
a { color: inherit; text-decoration: none; }";

/// One box: where it starts and ends in the history, and its ops.
struct Span<'a> {
    row: usize,
    end_row: Option<usize>,
    start: &'a Op,
    done: Option<&'a Op>,
}

/// The timeline page of `history`, headed by `title`.
pub fn timeline_html(history: &History, title: &str) -> String {
    let spans = spans(history);
    let columns = columns(history);
    let column_of: HashMap<Process, usize> =
        columns.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let rows = history.ops.len();
    let pretty = rows <= PRETTY_LIMIT;

    let mut html = String::with_capacity(2_000 + spans.len() * if pretty { 500 } else { 350 });
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t} timeline</title>\
         <style>\n{STYLE}\n</style></head><body>\n<h1>{t}</h1>\n<p>{}</p>\n<div class=\"hdr\">",
        summary(&spans),
        t = escape(title),
    );
    for (i, p) in columns.iter().enumerate() {
        let _ = write!(
            html,
            "<div style=\"left:{}px\">{}</div>",
            i * COLUMN,
            process_name(*p)
        );
    }
    let _ = writeln!(
        html,
        "</div>\n<div class=\"ops\" style=\"height:{}px;width:{}px\">",
        (rows + 1) * ROW,
        columns.len() * COLUMN
    );
    for span in &spans {
        let op = span.done.unwrap_or(span.start);
        let class = match span.done {
            Some(done) => done.op_type.name(),
            None => "invoke",
        };
        let rows_tall = match (span.done, span.end_row) {
            (Some(done), _) if done.op_type == OpType::Info && done.is_client() => {
                rows + 1 - span.row
            }
            (_, Some(end)) => end - span.row,
            _ => 1,
        };
        let _ = writeln!(
            html,
            "<a href=\"#i{id}\"><div class=\"op {class}\" id=\"i{id}\" \
             style=\"left:{}px;top:{}px;height:{}px\" title=\"{}\">{} {} {}<br>{}</div></a>",
            column_of.get(&op.process).copied().unwrap_or(0) * COLUMN,
            span.row * ROW,
            rows_tall.max(1) * ROW,
            escape(&hover(span, pretty)),
            process_name(op.process),
            escape(&op.f),
            escape(&shorten(&span.start.value.to_compact(), 100)),
            span.done
                .map(|d| escape(&shorten(&d.value.to_compact(), 100)))
                .unwrap_or_default(),
            id = op.index,
        );
    }
    html.push_str("</div>\n</body></html>\n");
    html
}

/// Client operations as the history pairs them ([`History::calls`]), and nemesis steps:
/// the nemesis records each step as two `:info` ops with the same `f`, which make one box.
fn spans(history: &History) -> Vec<Span<'_>> {
    let mut spans: Vec<Span> = history
        .calls()
        .into_iter()
        .filter(|c| !c.is_orphan())
        .map(|c| Span {
            row: c.invoke_pos,
            end_row: c.complete_pos,
            start: c.invoke,
            done: c.complete,
        })
        .collect();
    spans.extend(nemesis_spans(history));
    spans.sort_by_key(|s| s.row);
    spans
}

/// A nemesis op closes the open step of the same `f`, and otherwise opens one.
fn nemesis_spans(history: &History) -> Vec<Span<'_>> {
    let mut open: Option<usize> = None;
    let mut spans: Vec<Span> = Vec::new();
    for (row, op) in history.ops.iter().enumerate() {
        if op.process != Process::Nemesis {
            continue;
        }
        match open.take() {
            Some(i) if spans[i].start.f == op.f => {
                spans[i].end_row = Some(row);
                spans[i].done = Some(op);
            }
            _ => {
                open = Some(spans.len());
                spans.push(Span {
                    row,
                    end_row: None,
                    start: op,
                    done: None,
                });
            }
        }
    }
    spans
}

/// The nemesis first, then workers by number.
fn columns(history: &History) -> Vec<Process> {
    let mut ps: Vec<Process> = history.ops.iter().map(|op| op.process).collect();
    ps.sort_by_key(|p| match p {
        Process::Nemesis => (0, 0),
        Process::Worker(n) => (1, *n),
    });
    ps.dedup();
    ps
}

fn process_name(p: Process) -> String {
    match p {
        Process::Worker(n) => n.to_string(),
        Process::Nemesis => "nemesis".to_string(),
    }
}

fn summary(spans: &[Span]) -> String {
    let (mut ok, mut info, mut fail, mut open, mut nemesis) = (0, 0, 0, 0, 0);
    for s in spans {
        match (s.start.process, s.done.map(|d| d.op_type)) {
            (Process::Nemesis, _) => nemesis += 1,
            (_, Some(OpType::Ok)) => ok += 1,
            (_, Some(OpType::Fail)) => fail += 1,
            (_, Some(_)) => info += 1,
            (_, None) => open += 1,
        }
    }
    format!(
        "{} operations: {ok} ok, {info} info, {fail} fail, {open} unfinished; \
         {nemesis} nemesis steps.",
        ok + info + fail + open
    )
}

/// Duration, error, invocation time and the op in EDN (the completion if any).
fn hover(span: &Span, pretty: bool) -> String {
    let op = span.done.unwrap_or(span.start);
    let duration = match span.done {
        Some(done) => {
            let ms = done.time_ns.saturating_sub(span.start.time_ns) as f64 / 1e6;
            format!("{} ms", fmt_ms(ms))
        }
        None => "unfinished".to_string(),
    };
    let error = op
        .error
        .as_ref()
        .map(|e| e.to_compact())
        .unwrap_or_else(|| "nil".to_string());
    let edn = op.to_edn();
    let text = if pretty {
        edn.to_pretty()
    } else {
        edn.to_compact()
    };
    format!(
        "Dur: {duration}\nErr: {error}\nTime: {:.3} s\n\nOp:\n{text}",
        span.start.time_ns as f64 / 1e9
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::Edn;
    use crate::report::test_support::*;

    fn sample() -> History {
        let mut h = History::default();
        h.push(op(
            0,
            OpType::Invoke,
            Process::Worker(0),
            "write",
            Edn::from("<a & b>"),
        ));
        h.push(op(1, OpType::Invoke, Process::Worker(3), "read", Edn::Nil));
        nemesis(&mut h, "start-partition", 2);
        h.push(op(
            3_000_000,
            OpType::Ok,
            Process::Worker(0),
            "write",
            Edn::from("<a & b>"),
        ));
        let mut timeout = op(
            4_000_000,
            OpType::Info,
            Process::Worker(3),
            "read",
            Edn::Nil,
        );
        timeout.error = Some(Edn::kw("net-timeout"));
        h.push(timeout);
        call(&mut h, 5, "cas", 5, 6, OpType::Fail);
        h.push(op(
            7_000_000,
            OpType::Invoke,
            Process::Worker(0),
            "read",
            Edn::Nil,
        ));
        h
    }

    #[test]
    fn one_box_per_operation_coloured_by_outcome() {
        let h = sample();
        let html = timeline_html(&h, "echo <run>");
        assert_eq!(html.matches("<div class=\"op ").count(), 5);
        for class in ["ok", "info", "fail", "invoke"] {
            assert_eq!(
                html.matches(&format!("class=\"op {class}\"")).count(),
                if class == "info" { 2 } else { 1 }
            );
        }
        assert!(html.contains("<h1>echo &lt;run&gt;</h1>"));
        assert!(html.contains("0 write &quot;&lt;a &amp; b&gt;&quot;<br>"));
        assert!(html.contains("Err: :net-timeout"));
        assert!(html.contains("Dur: 3.0 ms"));
        assert!(html.contains("Dur: unfinished"));
        assert!(html.contains(":f :start-partition"));
        assert!(!html.contains("<script"));
        // Columns: nemesis, 0, 3, 5. The info read (process 3, history position 1) runs to
        // the end: 9 ops + 1 rows - 1.
        assert!(html.contains("style=\"left:212px;top:16px;height:144px\""));
        // The nemesis step (positions 2 and 3) is one box in the first column.
        assert!(html.contains("style=\"left:0px;top:32px;height:16px\""));
        assert!(html.contains("4 operations: 1 ok, 1 info, 1 fail, 1 unfinished; 1 nemesis"));
        let hdr = html.split("<div class=\"hdr\">").nth(1).unwrap();
        assert!(hdr
            .starts_with("<div style=\"left:0px\">nemesis</div><div style=\"left:106px\">0</div>"));
    }

    #[test]
    fn empty_and_large_histories() {
        let html = timeline_html(&History::default(), "t");
        assert!(html.contains("0 operations"));
        assert!(html.ends_with("</html>\n"));
        let mut h = History::default();
        for i in 0..(PRETTY_LIMIT as u64 / 2 + 10) {
            call(&mut h, i % 5, "read", i, i + 1, OpType::Ok);
        }
        let html = timeline_html(&h, "big");
        assert_eq!(
            html.matches("class=\"op ok\"").count(),
            PRETTY_LIMIT / 2 + 10
        );
    }

    #[test]
    fn hover_prints_the_op_pretty_or_on_one_line() {
        let long = Edn::from("x".repeat(80));
        let start = op(0, OpType::Invoke, Process::Worker(1), "write", long.clone());
        let done = op(2_500_000, OpType::Ok, Process::Worker(1), "write", long);
        let span = Span {
            row: 0,
            end_row: Some(1),
            start: &start,
            done: Some(&done),
        };
        let pretty = hover(&span, true);
        assert!(pretty.starts_with("Dur: 2.5 ms\nErr: nil\nTime: 0.000 s\n\nOp:\n{:index 0,\n"));
        assert_eq!(hover(&span, false).lines().count(), 6);
    }
}
