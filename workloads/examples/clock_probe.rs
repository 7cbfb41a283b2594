//! Answers every stdin line with its own wall clock, `SystemTime::now()` in milliseconds
//! since the Unix epoch: the clock nemesis's tests read what a node itself sees.

use std::io::{self, BufRead, Write};
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let mut out = io::stdout().lock();
    for line in io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        if writeln!(out, "{ms}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
}
