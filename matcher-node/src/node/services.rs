//! The requests the matcher makes to the other services of its cluster and the replies it
//! reads, as those services define them: `generate_batch` (giftid), `enqueue`, `cancel`
//! and `status` (queue). Unknown reply fields are tolerated.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sm::{Priority, STAGES};

/// Deliveries a production task may have: elves nack and abandon, and a gift must not
/// end in the dead-letter queue.
pub const MAX_ATTEMPTS: u32 = 1000;

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request<'a> {
    GenerateBatch { count: usize },
    Enqueue { task: TaskSpec<'a> },
    Cancel { id: String },
    Status { id: String },
}

impl Request<'_> {
    pub fn body(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A production task as the queue takes it.
#[derive(Debug, Serialize)]
pub struct TaskSpec<'a> {
    pub id: String,
    pub kind: &'static str,
    pub priority: Priority,
    pub deps: Vec<String>,
    pub payload: TaskPayload<'a>,
    pub max_attempts: u32,
}

#[derive(Debug, Serialize)]
pub struct TaskPayload<'a> {
    pub gift_id: u64,
    pub exchange: &'a str,
    pub epoch: u64,
}

/// The replies, named as the services name them.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    GenerateBatchOk {
        ids: Vec<u64>,
    },
    /// A new task or a duplicate (`duplicate: true`): success either way.
    EnqueueOk {},
    /// Cancelled, or left alone because it started or ended: done either way.
    CancelOk {},
    StatusOk {
        status: String,
    },
}

/// The id of gift `gift_id`'s task of stage `stage` (an index into [`STAGES`]).
pub fn task_id(gift_id: u64, stage: usize) -> String {
    format!("{gift_id}-{}", STAGES[stage])
}

/// The enqueue of gift `gift_id`'s task of stage `stage`: it depends on the stage before.
pub fn enqueue<'a>(
    gift_id: u64,
    stage: usize,
    priority: Priority,
    exchange: &'a str,
    epoch: u64,
) -> Request<'a> {
    Request::Enqueue {
        task: TaskSpec {
            id: task_id(gift_id, stage),
            kind: STAGES[stage],
            priority,
            deps: (stage > 0)
                .then(|| task_id(gift_id, stage - 1))
                .into_iter()
                .collect(),
            payload: TaskPayload {
                gift_id,
                exchange,
                epoch,
            },
            max_attempts: MAX_ATTEMPTS,
        },
    }
}

/// A gift's stage from its four tasks' statuses, in stage order: the kind of the first
/// not completed, `cancelled` if that one was cancelled, `packaged` when all completed.
pub fn stage_of(statuses: &[String]) -> &'static str {
    for (stage, status) in statuses.iter().enumerate() {
        match status.as_str() {
            "completed" => continue,
            "cancelled" => return "cancelled",
            _ => return STAGES[stage],
        }
    }
    "packaged"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_enqueue_is_the_contract_s_task() {
        let body = enqueue(7, 2, Priority::NiceChild, "x", 3).body();
        assert_eq!(
            body,
            json!({"type": "enqueue", "task": {"id": "7-quality-check", "kind": "quality-check",
                "priority": "nice-child", "deps": ["7-painting"],
                "payload": {"gift_id": 7, "exchange": "x", "epoch": 3}, "max_attempts": 1000}})
        );
        let first = enqueue(7, 0, Priority::Express, "x", 3).body();
        assert_eq!(first["task"]["deps"], json!([]));
        assert_eq!(first["task"]["priority"], "express");
    }

    #[test]
    fn the_stage_is_the_first_task_not_completed() {
        let s = |v: &[&str]| stage_of(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&["pending", "pending", "pending", "pending"]), "assembly");
        assert_eq!(
            s(&["completed", "in_progress", "pending", "pending"]),
            "painting"
        );
        assert_eq!(s(&["completed"; 4]), "packaged");
        assert_eq!(
            s(&["cancelled", "pending", "pending", "pending"]),
            "cancelled"
        );
    }
}
