//! `:availability`: the share of client invocations that completed `:ok`, judged against
//! `--availability` (none: always valid; `total`: 1.0; or a fraction).

use super::{float32, Validity};
use crate::edn::Edn;
use crate::history::{History, OpType};
use std::fmt;
use std::str::FromStr;

/// Maelstrom's `--availability`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Availability {
    Unchecked,
    Total,
    Fraction(f64),
}

impl FromStr for Availability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nil" | "" => Ok(Availability::Unchecked),
            "total" => Ok(Availability::Total),
            _ => match s.parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) => Ok(Availability::Fraction(x)),
                _ => Err(format!("expected nil, total or a fraction 0–1, got {s:?}")),
            },
        }
    }
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Availability::Unchecked => f.write_str("nil"),
            Availability::Total => f.write_str("total"),
            Availability::Fraction(x) => write!(f, "{x}"),
        }
    }
}

impl Availability {
    /// The fraction of invocations that must succeed, if any.
    pub fn required(self) -> Option<f64> {
        match self {
            Availability::Unchecked => None,
            Availability::Total => Some(1.0),
            Availability::Fraction(x) => Some(x),
        }
    }
}

pub fn check(history: &History, required: Option<f64>) -> Edn {
    let invocations = history.invocations().count();
    let oks = history
        .completions()
        .filter(|op| op.op_type == OpType::Ok)
        .count();
    // With nothing asked, nothing was refused.
    let fraction = if invocations == 0 {
        1.0
    } else {
        oks as f64 / invocations as f64
    };
    let valid = match required {
        None => Validity::True,
        Some(req) if fraction >= req => Validity::True,
        Some(_) => Validity::False,
    };
    Edn::map([
        ("valid?", valid.to_edn()),
        ("ok-fraction", float32(fraction)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::tests_support::{complete, invoke};

    #[test]
    fn judges_the_ok_fraction_against_the_requirement() {
        let mut h = History::default();
        h.push(invoke(0, "generate", Edn::Nil));
        h.push(complete(0, OpType::Ok, "generate", Edn::Int(1)));
        h.push(invoke(0, "generate", Edn::Nil));
        h.push(complete(0, OpType::Info, "generate", Edn::Nil));
        let none = check(&h, None);
        assert_eq!(none.get("valid?"), Some(&Edn::Bool(true)));
        assert_eq!(none.get("ok-fraction"), Some(&Edn::Float(0.5)));
        assert_eq!(check(&h, Some(1.0)).get("valid?"), Some(&Edn::Bool(false)));
        assert_eq!(check(&h, Some(0.5)).get("valid?"), Some(&Edn::Bool(true)));
    }
}
