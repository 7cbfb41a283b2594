//! Our checkers against real Maelstrom output: each reference run's history, checked here,
//! must reach the verdict and headline figures Maelstrom wrote in its results.edn.
//!
//! The reference runs are kept in the repository, in `tests/reference-runs/` (see its
//! README): a missing file fails the test.

use std::path::PathBuf;

use workloads::checker;
use workloads::edn::Edn;
use workloads::history::History;

/// The folder of the reference runs.
fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference-runs")
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn reference(run: &str) -> (History, Edn) {
    let dir = reference_dir().join(run);
    let history = read(&dir.join("history.edn"));
    let results = read(&dir.join("results.edn"));
    (
        History::parse_edn(&history).expect("reference history parses"),
        Edn::parse(&results).expect("reference results parse"),
    )
}

fn assert_same(ours: &Edn, theirs: &Edn, keys: &[&str]) {
    for key in keys {
        assert_eq!(
            ours.get(key),
            theirs.get(key),
            "{key}: ours {ours}, Maelstrom's {theirs}"
        );
    }
}

const STATS: &[&str] = &[
    "valid?",
    "count",
    "ok-count",
    "fail-count",
    "info-count",
    "by-f",
];

#[test]
fn echo_valid() {
    let (h, r) = reference("echo-valid");
    assert_eq!(checker::echo::check(&h), *r.get("workload").unwrap());
    assert_same(&checker::stats::check(&h), r.get("stats").unwrap(), STATS);
    assert_eq!(
        checker::availability::check(&h, None),
        *r.get("availability").unwrap()
    );
}

#[test]
fn unique_ids_duplicates_invalid() {
    let (h, r) = reference("unique-ids-duplicates-invalid");
    assert_eq!(checker::unique_ids::check(&h), *r.get("workload").unwrap());
    assert_same(&checker::stats::check(&h), r.get("stats").unwrap(), STATS);
}

#[test]
fn unique_ids_extra_reply_field_invalid() {
    let (h, r) = reference("unique-ids-extra-reply-field-invalid");
    assert_eq!(checker::unique_ids::check(&h), *r.get("workload").unwrap());
    assert_same(&checker::stats::check(&h), r.get("stats").unwrap(), STATS);
    assert_eq!(
        checker::availability::check(&h, None),
        *r.get("availability").unwrap()
    );
    let ours = checker::exceptions::check(&h);
    let theirs = r.get("exceptions").unwrap();
    let count = |e: &Edn| {
        e.get("exceptions").unwrap().elements().unwrap()[0]
            .get("count")
            .cloned()
    };
    assert_eq!(count(&ours), count(theirs));
}

#[test]
fn g_counter_lost_increments_invalid() {
    let (h, r) = reference("g-counter-lost-increments-invalid");
    assert_eq!(checker::counter::check(&h), *r.get("workload").unwrap());
    assert_same(&checker::stats::check(&h), r.get("stats").unwrap(), STATS);
}

#[test]
fn broadcast_lost_under_partition_invalid() {
    let (h, r) = reference("broadcast-lost-under-partition-invalid");
    let ours = checker::set_full::check(&h, "broadcast");
    let theirs = r.get("workload").unwrap();
    assert_eq!(ours, *theirs);
    assert_same(&checker::stats::check(&h), r.get("stats").unwrap(), STATS);
}

#[test]
fn reference_files_round_trip_through_our_printer() {
    let mut files = 0;
    for entry in std::fs::read_dir(reference_dir()).unwrap() {
        let run = entry.unwrap().path();
        for file in ["results.edn", "history.edn"] {
            let Ok(text) = std::fs::read_to_string(run.join(file)) else {
                continue;
            };
            files += 1;
            let values = Edn::parse_all(&text).unwrap_or_else(|e| panic!("{}: {e}", run.display()));
            for v in values {
                assert_eq!(Edn::parse(&v.to_pretty()).unwrap(), v);
                assert_eq!(Edn::parse(&v.to_compact()).unwrap(), v);
            }
        }
    }
    assert_eq!(files, 13, "the reference runs hold 13 EDN files");
}

#[test]
fn reference_results_print_exactly_as_maelstrom_wrote_them() {
    let (_, r) = reference("echo-valid");
    let text = read(&reference_dir().join("echo-valid/results.edn"));
    assert_eq!(r.to_pretty().trim_end(), text.trim_end());
}

#[test]
fn lin_kv_not_linearizable_invalid() {
    let (h, r) = reference("lin-kv-not-linearizable-invalid");
    let ours = checker::linearizable::check(&h);
    let theirs = r.get("workload").unwrap();
    assert_same(&ours, theirs, &["valid?"]);
    assert_same(&checker::stats::check(&h), r.get("stats").unwrap(), STATS);
    // Maelstrom names the keys that failed; ours must name one of them.
    let failures = theirs.get("failures").and_then(Edn::elements).unwrap();
    let failed = ours.get("failed-key").expect("the failing key is named");
    assert!(
        failures.contains(failed),
        "ours {failed}, Maelstrom's {failures:?}"
    );
}
