//! Raw files of the store under `/files/`: confining a requested path to the store, content
//! types, and folder listings.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::html::{escape, files_href, run_href};
use super::runs::natural_cmp;

/// Why a path is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request itself is malformed or reaches outside the store.
    BadRequest(&'static str),
    /// Nothing there inside the store (or it resolves to somewhere outside it).
    NotFound,
}

/// A path inside the store.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// With every symlink resolved; always inside the store's own resolved path.
    pub path: PathBuf,
    /// The path as requested, one name per segment, for links and titles.
    pub segments: Vec<String>,
}

/// Resolves `rel` (percent-decoded, `/`-separated, relative to the store `root`).
///
/// Refuses `..` anywhere, absolute paths and NUL bytes outright; then anything that,
/// symlinks followed, lands outside the store is not found, as is anything missing.
pub fn resolve(root: &Path, rel: &str) -> Result<Resolved, Refusal> {
    if rel.contains('\0') {
        return Err(Refusal::BadRequest("a path with a NUL byte"));
    }
    if rel.starts_with('/') || rel.starts_with('\\') {
        return Err(Refusal::BadRequest("an absolute path"));
    }
    let mut segments = Vec::new();
    for segment in rel.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(Refusal::BadRequest("a path with `..`")),
            s => segments.push(s.to_string()),
        }
    }
    let root = root.canonicalize().map_err(|_| Refusal::NotFound)?;
    let mut path = root.clone();
    for segment in &segments {
        path.push(segment);
    }
    let path = path.canonicalize().map_err(|_| Refusal::NotFound)?;
    if !path.starts_with(&root) {
        return Err(Refusal::NotFound);
    }
    Ok(Resolved { path, segments })
}

/// The content type a file is served with: by extension, and for other files text if the
/// content is UTF-8, else bytes.
pub fn content_type(path: &Path, content: &[u8]) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => "image/svg+xml",
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("edn" | "txt" | "log" | "jsonl" | "rc" | "csv" | "md") => "text/plain; charset=utf-8",
        Some("png") => "image/png",
        Some("css") => "text/css; charset=utf-8",
        _ if std::str::from_utf8(content).is_ok() => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// One entry of a folder listing.
#[derive(Debug)]
struct Entry {
    name: String,
    folder: bool,
    size: Option<u64>,
    link: bool,
}

/// The HTML body listing a folder of the store at `root`: breadcrumbs, then its entries,
/// folders first, each linked under `/files/`. Symlinks leading out of the store (or
/// nowhere) are left out, since they would not be served.
pub fn listing(root: &Path, dir: &Path, segments: &[String]) -> io::Result<String> {
    let root = root.canonicalize()?;
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        let link = entry.file_type().map(|t| t.is_symlink()).unwrap_or(false);
        if link
            && !entry
                .path()
                .canonicalize()
                .is_ok_and(|target| target.starts_with(&root))
        {
            continue;
        }
        let meta = fs::metadata(entry.path()).ok();
        let folder = meta.as_ref().is_some_and(|m| m.is_dir());
        entries.push(Entry {
            name,
            folder,
            size: meta.filter(|m| m.is_file()).map(|m| m.len()),
            link,
        });
    }
    entries.sort_by(|a, b| {
        b.folder
            .cmp(&a.folder)
            .then_with(|| natural_cmp(&a.name, &b.name))
    });

    let mut body = String::new();
    body.push_str("<nav><a href=\"/\">All runs</a>");
    if segments.len() >= 2 {
        body.push_str(&format!(
            "<a href=\"{}\">Run page</a>",
            escape(&run_href(&segments[0], &segments[1]))
        ));
    }
    body.push_str("</nav>\n<h1>");
    body.push_str(&breadcrumbs(segments));
    body.push_str("</h1>\n");
    if entries.is_empty() {
        body.push_str("<p class=\"muted\">This folder is empty.</p>\n");
        return Ok(body);
    }
    body.push_str(
        "<table>\n<thead><tr><th>name</th><th class=\"num\">size</th></tr></thead>\n<tbody>\n",
    );
    if !segments.is_empty() {
        let parent = &segments[..segments.len() - 1];
        body.push_str(&format!(
            "<tr><td><a href=\"{}\">../</a></td><td></td></tr>\n",
            escape(&files_href(parent, true))
        ));
    }
    for e in &entries {
        let mut path = segments.to_vec();
        path.push(e.name.clone());
        let shown = if e.folder {
            format!("{}/", e.name)
        } else {
            e.name.clone()
        };
        body.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a>{}</td><td class=\"num\">{}</td></tr>\n",
            escape(&files_href(&path, e.folder)),
            escape(&shown),
            if e.link {
                " <span class=\"muted\">(link)</span>"
            } else {
                ""
            },
            e.size.map(human_size).unwrap_or_default()
        ));
    }
    body.push_str("</tbody>\n</table>\n");
    Ok(body)
}

/// `store / echo / <stamp>`, each part linking to its folder.
fn breadcrumbs(segments: &[String]) -> String {
    let mut out = format!(
        "<a href=\"{}\">store</a>",
        escape(&files_href::<&str>(&[], true))
    );
    for i in 0..segments.len() {
        out.push_str(&format!(
            " / <a href=\"{}\">{}</a>",
            escape(&files_href(&segments[..=i], true)),
            escape(&segments[i])
        ));
    }
    out
}

/// `532 B`, `12.3 KiB`, `4.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut size = bytes as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_extension_then_content() {
        let t = |name: &str, content: &[u8]| content_type(Path::new(name), content);
        assert_eq!(t("a/rate.svg", b""), "image/svg+xml");
        assert_eq!(t("timeline.html", b""), "text/html; charset=utf-8");
        assert_eq!(t("results.json", b""), "application/json");
        for name in ["results.edn", "history.txt", "n0.log", "history.jsonl"] {
            assert_eq!(t(name, b"\xff"), "text/plain; charset=utf-8", "{name}");
        }
        assert_eq!(t("data", b"plain"), "text/plain; charset=utf-8");
        assert_eq!(t("data.bin", b"\xff\xfe"), "application/octet-stream");
    }

    #[test]
    fn refuses_escapes_before_touching_the_disk() {
        let root = Path::new("/nonexistent-store");
        for bad in ["..", "../x", "a/../b", "a/..", "/etc/passwd", "\\x", "a\0b"] {
            assert!(
                matches!(resolve(root, bad), Err(Refusal::BadRequest(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(resolve(root, "a/b"), Err(Refusal::NotFound)));
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 20), "5.0 MiB");
    }
}
