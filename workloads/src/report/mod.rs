//! Pictures of a run, written next to `results.edn` as Maelstrom writes them: the latency
//! and rate plots, the Lamport diagram of the network and the per-process timeline. They
//! let a reader see what went wrong (and when, relative to the faults) without reading the
//! history by hand. Every picture is a pure function from the run's records to the text of
//! one file; only [`write_all`] touches the disk.

use std::path::Path;

use crate::history::History;
use crate::journal::Journal;

pub mod faults;
pub mod lamport;
pub mod plots;
pub mod timeline;

/// Writes every picture of a run into `dir` and returns the names of the files written.
///
/// `origin_ns` is the history's start on the engine clock the journal uses. `clocks` holds
/// each node's clock offset in milliseconds over history time (ns); the clock plot is only
/// written when there is one. `services` (a cluster of several binaries; empty for one
/// binary) groups the message diagram's node lines by service.
pub fn write_all(
    dir: &Path,
    history: &History,
    journal: &Journal,
    origin_ns: u64,
    clocks: &[(String, Vec<(u64, f64)>)],
    services: &[(String, Vec<String>)],
) -> std::io::Result<Vec<String>> {
    let intervals = faults::periods(history);
    let mut files = vec![
        ("latency-raw.svg", plots::latency_svg(history, &intervals)),
        ("rate.svg", plots::rate_svg(history, &intervals)),
        (
            "messages.svg",
            lamport::messages_svg(journal, origin_ns, services),
        ),
        (
            "timeline.html",
            timeline::timeline_html(history, &run_title(dir)),
        ),
    ];
    if !clocks.is_empty() {
        files.push(("clock.svg", plots::clock_svg(clocks, &intervals)));
    }
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::with_capacity(files.len());
    for (name, text) in files {
        std::fs::write(dir.join(name), text)?;
        written.push(name.to_string());
    }
    Ok(written)
}

/// `<workload> <run>` from a store path `store/<workload>/<run>/`, as Jepsen titles pages.
fn run_title(dir: &Path) -> String {
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
    };
    match (name(dir.parent()), name(Some(dir))) {
        (Some(workload), Some(run)) => format!("{workload} {run}"),
        (None, Some(run)) => run,
        _ => "run".to_string(),
    }
}

/// Text made safe for XML and HTML, in element content and in quoted attributes.
/// Control characters XML 1.0 forbids become U+FFFD.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A number of milliseconds with as many decimals as its size warrants.
pub(crate) fn fmt_ms(ms: f64) -> String {
    let digits = if ms.abs() >= 100.0 {
        0
    } else if ms.abs() >= 1.0 {
        1
    } else {
        3
    };
    format!("{ms:.digits$}")
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::edn::Edn;
    use crate::history::{History, Op, OpType, Process};

    pub fn op(time_ns: u64, op_type: OpType, process: Process, f: &str, value: Edn) -> Op {
        Op::new(time_ns, op_type, process, f, value)
    }

    /// A client op invoked at `start_ms` and completed as `outcome` at `end_ms`.
    pub fn call(h: &mut History, p: u64, f: &str, start_ms: u64, end_ms: u64, outcome: OpType) {
        let ms = 1_000_000;
        h.push(op(
            start_ms * ms,
            OpType::Invoke,
            Process::Worker(p),
            f,
            Edn::Nil,
        ));
        h.push(op(end_ms * ms, outcome, Process::Worker(p), f, Edn::Int(1)));
    }

    /// One nemesis step, recorded twice as Jepsen records it.
    pub fn nemesis(h: &mut History, f: &str, at_ms: u64) {
        for _ in 0..2 {
            h.push(op(
                at_ms * 1_000_000,
                OpType::Info,
                Process::Nemesis,
                f,
                Edn::Nil,
            ));
        }
    }

    /// Every tag closed in order (a small well-formedness check), one root `<svg>`
    /// ending the text, and no raw `&` that is not an entity.
    pub fn assert_balanced_svg(svg: &str) {
        let mut open: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(at) = rest.find('<') {
            let after = &rest[at + 1..];
            let end = after.find('>').expect("unterminated tag");
            let tag = &after[..end];
            rest = &after[end + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if let Some(closing) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(closing.trim()), "mismatched </{closing}>");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap_or_default();
                open.push(name);
            }
        }
        assert!(open.is_empty(), "unclosed tags {open:?}");
        assert!(svg.trim_end().ends_with("</svg>"), "svg not closed");
        for (i, _) in svg.match_indices('&') {
            let entity = &svg[i..svg.len().min(i + 8)];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "raw & at {i}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::history::OpType;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("<a href=\"x\">&'\u{1}\n"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;\u{FFFD}\n"
        );
        assert_eq!(shorten("héllo", 2), "hé…");
        assert_eq!(shorten("hé", 2), "hé");
        assert_eq!(fmt_ms(0.25), "0.250");
        assert_eq!(fmt_ms(12.34), "12.3");
    }

    #[test]
    #[should_panic(expected = "mismatched")]
    fn the_svg_check_catches_misnested_tags() {
        assert_balanced_svg("<svg><g><text></g></text></svg>");
    }

    #[test]
    fn writes_every_picture() {
        let dir = std::env::temp_dir().join(format!("report-write-all-{}", std::process::id()));
        let mut h = History::default();
        call(&mut h, 0, "echo", 0, 5, OpType::Ok);
        let journal = Journal::default();
        let names = write_all(&dir, &h, &journal, 0, &[], &[]).unwrap();
        assert_eq!(
            names,
            [
                "latency-raw.svg",
                "rate.svg",
                "messages.svg",
                "timeline.html"
            ]
        );
        let clocks = vec![("n0".to_string(), vec![(0, 1.5)])];
        let names = write_all(&dir, &h, &journal, 0, &clocks, &[]).unwrap();
        assert_eq!(names.last().map(String::as_str), Some("clock.svg"));
        for name in &names {
            assert!(dir.join(name).metadata().unwrap().len() > 100);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
