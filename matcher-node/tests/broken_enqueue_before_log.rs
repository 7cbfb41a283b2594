//! `--broken enqueue-before-log` does what it says: the coordinator enqueues a
//! transaction's tasks when it logs the transaction, so an aborted one leaves tasks
//! behind (one flaw per file: the flaw is set once per process). The same abort under
//! correct code enqueues nothing (`tests/santa.rs`).

mod santa_common;

use std::collections::BTreeSet;

use matcher::node::{Flaw, Settings, SETTINGS};
use santa_common::*;

#[test]
fn an_aborted_transaction_leaves_tasks_behind() {
    let settings = Settings {
        flaw: Flaw::EnqueueBeforeLog,
        ..Settings::default()
    };
    SETTINGS.set(settings).expect("one flaw per process");
    let (mut c, wire) = santa();
    let mut people = People::new(2);
    aborted_match(&mut c, &wire, &mut people, "lost");
    assert!(drain(&mut c, 10));
    let left: BTreeSet<String> = wire
        .enqueued()
        .into_iter()
        .filter(|t| t["payload"]["exchange"] == "lost")
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        left.len(),
        4 * 4,
        "every gift of the aborted epoch: {left:?}"
    );
    for id in &left {
        assert_eq!(status(&mut c, id)["type"], "status_ok", "{id} exists");
    }
}
