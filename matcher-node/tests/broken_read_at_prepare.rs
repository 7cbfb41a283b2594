//! `--broken read-at-prepare` does what it says, and the property it breaks is caught (one
//! flaw per file: the flaw is set once per process).

mod common;

use common::*;
use matcher::node::{Flaw, Settings, SETTINGS};

/// A read shows a prepared slice whose transaction then aborts: an epoch that was never
/// committed.
#[test]
fn a_read_shows_a_slice_that_then_aborts() {
    let settings = Settings {
        flaw: Flaw::ReadAtPrepare,
        ..Settings::default()
    };
    SETTINGS.set(settings).expect("one flaw per process");
    let mut c = cluster(5);
    let (found, audit) = reads_during_a_lost_vote(&mut c);
    assert!(found > 0, "no read saw the prepared slice");
    let events = audit["events"].as_array().expect("events");
    assert!(events.iter().all(|e| e["event"] != "committed"), "{audit}");
}
