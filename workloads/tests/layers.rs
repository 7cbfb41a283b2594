//! The shape of `workloads/src`: modules import only modules of lower layers, and functions
//! fit on a screen. Reads the source text; nothing is compiled or run.

use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use modules of strictly lower rows only; a new
/// top-level module must be placed here. ARCHITECTURE.md's code map shows the same table.
const LAYERS: &[&[&str]] = &[
    &["edn"],
    &["schema"],
    &["history", "facts"],
    &["checker"],
    &["topology"],
    &["nemesis"],
    &["net"],
    &["services"],
    &["workload"],
    &["journal", "store", "console"],
    &["report"],
    &["analysis"],
    &["engine"],
    &["scenario", "serve"],
    &["cli"],
];

/// The longest function body allowed, in lines, signature and closing brace included.
const MAX_FN_LINES: usize = 80;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

/// Every `.rs` file under `dir`, as (path relative to `src`, text).
fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.strip_prefix(src()).unwrap().to_path_buf(), text));
        }
    }
}

/// The module path of a file: `engine/runner/faults.rs` → [engine, runner, faults].
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code a module is built from: its text before the unit tests, without comments.
fn code(text: &str) -> String {
    text.lines()
        .take_while(|l| *l != "#[cfg(test)]")
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules that `code`, the code of the module at `path`, names through
/// `crate::` or a `super::` chain that reaches the crate root.
fn uses(path: &[String], code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let ident = |from: usize| -> String {
        code[from..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let rest = at + "crate::".len();
        if code[rest..].starts_with('{') {
            let group = &code[rest + 1..rest + code[rest..].find('}').unwrap_or(0)];
            found.extend(
                group
                    .split(',')
                    .map(|g| g.trim().split("::").next().unwrap_or("").trim().to_string()),
            );
        } else {
            found.push(ident(rest));
        }
    }
    for (at, _) in code.match_indices("super::") {
        if at >= 2 && &code[at - 2..at] == "::" {
            continue; // counted from the first `super` of a chain
        }
        let mut depth = 0;
        let mut i = at;
        while code[i..].starts_with("super::") {
            depth += 1;
            i += "super::".len();
        }
        if depth == path.len() {
            found.push(ident(i));
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

/// "a -> b" for every use of a module that is not strictly lower than the user.
fn upward(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (rel, text) in files {
        let path = module_path(rel);
        let Some(top) = path.first().filter(|m| *m != "lib" && *m != "main") else {
            continue;
        };
        let Some(mine) = rank(top) else {
            bad.push(format!("{}: module {top} is in no layer", rel.display()));
            continue;
        };
        for used in uses(&path, &code(text)) {
            match rank(&used) {
                Some(r) if r < mine || used == *top => {}
                Some(_) => bad.push(format!("{}: {top} -> {used}", rel.display())),
                None => bad.push(format!("{}: {used} is in no layer", rel.display())),
            }
        }
    }
    bad
}

/// (lines, "file:line fn name") of every function longer than `max` lines before the tests.
fn long_functions(files: &[(PathBuf, String)], max: usize) -> Vec<(usize, String)> {
    let mut long = Vec::new();
    for (rel, text) in files {
        let code = code(text);
        let lines: Vec<&str> = code.lines().map(str::trim_end).collect();
        for (i, line) in lines.iter().enumerate() {
            let body = line.trim_start();
            let indent = &line[..line.len() - body.len()];
            let head = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "pub(super) fn ",
                "async fn ",
            ];
            let is_fn = head.iter().any(|h| body.starts_with(h))
                || body.starts_with("pub async fn ")
                || body.starts_with("pub(crate) async fn ");
            if !is_fn || body.ends_with(';') {
                continue;
            }
            let close = format!("{indent}}}");
            let Some(end) = lines[i + 1..].iter().position(|l| *l == close) else {
                continue;
            };
            let n = end + 2;
            if n > max {
                let name = body.split('(').next().unwrap_or(body);
                long.push((n, format!("{} {name}", rel.display())));
            }
        }
    }
    long
}

fn all_sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    assert!(files.len() > 20, "found the sources");
    files
}

#[test]
fn modules_import_only_lower_layers() {
    let bad = upward(&all_sources());
    assert!(
        bad.is_empty(),
        "imports against the layer order (see LAYERS):\n{}",
        bad.join("\n")
    );
}

#[test]
fn an_upward_or_unplaced_import_is_caught() {
    let file = |rel: &str, text: &str| (PathBuf::from(rel), text.to_string());
    let files = vec![
        file("net.rs", "use crate::cli::LatencyDist;\n"),
        file(
            "checker/x.rs",
            "use crate::{edn::Edn, workload::RunFacts};\n",
        ),
        file("history.rs", "fn f() { super::engine::run(); }\n"),
        file("engine/runner/faults.rs", "use super::super::Engine;\n"),
        file("oddity.rs", "use crate::edn::Edn;\n"),
        file(
            "edn.rs",
            "// crate::cli in a comment\n#[cfg(test)]\nuse crate::cli;\n",
        ),
    ];
    assert_eq!(
        upward(&files),
        [
            "net.rs: net -> cli",
            "checker/x.rs: checker -> workload",
            "history.rs: history -> engine",
            "oddity.rs: module oddity is in no layer",
        ]
    );
}

#[test]
fn functions_fit_on_a_screen() {
    let long = long_functions(&all_sources(), MAX_FN_LINES);
    let listed: Vec<String> = long
        .iter()
        .map(|(n, f)| format!("{n} lines: {f}"))
        .collect();
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        listed.join("\n")
    );
}

#[test]
fn a_long_function_is_caught() {
    let body = "    let x = 1;\n".repeat(MAX_FN_LINES);
    let text = format!("pub fn short() {{\n}}\n\nfn long() {{\n{body}}}\n");
    let long = long_functions(&[(PathBuf::from("x.rs"), text)], MAX_FN_LINES);
    assert_eq!(long, [(MAX_FN_LINES + 2, "x.rs fn long".to_string())]);
}
