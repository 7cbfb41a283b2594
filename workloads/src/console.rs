//! The run log: every line goes to the console and, once the run's store folder exists, to
//! its `jepsen.log`, in the two formats Jepsen uses — console
//! `INFO [2025-11-10 20:58:22,291] worker 0 - workloads.op 0 :invoke :echo "Please echo 3"`
//! (local time), file `2025-11-10 20:58:22,291{GMT}<TAB>INFO<TAB>[worker 0] workloads.op: …`
//! (UTC, with Jepsen's literal `{GMT}`). Operation lines are tab-separated like history.txt.
//!
//! Output is buffered and flushed at most every 100 ms by [`Console::tick`] (and by
//! [`Console::flush`]), so logging every operation does not cost a system call each.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{Local, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

#[derive(Debug)]
struct Sinks {
    console: BufWriter<io::Stdout>,
    file: Option<BufWriter<File>>,
    last_flush: Instant,
}

/// Shared by the engine and the node reader tasks.
#[derive(Debug)]
pub struct Console {
    sinks: Mutex<Sinks>,
    /// When false, nothing goes to the terminal (the file still gets everything).
    echo: bool,
}

impl Console {
    pub fn new(echo: bool) -> Self {
        Console {
            sinks: Mutex::new(Sinks {
                console: BufWriter::with_capacity(64 * 1024, io::stdout()),
                file: None,
                last_flush: Instant::now(),
            }),
            echo,
        }
    }

    /// Starts copying every line to `path` (the run's `jepsen.log`).
    pub fn attach_file(&self, path: &Path) -> io::Result<()> {
        let file = BufWriter::with_capacity(64 * 1024, File::create(path)?);
        self.lock().file = Some(file);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sinks> {
        self.sinks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One log entry; `message` may span lines.
    pub fn log(&self, level: Level, thread: &str, logger: &str, message: &str) {
        let local = Local::now().format("%Y-%m-%d %H:%M:%S,%3f");
        let utc = Utc::now().format("%Y-%m-%d %H:%M:%S,%3f");
        let mut sinks = self.lock();
        // Write errors (a closed terminal, a full disk) must not stop the run.
        if self.echo {
            let _ = writeln!(
                sinks.console,
                "{} [{local}] {thread} - {logger} {message}",
                level.name()
            );
        }
        if let Some(file) = sinks.file.as_mut() {
            let _ = writeln!(
                file,
                "{utc}{{GMT}}\t{}\t[{thread}] {logger}: {message}",
                level.name()
            );
        }
    }

    pub fn info(&self, thread: &str, logger: &str, message: &str) {
        self.log(Level::Info, thread, logger, message);
    }

    pub fn warn(&self, thread: &str, logger: &str, message: &str) {
        self.log(Level::Warn, thread, logger, message);
    }

    /// Flushes if the last flush is more than 100 ms old.
    pub fn tick(&self) {
        let mut sinks = self.lock();
        if sinks.last_flush.elapsed() >= Duration::from_millis(100) {
            Self::flush_sinks(&mut sinks);
        }
    }

    pub fn flush(&self) {
        Self::flush_sinks(&mut self.lock());
    }

    fn flush_sinks(sinks: &mut Sinks) {
        let _ = sinks.console.flush();
        if let Some(file) = sinks.file.as_mut() {
            let _ = file.flush();
        }
        sinks.last_flush = Instant::now();
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.flush();
    }
}
