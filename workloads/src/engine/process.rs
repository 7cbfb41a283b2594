//! Node processes: spawning, the per-node reader and writer tasks, and shutdown.
//!
//! Each node runs in its own process group with piped stdin/stdout/stderr. One task writes
//! queued lines to stdin (flushing when its queue runs dry, so bursts cost one write), one
//! reads stdout lines and parses their envelope off the engine's task, one copies stderr to
//! `node-logs/<node>.log` and keeps its last lines, and one waits for the exit. On Linux a
//! node also gets SIGKILL if the harness dies without cleaning up.
//!
//! Shutdown closes stdin, waits a grace period, then signals the whole group with SIGTERM
//! and finally SIGKILL, so nothing a node started outlives the run.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use maelstrom_core::node_dir::NODE_DIR_ENV;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

use crate::console::Console;

/// Lines of stdout and stderr kept for crash reports, as Maelstrom keeps.
pub const TAIL_LINES: usize = 32;

/// A line a node printed on stdout, with its envelope already parsed.
#[derive(Debug)]
pub struct NodeLine {
    pub node: u32,
    pub text: String,
    pub parsed: Result<Envelope, LineError>,
}

/// A well-formed envelope: exactly `src`, `dest`, `body` and an optional integer `id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub src: String,
    pub dest: String,
    pub body: Box<RawValue>,
    #[serde(default)]
    #[allow(dead_code)]
    id: Option<i64>,
}

/// Why a stdout line is not a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    NotJson(String),
    Malformed(String),
}

/// Parses one stdout line against Maelstrom's closed envelope schema.
pub fn parse_line(text: &str) -> Result<Envelope, LineError> {
    match serde_json::from_str::<Envelope>(text) {
        Ok(env) => Ok(env),
        Err(e) => {
            if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
                Err(LineError::NotJson(e.to_string()))
            } else {
                Err(LineError::Malformed(e.to_string()))
            }
        }
    }
}

/// What the node tasks tell the engine.
#[derive(Debug)]
pub enum NodeEvent {
    Line(NodeLine),
    /// `generation` tells a restarted node's exit from its killed predecessor's.
    Exited {
        node: u32,
        generation: u32,
        status: String,
    },
}

/// The last lines of a stream, for crash reports.
pub type Tail = Arc<Mutex<VecDeque<String>>>;

fn push_tail(tail: &Tail, line: &str) {
    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
    if t.len() == TAIL_LINES {
        t.pop_front();
    }
    t.push_back(line.to_string());
}

pub fn tail_text(tail: &Tail) -> String {
    let t = tail.lock().unwrap_or_else(|p| p.into_inner());
    t.iter().cloned().collect::<Vec<_>>().join("\n")
}

/// A running node.
#[derive(Debug)]
pub struct NodeProcess {
    pub name: String,
    pub generation: u32,
    pub pid: Option<u32>,
    stdin: Option<mpsc::UnboundedSender<Vec<u8>>>,
    pub stdout_tail: Tail,
    pub stderr_tail: Tail,
}

/// Everything needed to start node `i`, again and again: the kill nemesis restarts nodes
/// with the same id, working directory and log.
#[derive(Debug)]
pub struct Spawner {
    /// Each node's binary and arguments (its service's).
    pub programs: Vec<(PathBuf, Vec<String>)>,
    pub log_stderr: bool,
    pub names: Vec<String>,
    pub dirs: Vec<PathBuf>,
    pub logs: Vec<PathBuf>,
    /// Extra environment per node (libfaketime's, under the clock nemesis).
    pub env: Vec<Vec<(String, String)>>,
    pub events: mpsc::UnboundedSender<NodeEvent>,
    pub console: Arc<Console>,
}

impl Spawner {
    /// Starts incarnation `generation` of node `index`; its stderr is appended to the log.
    pub fn spawn(&self, index: u32, generation: u32) -> std::io::Result<NodeProcess> {
        let i = index as usize;
        NodeProcess::spawn(
            index,
            generation,
            &self.names[i],
            self,
            &self.dirs[i],
            &self.logs[i],
        )
    }
}

impl NodeProcess {
    fn spawn(
        index: u32,
        generation: u32,
        name: &str,
        launch: &Spawner,
        workdir: &Path,
        log_path: &Path,
    ) -> std::io::Result<NodeProcess> {
        let mut child = command(launch, index as usize, workdir).spawn()?;
        let pid = child.id();
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let stdout_tail: Tail = Arc::default();
        let stderr_tail: Tail = Arc::default();
        let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(write_stdin(stdin, rx));
        let events = launch.events.clone();
        tokio::spawn(read_stdout(
            stdout,
            index,
            stdout_tail.clone(),
            events.clone(),
        ));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)?;
        let echo = launch
            .log_stderr
            .then(|| (launch.console.clone(), format!("{name} stderr")));
        tokio::spawn(copy_stderr(stderr, log_file, stderr_tail.clone(), echo));
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => describe_status(s),
                Err(e) => format!("unknown status ({e})"),
            };
            let _ = events.send(NodeEvent::Exited {
                node: index,
                generation,
                status,
            });
        });
        Ok(NodeProcess {
            name: name.to_string(),
            generation,
            pid,
            stdin: Some(tx),
            stdout_tail,
            stderr_tail,
        })
    }

    /// Queues one line (with its newline) for the node's stdin. A node that stopped
    /// reading simply loses it.
    pub fn send(&self, line: Vec<u8>) {
        if let Some(tx) = &self.stdin {
            let _ = tx.send(line);
        }
    }

    /// Closes stdin once the queued lines are written.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends `signal` to the node's whole process group.
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid {
            signals::kill_group(pid, signal);
        }
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code.to_string(),
        (None, Some(sig)) => format!("{} (killed by signal {sig})", 128 + sig),
        _ => "unknown".into(),
    }
}

/// The only unsafe code of the harness: process-group signals and the parent-death signal,
/// which the standard library does not offer.
#[allow(unsafe_code)]
pub mod signals {
    pub use libc::{SIGCONT, SIGKILL, SIGSTOP, SIGTERM};

    /// `kill(-pgid, signal)`. Errors (the group is gone) are ignored on purpose.
    pub fn kill_group(pgid: u32, signal: i32) {
        if let Ok(pgid) = i32::try_from(pgid) {
            if pgid > 0 {
                // SAFETY: kill(2) has no memory effects; a negative pid names a process group.
                unsafe {
                    libc::kill(-pgid, signal);
                }
            }
        }
    }

    /// On Linux, asks the kernel to SIGKILL the node when the harness dies, so that even a
    /// SIGKILLed harness leaves no node behind.
    pub fn die_with_parent(cmd: &mut tokio::process::Command) {
        #[cfg(target_os = "linux")]
        // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
        // async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        #[cfg(not(target_os = "linux"))]
        let _ = cmd;
    }
}

/// The command that starts node `i`: piped, in its own process group, in `workdir`.
fn command(launch: &Spawner, i: usize, workdir: &Path) -> Command {
    let (bin, args) = &launch.programs[i];
    let mut cmd = Command::new(bin);
    cmd.args(args)
        // An inherited one would make every run's nodes share one folder of files.
        .env_remove(NODE_DIR_ENV)
        .envs(launch.env[i].iter().map(|(k, v)| (k, v)))
        .current_dir(workdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    signals::die_with_parent(&mut cmd);
    cmd
}

/// Writes queued lines to the node's stdin, flushing when the queue runs dry; dropping
/// the writer at the end closes it.
async fn write_stdin(stdin: ChildStdin, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut w = BufWriter::with_capacity(64 * 1024, stdin);
    while let Some(line) = rx.recv().await {
        if w.write_all(&line).await.is_err() {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if w.write_all(&more).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
}

/// Reads the next line of `r` into `buf`, its newline included; false at the end of the
/// stream or on a read error.
async fn next_line<R: AsyncBufRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    matches!(r.read_until(b'\n', buf).await, Ok(n) if n > 0)
}

/// Reads the node's stdout lines, parses their envelopes and hands them to the engine.
async fn read_stdout(
    stdout: ChildStdout,
    index: u32,
    tail: Tail,
    events: mpsc::UnboundedSender<NodeEvent>,
) {
    let mut r = BufReader::with_capacity(64 * 1024, stdout);
    let mut buf = Vec::new();
    while next_line(&mut r, &mut buf).await {
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        push_tail(&tail, text);
        let parsed = parse_line(text);
        let line = NodeLine {
            node: index,
            text: text.to_string(),
            parsed,
        };
        if events.send(NodeEvent::Line(line)).is_err() {
            break;
        }
    }
}

/// Appends the node's stderr to its log file, keeps its last lines, and with
/// `--log-stderr` says each on the console under the given thread name.
async fn copy_stderr(
    stderr: ChildStderr,
    log_file: std::fs::File,
    tail: Tail,
    echo: Option<(Arc<Console>, String)>,
) {
    // Plain blocking writes: small, buffered, and flushed whenever the pipe is drained.
    let mut log = std::io::BufWriter::new(log_file);
    let mut r = BufReader::new(stderr);
    let mut buf = Vec::new();
    while next_line(&mut r, &mut buf).await {
        let _ = std::io::Write::write_all(&mut log, &buf);
        if r.buffer().is_empty() {
            let _ = std::io::Write::flush(&mut log);
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches(['\n', '\r']);
        push_tail(&tail, text);
        if let Some((console, thread)) = &echo {
            console.info(thread, "workloads.node", text);
        }
    }
    let _ = std::io::Write::flush(&mut log);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_a_closed_map() {
        let ok = parse_line(r#"{"src":"n0","dest":"c1","body":{"type":"echo_ok"}}"#).unwrap();
        assert_eq!((ok.src.as_str(), ok.dest.as_str()), ("n0", "c1"));
        assert!(parse_line(r#"{"id":3,"src":"n0","dest":"c1","body":1}"#).is_ok());
        assert!(matches!(parse_line("hello"), Err(LineError::NotJson(_))));
        assert!(matches!(
            parse_line(r#"{"src":"n0""#),
            Err(LineError::NotJson(_))
        ));
        for bad in [
            r#"{"src":"n0","dest":"c1","body":{},"extra":1}"#,
            r#"{"src":"n0","body":{}}"#,
            r#"{"src":1,"dest":"c1","body":{}}"#,
            r#"{"id":1.5,"src":"n0","dest":"c1","body":{}}"#,
            r#"[1,2]"#,
        ] {
            assert!(
                matches!(parse_line(bad), Err(LineError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
