//! Why a run is invalid, read from its results: each failing checker with its count and
//! first example, so a reader need not dig through the results box for them.

use crate::edn::Edn;
use crate::report::shorten;

/// Longest example shown, in characters.
const EXAMPLE_CHARS: usize = 240;

/// One checker that judged the run invalid.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Where it sits in the results, such as `workload` or `stats / by-f / generate`.
    pub checker: String,
    /// Its count of bad things, such as `(duplicated-count, 62)`.
    pub count: Option<(String, i64)>,
    /// The first of them, or the checker's findings when it lists none.
    pub example: Option<String>,
}

/// The failing checkers of `results`, innermost first found: a checker whose failing parts
/// are checkers themselves is represented by those parts.
pub fn failures(results: &Edn) -> Vec<Failure> {
    let mut out = Vec::new();
    walk(results, &mut Vec::new(), &mut out);
    out
}

fn fails(value: &Edn) -> bool {
    matches!(value.get("valid?"), Some(Edn::Bool(false)))
}

fn walk(map: &Edn, path: &mut Vec<String>, out: &mut Vec<Failure>) {
    let Edn::Map(entries) = map else { return };
    for (key, value) in entries {
        let container = matches!(value, Edn::Map(_)) && value.get("valid?").is_none();
        if !fails(value) && !container {
            continue;
        }
        // A failing checker, or a map of them (such as `:by-f` or `:results`).
        path.push(key_name(key));
        let before = out.len();
        walk(value, path, out);
        if out.len() == before && !container {
            out.push(describe(path.join(" / "), value));
        }
        path.pop();
    }
}

fn key_name(key: &Edn) -> String {
    match key {
        Edn::Keyword(k) | Edn::Str(k) => k.clone(),
        other => other.to_compact(),
    }
}

/// A checker's `X-count` paired with its list `X`; otherwise its findings as a whole.
fn describe(checker: String, map: &Edn) -> Failure {
    let Edn::Map(entries) = map else {
        return Failure {
            checker,
            count: None,
            example: None,
        };
    };
    for (key, value) in entries {
        let (Edn::Keyword(name), Some(n)) = (key, value.as_i64()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix("-count") else {
            continue;
        };
        if let Some(first) = map.get(stem).and_then(first_of) {
            return Failure {
                checker,
                count: Some((name.clone(), n)),
                example: Some(shorten(&first, EXAMPLE_CHARS)),
            };
        }
    }
    let findings: Vec<(Edn, Edn)> = entries
        .iter()
        .filter(|(k, _)| key_name(k) != "valid?")
        .cloned()
        .collect();
    Failure {
        checker,
        count: None,
        example: (!findings.is_empty())
            .then(|| shorten(&Edn::Map(findings).to_compact(), EXAMPLE_CHARS)),
    }
}

/// The first element of a non-empty collection, as text (`key value` for a map).
fn first_of(value: &Edn) -> Option<String> {
    match value {
        Edn::Map(entries) => entries
            .first()
            .map(|(k, v)| format!("{} {}", k.to_compact(), v.to_compact())),
        other => other.elements()?.first().map(Edn::to_compact),
    }
}

/// One line: `workload: duplicated-count 62, first 14 3`.
pub fn line(f: &Failure) -> String {
    let mut text = f.checker.clone();
    if let Some((name, n)) = &f.count {
        text.push_str(&format!(": {name} {n}"));
    }
    if let Some(example) = &f.example {
        let sep = if f.count.is_some() { ", first " } else { ": " };
        text.push_str(sep);
        text.push_str(example);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_failing_checker_its_count_and_first_example() {
        let results = Edn::parse(
            "{:stats {:valid? true, :count 244}, \
              :workload {:valid? false, :attempted-count 244, :duplicated-count 62, \
                         :duplicated {14 3, 15 3}}, \
              :valid? false}",
        )
        .unwrap();
        let found = failures(&results);
        assert_eq!(
            found,
            [Failure {
                checker: "workload".into(),
                count: Some(("duplicated-count".into(), 62)),
                example: Some("14 3".into()),
            }]
        );
        assert_eq!(line(&found[0]), "workload: duplicated-count 62, first 14 3");
    }

    #[test]
    fn nested_checkers_are_named_by_path_and_findings_stand_in_for_a_list() {
        let results = Edn::parse(
            "{:stats {:valid? false, :count 6, :ok-count 0, \
                      :by-f {:generate {:valid? false, :count 6, :ok-count 0}}}, \
              :workload {:valid? false, :lost-count 2, :lost #{3 4}, :stable-count 9}, \
              :valid? false}",
        )
        .unwrap();
        let lines: Vec<String> = failures(&results).iter().map(line).collect();
        assert_eq!(
            lines,
            [
                "stats / by-f / generate: {:count 6, :ok-count 0}",
                "workload: lost-count 2, first 3",
            ]
        );
        let lin = Edn::parse(
            "{:workload {:valid? false, :results {0 {:linearizable {:valid? false, \
              :op {:f :read}}, :timeline {:valid? true}, :valid? false}}, :failures [0]}}",
        )
        .unwrap();
        let lines: Vec<String> = failures(&lin).iter().map(line).collect();
        assert_eq!(
            lines,
            ["workload / results / 0 / linearizable: {:op {:f :read}}"]
        );
        let valid = Edn::parse("{:workload {:valid? true}, :valid? true}").unwrap();
        assert!(failures(&valid).is_empty());
    }
}
