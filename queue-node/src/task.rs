//! What a task is, as producers describe it and as the queue tracks it.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A task's id: a 64-bit gift ID, or any string the producer guarantees unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum TaskId {
    Num(u64),
    Str(String),
}

/// By hand rather than `untagged`, which buffers every value before trying each variant:
/// ids are decoded in every log entry a follower receives.
impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = TaskId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a task id: an unsigned 64-bit integer or a string")
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<TaskId, E> {
                Ok(TaskId::Num(n))
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<TaskId, E> {
                Ok(TaskId::Str(s.to_string()))
            }
        }

        d.deserialize_any(Visitor)
    }
}

impl TaskId {
    /// The partition of `partitions` that owns this id: FNV-1a of its JSON text, so that a
    /// number and the string of its digits are different tasks in different places.
    pub fn partition(&self, partitions: u32) -> u32 {
        let text = match self {
            TaskId::Num(n) => n.to_string(),
            TaskId::Str(s) => format!("\"{s}\""),
        };
        let hash = maelstrom_core::stable_hash(text.as_bytes());
        (hash % u64::from(partitions.max(1))) as u32
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskId::Num(n) => write!(f, "{n}"),
            TaskId::Str(s) => write!(f, "{s:?}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Assembly,
    Painting,
    QualityCheck,
    Packaging,
}

/// Served in declaration order: express (Dec 24) first, the nice-child bonus last.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    Express,
    #[default]
    Standard,
    NiceChild,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Express, Priority::Standard, Priority::NiceChild];

    pub fn rank(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its dependencies or for a consumer.
    Pending,
    /// Handed out under a lease.
    Assigned,
    /// Handed out, and the consumer said it started.
    InProgress,
    Completed,
    /// Out of attempts: in the dead-letter queue.
    Failed,
    /// Its deadline passed before it completed.
    Expired,
    /// Withdrawn by a `cancel` before anyone started it: never handed out again, and
    /// never replayed.
    Cancelled,
}

impl Status {
    /// Whether nothing more happens to the task (short of a replay of a failed one).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Failed | Status::Expired | Status::Cancelled
        )
    }
}

fn default_attempts() -> u32 {
    3
}

/// A task as a producer submits it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub id: TaskId,
    pub kind: Kind,
    #[serde(default)]
    pub priority: Priority,
    /// Tasks that must complete first; each must have been enqueued before this one, which
    /// keeps the graph acyclic by construction.
    #[serde(default)]
    pub deps: Vec<TaskId>,
    #[serde(default)]
    pub payload: Value,
    /// Deliveries allowed before the task is dead-lettered.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Unix milliseconds after which an unfinished task expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
}

/// A lease: who holds the task, for which attempt, until when (leader wall-clock ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub attempt: u32,
    pub until: u64,
    pub consumer: String,
}

/// A task as a partition tracks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub spec: TaskSpec,
    pub status: Status,
    /// Deliveries so far in this epoch (a replay starts a new one).
    pub attempts: u32,
    pub lease: Option<Lease>,
    /// Dependencies not completed yet.
    pub waiting: BTreeSet<TaskId>,
    /// Enqueue order within the partition: first come, first served within a priority.
    pub seq: u64,
    pub enqueued_at: u64,
}

impl Task {
    pub fn is_ready(&self) -> bool {
        self.status == Status::Pending && self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unsigned_integers_or_strings_and_nothing_else() {
        let id: TaskId = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(id, TaskId::Num(u64::MAX));
        let id: TaskId = serde_json::from_str("\"gift-7\"").unwrap();
        assert_eq!(id, TaskId::Str("gift-7".into()));
        for bad in ["-1", "1.5", "null", "[1]", "{}"] {
            let err = serde_json::from_str::<TaskId>(bad).unwrap_err().to_string();
            assert!(err.contains("task id"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_number_and_its_digits_are_different_tasks() {
        let spread = |id: TaskId| (0..64).map(|p| id.partition(p + 1)).collect::<Vec<_>>();
        assert_ne!(spread(TaskId::Num(42)), spread(TaskId::Str("42".into())));
        assert_eq!(
            TaskId::Num(42).partition(0),
            0,
            "no partitions is one partition"
        );
    }

    #[test]
    fn a_spec_needs_an_id_and_a_kind_and_defaults_the_rest() {
        let spec: TaskSpec = serde_json::from_str(r#"{"id": 1, "kind": "painting", "extra": 1}"#)
            .expect("unknown fields are tolerated");
        assert_eq!(spec.priority, Priority::Standard);
        assert_eq!(spec.max_attempts, 3);
        assert!(spec.deps.is_empty());
        assert!(serde_json::from_str::<TaskSpec>(r#"{"id": 1}"#).is_err());
        assert!(serde_json::from_str::<TaskSpec>(r#"{"id": 1, "kind": "baking"}"#).is_err());
    }
}
