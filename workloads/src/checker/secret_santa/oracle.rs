//! Feasibility, judged by the checker's own small search (never the matcher's code: an
//! oracle that shares the node's code shares its bugs). Kuhn's augmenting paths decide
//! whether a perfect giver→receiver matching exists, exactly; with `no_mutual` a bounded
//! depth-first search looks for an assignment without mutual pairs, and says so when it
//! gives up.

use super::model::{Model, Registration};
use super::Property;
use crate::edn::Edn;

/// Steps of the `no_mutual` search before it gives up.
const SEARCH_BUDGET: usize = 200_000;

/// One participant's constraints.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub exclusions: Vec<String>,
    pub budget: Option<(i64, i64)>,
}

/// The protocol's rule: not oneself, neither excludes the other, budgets overlap.
pub fn compatible(g: &Person, r: &Person) -> bool {
    let overlap = match (g.budget, r.budget) {
        (Some((gmin, gmax)), Some((rmin, rmax))) => gmin <= rmax && rmin <= gmax,
        _ => true,
    };
    g.id != r.id && !g.exclusions.contains(&r.id) && !r.exclusions.contains(&g.id) && overlap
}

/// What the search concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Feasible,
    Infeasible,
    /// The `no_mutual` search ran out of budget.
    GaveUp,
}

fn graph(people: &[Person]) -> Vec<Vec<usize>> {
    people
        .iter()
        .map(|g| {
            (0..people.len())
                .filter(|&j| compatible(g, &people[j]))
                .collect()
        })
        .collect()
}

/// Kuhn's algorithm: a receiver for every giver, if one exists.
fn perfect_matching(adj: &[Vec<usize>]) -> Option<Vec<usize>> {
    fn augment(
        g: usize,
        adj: &[Vec<usize>],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for &r in &adj[g] {
            if !seen[r] {
                seen[r] = true;
                if owner[r].map_or(true, |o| augment(o, adj, seen, owner)) {
                    owner[r] = Some(g);
                    return true;
                }
            }
        }
        false
    }
    let n = adj.len();
    let mut owner = vec![None; n];
    for g in 0..n {
        if !augment(g, adj, &mut vec![false; n], &mut owner) {
            return None;
        }
    }
    let mut to = vec![0; n];
    for (r, g) in owner.iter().enumerate() {
        to[g.expect("every receiver is taken in a perfect matching")] = r;
    }
    Some(to)
}

/// Depth-first search for an assignment without mutual pairs, most constrained giver first.
fn no_mutual_search(adj: &[Vec<usize>]) -> Verdict {
    struct S<'a> {
        adj: &'a [Vec<usize>],
        to: Vec<Option<usize>>,
        taken: Vec<bool>,
        steps: usize,
    }
    fn go(s: &mut S, order: &[usize], k: usize) -> Option<bool> {
        s.steps += 1;
        if s.steps > SEARCH_BUDGET {
            return None;
        }
        let Some(&g) = order.get(k) else {
            return Some(true);
        };
        for &r in &s.adj[g] {
            if s.taken[r] || s.to[r] == Some(g) {
                continue;
            }
            s.taken[r] = true;
            s.to[g] = Some(r);
            match go(s, order, k + 1) {
                Some(false) => {}
                other => return other,
            }
            s.taken[r] = false;
            s.to[g] = None;
        }
        Some(false)
    }
    let mut order: Vec<usize> = (0..adj.len()).collect();
    order.sort_by_key(|&g| adj[g].len());
    let n = adj.len();
    let mut s = S {
        adj,
        to: vec![None; n],
        taken: vec![false; n],
        steps: 0,
    };
    match go(&mut s, &order, 0) {
        Some(true) => Verdict::Feasible,
        Some(false) => Verdict::Infeasible,
        None => Verdict::GaveUp,
    }
}

/// Whether the participants can be matched (without mutual pairs when asked).
pub fn decide(people: &[Person], no_mutual: bool) -> Verdict {
    if people.len() < 2 {
        return Verdict::Infeasible;
    }
    let adj = graph(people);
    if perfect_matching(&adj).is_none() {
        return Verdict::Infeasible;
    }
    if no_mutual {
        no_mutual_search(&adj)
    } else {
        Verdict::Feasible
    }
}

/// The exact set of registrations a match saw, when the history proves it: every
/// registration of the exchange invoked before the match completed was acknowledged (or
/// surely refused) before the match was invoked.
fn certain_set<'a>(model: &'a Model, m: &super::model::Match) -> Option<Vec<&'a Registration>> {
    let mut set: Vec<&Registration> = Vec::new();
    for r in model
        .registrations
        .iter()
        .filter(|r| r.exchange == m.exchange)
    {
        if r.span.invoke > m.span.complete {
            continue;
        }
        let surely_refused = r.span.outcome == crate::history::OpType::Fail;
        if !r.span.before(&m.span) || !(r.span.ok() || surely_refused) {
            return None;
        }
        if r.span.ok() {
            set.retain(|s| s.participant != r.participant);
            set.push(r);
        }
    }
    Some(set)
}

/// A match refused as infeasible (error 22) that the checker can match itself is an error.
pub fn feasibility(model: &Model) -> Property {
    let mut prop = Property::new("feasibility", &["refused-feasible"]);
    let (mut refused, mut judged, mut gave_up) = (0usize, 0usize, 0usize);
    for m in &model.matches {
        if m.span.outcome != crate::history::OpType::Fail
            || m.span.error.as_deref() != Some("precondition-failed")
        {
            continue;
        }
        refused += 1;
        let Some(set) = certain_set(model, m) else {
            continue;
        };
        let people: Vec<Person> = set
            .iter()
            .map(|r| Person {
                id: r.participant.clone(),
                exclusions: r.exclusions.clone(),
                budget: r.budget,
            })
            .collect();
        match decide(&people, m.no_mutual) {
            Verdict::Feasible => {
                judged += 1;
                let ex = Edn::map([
                    ("exchange", Edn::Str(m.exchange.clone())),
                    ("participants", Edn::from(people.len())),
                    ("no-mutual", Edn::Bool(m.no_mutual)),
                    ("op", m.span.example()),
                ]);
                prop.flag("refused-feasible", ex);
            }
            Verdict::Infeasible => judged += 1,
            Verdict::GaveUp => gave_up += 1,
        }
    }
    prop.note("refused", Edn::from(refused));
    prop.note("judged", Edn::from(judged));
    prop.note("search-gave-up", Edn::from(gave_up));
    prop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, excl: &[&str], budget: Option<(i64, i64)>) -> Person {
        Person {
            id: id.into(),
            exclusions: excl.iter().map(|s| s.to_string()).collect(),
            budget,
        }
    }

    #[test]
    fn the_designs_the_workload_calls_infeasible_are_and_others_are_not() {
        use Verdict::*;
        assert_eq!(decide(&[p("a", &[], None)], false), Infeasible);
        assert_eq!(
            decide(&[p("a", &["b"], None), p("b", &[], None)], false),
            Infeasible
        );
        assert_eq!(
            decide(&[p("a", &[], None), p("b", &[], None)], false),
            Feasible
        );
        assert_eq!(
            decide(&[p("a", &[], None), p("b", &[], None)], true),
            Infeasible
        );
        let three: Vec<Person> = ["a", "b", "c"].iter().map(|i| p(i, &[], None)).collect();
        assert_eq!(decide(&three, true), Feasible);
        let everyone = [
            p("a", &["b", "c"], None),
            p("b", &[], None),
            p("c", &[], None),
        ];
        assert_eq!(decide(&everyone, false), Infeasible);
        let budgets = [
            p("a", &[], Some((0, 10))),
            p("b", &[], Some((100, 200))),
            p("c", &[], Some((100, 200))),
        ];
        assert_eq!(decide(&budgets, false), Infeasible);
        // Hall's condition fails for a group: a and b may only give to c.
        let group = [
            p("a", &["b", "d"], None),
            p("b", &["a", "d"], None),
            p("c", &[], None),
            p("d", &[], None),
        ];
        assert_eq!(decide(&group, false), Infeasible);
    }

    #[test]
    fn kuhn_finds_a_permutation_that_keeps_every_constraint() {
        let people: Vec<Person> = (0..30)
            .map(|i| {
                let fam = i / 3;
                let excl: Vec<String> = (fam * 3..fam * 3 + 3)
                    .filter(|&j| j != i)
                    .map(|j| format!("p{j}"))
                    .collect();
                Person {
                    id: format!("p{i}"),
                    exclusions: excl,
                    budget: Some([(0, 2000), (1500, 5000), (4000, 9000)][i % 3]),
                }
            })
            .collect();
        let adj = graph(&people);
        let to = perfect_matching(&adj).expect("feasible");
        let mut seen = [false; 30];
        for (g, &r) in to.iter().enumerate() {
            assert!(compatible(&people[g], &people[r]) && !seen[r]);
            seen[r] = true;
        }
        assert_eq!(no_mutual_search(&adj), Verdict::Feasible);
    }
}
