//! Our checkers against real Maelstrom output: each reference run's history, checked here,
//! must reach the verdict and headline figures Maelstrom wrote in its results.edn.
//!
//! The reference runs live in `shared/reference-runs/` beside the repository; where that
//! folder is absent the tests say so and pass without checking.

use std::path::PathBuf;

use workloads::checker;
use workloads::edn::Edn;
use workloads::history::History;

fn reference(run: &str) -> Option<(History, Edn)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference-runs")
        .join(run);
    if !dir.exists() {
        eprintln!("skipping: {} is not present", dir.display());
        return None;
    }
    let history = std::fs::read_to_string(dir.join("history.edn")).unwrap();
    let results = std::fs::read_to_string(dir.join("results.edn")).unwrap();
    Some((
        History::parse_edn(&history).expect("reference history parses"),
        Edn::parse(&results).expect("reference results parse"),
    ))
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
    let Some((h, r)) = reference("echo-valid") else {
        return;
    };
    assert_eq!(checker::echo::check(&h), *r.get("workload").unwrap());
    assert_same(&checker::stats::check(&h), r.get("stats").unwrap(), STATS);
    assert_eq!(
        checker::availability::check(&h, None),
        *r.get("availability").unwrap()
    );
}

#[test]
fn unique_ids_duplicates_invalid() {
    let Some((h, r)) = reference("unique-ids-duplicates-invalid") else {
        return;
    };
    assert_eq!(checker::unique_ids::check(&h), *r.get("workload").unwrap());
    assert_same(&checker::stats::check(&h), r.get("stats").unwrap(), STATS);
}

#[test]
fn unique_ids_extra_reply_field_invalid() {
    let Some((h, r)) = reference("unique-ids-extra-reply-field-invalid") else {
        return;
    };
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
    let Some((h, r)) = reference("g-counter-lost-increments-invalid") else {
        return;
    };
    assert_eq!(checker::counter::check(&h), *r.get("workload").unwrap());
    assert_same(&checker::stats::check(&h), r.get("stats").unwrap(), STATS);
}

#[test]
fn broadcast_lost_under_partition_invalid() {
    let Some((h, r)) = reference("broadcast-lost-under-partition-invalid") else {
        return;
    };
    let ours = checker::set_full::check(&h, "broadcast");
    let theirs = r.get("workload").unwrap();
    assert_eq!(ours, *theirs);
    assert_same(&checker::stats::check(&h), r.get("stats").unwrap(), STATS);
}

#[test]
fn reference_files_round_trip_through_our_printer() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference-runs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipping: {} is not present", dir.display());
        return;
    };
    for entry in entries {
        let run = entry.unwrap().path();
        for file in ["results.edn", "history.edn"] {
            let Ok(text) = std::fs::read_to_string(run.join(file)) else {
                continue;
            };
            let values = Edn::parse_all(&text).unwrap_or_else(|e| panic!("{}: {e}", run.display()));
            for v in values {
                assert_eq!(Edn::parse(&v.to_pretty()).unwrap(), v);
                assert_eq!(Edn::parse(&v.to_compact()).unwrap(), v);
            }
        }
    }
}

#[test]
fn reference_results_print_exactly_as_maelstrom_wrote_them() {
    let Some((_, r)) = reference("echo-valid") else {
        return;
    };
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference-runs/echo-valid");
    let text = std::fs::read_to_string(dir.join("results.edn")).unwrap();
    assert_eq!(r.to_pretty().trim_end(), text.trim_end());
}

#[test]
fn lin_kv_not_linearizable_invalid() {
    let Some((h, r)) = reference("lin-kv-not-linearizable-invalid") else {
        return;
    };
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
