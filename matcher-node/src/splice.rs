//! Late additions: a participant who registers after the match joins by splicing into one
//! gift A→B, which becomes A→L and L→B. Everyone else keeps their receiver (and their gift
//! ID): people may already have bought gifts.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use rand::seq::SliceRandom;
use rand::Rng;

use crate::constraints::{compatible, Participant};

/// The one gift replaced and the two that replace it, as (giver, receiver) ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    pub replaced: (String, String),
    pub added: [(String, String); 2],
}

impl Splice {
    /// Applies the splice to a giver→receiver map.
    pub fn apply(&self, edges: &mut BTreeMap<String, String>) {
        for (giver, receiver) in &self.added {
            edges.insert(giver.clone(), receiver.clone());
        }
    }
}

/// Why a late addition cannot be spliced in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpliceError {
    /// The participant already gives or receives in this assignment.
    AlreadyMatched(String),
    /// A gift names someone missing from the participants (inconsistent caller state).
    Unknown(String),
    /// No gift A→B with A→L and L→B both allowed.
    NoPlace(String),
}

impl fmt::Display for SpliceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpliceError::AlreadyMatched(id) => write!(f, "{id} is already in the assignment"),
            SpliceError::Unknown(id) => write!(f, "the assignment names unknown participant {id}"),
            SpliceError::NoPlace(id) => write!(
                f,
                "{id} fits nowhere: no gift A→B where A may give to {id} and {id} to B"
            ),
        }
    }
}

impl std::error::Error for SpliceError {}

/// Chooses at random among the gifts A→B where A may give to `late` and `late` to B.
///
/// A splice never creates a mutual pair: L is new, so only L→B⇄B→L or A→L⇄L→A could be
/// one, and that needs A = B. So a `no_mutual` exchange stays without mutual pairs.
pub fn splice(
    participants: &[Participant],
    edges: &BTreeMap<String, String>,
    late: &Participant,
    rng: &mut impl Rng,
) -> Result<Splice, SpliceError> {
    let by_id: HashMap<&str, &Participant> =
        participants.iter().map(|p| (p.id.as_str(), p)).collect();
    let find = |id: &str| {
        by_id
            .get(id)
            .copied()
            .ok_or_else(|| SpliceError::Unknown(id.into()))
    };
    let mut places: Vec<(&String, &String)> = Vec::new();
    for (a, b) in edges {
        if *a == late.id || *b == late.id {
            return Err(SpliceError::AlreadyMatched(late.id.clone()));
        }
        if compatible(find(a)?, late) && compatible(late, find(b)?) {
            places.push((a, b));
        }
    }
    let (a, b) = places
        .choose(rng)
        .ok_or_else(|| SpliceError::NoPlace(late.id.clone()))?;
    Ok(Splice {
        replaced: ((*a).clone(), (*b).clone()),
        added: [
            ((*a).clone(), late.id.clone()),
            (late.id.clone(), (*b).clone()),
        ],
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::constraints::Budget;

    fn person(id: &str, exclusions: &[&str]) -> Participant {
        Participant::for_test(id, exclusions, 0, 100)
    }

    fn ring() -> (Vec<Participant>, BTreeMap<String, String>) {
        let ps = vec![person("a", &[]), person("b", &[]), person("c", &[])];
        let edges = [("a", "b"), ("b", "c"), ("c", "a")]
            .iter()
            .map(|(g, r)| (g.to_string(), r.to_string()))
            .collect();
        (ps, edges)
    }

    fn pair(g: &str, r: &str) -> (String, String) {
        (g.into(), r.into())
    }

    #[test]
    fn a_splice_replaces_one_gift_with_two() {
        let (ps, mut edges) = ring();
        let late = person("l", &["a"]);
        // Only b→c allows b→l and l→c.
        let s = splice(&ps, &edges, &late, &mut StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(s.replaced, pair("b", "c"));
        assert_eq!(s.added, [pair("b", "l"), pair("l", "c")]);
        s.apply(&mut edges);
        let expected = [
            pair("a", "b"),
            pair("b", "l"),
            pair("c", "a"),
            pair("l", "c"),
        ];
        assert_eq!(edges, expected.into_iter().collect());
    }

    #[test]
    fn the_place_is_drawn_at_random() {
        let (ps, edges) = ring();
        let late = person("l", &[]);
        let places: BTreeSet<(String, String)> = (0..30)
            .map(|seed| splice(&ps, &edges, &late, &mut StdRng::seed_from_u64(seed)).unwrap())
            .map(|s| s.replaced)
            .collect();
        assert_eq!(places.len(), 3);
    }

    #[test]
    fn no_place_is_named() {
        let (ps, edges) = ring();
        let late = person("l", &["a", "b"]);
        let err = splice(&ps, &edges, &late, &mut StdRng::seed_from_u64(1)).unwrap_err();
        assert_eq!(err, SpliceError::NoPlace("l".into()));
        assert!(err.to_string().starts_with("l fits nowhere"));
        let rich = Participant {
            budget: Budget { min: 500, max: 600 },
            ..person("r", &[])
        };
        let err = splice(&ps, &edges, &rich, &mut StdRng::seed_from_u64(1)).unwrap_err();
        assert_eq!(err, SpliceError::NoPlace("r".into()));
    }

    #[test]
    fn an_exclusion_named_by_an_existing_participant_counts() {
        let (mut ps, edges) = ring();
        ps[0].exclusions.insert("l".into());
        ps[1].exclusions.insert("l".into());
        let err = splice(
            &ps,
            &edges,
            &person("l", &[]),
            &mut StdRng::seed_from_u64(1),
        );
        assert_eq!(err, Err(SpliceError::NoPlace("l".into())));
    }

    #[test]
    fn someone_already_matched_or_unknown_is_refused() {
        let (ps, edges) = ring();
        let err = splice(
            &ps,
            &edges,
            &person("b", &[]),
            &mut StdRng::seed_from_u64(1),
        );
        assert_eq!(err, Err(SpliceError::AlreadyMatched("b".into())));
        let err = splice(
            &ps[..2],
            &edges,
            &person("l", &[]),
            &mut StdRng::seed_from_u64(1),
        );
        assert_eq!(err, Err(SpliceError::Unknown("c".into())));
    }
}
