//! `--broken commit-before-log` does what it says, and the property it breaks is caught
//! (one flaw per file: the flaw is set once per process).

mod common;

use std::time::Duration;

use common::*;
use matcher::node::{Flaw, Settings, SETTINGS};
use serde_json::json;

/// Regions commit before the coordinator logs its decision; a coordinator crash then
/// leaves regions committed to a transaction the next leader aborts, and the exchange's
/// reads disagree with its audit or it can never be matched again.
#[test]
fn a_crash_between_commit_and_log_breaks_the_exchange() {
    let settings = Settings {
        flaw: Flaw::CommitBeforeLog,
        ..Settings::default()
    };
    SETTINGS.set(settings).expect("one flaw per process");
    let mut caught = 0;
    for seed in 0..3 {
        let mut c = cluster(5);
        c.run_for(Duration::from_millis(seed * 37));
        let mut people = People::new(seed);
        for r in 0..3 {
            let id = format!("p{r}");
            let key = people.add(&id);
            call_retrying(&mut c, "reg", r as usize, register("x", &id, &key, r), 10);
        }
        c.request("m", 0, json!({"type": "match", "exchange": "x"}));
        let mut crashed = false;
        for _ in 0..2_000 {
            c.run_for(Duration::from_millis(1));
            if let Some(coord) = committed_before_logged(&c, "x") {
                c.crash(coord);
                crashed = true;
                break;
            }
        }
        if !crashed {
            continue;
        }
        c.run_for(Duration::from_secs(3));
        let again = call_retrying(
            &mut c,
            "m2",
            1,
            json!({"type": "match", "exchange": "x"}),
            5,
        );
        let audit = call_retrying(&mut c, "a", 1, json!({"type": "audit", "exchange": "x"}), 5);
        let committed = audit["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["event"] == "committed"));
        let read = json!({"type": "get_assignment", "exchange": "x", "participant": "p0"});
        let read = call_retrying(&mut c, "r", 2, read, 5);
        let visible = read["type"] == "get_assignment_ok";
        if again["type"] != "match_ok" || visible != committed {
            caught += 1;
        }
    }
    assert!(caught > 0, "the flaw never showed");
}
