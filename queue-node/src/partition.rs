//! One partition's replicated state machine.
//!
//! Every change is a [`Cmd`] that went through the partition's Raft log, and applying it is
//! deterministic: times come inside the command (the proposing leader's clock), never from
//! the replica applying it, so every replica reaches the same statuses, leases and
//! dead-letter queue. The indexes (ready queue by priority, leases by expiry, deadlines,
//! reverse dependencies) are rebuilt from the tasks after a snapshot is installed.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap as HashMap;

use serde::{Deserialize, Serialize};

use crate::task::{Lease, Priority, Status, Task, TaskId, TaskSpec};

/// A change to a partition, as it travels in the log. Externally tagged: followers decode
/// it without buffering each entry first, as an internal tag would make serde do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmd {
    /// `remote` lists the dependencies in other partitions that the leader found to exist
    /// before proposing, with whether each had completed.
    Enqueue {
        task: TaskSpec,
        #[serde(default)]
        remote: Vec<(TaskId, bool)>,
        now: u64,
    },
    Poll {
        max: u32,
        consumer: String,
        now: u64,
        lease_ms: u64,
        /// Taken by a node that does not lead this partition.
        stolen: bool,
    },
    Start {
        id: TaskId,
        attempt: u32,
        now: u64,
        lease_ms: u64,
    },
    Ack {
        id: TaskId,
        attempt: u32,
        now: u64,
    },
    Nack {
        id: TaskId,
        attempt: u32,
    },
    /// A nack that gives the attempt back instead of using it up: the task returns to the
    /// queue as if never handed out (the `nack-refund` flaw).
    Refund {
        id: TaskId,
        attempt: u32,
    },
    /// Expires every lease and deadline due by `now`.
    Tick {
        now: u64,
    },
    /// Expires exactly these leases: what a leader that keeps lease timers only in its own
    /// memory proposes (the `forget-leases` flaw).
    Expire {
        leases: Vec<(TaskId, u32)>,
    },
    /// Dependencies in other partitions that completed.
    DepsDone {
        ids: Vec<TaskId>,
    },
    Replay {
        id: TaskId,
    },
    /// Withdraws a task nobody started yet (pending or assigned).
    Cancel {
        id: TaskId,
    },
}

/// A task handed out by a poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: TaskId,
    pub kind: crate::task::Kind,
    pub priority: Priority,
    pub attempt: u32,
    pub max_attempts: u32,
    pub payload: serde_json::Value,
    pub partition: u32,
    pub stolen: bool,
    pub lease_until: u64,
}

/// Why a command changed nothing; the code is Maelstrom's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: maelstrom_core::ErrorCode,
    pub text: String,
}

impl Refusal {
    fn new(code: maelstrom_core::ErrorCode, text: impl Into<String>) -> Self {
        Refusal {
            code,
            text: text.into(),
        }
    }
}

/// What applying a command did, for the client that asked; kept in its client's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Enqueued {
        id: TaskId,
        duplicate: bool,
    },
    Polled(Vec<Delivery>),
    Started,
    Acked {
        duplicate: bool,
    },
    Nacked {
        dead_lettered: bool,
    },
    Replayed,
    /// Whether the `cancel` withdrew the task (false: it had started or ended already).
    Cancelled {
        cancelled: bool,
    },
    Done,
    Refused(Refusal),
}

/// A task's status as a `status` request reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub status: Status,
    pub attempts: u32,
    pub max_attempts: u32,
    pub blocked_by: Vec<TaskId>,
}

/// Sizes for health reports and the work-stealing gossip.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Depths {
    /// Ready tasks by priority rank.
    pub ready: [u32; 3],
    /// Pending tasks waiting for dependencies.
    pub blocked: u32,
    pub leased: u32,
    pub dead_lettered: u32,
    pub completed: u64,
    /// Tasks withdrawn by `cancel`.
    #[serde(default)]
    pub cancelled: u32,
}

impl Depths {
    pub fn ready_total(&self) -> u32 {
        self.ready.iter().sum()
    }

    /// The rank of the most urgent ready priority, if any is ready.
    pub fn best(&self) -> Option<usize> {
        self.ready.iter().position(|&n| n > 0)
    }
}

/// The state of one partition.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Partition {
    pub index: u32,
    pub partitions: u32,
    /// Stored as a list: JSON object keys are strings, and ids are numbers or strings.
    #[serde(with = "task_list")]
    tasks: HashMap<TaskId, Task>,
    next_seq: u64,
    completed: u64,
    #[serde(skip)]
    ready: BTreeMap<(Priority, u64), TaskId>,
    #[serde(skip)]
    leases: BTreeMap<(u64, u64), TaskId>,
    #[serde(skip)]
    deadlines: BTreeMap<(u64, u64), TaskId>,
    #[serde(skip)]
    dlq: BTreeMap<u64, TaskId>,
    /// Pending tasks waiting for dependencies.
    #[serde(skip)]
    blocked: u32,
    #[serde(skip)]
    ready_counts: [u32; 3],
    #[serde(skip)]
    cancelled: u32,
    /// Local dependency -> tasks waiting for it.
    #[serde(skip)]
    dependents: HashMap<TaskId, Vec<TaskId>>,
    /// Dependency in another partition -> tasks here waiting for it.
    #[serde(skip)]
    remote_waits: BTreeMap<TaskId, Vec<TaskId>>,
}

use maelstrom_core::ErrorCode;

impl Partition {
    pub fn new(index: u32, partitions: u32) -> Self {
        Partition {
            index,
            partitions,
            ..Partition::default()
        }
    }

    /// Restores a snapshot taken with `serde_json::to_value(&partition)`.
    pub fn from_snapshot(data: serde_json::Value) -> Result<Self, serde_json::Error> {
        let mut partition: Partition = serde_json::from_value(data)?;
        partition.rebuild();
        Ok(partition)
    }

    fn rebuild(&mut self) {
        let ids: Vec<TaskId> = self.tasks.keys().cloned().collect();
        for id in ids {
            self.index_task(&id);
            let task = &self.tasks[&id];
            for dep in task.waiting.clone() {
                self.wait_for(&id, dep);
            }
        }
    }

    fn is_local(&self, id: &TaskId) -> bool {
        id.partition(self.partitions) == self.index
    }

    fn wait_for(&mut self, id: &TaskId, dep: TaskId) {
        if self.is_local(&dep) {
            self.dependents.entry(dep).or_default().push(id.clone());
        } else {
            self.remote_waits.entry(dep).or_default().push(id.clone());
        }
    }

    /// Adds a task to the indexes its status calls for.
    fn index_task(&mut self, id: &TaskId) {
        let Some(task) = self.tasks.get(id) else {
            return;
        };
        let seq = task.seq;
        if task.is_ready() {
            self.ready.insert((task.spec.priority, seq), id.clone());
            self.ready_counts[task.spec.priority.rank()] += 1;
        } else if task.status == Status::Pending {
            self.blocked += 1;
        }
        if let Some(lease) = &task.lease {
            self.leases.insert((lease.until, seq), id.clone());
        }
        if task.status == Status::Failed {
            self.dlq.insert(seq, id.clone());
        }
        if task.status == Status::Cancelled {
            self.cancelled += 1;
        }
        if let (Some(deadline), false) = (task.spec.deadline, task.status.is_final()) {
            self.deadlines.insert((deadline, seq), id.clone());
        }
    }

    /// Removes a task from every index, before its status changes.
    fn unindex_task(&mut self, id: &TaskId) {
        let Some(task) = self.tasks.get(id) else {
            return;
        };
        let seq = task.seq;
        if self.ready.remove(&(task.spec.priority, seq)).is_some() {
            self.ready_counts[task.spec.priority.rank()] -= 1;
        } else if task.status == Status::Pending {
            self.blocked = self.blocked.saturating_sub(1);
        }
        if let Some(lease) = &task.lease {
            self.leases.remove(&(lease.until, seq));
        }
        self.dlq.remove(&seq);
        if task.status == Status::Cancelled {
            self.cancelled = self.cancelled.saturating_sub(1);
        }
        if let Some(deadline) = task.spec.deadline {
            self.deadlines.remove(&(deadline, seq));
        }
    }

    /// Changes one task through `change`, keeping the indexes true.
    fn update<R>(&mut self, id: &TaskId, change: impl FnOnce(&mut Task) -> R) -> Option<R> {
        self.unindex_task(id);
        let result = self.tasks.get_mut(id).map(change);
        self.index_task(id);
        result
    }

    pub fn apply(&mut self, cmd: Cmd) -> Outcome {
        match cmd {
            Cmd::Enqueue { task, remote, now } => self.enqueue(task, &remote, now),
            Cmd::Poll {
                max,
                consumer,
                now,
                lease_ms,
                stolen,
            } => Outcome::Polled(self.poll(max, &consumer, now, lease_ms, stolen)),
            Cmd::Start {
                id,
                attempt,
                now,
                lease_ms,
            } => self.start(&id, attempt, now, lease_ms),
            Cmd::Ack { id, attempt, now } => self.ack(&id, attempt, now),
            Cmd::Nack { id, attempt } => self.nack(&id, attempt),
            Cmd::Refund { id, attempt } => self.refund(&id, attempt),
            Cmd::Tick { now } => {
                self.expire(now);
                Outcome::Done
            }
            Cmd::Expire { leases } => {
                for (id, attempt) in leases {
                    if self.holds_lease(&id, attempt) {
                        self.fail_attempt(&id);
                    }
                }
                Outcome::Done
            }
            Cmd::DepsDone { ids } => {
                for dep in ids {
                    self.dependency_completed(&dep);
                }
                Outcome::Done
            }
            Cmd::Replay { id } => self.replay(&id),
            Cmd::Cancel { id } => self.cancel(&id),
        }
    }

    fn enqueue(&mut self, spec: TaskSpec, remote: &[(TaskId, bool)], now: u64) -> Outcome {
        if let Some(existing) = self.tasks.get(&spec.id) {
            return if existing.spec == spec {
                Outcome::Enqueued {
                    id: spec.id,
                    duplicate: true,
                }
            } else {
                Outcome::Refused(Refusal::new(
                    ErrorCode::PreconditionFailed,
                    format!("task {} exists with different content", spec.id),
                ))
            };
        }
        if spec.max_attempts == 0 {
            return Outcome::Refused(Refusal::new(
                ErrorCode::MalformedRequest,
                "max_attempts must be at least 1",
            ));
        }
        if spec.deps.contains(&spec.id) {
            return Outcome::Refused(Refusal::new(
                ErrorCode::PreconditionFailed,
                format!("dependency cycle: task {} depends on itself", spec.id),
            ));
        }
        let mut waiting = BTreeSet::new();
        for dep in &spec.deps {
            let completed = if self.is_local(dep) {
                self.tasks.get(dep).map(|t| t.status == Status::Completed)
            } else {
                remote
                    .iter()
                    .find(|(id, _)| id == dep)
                    .map(|(_, done)| *done)
            };
            match completed {
                None => {
                    return Outcome::Refused(Refusal::new(
                        ErrorCode::KeyDoesNotExist,
                        format!(
                        "unknown dependency {dep} of task {}: dependencies must be enqueued first",
                        spec.id
                    ),
                    ))
                }
                Some(false) => {
                    waiting.insert(dep.clone());
                }
                Some(true) => {}
            }
        }
        let id = spec.id.clone();
        let seq = self.next_seq;
        self.next_seq += 1;
        for dep in &waiting {
            self.wait_for(&id, dep.clone());
        }
        let status = match spec.deadline {
            Some(deadline) if deadline <= now => Status::Expired,
            _ => Status::Pending,
        };
        self.tasks.insert(
            id.clone(),
            Task {
                spec,
                status,
                attempts: 0,
                lease: None,
                waiting,
                seq,
                enqueued_at: now,
            },
        );
        self.index_task(&id);
        Outcome::Enqueued {
            id,
            duplicate: false,
        }
    }

    fn poll(
        &mut self,
        max: u32,
        consumer: &str,
        now: u64,
        lease_ms: u64,
        stolen: bool,
    ) -> Vec<Delivery> {
        let chosen: Vec<TaskId> = self.ready.values().take(max as usize).cloned().collect();
        let mut out = Vec::with_capacity(chosen.len());
        for id in chosen {
            let partition = self.index;
            let delivery = self.update(&id, |task| {
                task.attempts += 1;
                task.status = Status::Assigned;
                task.lease = Some(Lease {
                    attempt: task.attempts,
                    until: now + lease_ms,
                    consumer: consumer.to_string(),
                });
                Delivery {
                    id: task.spec.id.clone(),
                    kind: task.spec.kind,
                    priority: task.spec.priority,
                    attempt: task.attempts,
                    max_attempts: task.spec.max_attempts,
                    payload: task.spec.payload.clone(),
                    partition,
                    stolen,
                    lease_until: now + lease_ms,
                }
            });
            out.extend(delivery);
        }
        out
    }

    fn holds_lease(&self, id: &TaskId, attempt: u32) -> bool {
        self.tasks.get(id).is_some_and(|t| {
            matches!(t.status, Status::Assigned | Status::InProgress)
                && t.lease.as_ref().is_some_and(|l| l.attempt == attempt)
        })
    }

    fn lease_gone(&self, id: &TaskId, attempt: u32) -> Outcome {
        match self.tasks.get(id) {
            None => Outcome::Refused(Refusal::new(
                ErrorCode::KeyDoesNotExist,
                format!("unknown task {id}"),
            )),
            Some(task) if task.status == Status::Cancelled => Outcome::Refused(Refusal::new(
                ErrorCode::PreconditionFailed,
                format!("the lease of attempt {attempt} on task {id} is gone: the task was cancelled"),
            )),
            Some(task) => Outcome::Refused(Refusal::new(
                ErrorCode::PreconditionFailed,
                format!(
                    "the lease of attempt {attempt} on task {id} is gone: the task is {:?} at attempt {}",
                    task.status, task.attempts
                ),
            )),
        }
    }

    fn start(&mut self, id: &TaskId, attempt: u32, now: u64, lease_ms: u64) -> Outcome {
        if !self.holds_lease(id, attempt) {
            return self.lease_gone(id, attempt);
        }
        self.update(id, |task| {
            task.status = Status::InProgress;
            if let Some(lease) = &mut task.lease {
                lease.until = lease.until.max(now + lease_ms);
            }
        });
        Outcome::Started
    }

    fn ack(&mut self, id: &TaskId, attempt: u32, _now: u64) -> Outcome {
        if self.tasks.get(id).map(|t| t.status) == Some(Status::Completed) {
            return Outcome::Acked { duplicate: true };
        }
        if !self.holds_lease(id, attempt) {
            return self.lease_gone(id, attempt);
        }
        self.update(id, |task| {
            task.status = Status::Completed;
            task.lease = None;
        });
        self.completed += 1;
        self.dependency_completed(id);
        Outcome::Acked { duplicate: false }
    }

    fn nack(&mut self, id: &TaskId, attempt: u32) -> Outcome {
        if !self.holds_lease(id, attempt) {
            return self.lease_gone(id, attempt);
        }
        let dead_lettered = self.fail_attempt(id);
        Outcome::Nacked { dead_lettered }
    }

    /// The `nack-refund` flaw's nack: the attempt is not counted, so it is handed out again
    /// under the same number and never dead-lettered by nacks.
    fn refund(&mut self, id: &TaskId, attempt: u32) -> Outcome {
        if !self.holds_lease(id, attempt) {
            return self.lease_gone(id, attempt);
        }
        self.update(id, |task| {
            task.lease = None;
            task.attempts = task.attempts.saturating_sub(1);
            task.status = Status::Pending;
        });
        Outcome::Nacked {
            dead_lettered: false,
        }
    }

    /// Ends the current attempt unsuccessfully; true if that used up the budget.
    fn fail_attempt(&mut self, id: &TaskId) -> bool {
        self.update(id, |task| {
            task.lease = None;
            if task.attempts >= task.spec.max_attempts {
                task.status = Status::Failed;
                true
            } else {
                task.status = Status::Pending;
                false
            }
        })
        .unwrap_or(false)
    }

    /// Lets the tasks waiting for `dep` go, once it completed.
    fn dependency_completed(&mut self, dep: &TaskId) {
        let waiting = if self.is_local(dep) {
            self.dependents.remove(dep)
        } else {
            self.remote_waits.remove(dep)
        };
        for id in waiting.unwrap_or_default() {
            self.update(&id, |task| {
                task.waiting.remove(dep);
            });
        }
    }

    fn expire(&mut self, now: u64) {
        let due: Vec<TaskId> = self
            .leases
            .range(..=(now, u64::MAX))
            .map(|(_, id)| id.clone())
            .collect();
        for id in due {
            self.fail_attempt(&id);
        }
        let late: Vec<TaskId> = self
            .deadlines
            .range(..=(now, u64::MAX))
            .map(|(_, id)| id.clone())
            .collect();
        for id in late {
            self.update(&id, |task| {
                task.status = Status::Expired;
                task.lease = None;
            });
        }
    }

    fn replay(&mut self, id: &TaskId) -> Outcome {
        match self.tasks.get(id).map(|t| t.status) {
            Some(Status::Failed) => {
                self.update(id, |task| {
                    task.status = Status::Pending;
                    task.attempts = 0;
                });
                Outcome::Replayed
            }
            Some(status) => Outcome::Refused(Refusal::new(
                ErrorCode::PreconditionFailed,
                format!("task {id} is {status:?}, not in the dead-letter queue"),
            )),
            None => Outcome::Refused(Refusal::new(
                ErrorCode::KeyDoesNotExist,
                format!("unknown task {id}"),
            )),
        }
    }

    /// Withdraws a task that has not started: a pending one (ready or blocked) or an
    /// assigned one, whose lease ends with it. A cancelled task waits for nothing any
    /// more, so dependencies only it waited for are no longer watched; its own dependents
    /// stay blocked, since it never completes. Anything else is left as it is.
    fn cancel(&mut self, id: &TaskId) -> Outcome {
        match self.tasks.get(id).map(|t| t.status) {
            None => Outcome::Refused(Refusal::new(
                ErrorCode::KeyDoesNotExist,
                format!("unknown task {id}"),
            )),
            Some(Status::Pending | Status::Assigned) => {
                let waited = self
                    .update(id, |task| {
                        task.status = Status::Cancelled;
                        task.lease = None;
                        std::mem::take(&mut task.waiting)
                    })
                    .unwrap_or_default();
                for dep in waited {
                    self.stop_waiting(id, &dep);
                }
                Outcome::Cancelled { cancelled: true }
            }
            Some(_) => Outcome::Cancelled { cancelled: false },
        }
    }

    /// Forgets that `id` waits for `dep`.
    fn stop_waiting(&mut self, id: &TaskId, dep: &TaskId) {
        let waiters = if self.is_local(dep) {
            self.dependents.get_mut(dep)
        } else {
            self.remote_waits.get_mut(dep)
        };
        let Some(waiters) = waiters else {
            return;
        };
        waiters.retain(|w| w != id);
        if waiters.is_empty() {
            if self.is_local(dep) {
                self.dependents.remove(dep);
            } else {
                self.remote_waits.remove(dep);
            }
        }
    }

    // Reads: served from the applied state, never changing it.

    pub fn status(&self, id: &TaskId) -> Option<StatusReport> {
        self.tasks.get(id).map(|t| StatusReport {
            status: t.status,
            attempts: t.attempts,
            max_attempts: t.spec.max_attempts,
            blocked_by: t.waiting.iter().cloned().collect(),
        })
    }

    /// Whether `id` exists here and whether it completed.
    pub fn lookup(&self, id: &TaskId) -> Option<bool> {
        self.tasks.get(id).map(|t| t.status == Status::Completed)
    }

    /// Dead-lettered tasks, oldest first: (id, attempts, max_attempts).
    pub fn dead_letters(&self) -> Vec<(TaskId, u32, u32)> {
        self.dlq
            .values()
            .filter_map(|id| self.tasks.get(id))
            .map(|t| (t.spec.id.clone(), t.attempts, t.spec.max_attempts))
            .collect()
    }

    /// Dependencies in other partitions that tasks here still wait for.
    pub fn remote_waits(&self) -> impl Iterator<Item = &TaskId> {
        self.remote_waits.keys()
    }

    /// The earliest lease expiry or deadline, in leader wall-clock ms.
    pub fn next_due(&self) -> Option<u64> {
        let lease = self.leases.keys().next().map(|k| k.0);
        let deadline = self.deadlines.keys().next().map(|k| k.0);
        lease.into_iter().chain(deadline).min()
    }

    /// The leases that are out: (id, attempt, until).
    pub fn leases(&self) -> impl Iterator<Item = (&TaskId, u32, u64)> {
        self.leases.iter().filter_map(|((until, _), id)| {
            let attempt = self.tasks.get(id)?.lease.as_ref()?.attempt;
            Some((id, attempt, *until))
        })
    }

    /// The most urgent ready priority and how many tasks are ready, cheaply, for choosing
    /// where a poll takes work from.
    pub fn best_ready(&self) -> Option<(Priority, usize)> {
        self.ready
            .keys()
            .next()
            .map(|(p, _)| (*p, self.ready.len()))
    }

    pub fn depths(&self) -> Depths {
        let mut depths = Depths {
            blocked: self.blocked,
            leased: self.leases.len() as u32,
            dead_lettered: self.dlq.len() as u32,
            completed: self.completed,
            cancelled: self.cancelled,
            ..Depths::default()
        };
        depths.ready = self.ready_counts;
        depths
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// The task map as a list of tasks, each knowing its own id.
mod task_list {
    use rustc_hash::FxHashMap as HashMap;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::task::{Task, TaskId};

    pub fn serialize<S: Serializer>(
        tasks: &HashMap<TaskId, Task>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut list: Vec<&Task> = tasks.values().collect();
        list.sort_by_key(|t| t.seq);
        s.collect_seq(list)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<TaskId, Task>, D::Error> {
        let list = Vec::<Task>::deserialize(d)?;
        Ok(list.into_iter().map(|t| (t.spec.id.clone(), t)).collect())
    }
}

impl maelstrom_core::raft::StateMachine for Partition {
    type Cmd = Cmd;
    type Output = Outcome;

    fn apply(&mut self, cmd: Cmd) -> Outcome {
        Partition::apply(self, cmd)
    }

    fn snapshot(&self) -> Result<serde_json::Value, String> {
        serde_json::to_value(self).map_err(|e| e.to_string())
    }

    fn restore(&self, data: serde_json::Value) -> Result<Self, String> {
        Partition::from_snapshot(data).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Kind;

    fn spec(id: u64, priority: Priority, deps: &[u64], max_attempts: u32) -> TaskSpec {
        TaskSpec {
            id: TaskId::Num(id),
            kind: Kind::Assembly,
            priority,
            deps: deps.iter().map(|&d| TaskId::Num(d)).collect(),
            payload: serde_json::Value::Null,
            max_attempts,
            deadline: None,
        }
    }

    /// A single partition, so every dependency is local.
    fn one() -> Partition {
        Partition::new(0, 1)
    }

    fn enqueue(p: &mut Partition, spec: TaskSpec) -> Outcome {
        p.apply(Cmd::Enqueue {
            task: spec,
            remote: Vec::new(),
            now: 0,
        })
    }

    fn poll(p: &mut Partition, max: u32, now: u64) -> Vec<(u64, u32)> {
        let Outcome::Polled(ds) = p.apply(Cmd::Poll {
            max,
            consumer: "c1".into(),
            now,
            lease_ms: 100,
            stolen: false,
        }) else {
            panic!("poll answers with deliveries");
        };
        ds.iter()
            .map(|d| match d.id {
                TaskId::Num(n) => (n, d.attempt),
                TaskId::Str(_) => (u64::MAX, d.attempt),
            })
            .collect()
    }

    fn ack(p: &mut Partition, id: u64, attempt: u32) -> Outcome {
        p.apply(Cmd::Ack {
            id: TaskId::Num(id),
            attempt,
            now: 0,
        })
    }

    #[test]
    fn serves_the_most_urgent_first_and_in_order_within_a_priority() {
        let mut p = one();
        enqueue(&mut p, spec(1, Priority::NiceChild, &[], 3));
        enqueue(&mut p, spec(2, Priority::Standard, &[], 3));
        enqueue(&mut p, spec(3, Priority::Express, &[], 3));
        enqueue(&mut p, spec(4, Priority::Standard, &[], 3));
        assert_eq!(poll(&mut p, 3, 0), vec![(3, 1), (2, 1), (4, 1)]);
        assert_eq!(poll(&mut p, 3, 0), vec![(1, 1)]);
        assert_eq!(poll(&mut p, 3, 0), vec![]);
    }

    #[test]
    fn dependencies_hold_a_task_until_they_complete() {
        let mut p = one();
        enqueue(&mut p, spec(1, Priority::Standard, &[], 3));
        enqueue(&mut p, spec(2, Priority::Express, &[1], 3));
        assert_eq!(poll(&mut p, 5, 0), vec![(1, 1)]);
        assert_eq!(
            p.status(&TaskId::Num(2)).unwrap().blocked_by,
            vec![TaskId::Num(1)]
        );
        assert_eq!(ack(&mut p, 1, 1), Outcome::Acked { duplicate: false });
        assert_eq!(poll(&mut p, 5, 0), vec![(2, 1)]);
    }

    #[test]
    fn unknown_dependencies_and_self_cycles_are_refused() {
        let mut p = one();
        let Outcome::Refused(r) = enqueue(&mut p, spec(1, Priority::Standard, &[9], 3)) else {
            panic!("unknown dependency accepted");
        };
        assert_eq!(r.code, ErrorCode::KeyDoesNotExist);
        assert!(r.text.contains("unknown dependency 9"), "{}", r.text);
        let Outcome::Refused(r) = enqueue(&mut p, spec(1, Priority::Standard, &[1], 3)) else {
            panic!("self-dependency accepted");
        };
        assert!(r.text.contains("cycle"), "{}", r.text);
        assert!(p.is_empty());
    }

    #[test]
    fn enqueue_is_idempotent_but_refuses_a_different_task_under_the_same_id() {
        let mut p = one();
        let first = enqueue(&mut p, spec(1, Priority::Standard, &[], 3));
        assert_eq!(
            first,
            Outcome::Enqueued {
                id: TaskId::Num(1),
                duplicate: false
            }
        );
        let again = enqueue(&mut p, spec(1, Priority::Standard, &[], 3));
        assert_eq!(
            again,
            Outcome::Enqueued {
                id: TaskId::Num(1),
                duplicate: true
            }
        );
        let other = enqueue(&mut p, spec(1, Priority::Express, &[], 3));
        assert!(matches!(other, Outcome::Refused(_)));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn acks_are_idempotent_and_stale_leases_are_refused() {
        let mut p = one();
        enqueue(&mut p, spec(1, Priority::Standard, &[], 3));
        assert_eq!(poll(&mut p, 1, 0), vec![(1, 1)]);
        // The lease runs out; the task goes to another consumer.
        p.apply(Cmd::Tick { now: 100 });
        assert_eq!(poll(&mut p, 1, 100), vec![(1, 2)]);
        let Outcome::Refused(r) = ack(&mut p, 1, 1) else {
            panic!("a stale lease completed the task");
        };
        assert_eq!(r.code, ErrorCode::PreconditionFailed);
        assert_eq!(ack(&mut p, 1, 2), Outcome::Acked { duplicate: false });
        assert_eq!(ack(&mut p, 1, 2), Outcome::Acked { duplicate: true });
        assert_eq!(ack(&mut p, 1, 1), Outcome::Acked { duplicate: true });
        assert_eq!(p.status(&TaskId::Num(1)).unwrap().status, Status::Completed);
    }

    #[test]
    fn the_retry_budget_ends_in_the_dead_letter_queue_and_replay_restores_it() {
        let mut p = one();
        enqueue(&mut p, spec(1, Priority::Standard, &[], 2));
        assert_eq!(poll(&mut p, 1, 0), vec![(1, 1)]);
        let nack = p.apply(Cmd::Nack {
            id: TaskId::Num(1),
            attempt: 1,
        });
        assert_eq!(
            nack,
            Outcome::Nacked {
                dead_lettered: false
            }
        );
        assert_eq!(poll(&mut p, 1, 0), vec![(1, 2)]);
        // The second attempt's lease expires: the budget is used up.
        p.apply(Cmd::Tick { now: 1_000 });
        assert_eq!(poll(&mut p, 1, 1_000), vec![]);
        assert_eq!(p.dead_letters(), vec![(TaskId::Num(1), 2, 2)]);
        assert_eq!(p.status(&TaskId::Num(1)).unwrap().status, Status::Failed);
        assert_eq!(
            p.apply(Cmd::Replay { id: TaskId::Num(1) }),
            Outcome::Replayed
        );
        assert!(p.dead_letters().is_empty());
        assert_eq!(poll(&mut p, 1, 1_000), vec![(1, 1)]);
    }

    #[test]
    fn a_refunded_nack_hands_out_the_same_attempt_again() {
        let mut p = one();
        enqueue(&mut p, spec(1, Priority::Standard, &[], 1));
        for _ in 0..3 {
            assert_eq!(poll(&mut p, 1, 0), vec![(1, 1)]);
            let refund = p.apply(Cmd::Refund {
                id: TaskId::Num(1),
                attempt: 1,
            });
            assert_eq!(
                refund,
                Outcome::Nacked {
                    dead_lettered: false
                }
            );
        }
        assert!(p.dead_letters().is_empty());
        // A stale attempt's refund is refused like its nack.
        assert!(matches!(
            p.apply(Cmd::Refund {
                id: TaskId::Num(1),
                attempt: 1,
            }),
            Outcome::Refused(_)
        ));
    }

    #[test]
    fn start_renews_the_lease_and_deadlines_expire_tasks() {
        let mut p = one();
        enqueue(&mut p, spec(1, Priority::Standard, &[], 3));
        let mut late = spec(2, Priority::Standard, &[], 3);
        late.deadline = Some(50);
        enqueue(&mut p, late);
        assert_eq!(poll(&mut p, 1, 0), vec![(1, 1)]);
        let started = p.apply(Cmd::Start {
            id: TaskId::Num(1),
            attempt: 1,
            now: 90,
            lease_ms: 100,
        });
        assert_eq!(started, Outcome::Started);
        p.apply(Cmd::Tick { now: 150 });
        assert_eq!(
            p.status(&TaskId::Num(1)).unwrap().status,
            Status::InProgress
        );
        assert_eq!(p.status(&TaskId::Num(2)).unwrap().status, Status::Expired);
        assert_eq!(poll(&mut p, 5, 150), vec![]);
    }

    #[test]
    fn remote_dependencies_wait_for_word_of_their_completion() {
        // Two partitions: find ids that land in each.
        let ids: Vec<u64> = (0..100).collect();
        let other = *ids
            .iter()
            .find(|&&i| TaskId::Num(i).partition(2) == 1)
            .unwrap();
        let mine = *ids
            .iter()
            .find(|&&i| TaskId::Num(i).partition(2) == 0)
            .unwrap();
        let mut p = Partition::new(0, 2);
        let refused = p.apply(Cmd::Enqueue {
            task: spec(mine, Priority::Standard, &[other], 3),
            remote: Vec::new(),
            now: 0,
        });
        assert!(
            matches!(refused, Outcome::Refused(_)),
            "an unchecked remote dependency"
        );
        p.apply(Cmd::Enqueue {
            task: spec(mine, Priority::Standard, &[other], 3),
            remote: vec![(TaskId::Num(other), false)],
            now: 0,
        });
        assert_eq!(
            p.remote_waits().collect::<Vec<_>>(),
            vec![&TaskId::Num(other)]
        );
        assert_eq!(poll(&mut p, 1, 0), vec![]);
        p.apply(Cmd::DepsDone {
            ids: vec![TaskId::Num(other)],
        });
        assert_eq!(poll(&mut p, 1, 0), vec![(mine, 1)]);
    }

    #[test]
    fn a_snapshot_restores_every_index() {
        let mut p = one();
        enqueue(&mut p, spec(1, Priority::Standard, &[], 1));
        enqueue(&mut p, spec(2, Priority::Express, &[], 3));
        enqueue(&mut p, spec(3, Priority::Standard, &[2], 3));
        enqueue(&mut p, spec(4, Priority::NiceChild, &[], 3));
        assert_eq!(poll(&mut p, 2, 0), vec![(2, 1), (1, 1)]);
        p.apply(Cmd::Nack {
            id: TaskId::Num(1),
            attempt: 1,
        });
        let copy = Partition::from_snapshot(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(copy.depths(), p.depths());
        assert_eq!(copy.dead_letters(), p.dead_letters());
        assert_eq!(copy.next_due(), p.next_due());
        let mut copy = copy;
        assert_eq!(ack(&mut copy, 2, 1), Outcome::Acked { duplicate: false });
        assert_eq!(poll(&mut copy, 5, 0), vec![(3, 1), (4, 1)]);
    }

    fn cancel(p: &mut Partition, id: u64) -> Outcome {
        p.apply(Cmd::Cancel {
            id: TaskId::Num(id),
        })
    }

    fn status_of(p: &Partition, id: u64) -> Status {
        p.status(&TaskId::Num(id)).expect("the task exists").status
    }

    fn refusal_code(outcome: Outcome) -> ErrorCode {
        match outcome {
            Outcome::Refused(r) => r.code,
            other => panic!("accepted: {other:?}"),
        }
    }

    const CANCELLED: Outcome = Outcome::Cancelled { cancelled: true };
    const LEFT_ALONE: Outcome = Outcome::Cancelled { cancelled: false };

    #[test]
    fn a_cancelled_pending_task_is_never_handed_out() {
        let mut p = one();
        enqueue(&mut p, spec(1, Priority::Express, &[], 3));
        enqueue(&mut p, spec(2, Priority::Standard, &[], 3));
        assert_eq!(p.depths().ready, [1, 1, 0]);
        assert_eq!(cancel(&mut p, 1), CANCELLED);
        assert_eq!(status_of(&p, 1), Status::Cancelled);
        assert_eq!(p.depths().ready, [0, 1, 0], "a cancelled task is not ready");
        assert_eq!(p.depths().cancelled, 1);
        assert_eq!(p.best_ready(), Some((Priority::Standard, 1)));
        assert_eq!(poll(&mut p, 5, 0), vec![(2, 1)]);
        assert_eq!(poll(&mut p, 5, 0), vec![]);
        // Repeating it is harmless and says it changed nothing.
        assert_eq!(cancel(&mut p, 1), LEFT_ALONE);
        assert_eq!(p.depths().cancelled, 1);
        // Enqueueing the same task again is still a duplicate, and does not revive it.
        let again = enqueue(&mut p, spec(1, Priority::Express, &[], 3));
        assert_eq!(
            again,
            Outcome::Enqueued {
                id: TaskId::Num(1),
                duplicate: true
            }
        );
        assert_eq!(status_of(&p, 1), Status::Cancelled);
        assert_eq!(poll(&mut p, 5, 0), vec![]);
    }

    #[test]
    fn a_cancelled_assigned_task_ends_its_lease_and_refuses_its_holder() {
        let mut p = one();
        enqueue(&mut p, spec(1, Priority::Standard, &[], 3));
        assert_eq!(poll(&mut p, 1, 0), vec![(1, 1)]);
        assert_eq!(p.depths().leased, 1);
        assert_eq!(cancel(&mut p, 1), CANCELLED);
        assert_eq!(p.depths().leased, 0);
        assert_eq!(p.leases().count(), 0);
        assert_eq!(p.next_due(), None, "no lease left to expire");
        let id = TaskId::Num(1);
        let start = p.apply(Cmd::Start {
            id: id.clone(),
            attempt: 1,
            now: 10,
            lease_ms: 100,
        });
        let Outcome::Refused(r) = start else {
            panic!("a cancelled task started: {start:?}");
        };
        assert_eq!(r.code, ErrorCode::PreconditionFailed);
        assert!(r.text.contains("cancelled"), "{}", r.text);
        assert_eq!(
            refusal_code(ack(&mut p, 1, 1)),
            ErrorCode::PreconditionFailed
        );
        let nack = p.apply(Cmd::Nack {
            id: id.clone(),
            attempt: 1,
        });
        assert_eq!(refusal_code(nack), ErrorCode::PreconditionFailed);
        let refund = p.apply(Cmd::Refund { id, attempt: 1 });
        assert_eq!(refusal_code(refund), ErrorCode::PreconditionFailed);
        // The lease's expiry passes: nothing comes back.
        p.apply(Cmd::Tick { now: 1_000 });
        p.apply(Cmd::Expire {
            leases: vec![(TaskId::Num(1), 1)],
        });
        assert_eq!(poll(&mut p, 5, 1_000), vec![]);
        assert_eq!(status_of(&p, 1), Status::Cancelled);
        assert!(p.dead_letters().is_empty());
        assert_eq!(p.depths().completed, 0);
    }

    #[test]
    fn started_and_ended_tasks_are_left_alone() {
        let mut p = one();
        // 1 in progress, 2 completed, 3 dead-lettered, 4 expired.
        for id in 1..=4 {
            enqueue(&mut p, spec(id, Priority::Standard, &[], 1));
        }
        assert_eq!(poll(&mut p, 3, 0), vec![(1, 1), (2, 1), (3, 1)]);
        let started = p.apply(Cmd::Start {
            id: TaskId::Num(1),
            attempt: 1,
            now: 0,
            lease_ms: 1_000,
        });
        assert_eq!(started, Outcome::Started);
        assert_eq!(ack(&mut p, 2, 1), Outcome::Acked { duplicate: false });
        p.apply(Cmd::Nack {
            id: TaskId::Num(3),
            attempt: 1,
        });
        let mut late = spec(5, Priority::Standard, &[], 1);
        late.deadline = Some(10);
        enqueue(&mut p, late);
        p.apply(Cmd::Tick { now: 20 });
        let before: Vec<Status> = (1..=5).map(|id| status_of(&p, id)).collect();
        assert_eq!(
            before,
            [
                Status::InProgress,
                Status::Completed,
                Status::Failed,
                Status::Pending,
                Status::Expired
            ]
        );
        for id in [1, 2, 3, 5] {
            assert_eq!(cancel(&mut p, id), LEFT_ALONE, "task {id}");
        }
        let after: Vec<Status> = (1..=5).map(|id| status_of(&p, id)).collect();
        assert_eq!(after, before);
        assert_eq!(p.depths().cancelled, 0);
        // The one in progress still completes under its lease.
        assert_eq!(ack(&mut p, 1, 1), Outcome::Acked { duplicate: false });
        assert_eq!(p.dead_letters(), vec![(TaskId::Num(3), 1, 1)]);
    }

    #[test]
    fn cancelling_an_unknown_task_is_refused_and_a_cancelled_one_is_never_replayed() {
        let mut p = one();
        assert_eq!(refusal_code(cancel(&mut p, 9)), ErrorCode::KeyDoesNotExist);
        assert!(p.is_empty());
        enqueue(&mut p, spec(1, Priority::Standard, &[], 3));
        assert_eq!(cancel(&mut p, 1), CANCELLED);
        let replay = p.apply(Cmd::Replay { id: TaskId::Num(1) });
        assert_eq!(refusal_code(replay), ErrorCode::PreconditionFailed);
        assert_eq!(status_of(&p, 1), Status::Cancelled);
        assert_eq!(poll(&mut p, 5, 0), vec![]);
    }

    #[test]
    fn a_cancelled_task_with_a_deadline_never_expires() {
        let mut p = one();
        let mut late = spec(1, Priority::Standard, &[], 3);
        late.deadline = Some(50);
        enqueue(&mut p, late);
        assert_eq!(p.next_due(), Some(50));
        assert_eq!(cancel(&mut p, 1), CANCELLED);
        assert_eq!(p.next_due(), None);
        p.apply(Cmd::Tick { now: 100 });
        assert_eq!(status_of(&p, 1), Status::Cancelled);
    }

    #[test]
    fn dependents_of_a_cancelled_task_stay_blocked() {
        let mut p = one();
        enqueue(&mut p, spec(1, Priority::Standard, &[], 3));
        enqueue(&mut p, spec(2, Priority::Express, &[1], 3));
        assert_eq!(cancel(&mut p, 1), CANCELLED);
        // Even one enqueued after the cancel: its dependency exists, and never completes.
        let late = enqueue(&mut p, spec(3, Priority::Express, &[1], 3));
        assert!(matches!(late, Outcome::Enqueued { .. }), "{late:?}");
        assert_eq!(poll(&mut p, 5, 0), vec![]);
        for id in [2, 3] {
            let report = p.status(&TaskId::Num(id)).unwrap();
            assert_eq!(report.status, Status::Pending);
            assert_eq!(report.blocked_by, vec![TaskId::Num(1)]);
        }
        assert_eq!(p.depths().blocked, 2);
        assert_eq!(p.lookup(&TaskId::Num(1)), Some(false), "not completed");
        // An ack under the cancelled task's old lease number cannot release them.
        assert!(matches!(ack(&mut p, 1, 1), Outcome::Refused(_)));
        assert_eq!(poll(&mut p, 5, 0), vec![]);
    }

    #[test]
    fn a_cancelled_task_stops_waiting_for_its_dependencies() {
        // Two partitions: 0 holds the tasks, 1 a remote dependency.
        let local: Vec<u64> = (0..100)
            .filter(|&i| TaskId::Num(i).partition(2) == 0)
            .take(3)
            .collect();
        let remote = (0..100)
            .find(|&i| TaskId::Num(i).partition(2) == 1)
            .unwrap();
        let (dep, blocked, far) = (local[0], local[1], local[2]);
        let mut p = Partition::new(0, 2);
        enqueue(&mut p, spec(dep, Priority::Standard, &[], 3));
        enqueue(&mut p, spec(blocked, Priority::Standard, &[dep], 3));
        p.apply(Cmd::Enqueue {
            task: spec(far, Priority::Standard, &[remote], 3),
            remote: vec![(TaskId::Num(remote), false)],
            now: 0,
        });
        assert_eq!(p.depths().blocked, 2);
        assert_eq!(p.remote_waits().count(), 1);
        assert_eq!(cancel(&mut p, blocked), CANCELLED);
        assert_eq!(cancel(&mut p, far), CANCELLED);
        assert_eq!(p.depths().blocked, 0);
        assert_eq!(
            p.remote_waits().count(),
            0,
            "nothing left to watch in the other partition"
        );
        assert!(p.status(&TaskId::Num(far)).unwrap().blocked_by.is_empty());
        // The dependencies complete: the cancelled tasks stay cancelled.
        assert_eq!(poll(&mut p, 5, 0), vec![(dep, 1)]);
        assert_eq!(ack(&mut p, dep, 1), Outcome::Acked { duplicate: false });
        p.apply(Cmd::DepsDone {
            ids: vec![TaskId::Num(remote)],
        });
        assert_eq!(poll(&mut p, 5, 0), vec![]);
        assert_eq!(status_of(&p, blocked), Status::Cancelled);
        assert_eq!(status_of(&p, far), Status::Cancelled);
    }

    #[test]
    fn a_snapshot_keeps_cancelled_tasks_cancelled() {
        let mut p = one();
        enqueue(&mut p, spec(1, Priority::Express, &[], 3));
        enqueue(&mut p, spec(2, Priority::Standard, &[], 3));
        enqueue(&mut p, spec(3, Priority::Standard, &[1], 3));
        let mut late = spec(4, Priority::NiceChild, &[], 3);
        late.deadline = Some(500);
        enqueue(&mut p, late);
        enqueue(&mut p, spec(5, Priority::Standard, &[4], 3));
        assert_eq!(poll(&mut p, 1, 0), vec![(1, 1)]);
        for id in [1, 4, 5] {
            assert_eq!(cancel(&mut p, id), CANCELLED);
        }
        let data = serde_json::to_value(&p).unwrap();
        let mut copy = Partition::from_snapshot(data).unwrap();
        assert_eq!(copy.depths(), p.depths());
        assert_eq!(copy.depths().cancelled, 3);
        assert_eq!(copy.depths().blocked, 1, "task 3 waits for cancelled 1");
        assert_eq!(copy.next_due(), None);
        for id in 1..=5 {
            assert_eq!(copy.status(&TaskId::Num(id)), p.status(&TaskId::Num(id)));
        }
        assert_eq!(status_of(&copy, 4), Status::Cancelled);
        assert_eq!(poll(&mut copy, 5, 0), vec![(2, 1)]);
        assert!(matches!(ack(&mut copy, 1, 1), Outcome::Refused(_)));
        assert_eq!(cancel(&mut copy, 1), LEFT_ALONE);
        // Task 2's lease and task 4's deadline pass: only task 2 comes back.
        copy.apply(Cmd::Tick { now: 1_000 });
        assert_eq!(poll(&mut copy, 5, 1_000), vec![(2, 2)]);
        assert_eq!(status_of(&copy, 4), Status::Cancelled);
    }

    #[test]
    fn cancel_travels_in_the_log_and_its_outcome_in_sessions() {
        let cmd = Cmd::Cancel {
            id: TaskId::Str("7-painting".into()),
        };
        let text = serde_json::to_string(&cmd).unwrap();
        assert_eq!(text, r#"{"cancel":{"id":"7-painting"}}"#);
        assert_eq!(serde_json::from_str::<Cmd>(&text).unwrap(), cmd);
        let outcome: Outcome =
            serde_json::from_value(serde_json::to_value(CANCELLED).unwrap()).unwrap();
        assert_eq!(outcome, CANCELLED);
        let status = serde_json::to_value(Status::Cancelled).unwrap();
        assert_eq!(status, "cancelled");
        assert!(Status::Cancelled.is_final());
    }
}
