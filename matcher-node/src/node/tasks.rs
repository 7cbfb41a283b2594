//! The coordinator leader's dealings with the other services of its cluster: refilling
//! the gift ID pool from the giftid service, carrying out the queue work committed
//! transactions left in the coordinator's state, and `gift_status`.
//!
//! Queue work: every gift's four tasks are enqueued in stage order, each once the one it
//! depends on is acknowledged, and a splice's replaced gifts' four tasks are cancelled.
//! Requests are idempotent (task ids derive from the gift ID and stage; a duplicate
//! enqueue is success, cancelling twice is harmless), so a retry after a timeout and a
//! new leader redoing the work of its predecessor are no-ops in effect. One order of work
//! per exchange is carried out at a time, in the order they were committed, so a gift's
//! tasks exist before a later splice cancels them. When all of an order is done, the
//! leader logs `enqueued`, which drops it from the state. Everything here is volatile and
//! bounded: at most [`MAX_IN_FLIGHT`] queue requests and [`MAX_READS`] status reads.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use maelstrom_core::raft::Relayed;
use maelstrom_core::{decode_reply, Context, ErrorCode, Outbox, RawMessage, RpcError};

use super::services::{enqueue, stage_of, task_id, Reply, Request};
use super::{error, Call, MatcherNode, Msg, Waiter};
use crate::seal::{seal_json, Progress};
use crate::sm::{Cmd, CoordCmd, Gid, Sm, Work, STAGES};

/// How long a request to another service may take.
const SERVICE_TIMEOUT: Duration = Duration::from_millis(1_000);
/// Pause before a failed queue request is tried again (on another queue node).
const RETRY_MS: u64 = 100;
/// Queue requests in flight at most.
pub const MAX_IN_FLIGHT: usize = 64;
/// Status reads under way at most; more are refused (11).
pub const MAX_READS: usize = 256;
/// An `enqueued` proposed but not applied is proposed again after this long.
const MARK_AGAIN_MS: u64 = 1_000;

/// What a request to another service was for.
#[derive(Debug, Clone)]
pub enum ServiceCall {
    Ids,
    Task {
        seq: u64,
        item: usize,
        stage: usize,
        cancel: bool,
    },
    Status {
        read: u64,
        stage: usize,
    },
}

#[derive(Debug, Default)]
pub struct TaskDriver {
    /// (order, item) -> progress: an item is a gift to enqueue or a gift to cancel.
    items: BTreeMap<(u64, usize), Item>,
    /// Orders whose `enqueued` was proposed, with when.
    marking: BTreeMap<u64, u64>,
    next_node: usize,
    reads: BTreeMap<u64, StatusRead>,
    next_read: u64,
}

#[derive(Debug, Default)]
struct Item {
    /// Stages done (0..=4).
    done: usize,
    busy: bool,
    /// Not before (monotonic ms), after a failure.
    at: u64,
}

#[derive(Debug)]
struct StatusRead {
    to: Waiter,
    epoch: u64,
    gift_id: u64,
    key: [u8; 32],
    statuses: Vec<Option<String>>,
    failed: Option<String>,
}

/// The request of item `item`'s stage `stage` of an order of work.
fn request(work: &Work, item: usize, stage: usize) -> Request<'_> {
    match work.gifts.get(item) {
        Some(gift) => enqueue(
            gift.gift_id,
            stage,
            gift.priority,
            &work.exchange,
            work.epoch,
        ),
        None => Request::Cancel {
            id: task_id(work.cancel[item - work.gifts.len()], stage),
        },
    }
}

/// Whether a queue error answers a request for good, so that trying again is pointless:
/// a task that exists with other content or a request the queue finds malformed (both
/// bugs); for a cancel, also a queue that cannot cancel or does not know the task.
/// Anything else (no leader, a timeout, an unknown dependency that a lagging lookup may
/// not see yet) is tried again.
fn refused_for_good(code: ErrorCode, cancel: bool) -> bool {
    match code {
        ErrorCode::PreconditionFailed | ErrorCode::MalformedRequest => true,
        ErrorCode::NotSupported | ErrorCode::KeyDoesNotExist => cancel,
        _ => false,
    }
}

impl MatcherNode {
    /// On the coordinator's leader, at every tick and service reply: refills the ID pool
    /// and carries the queue work on.
    pub(super) fn services(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        if !self.groups.is_leader(&Gid::Coordinator) {
            return;
        }
        if let Some((node, count)) = self.ids.want() {
            let body = Request::GenerateBatch { count }.body();
            let call = Relayed::Own(Call::Service(ServiceCall::Ids));
            out.rpc_value(node, body, SERVICE_TIMEOUT, call);
        }
        self.pump_tasks(ctx, out);
    }

    /// This node no longer leads the coordinator: its pool and queue progress go.
    pub(super) fn services_stepped_down(&mut self) {
        self.ids.clear();
        if !self.tasks.items.is_empty() || !self.tasks.marking.is_empty() {
            self.tasks.items.clear();
            self.tasks.marking.clear();
        }
    }

    /// Sends the next queue requests of the work in the coordinator's state, and logs
    /// `enqueued` for orders that are done.
    fn pump_tasks(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        if self.queue.is_empty() {
            return;
        }
        let Some(Sm::Coord(sm)) = self.groups.get(&Gid::Coordinator).map(|g| g.sm()) else {
            return;
        };
        let now = ctx.now_ms();
        let t = &mut self.tasks;
        t.items.retain(|(seq, _), _| sm.work.contains_key(seq));
        t.marking.retain(|seq, _| sm.work.contains_key(seq));
        let mut busy = t.items.values().filter(|i| i.busy).count();
        let (mut lanes, mut sends, mut done) = (BTreeSet::new(), Vec::new(), Vec::new());
        for (&seq, work) in &sm.work {
            if !lanes.insert(work.exchange.as_str()) {
                continue;
            }
            let n = work.gifts.len() + work.cancel.len();
            let finished = |i| {
                t.items
                    .get(&(seq, i))
                    .is_some_and(|x| x.done == STAGES.len())
            };
            if (0..n).all(finished) {
                if t.marking
                    .get(&seq)
                    .map_or(true, |at| now >= at + MARK_AGAIN_MS)
                {
                    t.marking.insert(seq, now);
                    done.push(seq);
                }
                continue;
            }
            for i in 0..n {
                let item = t.items.entry((seq, i)).or_default();
                if busy >= MAX_IN_FLIGHT || item.done == STAGES.len() || item.busy || item.at > now
                {
                    continue;
                }
                item.busy = true;
                busy += 1;
                let call = ServiceCall::Task {
                    seq,
                    item: i,
                    stage: item.done,
                    cancel: i >= work.gifts.len(),
                };
                sends.push((call, request(work, i, item.done).body()));
            }
        }
        for seq in done {
            let cmd = Cmd::Coord(CoordCmd::Enqueued { seq });
            let _ = self
                .groups
                .propose(&Gid::Coordinator, cmd, None, None, false);
        }
        for (call, body) in sends {
            let node = self.queue_node();
            let call = Relayed::Own(Call::Service(call));
            out.rpc_value(node, body, SERVICE_TIMEOUT, call);
        }
    }

    /// The queue node to ask next: each request goes to the next one, so a node that
    /// fails is not asked again straight away.
    fn queue_node(&mut self) -> String {
        self.tasks.next_node += 1;
        self.queue[self.tasks.next_node % self.queue.len()].clone()
    }

    /// The outcome of a request to another service.
    pub(super) fn on_service_reply(
        &mut self,
        ctx: &Context,
        call: ServiceCall,
        reply: Result<RawMessage, RpcError>,
        out: &mut Outbox<Self>,
    ) {
        let reply = decode_reply::<Reply>(reply);
        match call {
            ServiceCall::Ids => {
                let ids = match reply {
                    Ok(Reply::GenerateBatchOk { ids }) => Ok(ids),
                    Ok(other) => Err(format!("unexpected reply {other:?}")),
                    Err(e) => Err(e.to_string()),
                };
                self.ids.filled(ids);
            }
            ServiceCall::Task {
                seq,
                item,
                stage,
                cancel,
            } => self.task_answered(ctx, (seq, item, stage, cancel), reply),
            ServiceCall::Status { read, stage } => self.status_answered(read, stage, reply, out),
        }
        self.services(ctx, out);
    }

    fn task_answered(
        &mut self,
        ctx: &Context,
        (seq, item, stage, cancel): (u64, usize, usize, bool),
        reply: Result<Reply, RpcError>,
    ) {
        let Some(x) = self.tasks.items.get_mut(&(seq, item)) else {
            return;
        };
        if x.done != stage || !x.busy {
            return;
        }
        x.busy = false;
        let what = format!("task stage {stage} of item {item} of queue work {seq}");
        match reply {
            Ok(Reply::EnqueueOk {} | Reply::CancelOk {}) => x.done += 1,
            Err(RpcError::Remote(e)) if refused_for_good(e.code, cancel) => {
                eprintln!("the queue refused {what} for good: {e}");
                x.done += 1;
            }
            other => {
                eprintln!("{what} to be tried again: {other:?}");
                x.at = ctx.now_ms() + RETRY_MS;
            }
        }
    }

    /// `gift_status`: the stage of the participant's gift in the latest committed epoch,
    /// read from the queue and sealed to the participant.
    pub(super) fn gift_status(
        &mut self,
        ctx: &Context,
        to: Waiter,
        exchange: &str,
        participant: &str,
        out: &mut Outbox<Self>,
    ) {
        if self.queue.is_empty() {
            let why = "no queue service: gifts have no production tasks";
            return self.fail(out, &to, ErrorCode::NotSupported, why);
        }
        let Some(sm) = self.coord_sm() else {
            return self.fail(
                out,
                &to,
                ErrorCode::TemporarilyUnavailable,
                "not a coordinator",
            );
        };
        let found = sm.exchanges.get(exchange).and_then(|ex| {
            let gift = ex.gifts.get(participant)?;
            let p = ex.participants.get(participant)?;
            Some((ex.epoch, gift.gift_id, p.public_key))
        });
        let Some((epoch, gift_id, key)) = found else {
            let why = format!("{participant} gives no gift in exchange {exchange}");
            return self.fail(out, &to, ErrorCode::KeyDoesNotExist, &why);
        };
        if sm.queued(gift_id) {
            return self.answer_status(&to, (epoch, gift_id, key), "queued", out);
        }
        if self.tasks.reads.len() >= MAX_READS {
            let why = "too many gift_status reads under way";
            return self.fail(out, &to, ErrorCode::TemporarilyUnavailable, why);
        }
        let _ = ctx;
        let read = self.tasks.next_read;
        self.tasks.next_read += 1;
        let statuses = vec![None; STAGES.len()];
        let r = StatusRead {
            to,
            epoch,
            gift_id,
            key,
            statuses,
            failed: None,
        };
        self.tasks.reads.insert(read, r);
        for stage in 0..STAGES.len() {
            let body = Request::Status {
                id: task_id(gift_id, stage),
            };
            let call = Relayed::Own(Call::Service(ServiceCall::Status { read, stage }));
            let node = self.queue_node();
            out.rpc_value(node, body.body(), SERVICE_TIMEOUT, call);
        }
    }

    fn status_answered(
        &mut self,
        read: u64,
        stage: usize,
        reply: Result<Reply, RpcError>,
        out: &mut Outbox<Self>,
    ) {
        let Some(r) = self.tasks.reads.get_mut(&read) else {
            return;
        };
        match reply {
            Ok(Reply::StatusOk { status }) => r.statuses[stage] = Some(status),
            Ok(other) => r.failed = Some(format!("unexpected reply {other:?}")),
            Err(e) => r.failed = Some(e.to_string()),
        }
        let failed = r.failed.is_some();
        if r.statuses.iter().any(Option::is_none) && !failed {
            return;
        }
        let Some(r) = self.tasks.reads.remove(&read) else {
            return;
        };
        if let Some(why) = r.failed {
            let why = format!("cannot read the gift's tasks from the queue: {why}");
            return self.fail(out, &r.to, ErrorCode::TemporarilyUnavailable, &why);
        }
        let statuses: Vec<String> = r.statuses.into_iter().flatten().collect();
        let stage = stage_of(&statuses);
        self.answer_status(&r.to, (r.epoch, r.gift_id, r.key), stage, out);
    }

    fn answer_status(
        &mut self,
        to: &Waiter,
        (epoch, gift_id, key): (u64, u64, [u8; 32]),
        stage: &str,
        out: &mut Outbox<Self>,
    ) {
        let progress = Progress {
            gift_id,
            stage: stage.to_string(),
        };
        let reply = seal_json(&progress, &key, &mut self.rng)
            .map(|sealed| Msg::GiftStatusOk {
                epoch,
                gift_id,
                sealed,
            })
            .map_err(|e| error(ErrorCode::Crash, e.to_string()));
        self.respond(out, to, reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_that_cannot_change_end_a_queue_request() {
        use ErrorCode::*;
        for code in [PreconditionFailed, MalformedRequest] {
            assert!(refused_for_good(code, false) && refused_for_good(code, true));
        }
        for code in [NotSupported, KeyDoesNotExist] {
            assert!(!refused_for_good(code, false), "an enqueue is tried again");
            assert!(refused_for_good(code, true), "a cancel is answered");
        }
        for code in [TemporarilyUnavailable, Timeout, Crash] {
            assert!(!refused_for_good(code, false) && !refused_for_good(code, true));
        }
    }
}
