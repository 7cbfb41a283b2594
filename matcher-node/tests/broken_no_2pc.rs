//! `--broken no-2pc` does what it says, and the property it breaks is caught (one flaw per
//! file: the flaw is set once per process).

mod common;

use common::*;
use matcher::node::{Flaw, Settings, SETTINGS};

/// Regions install the assignment one after another, so reads right after `match_ok`
/// miss it: the committed epoch is not readable everywhere at once.
#[test]
fn reads_right_after_match_ok_miss_the_epoch() {
    let settings = Settings {
        flaw: Flaw::No2pc,
        ..Settings::default()
    };
    SETTINGS.set(settings).expect("one flaw per process");
    let mut c = cluster(5);
    let mut people = People::new(5);
    let mut ids = Vec::new();
    for (i, r) in [(0, 0), (1, 1), (2, 2), (3, 0)] {
        let id = format!("p{i}");
        let key = people.add(&id);
        call_retrying(&mut c, "reg", i, register("quick", &id, &key, r), 10);
        ids.push(id);
    }
    let reads = reads_right_after_match(&mut c, "quick", &ids);
    let missed = reads
        .iter()
        .filter(|r| r["type"] != "get_assignment_ok")
        .count();
    assert!(missed > 0, "every read saw the match: {reads:?}");
}
