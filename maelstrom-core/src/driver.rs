//! The stdin/stdout driver: the only code of a node binary that does I/O.
//!
//! It reads newline-separated input, hands each line to the [`Runtime`], fires timers when
//! they fall due, and writes output in whole lines. Output is flushed whenever the driver
//! is about to wait for input, so a lone request is answered at once while a burst of
//! requests is answered in a few large writes. Logs go to stderr only. End of input ends
//! the node with success.

use std::io;
use std::time::{Instant, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::node::Node;
use crate::node_dir::NodeDirs;
use crate::runtime::{Now, Output, Runtime};
use crate::storage::{DirStorage, Storage};

/// Output is written out once this much is buffered, even mid-burst.
const FLUSH_BYTES: usize = 64 * 1024;

/// Runs node `N` on stdin/stdout until stdin ends, keeping its files in a directory of its
/// own under the working directory (or `$MAELSTROM_NODE_DIR`; see [`crate::node_dir`]).
/// Meant to be all of a node binary's `main`.
pub fn run<N: Node>() -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let storage = DirStorage::per_node(NodeDirs::from_env(std::env::current_dir()?));
    runtime.block_on(drive::<N>(
        tokio::io::stdin(),
        tokio::io::stdout(),
        Box::new(storage),
    ))
}

/// Drives node `N` over any reader and writer; tests pipe strings through it.
pub async fn drive<N: Node>(
    input: impl AsyncRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
    storage: Box<dyn Storage>,
) -> io::Result<()> {
    let started = Instant::now();
    let now = || Now {
        mono: started.elapsed(),
        wall: SystemTime::now(),
    };
    let mut runtime = Runtime::<N>::new(storage);
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut out = Output::default();
    let mut line = Vec::with_capacity(256);
    loop {
        runtime.fire_due(now(), &mut out);
        emit(&mut out, &mut output, false).await?;

        // Wait only when no whole line is buffered: flush first so peers are not kept
        // waiting on output we are holding back.
        if !reader.buffer().contains(&b'\n') {
            emit(&mut out, &mut output, true).await?;
        }
        // `read_until` appends, and a timer may interrupt it mid-line: `line` keeps
        // what was read so far until the line is complete.
        let read = match runtime.next_deadline() {
            Some(deadline) => {
                let wake = tokio::time::Instant::from_std(started + deadline);
                tokio::select! {
                    read = reader.read_until(b'\n', &mut line) => Some(read?),
                    () = tokio::time::sleep_until(wake) => None,
                }
            }
            None => Some(reader.read_until(b'\n', &mut line).await?),
        };
        match read {
            None => continue,
            Some(0) => {
                // End of input; a last line without a newline still counts.
                handle(&mut runtime, &line, now(), &mut out);
                break;
            }
            Some(_) if line.ends_with(b"\n") => {
                handle(&mut runtime, &line, now(), &mut out);
                line.clear();
            }
            Some(_) => {}
        }
    }
    emit(&mut out, &mut output, true).await?;
    Ok(())
}

fn handle<N: Node>(runtime: &mut Runtime<N>, line: &[u8], now: Now, out: &mut Output) {
    match std::str::from_utf8(trim_newline(line)) {
        Ok(text) if text.trim().is_empty() => {}
        Ok(text) => runtime.handle_line(text, now, out),
        Err(err) => out
            .logs
            .push(format!("skipping input line: not UTF-8 ({err})")),
    }
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes logs to stderr and, when `force` or when enough is buffered, lines to the output.
async fn emit(
    out: &mut Output,
    output: &mut (impl AsyncWrite + Unpin),
    force: bool,
) -> io::Result<()> {
    for log in out.logs.drain(..) {
        eprintln!("{log}");
    }
    if (force && !out.stdout.is_empty()) || out.stdout.len() >= FLUSH_BYTES {
        output.write_all(&out.stdout).await?;
        output.flush().await?;
        out.stdout.clear();
    }
    if let Some(fatal) = out.fatal.take() {
        output.flush().await?;
        return Err(io::Error::other(fatal));
    }
    Ok(())
}
