use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;

fn person(id: &str, exclusions: &[&str]) -> Participant {
    banded(id, exclusions, 0, 100)
}

fn banded(id: &str, exclusions: &[&str], min: u64, max: u64) -> Participant {
    Participant::for_test(id, exclusions, min, max)
}

fn everyone(n: usize) -> Vec<Participant> {
    (0..n).map(|i| person(&format!("p{i}"), &[])).collect()
}

fn run(ps: &[Participant], no_mutual: bool) -> Result<Assignment, Infeasible> {
    assign(ps, no_mutual, &mut StdRng::seed_from_u64(7))
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn fewer_than_two_is_its_own_reason() {
    assert_eq!(
        run(&[], false),
        Err(Infeasible::TooFew {
            participants: vec![]
        })
    );
    let one = [person("solo", &[])];
    let err = run(&one, false).unwrap_err();
    assert_eq!(
        err,
        Infeasible::TooFew {
            participants: strings(&["solo"])
        }
    );
    assert!(err.to_string().contains("solo"));
}

#[test]
fn a_duplicate_id_is_refused() {
    let ps = [person("a", &[]), person("b", &[]), person("a", &[])];
    assert_eq!(run(&ps, false), Err(Infeasible::DuplicateId("a".into())));
}

#[test]
fn two_is_enough_and_three_make_a_cycle() {
    let ps = everyone(2);
    assert_eq!(run(&ps, false).unwrap().receiver_of, vec![1, 0]);
    let ps = everyone(3);
    let a = run(&ps, true).unwrap();
    assert!(a.is_valid(&ps, true));
}

#[test]
fn someone_excluding_everyone_is_named() {
    let ps = [
        person("grinch", &["a", "b", "c"]),
        person("a", &[]),
        person("b", &[]),
        person("c", &[]),
    ];
    let err = run(&ps, false).unwrap_err();
    assert_eq!(err, Infeasible::NoReceiver("grinch".into()));
    assert_eq!(
        err.to_string(),
        "grinch cannot give to or receive from anyone"
    );
}

#[test]
fn two_who_exclude_each_other_cannot_swap() {
    let ps = [person("a", &["b"]), person("b", &[])];
    assert!(matches!(run(&ps, false), Err(Infeasible::NoReceiver(_))));
}

#[test]
fn a_budget_nobody_shares_is_named() {
    let ps = [
        banded("rich", &[], 500, 900),
        banded("a", &[], 0, 10),
        banded("b", &[], 5, 20),
    ];
    assert_eq!(run(&ps, false), Err(Infeasible::NoReceiver("rich".into())));
}

#[test]
fn a_family_that_can_only_give_to_one_outsider_is_a_crowd() {
    let ps = [
        person("ann", &["bea", "cal"]),
        person("bea", &["cal"]),
        person("cal", &[]),
        person("dan", &[]),
    ];
    // Each of the family can only give to dan: any two of them already prove it.
    for seed in 0..10 {
        let err = assign(&ps, false, &mut StdRng::seed_from_u64(seed)).unwrap_err();
        let Infeasible::Crowded { givers, receivers } = &err else {
            panic!("{err}")
        };
        assert_eq!(receivers, &strings(&["dan"]));
        assert_eq!(givers.len(), 2);
        assert!(givers
            .iter()
            .all(|g| ["ann", "bea", "cal"].contains(&g.as_str())));
        assert!(err.to_string().starts_with("2 givers ("));
        assert!(err
            .to_string()
            .ends_with(") can only give to 1 receivers (dan)"));
    }
}

#[test]
fn disjoint_budget_bands_match_within_each_band() {
    let mut ps: Vec<Participant> = (0..3)
        .map(|i| banded(&format!("low{i}"), &[], 0, 10))
        .collect();
    ps.extend((0..2).map(|i| banded(&format!("high{i}"), &[], 50, 60)));
    let a = run(&ps, false).unwrap();
    assert!(a.is_valid(&ps, false));
    assert_eq!(&a.receiver_of[3..], &[4, 3]);
    // A third band of one cannot be matched.
    ps.push(banded("alone", &[], 30, 40));
    assert_eq!(run(&ps, false), Err(Infeasible::NoReceiver("alone".into())));
}

#[test]
fn a_forced_pair_defeats_no_mutual_exactly_when_small() {
    let ps = [
        person("a", &["c", "d"]),
        person("b", &[]),
        person("c", &[]),
        person("d", &[]),
    ];
    assert!(run(&ps, false).unwrap().is_valid(&ps, false));
    let err = run(&ps, true).unwrap_err();
    assert_eq!(
        err,
        Infeasible::OnlyMutual {
            participants: strings(&["a", "b", "c", "d"])
        }
    );
    assert_eq!(
        run(&everyone(2), true).unwrap_err().to_string(),
        "every valid assignment of p0, p1 has a mutual pair"
    );
}

#[test]
fn a_forced_pair_makes_the_bounded_search_give_up_when_large() {
    let mut ps = everyone(EXACT_UP_TO + 3);
    let others: Vec<String> = ps[2..].iter().map(|p| p.id.clone()).collect();
    ps[0].exclusions = others.into_iter().collect();
    assert!(run(&ps, false).unwrap().is_valid(&ps, false));
    let err = run(&ps, true).unwrap_err();
    assert_eq!(
        err,
        Infeasible::GaveUp {
            attempts: MUTUAL_ATTEMPTS
        }
    );
    assert!(err.to_string().contains("gave up"));
}

#[test]
fn no_mutual_holds_on_a_crowded_graph() {
    // Mostly excluded: only a few cycles are possible at all.
    let ps: Vec<Participant> = (0..40)
        .map(|i| {
            let keep = [(i + 1) % 40, (i + 39) % 40, (i + 2) % 40, (i + 38) % 40];
            let exclusions: BTreeSet<String> = (0..40)
                .filter(|j| *j != i && !keep.contains(j))
                .map(|j| format!("p{j}"))
                .collect();
            Participant {
                exclusions,
                ..person(&format!("p{i}"), &[])
            }
        })
        .collect();
    for seed in 0..20 {
        let a = assign(&ps, true, &mut StdRng::seed_from_u64(seed)).unwrap();
        assert!(a.is_valid(&ps, true), "seed {seed}");
    }
}

#[test]
fn different_seeds_give_different_assignments() {
    let ps = everyone(30);
    let drawn: BTreeSet<Vec<usize>> = (0..5)
        .map(|seed| {
            assign(&ps, false, &mut StdRng::seed_from_u64(seed))
                .unwrap()
                .receiver_of
        })
        .collect();
    assert_eq!(drawn.len(), 5);
}

#[test]
fn the_same_seed_gives_the_same_assignment() {
    let ps = everyone(50);
    let draw = |no_mutual| assign(&ps, no_mutual, &mut StdRng::seed_from_u64(3)).unwrap();
    assert_eq!(draw(false), draw(false));
    assert_eq!(draw(true), draw(true));
}

#[test]
fn many_distinct_budgets_still_match() {
    // More budget classes than the greedy pass groups: the pool path and augmentation.
    let ps: Vec<Participant> = (0..300)
        .map(|i| banded(&format!("p{i}"), &[], i, i + 40))
        .collect();
    let a = run(&ps, true).unwrap();
    assert!(a.is_valid(&ps, true));
}

#[test]
fn long_augmenting_paths_are_found() {
    // A chain of overlapping budgets: each can only give to a neighbour in the chain.
    let ps: Vec<Participant> = (0..200)
        .map(|i| banded(&format!("p{i}"), &[], i * 10, i * 10 + 10))
        .collect();
    let a = run(&ps, false).unwrap();
    assert!(a.is_valid(&ps, false));
    // Only swaps with a neighbour are possible, so an odd chain leaves one out.
    let odd = &ps[..199];
    let Err(Infeasible::Crowded { givers, receivers }) = run(odd, false) else {
        panic!()
    };
    assert_eq!(givers.len(), receivers.len() + 1);
}

#[test]
fn mutual_pairs_are_merged_with_near_neighbours() {
    // Each may only give to someone at most two places away: merging a pair needs one of
    // the few neighbours, not a random participant.
    let ps: Vec<Participant> = (0..500)
        .map(|i| banded(&format!("p{i}"), &[], i * 10, i * 10 + 25))
        .collect();
    for seed in 0..5 {
        let a = assign(&ps, true, &mut StdRng::seed_from_u64(seed)).unwrap();
        assert!(a.is_valid(&ps, true));
    }
}

#[test]
fn validity_is_checked_field_by_field() {
    let ps = everyone(3);
    let ok = Assignment {
        receiver_of: vec![1, 2, 0],
    };
    assert!(ok.is_valid(&ps, true));
    assert!(!Assignment {
        receiver_of: vec![1, 0, 0]
    }
    .is_valid(&ps, false));
    assert!(!Assignment {
        receiver_of: vec![0, 2, 1]
    }
    .is_valid(&ps, false));
    assert!(!Assignment {
        receiver_of: vec![1, 2]
    }
    .is_valid(&ps, false));
    assert!(!Assignment {
        receiver_of: vec![1, 2, 9]
    }
    .is_valid(&ps, false));
    let mut four = everyone(4);
    four[0].exclusions.insert("p1".into());
    assert!(!Assignment {
        receiver_of: vec![1, 2, 3, 0]
    }
    .is_valid(&four, false));
    assert!(!Assignment {
        receiver_of: vec![1, 0, 3, 2]
    }
    .is_valid(&everyone(4), true));
    assert!(Assignment {
        receiver_of: vec![1, 0, 3, 2]
    }
    .is_valid(&everyone(4), false));
}

#[test]
fn edges_name_givers_and_receivers() {
    let ps = everyone(3);
    let a = Assignment {
        receiver_of: vec![2, 0, 1],
    };
    let edges: Vec<(&str, &str)> = a.edges(&ps).collect();
    assert_eq!(edges, vec![("p0", "p2"), ("p1", "p0"), ("p2", "p1")]);
}

#[test]
fn long_reasons_are_shortened() {
    let names: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
    let err = Infeasible::Crowded {
        givers: names.clone(),
        receivers: names[..3].to_vec(),
    };
    assert!(err.to_string().contains("p7 and 4 more"));
}
