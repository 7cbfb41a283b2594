//! `workloads serve`: the store as web pages, like Maelstrom's `serve`.
//!
//! - `/`: every run, newest first across workloads, with its scenario, verdict and key
//!   figures (`/?workload=<name>` for one workload's runs);
//! - `/run/<workload>/<stamp>/`: one run's verdict, command, results, plots, messages
//!   diagram, timeline and links to its history and node logs;
//! - `/files/<path>`: the raw files of the store, and listings of its folders.
//!
//! Pages are read from the store on every request (only `run.json` and `results.edn` per run
//! for the index), so they show runs as they land. Paths from URLs are confined to the store:
//! `..` and absolute paths are refused, and whatever resolves outside the store, through
//! symlinks too, is not found. The server listens on 127.0.0.1 only.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use clap::Args;

mod files;
mod html;
mod pages;
mod runs;
mod traffic;
mod why;

/// Options of `workloads serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The port to listen on, on 127.0.0.1 only (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The store to show: the folder `workloads test` writes runs into.
    #[arg(long, value_name = "DIR", default_value = "store")]
    pub store: PathBuf,
}

/// Serves the store on `127.0.0.1:<port>` until the process is stopped; fails only if the
/// port cannot be bound or the server stops on an I/O error.
pub async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let port = listener.local_addr()?.port();
    println!(
        "Serving {} on http://127.0.0.1:{port}/",
        args.store.display()
    );
    axum::serve(listener, router(args.store.clone()))
        .await
        .context("the web server stopped")?;
    Ok(())
}

/// The pages of the store at `store` (which need not exist yet), ready to be served.
pub fn router(store: PathBuf) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/run/{workload}/{stamp}", get(run))
        .route("/run/{workload}/{stamp}/", get(run))
        .route("/files", get(files_root))
        .route("/files/", get(files_root))
        .route("/files/{*path}", get(file))
        .fallback(|| async { html::not_found("There is no such page.") })
        .with_state(Arc::new(store))
}

type Store = State<Arc<PathBuf>>;

#[derive(Debug, serde::Deserialize)]
struct IndexQuery {
    workload: Option<String>,
}

async fn index(State(store): Store, query: Result<Query<IndexQuery>, QueryRejection>) -> Response {
    let workload = query
        .ok()
        .and_then(|Query(q)| q.workload)
        .filter(|w| !w.is_empty());
    blocking(move || pages::index(&store, workload.as_deref())).await
}

async fn run(
    State(store): Store,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let Ok(Path((workload, stamp))) = params else {
        return html::bad_request("The run's address could not be decoded.");
    };
    blocking(move || pages::run(&store, &workload, &stamp)).await
}

async fn files_root(State(store): Store) -> Response {
    blocking(move || file_response(&store, "")).await
}

async fn file(State(store): Store, params: Result<Path<String>, PathRejection>) -> Response {
    let Ok(Path(rel)) = params else {
        return html::bad_request("The path could not be decoded.");
    };
    blocking(move || file_response(&store, &rel)).await
}

/// Runs page building (file reads, parsing) off the async workers.
async fn blocking(build: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(build)
        .await
        .unwrap_or_else(|e| html::server_error(&format!("the page could not be built: {e}")))
}

/// A file of the store as it is, or a folder's listing.
fn file_response(store: &std::path::Path, rel: &str) -> Response {
    let missing = || {
        if rel.is_empty() {
            html::not_found(&format!(
                "The store {} does not exist yet.",
                store.display()
            ))
        } else {
            html::not_found(&format!("There is no file {rel} in the store."))
        }
    };
    let resolved = match files::resolve(store, rel) {
        Ok(resolved) => resolved,
        Err(files::Refusal::BadRequest(why)) => {
            return html::bad_request(&format!(
                "Refused {why}: only files inside the store are served."
            ))
        }
        Err(files::Refusal::NotFound) => return missing(),
    };
    let Ok(meta) = std::fs::metadata(&resolved.path) else {
        return missing();
    };
    if meta.is_dir() {
        let title = format!("store/{}", resolved.segments.join("/"));
        return match files::listing(store, &resolved.path, &resolved.segments) {
            Ok(body) => html::respond(StatusCode::OK, &title, &body),
            Err(e) => html::server_error(&format!("cannot list {title}: {e}")),
        };
    }
    // Not FIFOs, sockets or devices a node may have left in its folder: reading one could
    // block forever.
    if !meta.is_file() {
        return missing();
    }
    match std::fs::read(&resolved.path) {
        Ok(bytes) => {
            let content_type = files::content_type(&resolved.path, &bytes);
            html::with_type(StatusCode::OK, content_type, Body::from(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing(),
        Err(e) => html::server_error(&format!("cannot read {rel}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;
    use std::fs;
    use std::path::Path as FsPath;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const NEW: &str = "20261123T101531.000+0000";
    const OLD: &str = "20261123T101530.123+0000";
    const OLDEST: &str = "20261101T000000.000+0000";

    /// A temporary folder, removed when dropped (also when a test fails).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("workloads-serve-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn write(path: &FsPath, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// A store with a valid unique-ids run (with run.json and pictures), a newer invalid
    /// broadcast run copied from the JVM Maelstrom (no run.json), an oldest run with a
    /// hostile name and no results, the `latest` links, and symlinks leading out.
    fn fake_store(tmp: &TempDir) -> PathBuf {
        let store = tmp.0.join("store");
        let valid = store.join("unique-ids").join(OLD);
        write(
            &valid.join("run.json"),
            r#"{"workload": "unique-ids", "nemesis": ["partition", "kill"],
                "nodes": ["n0", "n1"], "seed": 123, "time_limit": 10,
                "command": "workloads test -w unique-ids --bin ./ids --seed 123", "valid": true,
                "services": [{"name": "ids", "bin": "./ids", "nodes": ["n0"]},
                             {"name": "more", "bin": "./ids", "args": ["-x"], "nodes": ["n1"]}]}"#,
        );
        write(
            &valid.join("results.edn"),
            "{:stats {:valid? true, :count 10, :ok-count 7, :info-count 2, :fail-count 1},\n \
             :net {:servers {:msgs-per-op 2.5}, :services {\"ids\" {:nodes [\"n0\"], \
             :send-count 7, :recv-count 8, :to {\"ids\" 0, \"more\" 4}, :to-clients 3, \
             :to-maelstrom-services 0, :by-node {\"n0\" {:send-count 7, :recv-count 8}}}}},\n \
             :availability {:ok-fraction 0.75},\n \
             :valid? true}\n",
        );
        write(&valid.join("results.json"), "{\"valid?\": true}\n");
        write(&valid.join("history.txt"), "0 :invoke :generate nil\n");
        write(&valid.join("history.jsonl"), "{}\n");
        write(
            &valid.join("rate.svg"),
            "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
        );
        write(
            &valid.join("latency-raw.svg"),
            "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
        );
        write(
            &valid.join("messages.svg"),
            "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
        );
        write(
            &valid.join("timeline.html"),
            "<html><body>timeline</body></html>",
        );
        write(&valid.join("node-logs/n0.log"), "n0 says hi\n");
        write(&valid.join("node-logs/n1.log"), "n1 says <b>hi</b>\n");
        fs::create_dir_all(valid.join("node-dirs/n0")).unwrap();

        let invalid = store.join("broadcast").join(NEW);
        write(
            &invalid.join("results.edn"),
            "{:stats {:count 4, :ok-count 4, :info-count 0, :fail-count 0}, \
             :harness {:seed 99}, :valid? false}",
        );
        write(&invalid.join("node-logs/n0.log"), "");

        fs::create_dir_all(store.join("x<i>&").join(OLDEST)).unwrap();

        let link = |target: &str, at: &FsPath| std::os::unix::fs::symlink(target, at).unwrap();
        link(OLD, &store.join("unique-ids/latest"));
        link(&format!("broadcast/{NEW}"), &store.join("latest"));
        link("/etc", &store.join("etc"));
        write(&tmp.0.join("secret.txt"), "secret");
        link("../../../secret.txt", &valid.join("escape"));
        store
    }

    /// Serves `store` on a free port of 127.0.0.1 in the test's runtime.
    async fn start(store: PathBuf) -> u16 {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, router(store)).await });
        port
    }

    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: HashMap<String, String>,
        body: String,
    }

    impl Reply {
        fn content_type(&self) -> &str {
            self.headers
                .get("content-type")
                .map(String::as_str)
                .unwrap_or("")
        }
    }

    /// `GET target` over a fresh connection, the target sent exactly as given.
    async fn get(port: u16, target: &str) -> Reply {
        let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("no end of headers");
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let mut body = raw[split + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        if headers
            .get("transfer-encoding")
            .is_some_and(|t| t == "chunked")
        {
            body = dechunk(&body);
        }
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    fn dechunk(mut raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let eol = raw.windows(2).position(|w| w == b"\r\n").unwrap();
            let size_text = String::from_utf8_lossy(&raw[..eol]).into_owned();
            let size =
                usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
            raw = &raw[eol + 2..];
            if size == 0 {
                return out;
            }
            out.extend_from_slice(&raw[..size]);
            raw = &raw[size + 2..];
        }
    }

    fn encoded(stamp: &str) -> String {
        stamp.replace('+', "%2B")
    }

    #[tokio::test]
    async fn index_lists_runs_newest_first_with_verdicts_and_figures() {
        let tmp = TempDir::new("index");
        let port = start(fake_store(&tmp)).await;
        let page = get(port, "/").await;
        assert_eq!(page.status, 200);
        assert_eq!(page.content_type(), "text/html; charset=utf-8");
        let body = &page.body;
        let at = |needle: &str| {
            body.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing from {body}"))
        };
        let (new, old, oldest) = (
            at(&format!("/run/broadcast/{}/", encoded(NEW))),
            at(&format!("/run/unique-ids/{}/", encoded(OLD))),
            at(&format!("/run/x%3Ci%3E%26/{}/", encoded(OLDEST))),
        );
        assert!(new < old && old < oldest, "{body}");
        // Each run once: the `latest` links and the symlink to /etc are not runs.
        assert_eq!(body.matches("<tr><td><a href=\"/run/").count(), 3, "{body}");
        assert!(!body.contains("/run/unique-ids/latest/"), "{body}");
        assert!(!body.contains("/run/etc/"), "{body}");

        let row = |start: usize| &body[start..start + body[start..].find("</tr>").unwrap()];
        let valid = row(old);
        for cell in [
            "class=\"valid\"",
            ">valid</a>",
            "partition,kill",
            ">10<",
            ">7<",
            ">2<",
            ">1<",
            ">2.50<",
            ">75.0%<",
        ] {
            assert!(valid.contains(cell), "{cell:?} not in {valid}");
        }
        let invalid = row(new);
        assert!(invalid.contains(">invalid</a>"), "{invalid}");
        assert!(invalid.contains("<td>?</td>"), "{invalid}");
        assert!(invalid.contains(">4<"), "{invalid}");
        let unknown = row(oldest);
        assert!(unknown.contains(">unknown</a>"), "{unknown}");
        assert!(unknown.contains("(no results)"), "{unknown}");
        // The hostile workload name is escaped everywhere.
        assert!(body.contains("x&lt;i&gt;&amp;"), "{body}");
        assert!(!body.contains("x<i>"), "{body}");
        assert!(body.contains("3 runs"), "{body}");
        assert!(
            body.contains("1 valid") && body.contains("1 invalid") && body.contains("1 unknown")
        );

        let one = get(port, "/?workload=broadcast").await;
        assert_eq!(one.status, 200);
        assert!(one.body.contains("/run/broadcast/"), "{}", one.body);
        assert!(!one.body.contains("/run/unique-ids/"), "{}", one.body);
    }

    #[tokio::test]
    async fn pages_say_why_a_run_is_invalid_and_whether_that_was_expected() {
        let tmp = TempDir::new("why");
        let store = tmp.0.join("store");
        let results = "{:stats {:valid? true, :count 9}, :workload {:valid? false, \
                       :attempted-count 9, :duplicated-count 62, :duplicated {14 3, 15 3}}, \
                       :valid? false}";
        for (stamp, expect) in [(OLD, r#", "expect": "invalid""#), (NEW, "")] {
            let dir = store.join("unique-ids").join(stamp);
            write(
                &dir.join("run.json"),
                &format!(r#"{{"workload": "unique-ids", "valid": false{expect}}}"#),
            );
            write(&dir.join("results.edn"), results);
        }
        let port = start(store).await;
        let index = get(port, "/").await.body;
        let why = "<div class=\"why\">workload: duplicated-count 62, first 14 3</div>";
        assert_eq!(index.matches(why).count(), 2, "{index}");
        assert_eq!(index.matches("badge expected").count(), 1, "{index}");
        assert!(
            index.contains("2 invalid</span> (1 of them expected"),
            "{index}"
        );

        let run = get(port, &format!("/run/unique-ids/{}/", encoded(OLD)))
            .await
            .body;
        for needle in [
            "<h2>Why invalid</h2>",
            "the node is broken on purpose",
            "<li><strong>workload</strong>: duplicated-count 62; first <code>14 3</code></li>",
            "<tr><th>expected</th><td>invalid</td></tr>",
        ] {
            assert!(run.contains(needle), "{needle:?} missing from {run}");
        }
        let run = get(port, &format!("/run/unique-ids/{}/", encoded(NEW)))
            .await
            .body;
        assert!(run.contains("<h2>Why invalid</h2>") && !run.contains("broken on purpose"));
    }

    #[tokio::test]
    async fn missing_and_empty_stores_get_a_friendly_page() {
        let tmp = TempDir::new("empty");
        let port = start(tmp.0.join("nowhere")).await;
        let page = get(port, "/").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("There is no store"), "{}", page.body);
        assert_eq!(get(port, "/files/").await.status, 404);

        let port = start(tmp.0.clone()).await;
        let page = get(port, "/").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("No runs yet"), "{}", page.body);
    }

    #[tokio::test]
    async fn run_page_shows_results_plots_and_links() {
        let tmp = TempDir::new("run");
        let port = start(fake_store(&tmp)).await;
        let enc = encoded(OLD);
        let page = get(port, &format!("/run/unique-ids/{enc}/")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let body = &page.body;
        let files = format!("/files/unique-ids/{enc}");
        for needle in [
            "<span class=\"badge valid\">valid</span>".to_string(),
            "<code>workloads test -w unique-ids --bin ./ids --seed 123</code>".to_string(),
            "<td>123</td>".to_string(),
            "<td>n0, n1</td>".to_string(),
            "<tr><th>services</th><td><b>ids</b> n0 · <b>more</b> n1</td></tr>".to_string(),
            "<h2>Messages by service</h2>".to_string(),
            "<th class=\"num\">to ids</th>".to_string(),
            "<tr><td>n0</td><td>ids</td><td class=\"num\">7</td><td class=\"num\">8</td></tr>"
                .to_string(),
            "partition,kill".to_string(),
            ":count 10".to_string(),
            "<pre>".to_string(),
            format!("<img class=\"plot\" src=\"{files}/rate.svg\""),
            format!("<img class=\"plot\" src=\"{files}/latency-raw.svg\""),
            format!("<img src=\"{files}/messages.svg\""),
            format!("<iframe src=\"{files}/timeline.html\""),
            format!("href=\"{files}/history.txt\""),
            format!("href=\"{files}/node-logs/n0.log\""),
            format!("href=\"{files}/node-logs/n1.log\""),
            format!("href=\"{files}/node-dirs/n0/\""),
        ] {
            assert!(body.contains(&needle), "{needle:?} missing from {body}");
        }
        // No clock plot in this run, so no picture of one.
        assert!(!body.contains("clock.svg"), "{body}");
        // Without the trailing slash too; the workload's `latest` link leads to the run.
        let bare = get(port, &format!("/run/unique-ids/{enc}")).await;
        assert_eq!(bare.status, 200);
        let latest = get(port, "/run/unique-ids/latest/").await;
        assert_eq!(latest.status, 302);
        assert_eq!(
            latest.headers.get("location").map(String::as_str),
            Some(format!("/run/unique-ids/{enc}/").as_str())
        );

        let page = get(port, &format!("/run/broadcast/{}/", encoded(NEW))).await;
        assert_eq!(page.status, 200);
        for needle in [
            "badge invalid\">invalid",
            "<tr><th>scenario</th><td>?</td></tr>",
            "<tr><th>seed</th><td>99</td></tr>",
            "no run.json",
            ":valid? false",
        ] {
            assert!(
                page.body.contains(needle),
                "{needle:?} missing from {}",
                page.body
            );
        }
        assert!(!page.body.contains("by service"), "one binary: no services");
        assert!(!page.body.contains("<th>services</th>"));
    }

    #[tokio::test]
    async fn unknown_runs_and_pages_are_not_found() {
        let tmp = TempDir::new("missing");
        let port = start(fake_store(&tmp)).await;
        for target in [
            "/run/unique-ids/20200101T000000.000+0000/",
            "/run/nope/x/",
            "/run/../unique-ids/",
            "/run/%2e%2e/etc/",
            "/run/etc/passwd/",
            "/run/unique-ids/..%2F..%2Fsecret.txt/",
            "/nothing-here",
        ] {
            let page = get(port, target).await;
            assert_eq!(page.status, 404, "{target}: {}", page.body);
            assert_eq!(page.content_type(), "text/html; charset=utf-8");
            assert!(page.body.contains("Not found"), "{target}: {}", page.body);
        }
    }

    #[tokio::test]
    async fn files_are_served_with_their_content_types() {
        let tmp = TempDir::new("files");
        let port = start(fake_store(&tmp)).await;
        let run = format!("/files/unique-ids/{}", encoded(OLD));
        for (name, content_type) in [
            ("rate.svg", "image/svg+xml"),
            ("timeline.html", "text/html; charset=utf-8"),
            ("results.edn", "text/plain; charset=utf-8"),
            ("history.txt", "text/plain; charset=utf-8"),
            ("history.jsonl", "text/plain; charset=utf-8"),
            ("node-logs/n1.log", "text/plain; charset=utf-8"),
            ("results.json", "application/json"),
        ] {
            let file = get(port, &format!("{run}/{name}")).await;
            assert_eq!(file.status, 200, "{name}");
            assert_eq!(file.content_type(), content_type, "{name}");
            let on_disk =
                fs::read_to_string(tmp.0.join("store/unique-ids").join(OLD).join(name)).unwrap();
            assert_eq!(file.body, on_disk, "{name}");
        }
        // The stamp's `+` as it is, and links inside the store, work too.
        let plain = get(port, &format!("/files/unique-ids/{OLD}/rate.svg")).await;
        assert_eq!(plain.status, 200);
        let latest = get(port, "/files/latest/results.edn").await;
        assert_eq!(latest.status, 200);
        assert!(latest.body.contains(":valid? false"));

        // Folders are listed, with links that percent-encode names.
        let listing = get(port, &format!("{run}/")).await;
        assert_eq!(listing.status, 200);
        assert_eq!(listing.content_type(), "text/html; charset=utf-8");
        for needle in [
            format!("href=\"{run}/node-logs/\""),
            format!("href=\"{run}/rate.svg\""),
            format!("href=\"/run/unique-ids/{}/\"", encoded(OLD)),
            "href=\"/files/unique-ids/\">../</a>".to_string(),
        ] {
            assert!(
                listing.body.contains(&needle),
                "{needle:?} missing from {}",
                listing.body
            );
        }
        let root = get(port, "/files/").await;
        assert_eq!(root.status, 200);
        assert!(
            root.body.contains("href=\"/files/x%3Ci%3E%26/\""),
            "{}",
            root.body
        );
        assert!(root.body.contains("x&lt;i&gt;&amp;/"), "{}", root.body);
        // Links leading out of the store are not listed; those inside are.
        assert!(!root.body.contains("etc"), "{}", root.body);
        assert!(!listing.body.contains("escape"), "{}", listing.body);
        let workload = get(port, "/files/unique-ids/").await;
        assert!(
            workload.body.contains("href=\"/files/unique-ids/latest/\""),
            "{}",
            workload.body
        );
        assert_eq!(get(port, "/files").await.status, 200);
        assert_eq!(get(port, &format!("{run}/nope.txt")).await.status, 404);
    }

    #[tokio::test]
    async fn paths_outside_the_store_are_refused() {
        let tmp = TempDir::new("traversal");
        let port = start(fake_store(&tmp)).await;
        let run = format!("/files/unique-ids/{}", encoded(OLD));
        // A FIFO a node left behind: never opened, so the request cannot hang.
        let fifo = tmp
            .0
            .join("store/unique-ids")
            .join(OLD)
            .join("node-dirs/n0/pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
        for (target, status) in [
            ("/files/../Cargo.toml".to_string(), 400),
            ("/files/../secret.txt".to_string(), 400),
            ("/files/%2e%2e/x".to_string(), 400),
            ("/files/%2E%2E/secret.txt".to_string(), 400),
            ("/files/unique-ids/..%2F..%2Fsecret.txt".to_string(), 400),
            (format!("{run}/../../../secret.txt"), 400),
            ("/files//etc/passwd".to_string(), 400),
            ("/files/%2Fetc%2Fpasswd".to_string(), 400),
            ("/files/etc/passwd".to_string(), 404),
            ("/files/etc/".to_string(), 404),
            ("/files/etc".to_string(), 404),
            (format!("{run}/escape"), 404),
            ("/files/%ff%fe".to_string(), 400),
            (format!("{run}/node-dirs/n0/pipe"), 404),
        ] {
            let reply = get(port, &target).await;
            assert_eq!(reply.status, status, "{target}: {}", reply.body);
            assert!(!reply.body.contains("secret"), "{target}: {}", reply.body);
            assert!(!reply.body.contains("root:"), "{target}: {}", reply.body);
        }
    }

    #[test]
    fn args_default_to_port_8080_and_the_store_folder() {
        use clap::Parser;

        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }

        let cli = Cli::try_parse_from(["serve"]).unwrap();
        assert_eq!(cli.serve.port, 8080);
        assert_eq!(cli.serve.store, PathBuf::from("store"));
        let cli = Cli::try_parse_from(["serve", "--port", "9000", "--store", "/tmp/s"]).unwrap();
        assert_eq!(cli.serve.port, 9000);
        assert_eq!(cli.serve.store, PathBuf::from("/tmp/s"));
    }

    #[tokio::test]
    async fn serve_reports_a_port_it_cannot_bind() {
        let taken = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let args = ServeArgs {
            port: taken.local_addr().unwrap().port(),
            store: PathBuf::from("store"),
        };
        let err = serve(&args).await.unwrap_err();
        assert!(
            err.to_string().contains("cannot listen on 127.0.0.1:"),
            "{err}"
        );
    }
}
