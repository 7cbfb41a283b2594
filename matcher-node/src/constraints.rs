//! Participants and the one rule of who may give to whom.
//!
//! A registration arrives as loosely typed request fields ([`Registration`]) and becomes a
//! [`Participant`] only once every §2 reason to refuse it has been ruled out, so the rest of
//! the matcher never sees an empty id, a bad key or an upside-down budget.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::seal::{decode_key, KeyError};

/// A budget range in cents, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Budget {
    pub min: u64,
    pub max: u64,
}

impl Budget {
    /// Any amount: the budget of a registration that names none.
    pub const ANY: Budget = Budget {
        min: 0,
        max: u64::MAX,
    };

    /// Two people can agree on a gift's price when their ranges share an amount.
    pub fn overlaps(&self, other: &Budget) -> bool {
        self.min <= other.max && other.min <= self.max
    }
}

/// A validated participant of one exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub id: String,
    pub public_key: [u8; 32],
    /// Ids this participant neither gives to nor receives from; may name strangers.
    pub exclusions: BTreeSet<String>,
    pub budget: Budget,
    pub region: u32,
    /// The gift to this participant gets the queue's `nice-child` priority.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nice_child: bool,
}

#[cfg(test)]
impl Participant {
    /// A participant for tests: a zero key, region 0, budget `min..=max`.
    pub(crate) fn for_test(id: &str, exclusions: &[&str], min: u64, max: u64) -> Participant {
        Participant {
            id: id.into(),
            public_key: [0; 32],
            exclusions: exclusions.iter().map(|s| s.to_string()).collect(),
            budget: Budget { min, max },
            region: 0,
            nice_child: false,
        }
    }
}

/// The budget as the request carries it: signed, so a negative amount can be named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawBudget {
    pub min: i64,
    pub max: i64,
}

/// The fields of a `register` request, before validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub participant: String,
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(default)]
    pub exclusions: Option<Vec<String>>,
    #[serde(default)]
    pub budget: Option<RawBudget>,
    /// Kept loose so that a string or a fraction gets a reason, not a parse error.
    #[serde(default)]
    pub region: Option<serde_json::Value>,
    #[serde(default)]
    pub nice_child: Option<bool>,
}

/// Why a registration is refused (error 12 with this text as the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    EmptyId,
    MissingKey,
    Key(KeyError),
    NegativeAmount(i64),
    MinAboveMax { min: i64, max: i64 },
    ExcludesSelf,
    EmptyExclusion,
    Region { given: String, regions: u32 },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::EmptyId => write!(f, "participant id is empty"),
            Invalid::MissingKey => write!(f, "public_key is missing"),
            Invalid::Key(e) => write!(f, "{e}"),
            Invalid::NegativeAmount(a) => write!(f, "budget amount {a} is negative"),
            Invalid::MinAboveMax { min, max } => {
                write!(f, "budget min {min} is above max {max}")
            }
            Invalid::ExcludesSelf => write!(f, "a participant cannot exclude itself"),
            Invalid::EmptyExclusion => write!(f, "an excluded id is empty"),
            Invalid::Region { given, regions } => write!(
                f,
                "region {given} is not an integer in 0..{}",
                regions.saturating_sub(1)
            ),
        }
    }
}

impl std::error::Error for Invalid {}

impl Registration {
    /// Checks every field; a participant without a region lives in its id's home region.
    pub fn validate(self, regions: u32) -> Result<Participant, Invalid> {
        if self.participant.is_empty() {
            return Err(Invalid::EmptyId);
        }
        let key = self.public_key.as_deref().ok_or(Invalid::MissingKey)?;
        let public_key = decode_key(key).map_err(Invalid::Key)?;
        let budget = match self.budget {
            None => Budget::ANY,
            Some(raw) => validate_budget(raw)?,
        };
        let exclusions: BTreeSet<String> =
            self.exclusions.unwrap_or_default().into_iter().collect();
        if exclusions.contains(&self.participant) {
            return Err(Invalid::ExcludesSelf);
        }
        if exclusions.contains("") {
            return Err(Invalid::EmptyExclusion);
        }
        let region = match &self.region {
            None => home_region(&self.participant, regions),
            Some(value) => validate_region(value, regions)?,
        };
        Ok(Participant {
            id: self.participant,
            public_key,
            exclusions,
            budget,
            region,
            nice_child: self.nice_child.unwrap_or(false),
        })
    }
}

fn validate_budget(raw: RawBudget) -> Result<Budget, Invalid> {
    for amount in [raw.min, raw.max] {
        if amount < 0 {
            return Err(Invalid::NegativeAmount(amount));
        }
    }
    if raw.min > raw.max {
        return Err(Invalid::MinAboveMax {
            min: raw.min,
            max: raw.max,
        });
    }
    Ok(Budget {
        min: raw.min as u64,
        max: raw.max as u64,
    })
}

fn validate_region(value: &serde_json::Value, regions: u32) -> Result<u32, Invalid> {
    value
        .as_u64()
        .filter(|r| *r < u64::from(regions))
        .map(|r| r as u32)
        .ok_or_else(|| Invalid::Region {
            given: value.to_string(),
            regions,
        })
}

/// The region of a participant that names none: a hash of its id that every node and
/// every build computes alike (FNV-1a, not the std hasher, whose seed may change).
pub fn home_region(id: &str, regions: u32) -> u32 {
    let hash = maelstrom_core::stable_hash(id.as_bytes());
    (hash % u64::from(regions.max(1))) as u32
}

/// Whether `giver` may give to `receiver`: not to oneself, no exclusion either way (a
/// family excludes each other), and budgets that share an amount.
pub fn compatible(giver: &Participant, receiver: &Participant) -> bool {
    giver.id != receiver.id
        && !giver.exclusions.contains(&receiver.id)
        && !receiver.exclusions.contains(&giver.id)
        && giver.budget.overlaps(&receiver.budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    fn registration(fields: serde_json::Value) -> Registration {
        let mut base = json!({"participant": "alice", "public_key": KEY});
        for (k, v) in fields.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn refused(fields: serde_json::Value) -> Invalid {
        registration(fields).validate(3).unwrap_err()
    }

    fn person(id: &str, exclusions: &[&str], min: u64, max: u64) -> Participant {
        Participant::for_test(id, exclusions, min, max)
    }

    #[test]
    fn a_minimal_registration_gets_defaults() {
        let p = registration(json!({})).validate(3).unwrap();
        assert_eq!(p.budget, Budget::ANY);
        assert!(p.exclusions.is_empty());
        assert_eq!(p.region, home_region("alice", 3));
        assert_eq!(p.public_key, [0; 32]);
    }

    #[test]
    fn every_field_is_kept() {
        let p = registration(json!({"exclusions": ["bob", "bob", "carol"],
            "budget": {"min": 1000, "max": 2500}, "region": 2}))
        .validate(3)
        .unwrap();
        assert_eq!(p.exclusions.len(), 2);
        assert_eq!(
            p.budget,
            Budget {
                min: 1000,
                max: 2500
            }
        );
        assert_eq!(p.region, 2);
    }

    #[test]
    fn each_reason_is_named() {
        assert_eq!(refused(json!({"participant": ""})), Invalid::EmptyId);
        assert_eq!(refused(json!({"public_key": null})), Invalid::MissingKey);
        assert_eq!(
            refused(json!({"public_key": "@@"})),
            Invalid::Key(KeyError::Undecodable)
        );
        assert_eq!(
            refused(json!({"public_key": "AAAA"})),
            Invalid::Key(KeyError::Length(3))
        );
        let negative = json!({"budget": {"min": -5, "max": 10}});
        assert_eq!(refused(negative), Invalid::NegativeAmount(-5));
        let upside_down = json!({"budget": {"min": 10, "max": 5}});
        assert_eq!(
            refused(upside_down),
            Invalid::MinAboveMax { min: 10, max: 5 }
        );
        assert_eq!(
            refused(json!({"exclusions": ["alice"]})),
            Invalid::ExcludesSelf
        );
        assert_eq!(
            refused(json!({"exclusions": [""]})),
            Invalid::EmptyExclusion
        );
        for region in [json!(3), json!(-1), json!(1.5), json!("1")] {
            assert!(matches!(
                refused(json!({ "region": region })),
                Invalid::Region { .. }
            ));
        }
        let text = refused(json!({"budget": {"min": 10, "max": 5}})).to_string();
        assert_eq!(text, "budget min 10 is above max 5");
    }

    #[test]
    fn home_regions_are_stable_and_spread() {
        assert_eq!(home_region("alice", 5), home_region("alice", 5));
        let used: BTreeSet<u32> = (0..100).map(|i| home_region(&format!("p{i}"), 5)).collect();
        assert_eq!(used.len(), 5);
        assert_eq!(home_region("alice", 0), 0);
    }

    #[test]
    fn nobody_gives_to_themselves() {
        let a = person("a", &[], 0, 10);
        assert!(!compatible(&a, &a));
    }

    #[test]
    fn exclusions_work_both_ways_and_may_name_strangers() {
        let a = person("a", &["b", "ghost"], 0, 10);
        let b = person("b", &[], 0, 10);
        let c = person("c", &["nobody"], 0, 10);
        assert!(!compatible(&a, &b));
        assert!(!compatible(&b, &a));
        assert!(compatible(&a, &c) && compatible(&c, &a));
    }

    #[test]
    fn budgets_must_share_an_amount() {
        let low = person("low", &[], 0, 10);
        let edge = person("edge", &[], 10, 20);
        let high = person("high", &[], 11, 20);
        assert!(compatible(&low, &edge) && compatible(&edge, &low));
        assert!(!compatible(&low, &high) && !compatible(&high, &low));
        assert!(compatible(&edge, &high));
    }
}
