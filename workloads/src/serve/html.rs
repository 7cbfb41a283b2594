//! Hand-written HTML: escaping, URL path encoding and the page shell every page shares.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

/// The stylesheet inlined into every page.
const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em 2em;color:#222;\
background:#fff;line-height:1.4}\
h1{font-size:1.5em;margin:0 0 .4em}h2{font-size:1.15em;margin:1.6em 0 .5em;\
border-bottom:1px solid #ddd;padding-bottom:.2em}\
a{color:#0550ae;text-decoration:none}a:hover{text-decoration:underline}\
table{border-collapse:collapse;font-size:.92em}\
th,td{padding:.25em .7em;border-bottom:1px solid #eee;text-align:left;vertical-align:top}\
th{background:#f6f8fa;font-weight:600}\
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\
tbody tr:hover{background:#f6f8fa}\
.valid{color:#1a7f37;font-weight:600}.invalid{color:#cf222e;font-weight:600}\
.unknown{color:#bc4c00;font-weight:600}\
.badge{display:inline-block;padding:.1em .6em;border-radius:1em;border:1px solid currentColor}\
.muted{color:#666}\
.badge.expected{color:#8a6d00;font-size:.8em}.badge.unexpected{color:#cf222e;font-size:.8em}\
.why{color:#57606a;font-size:.85em;max-width:40em}section.why{font-size:1em;color:inherit}\
pre{background:#f6f8fa;border:1px solid #ddd;padding:.8em;overflow:auto;max-height:40em;\
font-size:.85em}\
code{background:#f6f8fa;padding:.1em .3em;border-radius:3px;font-size:.9em;\
word-break:break-all}\
.plot{max-width:100%;border:1px solid #eee;margin:.3em 0}\
.scroll{overflow:auto;max-height:40em;border:1px solid #eee}\
iframe{width:100%;height:36em;border:1px solid #ddd}\
ul.files{columns:3 14em;padding-left:1.2em}\
nav{margin-bottom:1em}nav a{margin-right:.8em}";

/// Escapes text for an HTML text node or a quoted attribute value, as the reports do.
pub(crate) use crate::report::escape;

/// Percent-encodes one URL path segment (or query value): everything but RFC 3986's
/// unreserved characters.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL of a path inside the store under `/files/`; folders end with a `/`.
pub fn files_href<S: AsRef<str>>(segments: &[S], folder: bool) -> String {
    let mut href = String::from("/files/");
    href.push_str(&join_encoded(segments));
    if folder && !segments.is_empty() {
        href.push('/');
    }
    href
}

/// The URL of a run's page.
pub fn run_href(workload: &str, stamp: &str) -> String {
    format!(
        "/run/{}/{}/",
        encode_segment(workload),
        encode_segment(stamp)
    )
}

fn join_encoded<S: AsRef<str>>(segments: &[S]) -> String {
    segments
        .iter()
        .map(|s| encode_segment(s.as_ref()))
        .collect::<Vec<_>>()
        .join("/")
}

/// A whole page: `title` is plain text, `body` is HTML.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        escape(title)
    )
}

/// A response carrying a page.
pub fn respond(status: StatusCode, title: &str, body: &str) -> Response {
    with_type(
        status,
        "text/html; charset=utf-8",
        Body::from(page(title, body)),
    )
}

/// The page for something that is not in the store.
pub fn not_found(what: &str) -> Response {
    respond(
        StatusCode::NOT_FOUND,
        "Not found",
        &format!(
            "<nav><a href=\"/\">All runs</a></nav>\n<h1>Not found</h1>\n<p>{}</p>",
            escape(what)
        ),
    )
}

/// The page for a request that is refused outright.
pub fn bad_request(why: &str) -> Response {
    respond(
        StatusCode::BAD_REQUEST,
        "Bad request",
        &format!(
            "<nav><a href=\"/\">All runs</a></nav>\n<h1>Bad request</h1>\n<p>{}</p>",
            escape(why)
        ),
    )
}

/// The page for a failure on our side.
pub fn server_error(why: &str) -> Response {
    respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error",
        &format!(
            "<nav><a href=\"/\">All runs</a></nav>\n<h1>Error</h1>\n<p>{}</p>",
            escape(why)
        ),
    )
}

/// A response with a content type; nothing is cached, since runs change under a live store.
pub fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn encodes_segments_and_builds_links() {
        assert_eq!(
            encode_segment("20261123T101530.123+0000"),
            "20261123T101530.123%2B0000"
        );
        assert_eq!(encode_segment("a b/c?d#é"), "a%20b%2Fc%3Fd%23%C3%A9");
        assert_eq!(
            files_href(&["echo", "x y", "n0.log"], false),
            "/files/echo/x%20y/n0.log"
        );
        assert_eq!(files_href(&["echo"], true), "/files/echo/");
        assert_eq!(files_href::<&str>(&[], true), "/files/");
        assert_eq!(run_href("g-set", "a+b"), "/run/g-set/a%2Bb/");
    }
}
