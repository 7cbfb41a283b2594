//! Feasibility first, then a random valid assignment.
//!
//! Without `no_mutual` the answer is exact: a perfect matching in the giver→receiver
//! compatibility graph exists or it does not, and when it does not, the reason names who
//! cannot be placed. With `no_mutual` it is exact up to [`EXACT_UP_TO`] participants;
//! above that, a bounded search that may give up ([`Infeasible::GaveUp`]).

mod graph;
mod matching;
mod mutual;

use std::fmt;

use rand::Rng;

use crate::constraints::{compatible, Participant};
use graph::Graph;
pub use mutual::EXACT_UP_TO;

/// Fresh random matchings tried for a `no_mutual` assignment before giving up.
pub const MUTUAL_ATTEMPTS: usize = 4;
/// Names shown in a reason before "and N more".
const NAMES_SHOWN: usize = 8;

/// Who gives to whom: `receiver_of[i]` is the index of participant i's receiver, in the
/// order the participants were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub receiver_of: Vec<usize>,
}

impl Assignment {
    /// The gifts as (giver id, receiver id).
    pub fn edges<'a>(
        &'a self,
        participants: &'a [Participant],
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.receiver_of
            .iter()
            .enumerate()
            .map(|(g, &r)| (participants[g].id.as_str(), participants[r].id.as_str()))
    }

    /// Whether this is a permutation of `participants` in which every gift is allowed
    /// (and, when asked, nobody gives to the one who gives to them).
    pub fn is_valid(&self, participants: &[Participant], no_mutual: bool) -> bool {
        let n = participants.len();
        let mut received = vec![false; n];
        self.receiver_of.len() == n
            && self.receiver_of.iter().enumerate().all(|(g, &r)| {
                r < n
                    && !std::mem::replace(&mut received[r], true)
                    && compatible(&participants[g], &participants[r])
                    && !(no_mutual && self.receiver_of[r] == g)
            })
    }
}

/// Why an exchange cannot be matched; every variant names who is in the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Infeasible {
    /// Fewer than two participants: nobody to give to.
    TooFew { participants: Vec<String> },
    /// The same id twice (the caller's bookkeeping is wrong).
    DuplicateId(String),
    /// Nobody may give to this participant, nor receive from them.
    NoReceiver(String),
    /// These givers can only give to these receivers, and there are fewer receivers.
    Crowded {
        givers: Vec<String>,
        receivers: Vec<String>,
    },
    /// Every valid assignment has a mutual pair (settled exactly: small exchanges only).
    OnlyMutual { participants: Vec<String> },
    /// `no_mutual`: the bounded search found no assignment without mutual pairs.
    GaveUp { attempts: usize },
}

impl fmt::Display for Infeasible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Infeasible::TooFew { participants } => write!(
                f,
                "an exchange needs at least two participants, it has {} ({})",
                participants.len(),
                names(participants)
            ),
            Infeasible::DuplicateId(id) => write!(f, "participant {id} is listed twice"),
            Infeasible::NoReceiver(id) => {
                write!(f, "{id} cannot give to or receive from anyone")
            }
            Infeasible::Crowded { givers, receivers } => write!(
                f,
                "{} givers ({}) can only give to {} receivers ({})",
                givers.len(),
                names(givers),
                receivers.len(),
                names(receivers)
            ),
            Infeasible::OnlyMutual { participants } => write!(
                f,
                "every valid assignment of {} has a mutual pair",
                names(participants)
            ),
            Infeasible::GaveUp { attempts } => write!(
                f,
                "no assignment without mutual pairs found in {attempts} attempts \
                 (the search gave up; one may exist)"
            ),
        }
    }
}

impl std::error::Error for Infeasible {}

fn names(ids: &[String]) -> String {
    let shown = ids
        .iter()
        .take(NAMES_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match ids.len().saturating_sub(NAMES_SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// A random valid assignment of `participants` (distinct ids), or why there is none.
///
/// Feasibility and the draw are one search: the perfect matching starts from a random
/// greedy placement, so when it exists it is already a random valid assignment. With
/// `no_mutual`, each of up to [`MUTUAL_ATTEMPTS`] draws is rewired to remove mutual pairs.
pub fn assign(
    participants: &[Participant],
    no_mutual: bool,
    rng: &mut impl Rng,
) -> Result<Assignment, Infeasible> {
    let ids = |list: &[u32]| -> Vec<String> {
        let mut ids: Vec<String> = list
            .iter()
            .map(|&i| participants[i as usize].id.clone())
            .collect();
        ids.sort();
        ids
    };
    if participants.len() < 2 {
        let participants = participants.iter().map(|p| p.id.clone()).collect();
        return Err(Infeasible::TooFew { participants });
    }
    let graph = Graph::new(participants).map_err(Infeasible::DuplicateId)?;
    let mut attempts = 0;
    loop {
        let m = matching::perfect(&graph, rng).map_err(|crowd| match crowd.receivers.len() {
            0 => Infeasible::NoReceiver(participants[crowd.givers[0] as usize].id.clone()),
            _ => Infeasible::Crowded {
                givers: ids(&crowd.givers),
                receivers: ids(&crowd.receivers),
            },
        })?;
        let mut receiver_of = m.receiver_of;
        attempts += 1;
        if !no_mutual || mutual::break_pairs(&graph, &mut receiver_of, rng) {
            return Ok(to_assignment(receiver_of));
        }
        if participants.len() <= EXACT_UP_TO {
            let all: Vec<u32> = (0..participants.len() as u32).collect();
            return mutual::exact(&graph, rng)
                .map(to_assignment)
                .ok_or_else(|| Infeasible::OnlyMutual {
                    participants: ids(&all),
                });
        }
        if attempts == MUTUAL_ATTEMPTS {
            return Err(Infeasible::GaveUp { attempts });
        }
    }
}

fn to_assignment(receiver_of: Vec<u32>) -> Assignment {
    Assignment {
        receiver_of: receiver_of.into_iter().map(|r| r as usize).collect(),
    }
}

#[cfg(test)]
mod tests;
