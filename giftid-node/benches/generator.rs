//! Gift-ID throughput, side by side in one run:
//! (a) the generator alone on one core, below capacity (ns per ID) and with demand above
//!     the layout's 4,096,000 IDs/s (IDs/s, and the share of sequence slots used);
//! (b) end to end through the Maelstrom protocol: the node binary fed `generate` and
//!     `generate_batch` lines on stdin, replies read from stdout.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use giftid::generator::{Flaw, Generator, Now};
use giftid::layout::{decode, GiftType, SEQUENCES};

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Below capacity: 1000 IDs per simulated millisecond, clocks supplied by the caller.
fn below_capacity() -> f64 {
    let n: u64 = 50_000_000;
    let t0 = wall_ms();
    let mut g = Generator::new(
        1,
        None,
        Now {
            wall_unix_ms: t0,
            mono_ms: 0,
        },
        Flaw::None,
    );
    let start = Instant::now();
    for i in 0..n {
        let ms = i / 1000;
        let now = Now {
            wall_unix_ms: t0 + ms,
            mono_ms: ms,
        };
        black_box(g.next(now, GiftType::Toy).unwrap());
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Above capacity: a tight loop reading both clocks for every ID, for `secs` seconds.
fn saturated(secs: u64) -> (f64, f64, u64) {
    let started = Instant::now();
    let clocks = || Now {
        wall_unix_ms: wall_ms(),
        mono_ms: started.elapsed().as_millis() as u64,
    };
    let mut g = Generator::new(1, None, clocks(), Flaw::None);
    let (mut issued, mut refused) = (0u64, 0u64);
    let (mut first, mut last) = (None, 0);
    let end = Duration::from_secs(secs);
    while started.elapsed() < end {
        match g.next(clocks(), GiftType::Toy) {
            Ok(id) => {
                issued += 1;
                first.get_or_insert(id);
                last = id;
            }
            Err(_) => refused += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let span_ms = decode(last as i64).unwrap().timestamp
        - decode(first.unwrap() as i64).unwrap().timestamp
        + 1;
    let slots_used = issued as f64 / (span_ms * SEQUENCES) as f64;
    (issued as f64 / elapsed, slots_used, refused)
}

/// `requests` request lines through the node binary; returns IDs per second.
fn through_protocol(requests: usize, batch: Option<usize>) -> f64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_giftid-node"))
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the giftid-node binary");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let body = match batch {
        None => r#"{"type":"generate""#.to_string(),
        Some(n) => format!(r#"{{"type":"generate_batch","count":{n}"#),
    };
    let writer = std::thread::spawn(move || {
        let init = r#"{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1"]}}"#;
        let mut w = std::io::BufWriter::new(&mut stdin);
        writeln!(w, "{init}").unwrap();
        for i in 0..requests {
            writeln!(
                w,
                r#"{{"src":"c1","dest":"n1","body":{body},"msg_id":{}}}}}"#,
                i + 1
            )
            .unwrap();
        }
        w.flush().unwrap();
        drop(w);
        drop(stdin);
    });
    let start = Instant::now();
    let mut ids = 0usize;
    for line in stdout.lines().skip(1) {
        let line = line.unwrap();
        ids += match (batch, line.find('['), line.find(']')) {
            (Some(_), Some(open), Some(close)) => line[open..close].matches(',').count() + 1,
            _ => 1,
        };
    }
    let secs = start.elapsed().as_secs_f64();
    writer.join().unwrap();
    let _ = child.wait();
    ids as f64 / secs
}

fn main() {
    // `cargo test --all-targets` runs this with no `--bench`: a quick smoke run only.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "smoke: {:.0} IDs/s through the protocol",
            through_protocol(100, Some(10))
        );
        return;
    }
    println!("gift-id throughput (one run, one core per process)");
    let ns = below_capacity();
    println!(
        "  generator alone, below capacity:   {ns:.1} ns per ID ({:.1} M IDs/s)",
        1e3 / ns
    );
    let secs = 3;
    let (rate, used, refused) = saturated(secs);
    let lead = (giftid::generator::MAX_LEAD_MS * SEQUENCES) as f64 / secs as f64;
    println!(
        "  generator alone, demand above capacity for {secs} s: {:.0} IDs/s sustained (+{:.0}/s borrowed as lead), {:.1}% of sequence slots used, {refused} calls told to retry",
        rate - lead,
        lead,
        used * 100.0
    );
    println!("    (the layout's limit is 4,096,000 IDs/s per workshop)");
    let single = through_protocol(200_000, None);
    println!("  through the Maelstrom protocol, one ID per request:    {single:.0} IDs/s");
    let batched = through_protocol(20_000, Some(100));
    println!("  through the Maelstrom protocol, 100 IDs per request:   {batched:.0} IDs/s");
    println!("  batching gains {:.1}x", batched / single);
}
