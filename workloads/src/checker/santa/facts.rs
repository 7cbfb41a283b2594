//! The history read once for the santa checker: what the elves saw of each production
//! task, the gift statuses the clients read, and the gifts of every committed epoch (from
//! the secret-santa checker's [`Model`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{parse_task_id, production};
use crate::checker::secret_santa::Model;
use crate::edn::Edn;
use crate::history::{History, OpType, Outcome};

/// The completion position of an op still open when the history ended.
pub const OPEN: usize = usize::MAX;

/// One op on a task: positions and outcome.
#[derive(Debug, Clone, Copy)]
pub struct Touch {
    pub inv: usize,
    pub done: usize,
    pub outcome: Outcome,
    pub done_ns: u64,
}

/// One delivery of a task: what the queue said it is.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub poll_inv: usize,
    pub poll_done: usize,
    pub kind: Option<String>,
    pub priority: Option<String>,
    pub payload_gift: Option<i64>,
    pub payload_exchange: Option<String>,
    pub payload_epoch: Option<i64>,
}

/// Everything the elves saw of one task.
#[derive(Debug, Clone, Default)]
pub struct Task {
    pub deliveries: Vec<Delivery>,
    pub starts: Vec<Touch>,
    pub acks: Vec<Touch>,
    /// Ok statuses, in history order: (invocation, completion, status).
    pub statuses: Vec<(usize, usize, String)>,
    /// A status answered "does not exist".
    pub not_found: bool,
}

impl Task {
    /// The first `:ok` ack: completion position and time.
    pub fn first_ack_ok(&self) -> Option<&Touch> {
        self.acks
            .iter()
            .filter(|a| a.outcome == Outcome::Ok)
            .min_by_key(|a| a.done)
    }

    /// The earliest invocation of an ack that may have taken effect.
    pub fn first_possible_ack(&self) -> Option<usize> {
        let acks = self.acks.iter().filter(|a| a.outcome != Outcome::Fail);
        acks.map(|a| a.inv).min()
    }

    /// The last status the queue answered.
    pub fn last_status(&self) -> Option<&str> {
        self.statuses.last().map(|(_, _, s)| s.as_str())
    }

    /// Completed: an `:ok` ack, or a `completed` status that some ack may explain.
    pub fn completed(&self) -> bool {
        self.first_ack_ok().is_some()
            || (self.last_status() == Some("completed") && self.first_possible_ack().is_some())
    }

    /// The queue has it: delivered, acknowledged or given a status.
    pub fn exists(&self) -> bool {
        !self.deliveries.is_empty() || self.first_ack_ok().is_some() || !self.statuses.is_empty()
    }

    /// A `start` or an ack that may have taken effect, invoked before position `before`.
    pub fn started_before(&self, before: usize) -> bool {
        let touched = |t: &&Touch| t.outcome != Outcome::Fail && t.inv < before;
        self.starts.iter().any(|t| touched(&t)) || self.acks.iter().any(|t| touched(&t))
    }
}

/// One `gift_status` answered `:ok`.
#[derive(Debug, Clone)]
pub struct Status {
    pub inv: usize,
    pub done: usize,
    pub exchange: String,
    pub participant: String,
    pub epoch: Option<i64>,
    pub gift_id: Option<i64>,
    /// From the opened box.
    pub box_gift_id: Option<i64>,
    pub stage: Option<String>,
    pub box_error: Option<String>,
}

/// One gift of a committed epoch, as first read.
#[derive(Debug, Clone)]
pub struct Gift {
    pub exchange: String,
    /// The first committed epoch it was read in.
    pub epoch: i64,
    pub giver: String,
    pub receiver: String,
    /// That epoch is a splice.
    pub spliced_in: bool,
}

/// The history read for the santa checker.
#[derive(Debug, Default)]
pub struct Facts {
    pub model: Model,
    /// By task id (the string the queue uses).
    pub tasks: BTreeMap<String, Task>,
    /// Task ids that are not `"<gift id>-<stage>"`.
    pub malformed: BTreeSet<String>,
    pub statuses: Vec<Status>,
    /// Every gift read, by gift ID.
    pub gifts: BTreeMap<i64, Gift>,
    /// Gift ids read in each committed epoch: (exchange, epoch) → giver → gift id.
    pub epochs: BTreeMap<(String, i64), BTreeMap<String, i64>>,
    /// Splice epochs: (exchange, epoch).
    pub splices: BTreeSet<(String, i64)>,
    /// Gifts to produce, and gifts a splice replaced.
    pub expected: BTreeSet<i64>,
    pub replaced: BTreeSet<i64>,
    /// Gifts whose fate the reads do not tell (not judged).
    pub unsure: BTreeSet<i64>,
}

fn text(v: &Edn, key: &str) -> Option<String> {
    v.get(key).and_then(Edn::as_str).map(str::to_string)
}

/// A keyword's or string's text.
fn name(e: Option<&Edn>) -> Option<String> {
    match e? {
        Edn::Keyword(s) | Edn::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// A map's entry under a string or keyword key (a payload keeps the JSON's string keys).
fn entry<'a>(m: &'a Edn, key: &str) -> Option<&'a Edn> {
    match m {
        Edn::Map(entries) => entries
            .iter()
            .find(|(k, _)| matches!(k, Edn::Str(s) | Edn::Keyword(s) if s == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// A task id as the queue gave it: strings only (the matcher's ids are strings).
fn task_key(e: Option<&Edn>) -> Option<String> {
    match e? {
        Edn::Str(s) => Some(s.clone()),
        other => Some(other.to_compact()),
    }
}

impl Facts {
    pub fn read(history: &History) -> Facts {
        let mut f = Facts {
            model: Model::of(history),
            ..Facts::default()
        };
        for call in history.calls() {
            let touch = Touch {
                inv: call.invoke_pos,
                done: call.complete_pos.unwrap_or(OPEN),
                outcome: call.outcome(),
                done_ns: call.complete.map_or(u64::MAX, |d| d.time_ns),
            };
            let ok = call.complete.filter(|d| d.op_type == OpType::Ok);
            let value = ok.map_or(&call.invoke.value, |d| &d.value);
            match call.invoke.f.as_str() {
                "poll" => {
                    if let Some(d) = ok {
                        f.poll(&touch, &d.value);
                    }
                }
                "start" | "ack" => {
                    let Some(id) = task_key(call.invoke.value.get("id")) else {
                        continue;
                    };
                    let t = f.task(id);
                    match call.invoke.f.as_str() {
                        "start" => t.starts.push(touch),
                        _ => t.acks.push(touch),
                    }
                }
                "status" => f.status(&touch, call.complete, &call.invoke.value),
                "gift-status" if ok.is_some() => f.gift_status(&touch, value),
                _ => {}
            }
        }
        f.gifts_of_epochs();
        f
    }

    fn task(&mut self, id: String) -> &mut Task {
        if parse_task_id(&id).is_none() {
            self.malformed.insert(id.clone());
        }
        self.tasks.entry(id).or_default()
    }

    fn poll(&mut self, touch: &Touch, value: &Edn) {
        for d in value.elements().unwrap_or_default() {
            let Some(id) = task_key(d.get("id")) else {
                continue;
            };
            let payload = d.get("payload");
            let field = |k: &str| payload.and_then(|p| entry(p, k));
            let delivery = Delivery {
                poll_inv: touch.inv,
                poll_done: touch.done,
                kind: name(d.get("kind")),
                priority: name(d.get("priority")),
                payload_gift: field("gift_id").and_then(Edn::as_i64),
                payload_exchange: field("exchange").and_then(Edn::as_str).map(str::to_string),
                payload_epoch: field("epoch").and_then(Edn::as_i64),
            };
            self.task(id).deliveries.push(delivery);
        }
    }

    fn status(&mut self, touch: &Touch, done: Option<&crate::history::Op>, inv: &Edn) {
        let Some(id) = task_key(inv.get("id")) else {
            return;
        };
        let Some(done) = done else { return };
        let not_found = match &done.error {
            Some(Edn::Vector(v)) => v.first() == Some(&Edn::kw("key-does-not-exist")),
            _ => false,
        };
        let status = name(done.value.get("status"));
        let t = self.task(id);
        match (done.op_type, status) {
            (OpType::Ok, Some(s)) => t.statuses.push((touch.inv, touch.done, s)),
            (OpType::Fail, _) if not_found => t.not_found = true,
            _ => {}
        }
    }

    fn gift_status(&mut self, touch: &Touch, v: &Edn) {
        let status = v.get("status");
        self.statuses.push(Status {
            inv: touch.inv,
            done: touch.done,
            exchange: text(v, "exchange").unwrap_or_default(),
            participant: text(v, "participant").unwrap_or_default(),
            epoch: v.get("epoch").and_then(Edn::as_i64),
            gift_id: v.get("gift-id").and_then(Edn::as_i64),
            box_gift_id: status.and_then(|s| s.get("gift-id")).and_then(Edn::as_i64),
            stage: name(status.and_then(|s| s.get("stage"))),
            box_error: text(v, "box-error"),
        });
    }

    /// Gifts from the reads whose box opened, splices from late registrations and the
    /// audit, and from both the gifts to produce and those replaced.
    fn gifts_of_epochs(&mut self) {
        for r in self.model.registrations.iter().filter(|r| r.span.ok()) {
            if let Some(e) = r.epoch.filter(|e| *e >= 2) {
                self.splices.insert((r.exchange.clone(), e));
            }
        }
        for a in self.model.audits.iter().filter(|a| a.span.ok()) {
            for ev in &a.events {
                let splice = ev.kind.as_str() == Some("splice");
                if let (true, Some(e)) = (splice, ev.epoch.as_i64()) {
                    self.splices.insert((a.exchange.clone(), e));
                }
            }
        }
        for r in self.model.reads.iter().filter(|r| r.span.ok()) {
            let (Some(e), Some(receiver)) = (r.epoch, r.receiver()) else {
                continue;
            };
            let Some(g) = r.gift_id.as_ref().and_then(Edn::as_i64) else {
                continue;
            };
            let key = (r.exchange.clone(), e);
            let giver = r.participant.clone();
            self.epochs.entry(key).or_default().insert(giver.clone(), g);
            let spliced_in = self.splices.contains(&(r.exchange.clone(), e));
            let gift = self.gifts.entry(g).or_insert_with(|| Gift {
                exchange: r.exchange.clone(),
                epoch: e,
                giver,
                receiver: receiver.to_string(),
                spliced_in,
            });
            if e < gift.epoch {
                gift.epoch = e;
                gift.spliced_in = spliced_in;
            }
        }
        let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
        for (_, x, e) in self.model.acks() {
            let n = newest.entry(x).or_default();
            *n = (*n).max(e);
        }
        for (x, e) in self.splices.iter() {
            let n = newest.entry(x.as_str()).or_default();
            *n = (*n).max(*e);
        }
        // Epoch 1 is always a match; a later one only when the audit says so (a match of
        // a matched exchange answers its current epoch, whatever made it).
        let mut matches: BTreeSet<(&str, i64)> = BTreeSet::new();
        for a in self.model.audits.iter().filter(|a| a.span.ok()) {
            for ev in &a.events {
                let committed_match =
                    ev.kind.as_str() == Some("match") && ev.event.as_str() == Some("committed");
                if let (true, Some(e)) = (committed_match, ev.epoch.as_i64()) {
                    matches.insert((a.exchange.as_str(), e));
                }
            }
        }
        let plan = production(
            &self.epochs,
            |x| newest.get(x).copied().unwrap_or(0),
            |x, e| e == 1 || matches.contains(&(x, e)),
        );
        self.expected = plan.expected;
        self.replaced = plan.replaced;
        self.unsure = plan.unsure;
    }
}
