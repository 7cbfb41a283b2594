//! The pages of `workloads serve` as a real browser sees them: headless Chromium loads the
//! run index and a run page from the router, and the rendered DOM is checked.
//!
//! Fails with a message when Chromium is not installed (`make deps` installs it).

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one Chromium run may take before it is killed.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

const NEWER: &str = "20261123T101531.000+0000";
const OLDER: &str = "20261123T101530.123+0000";

/// A temporary folder, removed when dropped (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("workloads-serve-browser-{}", std::process::id()));
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

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// `chromium` or `chromium-browser` from PATH.
fn find_chromium() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if fs::metadata(&candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            {
                return Some(candidate);
            }
        }
    }
    None
}

/// A store with an older valid unique-ids run (with run.json and a rate plot) and a newer
/// invalid broadcast run without run.json, as the JVM Maelstrom leaves them.
fn fake_store(root: &Path) -> PathBuf {
    let store = root.join("store");
    let valid = store.join("unique-ids").join(OLDER);
    write(
        &valid.join("run.json"),
        r#"{"workload": "unique-ids", "nemesis": ["partition"], "nodes": ["n0", "n1", "n2"],
            "seed": 123, "time_limit": 10,
            "command": "workloads test -w unique-ids --bin ./ids --seed 123", "valid": true}"#,
    );
    write(
        &valid.join("results.edn"),
        "{:stats {:valid? true, :count 42, :ok-count 40, :info-count 1, :fail-count 1},\n \
         :net {:servers {:msgs-per-op 1.5}},\n :availability {:ok-fraction 0.95},\n \
         :valid? true}\n",
    );
    write(
        &valid.join("rate.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100\" height=\"50\">\
         <rect width=\"100\" height=\"50\" fill=\"teal\"/></svg>",
    );
    write(&valid.join("node-logs/n0.log"), "hello from n0\n");
    let invalid = store.join("broadcast").join(NEWER);
    write(
        &invalid.join("results.edn"),
        "{:stats {:count 7, :ok-count 5, :info-count 0, :fail-count 2}, :valid? false}\n",
    );
    std::os::unix::fs::symlink(OLDER, store.join("unique-ids/latest")).unwrap();
    store
}

/// Chromium's rendering of `url`, killed (with everything it started) after
/// [`BROWSER_TIMEOUT`].
fn dump_dom(chromium: &Path, url: &str, tmp: &Path, tag: &str) -> String {
    use std::os::unix::process::CommandExt;
    let profile = tmp.join(format!("profile-{tag}"));
    let out = tmp.join(format!("{tag}.html"));
    let err = tmp.join(format!("{tag}.stderr"));
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        // Its own process group, so that a timeout can end the helpers it starts too.
        .process_group(0)
        .spawn()
        .expect("cannot start Chromium");
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium did not finish loading {url} within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = fs::read_to_string(&out).unwrap_or_default();
    if !status.success() || dom.is_empty() {
        let stderr = fs::read_to_string(&err).unwrap_or_default();
        panic!("Chromium failed on {url} ({status}):\n{stderr}");
    }
    dom
}

fn position(dom: &str, needle: &str) -> usize {
    dom.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} missing from the page:\n{dom}"))
}

#[test]
fn chromium_renders_the_index_and_a_run_page() {
    let chromium = find_chromium().expect("Chromium is not installed (`make deps` installs it)");
    let tmp = TempDir::new();
    let store = fake_store(&tmp.0);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime.spawn(async move { axum::serve(listener, workloads::serve::router(store)).await });
    let base = format!("http://127.0.0.1:{port}");

    // The index: both runs, newest first, each with its verdict and figures.
    let index = dump_dom(&chromium, &format!("{base}/"), &tmp.0, "index");
    let newer = position(
        &index,
        &format!("href=\"/run/broadcast/{}/\"", NEWER.replace('+', "%2B")),
    );
    let older = position(
        &index,
        &format!("href=\"/run/unique-ids/{}/\"", OLDER.replace('+', "%2B")),
    );
    assert!(newer < older, "runs not newest first:\n{index}");
    let row = |at: usize| {
        let start = index[..at].rfind("<tr").unwrap();
        let end = at + index[at..].find("</tr>").unwrap();
        &index[start..end]
    };
    let (invalid, valid) = (row(newer), row(older));
    assert!(invalid.contains(">invalid</a>"), "{invalid}");
    assert!(invalid.contains("2026-11-23 10:15:31 +0000"), "{invalid}");
    assert!(invalid.contains("<td>?</td>"), "{invalid}");
    assert!(valid.contains(">valid</a>"), "{valid}");
    for figure in [">42<", ">40<", ">1.50<", ">95.0%<", "partition"] {
        assert!(valid.contains(figure), "{figure:?} not in {valid}");
    }
    assert_eq!(
        index.matches("<tr><td><a href=\"/run/").count(),
        2,
        "{index}"
    );

    // A run page: verdict, command, results and the plot.
    let url = format!("{base}/run/unique-ids/{}/", OLDER.replace('+', "%2B"));
    let run = dump_dom(&chromium, &url, &tmp.0, "run");
    for needle in [
        "<span class=\"badge valid\">valid</span>",
        "workloads test -w unique-ids --bin ./ids --seed 123",
        ":count 42",
        "n0.log",
    ] {
        position(&run, needle);
    }
    let img = position(&run, "<img");
    let tag = &run[img..img + run[img..].find('>').unwrap()];
    assert!(tag.contains("rate.svg"), "{tag}");

    // The `latest` link is followed to the run's own page.
    let latest = dump_dom(
        &chromium,
        &format!("{base}/run/unique-ids/latest/"),
        &tmp.0,
        "latest",
    );
    position(&latest, ":count 42");

    runtime.shutdown_timeout(Duration::from_secs(1));
}
