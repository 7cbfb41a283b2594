//! Properties of the matcher against a brute force over every permutation.

use std::collections::BTreeMap;

use matcher::{assign, compatible, splice, Budget, Infeasible, Participant, SpliceError};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Participants with exclusions drawn among `n` ids (and a stranger), and budgets from a
/// few bands, some overlapping and some not.
fn exchange(max: usize) -> impl Strategy<Value = Vec<Participant>> {
    (0..=max).prop_flat_map(|n| {
        let person = (proptest::collection::vec(0..=n, 0..3), 0u64..4, 0u64..3);
        proptest::collection::vec(person, n).prop_map(move |people| {
            people
                .into_iter()
                .enumerate()
                .map(|(i, (excluded, band, width))| Participant {
                    id: format!("p{i}"),
                    public_key: [0; 32],
                    exclusions: excluded
                        .into_iter()
                        .filter(|&j| j != i)
                        .map(|j| {
                            if j == n {
                                "stranger".into()
                            } else {
                                format!("p{j}")
                            }
                        })
                        .collect(),
                    budget: Budget {
                        min: band * 10,
                        max: band * 10 + width * 5,
                    },
                    region: 0,
                    nice_child: false,
                })
                .collect()
        })
    })
}

fn valid(ps: &[Participant], receiver_of: &[usize], no_mutual: bool) -> bool {
    receiver_of
        .iter()
        .enumerate()
        .all(|(g, &r)| compatible(&ps[g], &ps[r]) && !(no_mutual && receiver_of[r] == g))
}

/// Whether any permutation is a valid assignment, by trying them all.
fn brute_force(ps: &[Participant], no_mutual: bool) -> bool {
    fn extend(
        ps: &[Participant],
        no_mutual: bool,
        perm: &mut Vec<usize>,
        used: &mut [bool],
    ) -> bool {
        if perm.len() == ps.len() {
            return valid(ps, perm, no_mutual);
        }
        for r in 0..ps.len() {
            if !used[r] {
                used[r] = true;
                perm.push(r);
                let found = extend(ps, no_mutual, perm, used);
                perm.pop();
                used[r] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    ps.len() >= 2 && extend(ps, no_mutual, &mut Vec::new(), &mut vec![false; ps.len()])
}

fn index(ps: &[Participant], id: &str) -> usize {
    ps.iter().position(|p| p.id == id).expect("a participant")
}

/// The reason is a certificate: nobody it names can be placed.
fn proves_infeasible(ps: &[Participant], reason: &Infeasible) -> bool {
    match reason {
        Infeasible::TooFew { participants } => ps.len() < 2 && participants.len() == ps.len(),
        Infeasible::NoReceiver(id) => {
            let p = &ps[index(ps, id)];
            ps.iter().all(|r| !compatible(p, r))
        }
        Infeasible::Crowded { givers, receivers } => {
            givers.len() > receivers.len()
                && givers.iter().all(|g| {
                    let g = &ps[index(ps, g)];
                    ps.iter()
                        .filter(|r| compatible(g, r))
                        .all(|r| receivers.contains(&r.id))
                })
        }
        Infeasible::OnlyMutual { .. } => !brute_force(ps, true),
        Infeasible::DuplicateId(_) | Infeasible::GaveUp { .. } => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn feasibility_agrees_with_brute_force(ps in exchange(7), no_mutual: bool, seed: u64) {
        let result = assign(&ps, no_mutual, &mut StdRng::seed_from_u64(seed));
        prop_assert_eq!(result.is_ok(), brute_force(&ps, no_mutual), "{:?}", result);
        match result {
            Ok(a) => {
                prop_assert!(a.is_valid(&ps, no_mutual));
                prop_assert!(valid(&ps, &a.receiver_of, no_mutual));
            }
            Err(reason) => prop_assert!(proves_infeasible(&ps, &reason) || no_mutual, "{}", reason),
        }
    }

    #[test]
    fn assignments_are_valid_permutations(ps in exchange(60), no_mutual: bool, seed: u64) {
        match assign(&ps, no_mutual, &mut StdRng::seed_from_u64(seed)) {
            Ok(a) => {
                let mut received: Vec<usize> = a.receiver_of.clone();
                received.sort_unstable();
                prop_assert_eq!(received, (0..ps.len()).collect::<Vec<_>>());
                prop_assert!(valid(&ps, &a.receiver_of, no_mutual));
            }
            Err(Infeasible::GaveUp { .. }) => prop_assert!(no_mutual),
            Err(reason) => {
                let plain = assign(&ps, false, &mut StdRng::seed_from_u64(seed));
                prop_assert!(proves_infeasible(&ps, &reason) || (no_mutual && plain.is_ok()), "{}", reason);
            }
        }
    }

    #[test]
    fn splices_keep_every_other_gift(ps in exchange(30), late in exchange(1), seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let Some(late) = late.into_iter().next() else { return Ok(()) };
        let late = Participant { id: "late".into(), ..late };
        for no_mutual in [false, true] {
            let Ok(a) = assign(&ps, no_mutual, &mut rng) else { continue };
            let edges: BTreeMap<String, String> =
                a.edges(&ps).map(|(g, r)| (g.to_string(), r.to_string())).collect();
            match splice(&ps, &edges, &late, &mut rng) {
                Ok(s) => {
                    let mut after = edges.clone();
                    s.apply(&mut after);
                    let mut all = ps.clone();
                    all.push(late.clone());
                    let receiver_of: Vec<usize> =
                        all.iter().map(|p| index(&all, &after[&p.id])).collect();
                    let mut received = receiver_of.clone();
                    received.sort_unstable();
                    prop_assert_eq!(received, (0..all.len()).collect::<Vec<_>>());
                    prop_assert!(valid(&all, &receiver_of, no_mutual));
                    prop_assert_eq!(&edges[&s.replaced.0], &s.replaced.1);
                    prop_assert_eq!(&s.added[0], &(s.replaced.0.clone(), late.id.clone()));
                    prop_assert_eq!(&s.added[1], &(late.id.clone(), s.replaced.1.clone()));
                    let changed = edges.iter().filter(|(g, r)| after[*g] != **r).count();
                    prop_assert_eq!(changed, 1);
                }
                Err(SpliceError::NoPlace(id)) => {
                    prop_assert_eq!(&id, &late.id);
                    let by_id = |id: &str| &ps[index(&ps, id)];
                    let fits = |(g, r): (&String, &String)| {
                        compatible(by_id(g), &late) && compatible(&late, by_id(r))
                    };
                    prop_assert!(!edges.iter().any(fits));
                }
                Err(other) => prop_assert!(false, "{}", other),
            }
        }
    }
}
