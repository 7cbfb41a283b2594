//! The two generated pages: the index of every run, and one run's page.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use super::files::{self, Refusal};
use super::html::{encode_segment, escape, files_href, not_found, respond, run_href};
use super::runs::{self, natural_cmp, path, verdict_word, Figures, RunDir, RunJson, Summary};
use super::{traffic, why};
use crate::edn::Edn;
use crate::store::{Expect, Validity};

/// The plots shown inline on a run's page, when the run has them.
const PLOTS: [(&str, &str); 3] = [
    ("latency-raw.svg", "Latency"),
    ("rate.svg", "Throughput"),
    ("clock.svg", "Clock offsets"),
];

/// The run's own files linked from its page, when present.
const RUN_FILES: [(&str, &str); 9] = [
    ("history.txt", "history (text)"),
    ("history.edn", "history (EDN)"),
    ("history.jsonl", "history (JSON lines)"),
    ("results.edn", "results (EDN)"),
    ("results.json", "results (JSON)"),
    ("run.json", "run.json"),
    ("jepsen.log", "jepsen.log"),
    ("timeline.html", "timeline"),
    ("messages.svg", "messages diagram"),
];

/// `results.edn` longer than this is shown cut, with a link to the whole file.
const RESULTS_SHOWN: usize = 1 << 20;

/// The index: every run, newest first, or only those of one workload.
pub fn index(root: &Path, workload: Option<&str>) -> Response {
    let runs = match runs::list(root) {
        Ok(runs) => runs,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return respond(
                StatusCode::OK,
                "Runs",
                &format!(
                    "<h1>Runs</h1>\n<p>There is no store at <code>{}</code> yet: \
                     runs appear here once <code>workloads test</code> has made one.</p>",
                    escape(&root.display().to_string())
                ),
            )
        }
        Err(e) => {
            return super::html::server_error(&format!(
                "cannot read the store {}: {e}",
                root.display()
            ))
        }
    };

    let mut per_workload: BTreeMap<&str, usize> = BTreeMap::new();
    for run in &runs {
        *per_workload.entry(run.workload.as_str()).or_default() += 1;
    }
    let mut body = String::from("<h1>Runs</h1>\n");
    let _ = writeln!(
        body,
        "<p class=\"muted\">Store <code>{}</code> · <a href=\"/files/\">browse its files</a></p>",
        escape(&root.display().to_string())
    );
    if runs.is_empty() {
        body.push_str(
            "<p>No runs yet: runs appear here once <code>workloads test</code> has made one.</p>",
        );
        return respond(StatusCode::OK, "Runs", &body);
    }
    if per_workload.len() > 1 || workload.is_some() {
        workload_nav(&mut body, &per_workload, workload);
    }
    let chosen: Vec<RunDir> = runs
        .iter()
        .filter(|r| workload.map_or(true, |w| r.workload == w))
        .cloned()
        .collect();
    let summaries = runs::summarize(chosen);
    let count = |v: Validity| summaries.iter().filter(|s| s.verdict == v).count();
    let expected_invalid = summaries
        .iter()
        .filter(|s| s.verdict == Validity::Known(false) && s.expect() == Some(Expect::Invalid))
        .count();
    let _ = writeln!(
        body,
        "<p>{} run{}: <span class=\"valid\">{} valid</span>, \
         <span class=\"invalid\">{} invalid</span> ({expected_invalid} of them expected: \
         nodes broken on purpose), <span class=\"unknown\">{} unknown</span></p>",
        summaries.len(),
        if summaries.len() == 1 { "" } else { "s" },
        count(Validity::Known(true)),
        count(Validity::Known(false)),
        count(Validity::Unknown)
    );
    if summaries.is_empty() {
        body.push_str("<p>No runs of this workload.</p>");
        return respond(StatusCode::OK, "Runs", &body);
    }
    runs_table(&mut body, &summaries);
    body.push_str("</tbody>\n</table>\n");
    respond(StatusCode::OK, "Runs", &body)
}

/// Links to each workload's runs, with their counts; the chosen one in bold.
fn workload_nav(body: &mut String, per_workload: &BTreeMap<&str, usize>, workload: Option<&str>) {
    body.push_str("<nav>Workload: ");
    let all = if workload.is_none() {
        "<strong>all</strong>".to_string()
    } else {
        "<a href=\"/\">all</a>".to_string()
    };
    body.push_str(&all);
    for (name, count) in per_workload {
        let label = format!("{} ({count})", escape(name));
        if workload == Some(name) {
            let _ = write!(body, " <strong>{label}</strong>");
        } else {
            let _ = write!(
                body,
                " <a href=\"/?workload={}\">{label}</a>",
                escape(&encode_segment(name))
            );
        }
    }
    body.push_str("</nav>\n");
}

/// One row per run: when, what, the verdict and why, and its figures.
fn runs_table(body: &mut String, summaries: &[runs::Summary]) {
    body.push_str(
        "<table class=\"runs\">\n<thead><tr><th>time</th><th>workload</th><th>scenario</th>\
     <th>verdict</th><th class=\"num\">ops</th><th class=\"num\">ok</th>\
     <th class=\"num\">info</th><th class=\"num\">fail</th>\
     <th class=\"num\">server msgs/op</th><th class=\"num\">availability</th></tr></thead>\n\
     <tbody>\n",
    );
    for s in summaries {
        let href = escape(&run_href(&s.run.workload, &s.run.stamp));
        let verdict = verdict_word(s.verdict);
        let note = match s.results {
            runs::ResultsState::Read => "",
            runs::ResultsState::Missing => " <span class=\"muted\">(no results)</span>",
            runs::ResultsState::Unreadable => " <span class=\"muted\">(unreadable results)</span>",
        };
        let note = format!("{note}{}{}", expectation_badge(s), why_line(s));
        let _ = writeln!(
            body,
            "<tr><td><a href=\"{href}\" title=\"{}\">{}</a></td><td>{}</td><td>{}</td>\
         <td><a class=\"{verdict}\" href=\"{href}\">{verdict}</a>{note}</td>{}</tr>",
            escape(&s.run.stamp),
            escape(&s.run.when()),
            escape(s.workload()),
            escape(&s.scenario()),
            figure_cells(&s.figures)
        );
    }
}

/// `expected` after the verdict of a run that reached the verdict it was meant to reach
/// invalid (a node broken on purpose, caught), and a warning when it missed it.
fn expectation_badge(s: &Summary) -> String {
    match s.expect() {
        Some(expect) if expect.met_by(s.verdict) && expect == Expect::Invalid => {
            " <span class=\"badge expected\" title=\"a node broken on purpose, caught by the \
             checkers as intended\">expected</span>"
                .to_string()
        }
        Some(expect) if !expect.met_by(s.verdict) => format!(
            " <span class=\"badge unexpected\">expected {}</span>",
            expect.word()
        ),
        _ => String::new(),
    }
}

/// The first failing checker of an invalid run, in one short line for the index.
fn why_line(s: &Summary) -> String {
    match s.failures.first() {
        Some(f) if s.verdict == Validity::Known(false) => format!(
            "<div class=\"why\">{}</div>",
            escape(&crate::report::shorten(&why::line(f), 120))
        ),
        _ => String::new(),
    }
}

/// Why the run is invalid: each failing checker, its count and first example.
fn why_section(s: &Summary) -> String {
    if s.verdict != Validity::Known(false) {
        return String::new();
    }
    let mut out = String::from("<section class=\"why\"><h2>Why invalid</h2>\n");
    if s.expect() == Some(Expect::Invalid) {
        out.push_str(
            "<p>Expected: the node is broken on purpose (<code>--expect invalid</code>), and \
             the checkers caught it.</p>\n",
        );
    }
    if s.failures.is_empty() {
        out.push_str("<p class=\"muted\">No failing checker is named in the results.</p>\n");
    }
    out.push_str("<ul>\n");
    for f in &s.failures {
        let _ = write!(out, "<li><strong>{}</strong>", escape(&f.checker));
        if let Some((name, n)) = &f.count {
            let _ = write!(out, ": {} {n}", escape(name));
        }
        if let Some(example) = &f.example {
            let lead = if f.count.is_some() { "; first" } else { ":" };
            let _ = write!(out, "{lead} <code>{}</code>", escape(example));
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ul></section>\n");
    out
}

/// The figure cells of a row: ops, ok, info, fail, server messages per op, availability.
fn figure_cells(f: &Figures) -> String {
    let int = |v: Option<i64>| v.map(|v| v.to_string());
    [
        int(f.ops),
        int(f.ok),
        int(f.info),
        int(f.fail),
        f.msgs_per_op.map(|v| format!("{v:.2}")),
        f.ok_fraction.map(|v| format!("{:.1}%", v * 100.0)),
    ]
    .into_iter()
    .map(|cell| {
        format!(
            "<td class=\"num\">{}</td>",
            escape(cell.as_deref().unwrap_or("–"))
        )
    })
    .collect()
}

/// Whether a name from a URL can only mean one folder directly inside its parent.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// One run's page; not found for anything that is not a run folder inside the store.
pub fn run(root: &Path, workload: &str, stamp: &str) -> Response {
    let missing = || not_found(&format!("There is no run {workload}/{stamp} in the store."));
    if !plain_name(workload) || !plain_name(stamp) {
        return missing();
    }
    let dir = match files::resolve(root, &format!("{workload}/{stamp}")) {
        Ok(r) if r.path.is_dir() => r.path,
        Ok(_) | Err(Refusal::NotFound) | Err(Refusal::BadRequest(_)) => return missing(),
    };
    // A link such as `<workload>/latest` leads to the run's own address.
    if let Some((real_workload, real_stamp)) = run_folder(root, &dir) {
        if (real_workload.as_str(), real_stamp.as_str()) != (workload, stamp) {
            return redirect(&run_href(&real_workload, &real_stamp));
        }
    }
    let run = RunDir::new(workload, stamp, dir.clone());
    let info = RunJson::read(&dir);
    let results_text = fs::read_to_string(dir.join("results.edn")).ok();
    let results = results_text.as_deref().and_then(|t| Edn::parse(t).ok());
    let verdict = info
        .as_ref()
        .and_then(|i| i.valid)
        .or_else(|| results.as_ref().map(Validity::of))
        .unwrap_or(Validity::Unknown);
    let summary = Summary {
        run: run.clone(),
        info: info.clone(),
        verdict,
        figures: results.as_ref().map(Figures::of).unwrap_or_default(),
        failures: results.as_ref().map(why::failures).unwrap_or_default(),
        results: match (&results, &results_text) {
            (Some(_), _) => runs::ResultsState::Read,
            (None, Some(_)) => runs::ResultsState::Unreadable,
            (None, None) => runs::ResultsState::Missing,
        },
    };
    let page = Page {
        workload,
        stamp,
        dir: &dir,
    };
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<nav><a href=\"/\">All runs</a><a href=\"/?workload={}\">{} runs</a>\
         <a href=\"{}\">All files of this run</a></nav>",
        escape(&encode_segment(workload)),
        escape(workload),
        escape(&files_href(&[workload, stamp], true))
    );
    let word = verdict_word(verdict);
    let _ = writeln!(
        body,
        "<h1>{} <span class=\"muted\">{}</span> <span class=\"badge {word}\">{word}</span>{}</h1>",
        escape(summary.workload()),
        escape(&run.when()),
        expectation_badge(&summary)
    );
    body.push_str(&why_section(&summary));
    facts_section(&mut body, &page, &summary, results.as_ref());
    body.push_str(
        "<h2>Figures</h2>\n<table class=\"figures\"><thead><tr><th class=\"num\">ops</th>\
         <th class=\"num\">ok</th><th class=\"num\">info</th><th class=\"num\">fail</th>\
         <th class=\"num\">server msgs/op</th><th class=\"num\">availability</th></tr></thead>\n",
    );
    let _ = writeln!(
        body,
        "<tbody><tr>{}</tr></tbody></table>",
        figure_cells(&summary.figures)
    );

    body.push_str(&traffic::section(results.as_ref()));
    files_section(&mut body, &page);
    results_section(&mut body, results.as_ref(), results_text.as_deref());
    pictures_section(&mut body, &page);
    let title = format!("{} {} — {word}", summary.workload(), stamp);
    respond(StatusCode::OK, &title, &body)
}

/// The run a page shows: its address and folder.
struct Page<'a> {
    workload: &'a str,
    stamp: &'a str,
    dir: &'a Path,
}

impl Page<'_> {
    /// The address of one of the run's files.
    fn file(&self, name: &str) -> String {
        files_href(&[self.workload, self.stamp, name], false)
    }

    fn exists(&self, name: &str) -> bool {
        self.dir.join(name).is_file()
    }
}

/// What the run was: verdict, workload, start, scenario, nodes, seed, command.
fn facts_section(body: &mut String, page: &Page, summary: &Summary, results: Option<&Edn>) {
    let (dir, stamp, run, info) = (page.dir, page.stamp, &summary.run, &summary.info);
    let word = verdict_word(summary.verdict);
    let nodes = match info.as_ref().and_then(|i| i.nodes.clone()) {
        Some(nodes) => Some(nodes),
        None => node_files(&dir.join("node-logs"), true)
            .ok()
            .filter(|n| !n.is_empty()),
    };
    let seed = info
        .as_ref()
        .and_then(|i| i.seed)
        .map(|s| s.to_string())
        .or_else(|| {
            results
                .as_ref()
                .and_then(|r| path(r, &["harness", "seed"]))
                .map(Edn::to_compact)
        });
    let mut facts: Vec<(&str, String)> = vec![
        ("verdict", format!("<span class=\"{word}\">{word}</span>")),
        ("workload", escape(summary.workload())),
        (
            "started",
            format!(
                "{} <span class=\"muted\">({})</span>",
                escape(&run.when()),
                escape(stamp)
            ),
        ),
        ("scenario", escape(&summary.scenario())),
        (
            "nodes",
            escape(&nodes.map(|n| n.join(", ")).unwrap_or_else(|| "?".into())),
        ),
        ("seed", escape(seed.as_deref().unwrap_or("?"))),
    ];
    if let Some(services) = info.as_ref().and_then(|i| i.services.as_deref()) {
        facts.insert(5, ("services", traffic::services_cell(services)));
    }
    if let Some(expect) = summary.expect() {
        facts.push(("expected", escape(expect.word())));
    }
    if let Some(limit) = info.as_ref().and_then(|i| i.time_limit) {
        facts.push(("time limit", format!("{limit} s")));
    }
    facts.push((
        "command",
        match info.as_ref().and_then(|i| i.command.as_deref()) {
            Some(c) => format!("<code>{}</code>", escape(c)),
            None => "<span class=\"muted\">? (no run.json)</span>".to_string(),
        },
    ));
    body.push_str("<table class=\"facts\">\n");
    for (name, value) in &facts {
        let _ = writeln!(body, "<tr><th>{}</th><td>{value}</td></tr>", escape(name));
    }
    body.push_str("</table>\n");
}

/// Links to the run's files, node logs and node folders.
fn files_section(body: &mut String, page: &Page) {
    let (workload, stamp, dir) = (page.workload, page.stamp, page.dir);
    body.push_str("<h2>Files</h2>\n<ul class=\"files\">\n");
    for (name, label) in RUN_FILES {
        if page.exists(name) {
            let _ = writeln!(
                body,
                "<li><a href=\"{}\">{}</a></li>",
                escape(&page.file(name)),
                escape(label)
            );
        }
    }
    body.push_str("</ul>\n");
    let logs = node_files(&dir.join("node-logs"), false).unwrap_or_default();
    body.push_str("<p>Node logs: ");
    if logs.is_empty() {
        body.push_str("<span class=\"muted\">none</span>");
    }
    for log in &logs {
        let _ = write!(
            body,
            "<a href=\"{}\">{}</a> ",
            escape(&files_href(&[workload, stamp, "node-logs", log], false)),
            escape(log)
        );
    }
    body.push_str("</p>\n");
    let node_dirs = subfolders(&dir.join("node-dirs")).unwrap_or_default();
    if !node_dirs.is_empty() {
        body.push_str("<p>Node folders: ");
        for node in &node_dirs {
            let _ = write!(
                body,
                "<a href=\"{}\">{}/</a> ",
                escape(&files_href(&[workload, stamp, "node-dirs", node], true)),
                escape(node)
            );
        }
        body.push_str("</p>\n");
    }
}

/// results.edn, pretty-printed, or why it is not there.
fn results_section(body: &mut String, results: Option<&Edn>, results_text: Option<&str>) {
    body.push_str("<h2>Results</h2>\n");
    match (results, results_text) {
        (Some(edn), _) => {
            let _ = writeln!(body, "<pre>{}</pre>", escape(&cut(&edn.to_pretty())));
        }
        (None, Some(text)) => {
            let _ = writeln!(
                body,
                "<p class=\"muted\">results.edn could not be read as EDN; shown as it is.</p>\n\
             <pre>{}</pre>",
                escape(&cut(text))
            );
        }
        (None, None) => body.push_str(
            "<p class=\"muted\">No results.edn: the run is still going, or it stopped before \
         writing its results.</p>\n",
        ),
    }
}

/// The plots, the message diagram and the timeline, where the run has them.
fn pictures_section(body: &mut String, page: &Page) {
    let plots: Vec<_> = PLOTS.iter().filter(|(name, _)| page.exists(name)).collect();
    if !plots.is_empty() {
        body.push_str("<h2>Plots</h2>\n");
        for (name, caption) in plots {
            let href = escape(&page.file(name));
            let _ = writeln!(
                body,
                "<figure><a href=\"{href}\"><img class=\"plot\" src=\"{href}\" alt=\"{}\"></a>\
             <figcaption>{}</figcaption></figure>",
                escape(caption),
                escape(caption)
            );
        }
    }
    if page.exists("messages.svg") {
        let href = escape(&page.file("messages.svg"));
        let _ = writeln!(
            body,
            "<h2>Messages</h2>\n<p><a href=\"{href}\">Open the diagram on its own</a></p>\n\
         <div class=\"scroll\"><img src=\"{href}\" alt=\"Messages between nodes\"></div>"
        );
    }
    if page.exists("timeline.html") {
        let href = escape(&page.file("timeline.html"));
        let _ = writeln!(
            body,
            "<h2>Timeline</h2>\n<p><a href=\"{href}\">Open the timeline on its own</a></p>\n\
         <iframe src=\"{href}\" title=\"Timeline\"></iframe>"
        );
    }
}

/// `(workload, stamp)` when `dir` (resolved) is a run folder directly under the store's
/// workload folders.
fn run_folder(root: &Path, dir: &Path) -> Option<(String, String)> {
    let root = root.canonicalize().ok()?;
    let rel = dir.strip_prefix(&root).ok()?;
    let mut parts = rel.iter().map(|p| p.to_str());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Some(workload)), Some(Some(stamp)), None) => {
            Some((workload.to_string(), stamp.to_string()))
        }
        _ => None,
    }
}

/// A temporary redirect to `location` (an address built by [`run_href`], so plain ASCII).
fn redirect(location: &str) -> Response {
    let mut response = respond(
        StatusCode::FOUND,
        "Moved",
        &format!("<p><a href=\"{0}\">{0}</a></p>", escape(location)),
    );
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// At most [`RESULTS_SHOWN`] bytes of `text`, cut at a character boundary.
fn cut(text: &str) -> String {
    if text.len() <= RESULTS_SHOWN {
        return text.to_string();
    }
    let mut end = RESULTS_SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… (cut; see results.edn for the rest)", &text[..end])
}

/// The `*.log` files of `dir` in natural order; with `stems`, without the extension.
fn node_files(dir: &Path, stems: bool) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(stem) = name.strip_suffix(".log") {
            names.push(if stems {
                stem.to_string()
            } else {
                name.clone()
            });
        }
    }
    names.sort_by(|a, b| natural_cmp(a, b));
    Ok(names)
}

/// The folders directly in `dir`, in natural order.
fn subfolders(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort_by(|a, b| natural_cmp(a, b));
    Ok(names)
}
