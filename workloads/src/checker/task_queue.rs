//! The `task-queue` workload's checker: an at-least-once task queue with dependencies,
//! retry budgets and a dead-letter queue (DLQ).
//!
//! It judges four properties, each only where the history proves a violation (an
//! indeterminate op is given the benefit of the doubt):
//!
//! - lost tasks: acknowledged by `:enqueue`, yet never completed, expired or
//!   dead-lettered, and not held back by a dependency that can never complete: never
//!   delivered, or still unfinished by the status asked after the final drain;
//! - early deliveries: a task handed out although one of its dependencies surely had not
//!   been acknowledged yet, and deliveries of tasks nobody had enqueued ("phantoms");
//! - delivery counts ([`deliveries`]): a task handed out more often than its budget, two
//!   deliveries under one attempt number, an attempt number that goes down, a nack of the
//!   last attempt that kept the task;
//! - DLQ errors: a task dead-lettered before its retry budget could have been spent, after
//!   it was completed, delivered beyond its budget, or spent yet missing from the final DLQ.
//!
//! The queue's answers are claims the history checks, never evidence that excuses: attempts
//! are counted as deliveries (every `:ok` poll that carries the task; every indeterminate
//! poll may have been one more), an `:ok` ack completes a task whatever `:duplicate` says,
//! a `completed` status needs an ack that may have taken effect, an `expired` one a
//! deadline, and priorities come from the enqueue.
//!
//! Everything else (redeliveries, stealing, priority inversions, latencies) is reported.
//! "Before" is history order: an op A surely precedes B when A completed before B was
//! invoked, and may precede B when A was invoked before B completed.

mod deliveries;

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::edn::Edn;
use crate::history::{self, History, Op, OpType, Outcome, Process};

/// Examples listed per kind of problem.
const SHOWN: usize = 20;
/// The protocol's retry budget when an enqueue does not give one.
const DEFAULT_MAX_ATTEMPTS: i64 = 3;
/// The completion position of an op still open when the history ended: after everything.
const OPEN: usize = usize::MAX;

/// A task id. The workload uses integers; the protocol also allows strings, and an id
/// beyond `i64` prints as a symbol (`123N`), so those are kept rather than dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Id {
    Int(i64),
    Str(String),
    Sym(String),
}

impl Id {
    fn parse(e: &Edn) -> Option<Id> {
        match e {
            Edn::Int(i) => Some(Id::Int(*i)),
            Edn::Str(s) => Some(Id::Str(s.clone())),
            Edn::Symbol(s) => Some(Id::Sym(s.clone())),
            _ => None,
        }
    }

    /// The id of a map entry such as a delivery or a DLQ listing (`{:id ..}`), or a bare id.
    fn of_entry(e: &Edn) -> Option<Id> {
        match e.get("id") {
            Some(id) => Id::parse(id),
            None => Id::parse(e),
        }
    }

    fn to_edn(&self) -> Edn {
        match self {
            Id::Int(i) => Edn::Int(*i),
            Id::Str(s) => Edn::Str(s.clone()),
            Id::Sym(s) => Edn::Symbol(s.clone()),
        }
    }
}

/// An invocation and its completion, with their positions in the history (positions, not
/// `:index`, so that a history read without indices still orders correctly).
struct Call<'a> {
    inv: &'a Op,
    done: Option<&'a Op>,
    inv_pos: usize,
    done_pos: usize,
    outcome: Outcome,
}

impl<'a> From<history::Call<'a>> for Call<'a> {
    fn from(c: history::Call<'a>) -> Self {
        Call {
            inv: c.invoke,
            done: c.complete,
            inv_pos: c.invoke_pos,
            done_pos: c.complete_pos.unwrap_or(OPEN),
            outcome: c.outcome(),
        }
    }
}

impl Call<'_> {
    fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// A key of the request, from the invocation or else the completion.
    fn arg(&self, key: &str) -> Option<&Edn> {
        self.inv
            .value
            .get(key)
            .or_else(|| self.done.and_then(|d| d.value.get(key)))
    }

    /// The reply's value, only when it succeeded.
    fn reply(&self) -> Option<&Edn> {
        self.done
            .filter(|d| d.op_type == OpType::Ok)
            .map(|d| &d.value)
    }

    fn id(&self) -> Option<Id> {
        self.arg("id").and_then(Id::parse)
    }

    fn attempt(&self) -> Option<i64> {
        self.arg("attempt").and_then(Edn::as_i64)
    }

    fn event(&self) -> Event {
        Event {
            inv: self.inv_pos,
            done: self.done_pos,
            attempt: self.attempt(),
            outcome: self.outcome(),
            process: self.inv.process,
        }
    }
}

/// The history's calls ([`History::calls`]); an orphan completion (a truncated history)
/// counts as an instantaneous call.
fn calls(history: &History) -> Vec<Call<'_>> {
    history.calls().into_iter().map(Call::from).collect()
}

/// What an enqueue said about its task.
struct Spec {
    deps: Vec<Id>,
    max_attempts: i64,
    priority: Option<u8>,
    /// Whether it has a deadline: only then can it expire.
    deadline: bool,
}

impl Spec {
    fn parse(v: &Edn) -> Spec {
        Spec {
            deps: v
                .get("deps")
                .and_then(Edn::elements)
                .map(|ds| ds.iter().filter_map(Id::parse).collect())
                .unwrap_or_default(),
            max_attempts: v
                .get("max-attempts")
                .and_then(Edn::as_i64)
                .filter(|m| *m >= 1)
                .unwrap_or(DEFAULT_MAX_ATTEMPTS),
            priority: v.get("priority").and_then(priority_rank),
            deadline: v.get("deadline").is_some_and(|d| d != &Edn::Nil),
        }
    }
}

/// Express is served before standard, standard before nice-child.
fn priority_rank(e: &Edn) -> Option<u8> {
    match name(e)? {
        "nice-child" => Some(0),
        "standard" => Some(1),
        "express" => Some(2),
        _ => None,
    }
}

/// A keyword's or string's text.
fn name(e: &Edn) -> Option<&str> {
    match e {
        Edn::Keyword(s) | Edn::Str(s) => Some(s),
        _ => None,
    }
}

/// One ack, nack, abandon or replay of a task.
#[derive(Debug, Clone, Copy)]
struct Event {
    inv: usize,
    done: usize,
    attempt: Option<i64>,
    outcome: Outcome,
    process: Process,
}

impl Event {
    /// The last position at which it may have taken effect: an indeterminate op may take
    /// effect after its recorded completion.
    fn effect_end(&self) -> usize {
        if self.outcome == Outcome::Indeterminate {
            OPEN
        } else {
            self.done
        }
    }
}

/// One task handed out by a `:poll` `:ok`.
struct Delivery {
    id: Id,
    /// The queue's attempt number: a label, compared but never trusted for counting.
    attempt: Option<i64>,
    process: Process,
    stolen: bool,
    priority: Option<u8>,
    poll_inv: usize,
    poll_done: usize,
    poll_done_ns: u64,
    poll_index: usize,
}

/// Everything the history says about one task.
#[derive(Default)]
struct Task {
    spec: Option<Spec>,
    /// The spec came from an `:ok` enqueue (preferred over an attempted one's).
    spec_ok: bool,
    /// The first enqueue invocation: position and time.
    enqueue_inv: Option<(usize, u64)>,
    /// The first `:ok` enqueue completion's position.
    enqueue_ok: Option<usize>,
    /// Indices into [`Facts::deliveries`].
    deliveries: Vec<usize>,
    acks: Vec<Event>,
    /// The first `:ok` ack: completion position and time.
    first_ack_ok: Option<(usize, u64)>,
    nacks: Vec<Event>,
    /// Parallel to `nacks`: answered `:ok` with `:dead-lettered false`.
    nack_kept: Vec<bool>,
    abandons: Vec<Event>,
    /// `:ok` replays.
    replays: Vec<Event>,
    /// Indeterminate replays: each may have started a new epoch.
    maybe_replays: Vec<Event>,
    /// Where the task was seen dead-lettered: (invocation, completion) positions.
    dead: Vec<(usize, usize)>,
    last_status: Option<String>,
    /// Reported expired, and it had a deadline.
    expired: bool,
}

impl Task {
    /// The earliest invocation of an ack that may have taken effect.
    fn first_possible_ack(&self) -> Option<usize> {
        self.acks
            .iter()
            .filter(|a| a.outcome != Outcome::Fail)
            .map(|a| a.inv)
            .min()
    }

    /// Whether some ack may have completed it.
    fn possibly_acked(&self) -> bool {
        self.acks.iter().any(|a| a.outcome != Outcome::Fail)
    }

    fn acked_ok_after(&self, pos: usize) -> bool {
        self.acks
            .iter()
            .any(|a| a.outcome == Outcome::Ok && a.done > pos)
    }
}

/// The history, read once into per-task facts.
#[derive(Default)]
struct Facts {
    tasks: BTreeMap<Id, Task>,
    deliveries: Vec<Delivery>,
    /// `:ok` polls that returned something: invocation, completion, delivery indices.
    polls: Vec<(usize, usize, Vec<usize>)>,
    /// Indeterminate polls (info or open), by invocation, sorted.
    maybe_polls_inv: Vec<usize>,
    /// The last `:dlq` `:ok` of the final phase: its invocation and the ids listed.
    final_dlq: Option<(usize, HashSet<Id>)>,
    enqueued: usize,
    enqueue_failed: usize,
    enqueue_indeterminate: usize,
    replayed: usize,
}

impl Facts {
    fn read(history: &History) -> Facts {
        let mut facts = Facts::default();
        for call in calls(history) {
            match call.inv.f.as_str() {
                "enqueue" => facts.enqueue(&call),
                "poll" => facts.poll(&call),
                "ack" => facts.ack(&call),
                "nack" => {
                    let Some(id) = call.id() else { continue };
                    let task = facts.tasks.entry(id).or_default();
                    task.nacks.push(call.event());
                    let dead = call.reply().and_then(|r| r.get("dead-lettered"));
                    task.nack_kept.push(dead == Some(&Edn::Bool(false)));
                    if dead == Some(&Edn::Bool(true)) {
                        task.dead.push((call.inv_pos, call.done_pos));
                    }
                }
                "replay" if call.outcome() == Outcome::Indeterminate => {
                    let Some(id) = call.id() else { continue };
                    let task = facts.tasks.entry(id).or_default();
                    task.maybe_replays.push(call.event());
                }
                "abandon" | "replay" if call.outcome() == Outcome::Ok => {
                    let Some(id) = call.id() else { continue };
                    let task = facts.tasks.entry(id).or_default();
                    if call.inv.f == "abandon" {
                        task.abandons.push(call.event());
                    } else {
                        task.replays.push(call.event());
                        facts.replayed += 1;
                    }
                }
                "dlq" => facts.dlq(&call),
                "status" => {
                    let (Some(id), Some(reply)) = (call.id(), call.reply()) else {
                        continue;
                    };
                    let Some(status) = reply.get("status").and_then(name) else {
                        continue;
                    };
                    let task = facts.tasks.entry(id).or_default();
                    let deadline = task.spec.as_ref().is_some_and(|s| s.deadline);
                    match status {
                        "failed" => task.dead.push((call.inv_pos, call.done_pos)),
                        // Without a deadline a task cannot expire, whatever the queue says.
                        "expired" => task.expired |= deadline,
                        _ => {}
                    }
                    task.last_status = Some(status.to_string());
                }
                _ => {}
            }
        }
        facts.maybe_polls_inv.sort_unstable();
        facts
    }

    fn enqueue(&mut self, call: &Call) {
        match call.outcome() {
            Outcome::Ok => self.enqueued += 1,
            Outcome::Fail => self.enqueue_failed += 1,
            Outcome::Indeterminate => self.enqueue_indeterminate += 1,
        }
        let Some(id) = call.id() else { return };
        let task = self.tasks.entry(id).or_default();
        if task.enqueue_inv.is_none() {
            task.enqueue_inv = Some((call.inv_pos, call.inv.time_ns));
        }
        let ok = call.outcome() == Outcome::Ok;
        if ok && task.enqueue_ok.is_none() {
            task.enqueue_ok = Some(call.done_pos);
        }
        if task.spec.is_none() || (ok && !task.spec_ok) {
            task.spec = Some(Spec::parse(&call.inv.value));
            task.spec_ok = ok;
        }
    }

    fn poll(&mut self, call: &Call) {
        let Some(reply) = call.reply() else {
            if call.outcome() == Outcome::Indeterminate {
                self.maybe_polls_inv.push(call.inv_pos);
            }
            return;
        };
        let (done_ns, index) = call.done.map_or((0, 0), |d| (d.time_ns, d.index));
        let mut mine = Vec::new();
        for entry in reply.elements().unwrap_or_default() {
            let Some(id) = Id::of_entry(entry) else {
                continue;
            };
            let n = self.deliveries.len();
            self.tasks.entry(id.clone()).or_default().deliveries.push(n);
            mine.push(n);
            self.deliveries.push(Delivery {
                id,
                attempt: entry.get("attempt").and_then(Edn::as_i64),
                process: call.inv.process,
                stolen: entry.get("stolen") == Some(&Edn::Bool(true)),
                priority: entry.get("priority").and_then(priority_rank),
                poll_inv: call.inv_pos,
                poll_done: call.done_pos,
                poll_done_ns: done_ns,
                poll_index: index,
            });
        }
        if !mine.is_empty() {
            self.polls.push((call.inv_pos, call.done_pos, mine));
        }
    }

    fn ack(&mut self, call: &Call) {
        let Some(id) = call.id() else { return };
        let task = self.tasks.entry(id).or_default();
        task.acks.push(call.event());
        if call.outcome() == Outcome::Ok && task.first_ack_ok.is_none() {
            let ns = call.done.map_or(0, |d| d.time_ns);
            task.first_ack_ok = Some((call.done_pos, ns));
        }
    }

    fn dlq(&mut self, call: &Call) {
        let Some(reply) = call.reply() else { return };
        let mut listed = HashSet::new();
        for id in reply
            .elements()
            .unwrap_or_default()
            .iter()
            .filter_map(Id::of_entry)
        {
            let task = self.tasks.entry(id.clone()).or_default();
            task.dead.push((call.inv_pos, call.done_pos));
            listed.insert(id);
        }
        if call.done.is_some_and(|d| d.final_read) {
            self.final_dlq = Some((call.inv_pos, listed));
        }
    }

    fn declare(&mut self, declared: &[Declared]) {
        for d in declared {
            let Some(id) = Id::parse(&d.id) else { continue };
            let task = self.tasks.entry(id).or_default();
            if task.spec.is_some() {
                continue;
            }
            task.spec = Some(Spec {
                deps: d.deps.iter().filter_map(Id::parse).collect(),
                max_attempts: d.max_attempts,
                priority: priority_rank(&Edn::Str(d.priority.clone())),
                deadline: false,
            });
            task.enqueue_inv = Some((0, d.since_ns));
        }
    }

    /// Indeterminate polls that may have taken effect before `end`: every one invoked
    /// before it. An `:info` op may take effect at any time after its invocation, its
    /// recorded completion included (a request held up in a paused node, say, is carried
    /// out when the node resumes, long after the client gave up on it).
    fn maybe_polls_before(&self, end: usize) -> usize {
        self.maybe_polls_inv.partition_point(|p| *p < end)
    }
}

/// A dependency that can never be acknowledged, as far as the history shows: expired,
/// dead-lettered and not completed since, or of unknown fate (never acknowledged by
/// `:enqueue`, so no status was asked for it, and never completed).
fn stuck(tasks: &BTreeMap<Id, Task>, id: &Id) -> bool {
    let Some(t) = tasks.get(id) else { return true };
    let dead = t
        .dead
        .iter()
        .map(|(_, done)| *done)
        .max()
        .is_some_and(|last| !t.acked_ok_after(last));
    t.expired || dead || (t.enqueue_ok.is_none() && t.first_ack_ok.is_none())
}

#[derive(Clone, Copy)]
enum Visit {
    InProgress,
    Done(bool),
}

/// Whether a dependency of `root`, transitively, is [`stuck`]. Iterative, so that a long
/// dependency chain cannot overflow the stack; a cycle (which the queue refuses) is not
/// followed.
fn blocked(tasks: &BTreeMap<Id, Task>, root: &Id, memo: &mut HashMap<Id, Visit>) -> bool {
    if let Some(Visit::Done(b)) = memo.get(root) {
        return *b;
    }
    let no_deps: &[Id] = &[];
    let deps_of = |id: &Id| {
        tasks
            .get(id)
            .and_then(|t| t.spec.as_ref())
            .map_or(no_deps, |s| s.deps.as_slice())
    };
    memo.insert(root.clone(), Visit::InProgress);
    let mut stack: Vec<(Id, usize)> = vec![(root.clone(), 0)];
    while let Some((id, next)) = stack.last_mut() {
        let deps = deps_of(id);
        let Some(dep) = deps.get(*next) else {
            memo.insert(id.clone(), Visit::Done(false));
            stack.pop();
            continue;
        };
        *next += 1;
        let known = if stuck(tasks, dep) {
            Some(true)
        } else {
            match memo.get(dep) {
                Some(Visit::Done(b)) => Some(*b),
                Some(Visit::InProgress) => Some(false),
                None => None,
            }
        };
        match known {
            Some(true) => {
                for (id, _) in stack.drain(..) {
                    memo.insert(id, Visit::Done(true));
                }
            }
            Some(false) => {}
            None => {
                memo.insert(dep.clone(), Visit::InProgress);
                stack.push((dep.clone(), 0));
            }
        }
    }
    matches!(memo.get(root), Some(Visit::Done(true)))
}

/// Lost tasks (sorted) and how many were excused as blocked.
fn lost(facts: &Facts) -> (Vec<Id>, usize) {
    let mut memo = HashMap::new();
    let (mut lost, mut blocked_count) = (Vec::new(), 0);
    for (id, t) in &facts.tasks {
        // Delivered once is not enough: a task the final status still shows unfinished
        // after the drain (its lease forgotten, say) never completed either. Nor did one
        // reported completed that no ack can have completed, or expired without a deadline.
        let status = t.last_status.as_deref();
        let completed = status == Some("completed") && t.possibly_acked();
        let unfinished = matches!(status, Some("pending" | "assigned" | "in_progress"))
            || (status == Some("completed") && !completed)
            || (status == Some("expired") && !t.expired);
        let accounted = t.enqueue_ok.is_none()
            || (!t.deliveries.is_empty() && !unfinished)
            || t.first_ack_ok.is_some()
            || completed
            || t.expired
            || !t.dead.is_empty();
        if accounted {
            continue;
        }
        if blocked(&facts.tasks, id, &mut memo) {
            blocked_count += 1;
        } else {
            lost.push(id.clone());
        }
    }
    (lost, blocked_count)
}

/// Early deliveries (count and examples) and phantom deliveries.
fn early(facts: &Facts) -> (usize, Vec<Edn>, usize) {
    let (mut count, mut shown, mut phantoms) = (0, Vec::new(), 0);
    for d in &facts.deliveries {
        let task = facts.tasks.get(&d.id);
        let known = task
            .and_then(|t| t.enqueue_inv)
            .is_some_and(|(pos, _)| pos < d.poll_done);
        if !known {
            phantoms += 1;
            continue;
        }
        let deps = task
            .and_then(|t| t.spec.as_ref())
            .map_or(&[][..], |s| s.deps.as_slice());
        let early_dep = deps.iter().find(|dep| {
            !facts
                .tasks
                .get(*dep)
                .and_then(Task::first_possible_ack)
                .is_some_and(|inv| inv < d.poll_done)
        });
        if let Some(dep) = early_dep {
            count += 1;
            if shown.len() < SHOWN {
                shown.push(Edn::map([
                    ("id", d.id.to_edn()),
                    ("dep", dep.to_edn()),
                    ("poll-index", Edn::from(d.poll_index)),
                ]));
            }
        }
    }
    (count, shown, phantoms)
}

/// DLQ errors, at most one per task and rule: (task, rule, why).
fn dlq_errors(facts: &Facts) -> Vec<(Id, u8, String)> {
    let mut errors = Vec::new();
    for (id, t) in &facts.tasks {
        let Some(spec) = &t.spec else { continue };
        let budget = spec.max_attempts;
        if let Some(why) = dead_early(facts, t, budget) {
            errors.push((id.clone(), 1, why));
        }
        if dead_after_completion(t) {
            errors.push((
                id.clone(),
                2,
                "dead-lettered after an ack completed it".to_string(),
            ));
        }
        let beyond = t
            .deliveries
            .iter()
            .filter_map(|i| facts.deliveries.get(*i)?.attempt)
            .find(|a| *a > budget);
        if let Some(attempt) = beyond {
            errors.push((
                id.clone(),
                3,
                format!("delivered as attempt {attempt} of max-attempts {budget}"),
            ));
        }
        if let Some(why) = missing_from_final_dlq(facts, id, t, budget) {
            errors.push((id.clone(), 4, why));
        }
    }
    errors.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    errors
}

/// Rule 1: seen dead-lettered while even an upper bound on the attempts of its epoch that
/// could have failed is below the budget: every delivery that may belong to the epoch, and
/// every indeterminate poll that may have handed it out unseen, less the deliveries an
/// `:ok` ack surely completed.
fn dead_early(facts: &Facts, t: &Task, budget: i64) -> Option<String> {
    for &(seen_inv, seen_done) in &t.dead {
        // The epoch starts at the last replay that surely preceded the observation; taking
        // its invocation keeps every attempt that may belong to the epoch.
        let start = t
            .replays
            .iter()
            .filter(|r| r.done < seen_inv)
            .map(|r| r.inv)
            .max()
            .or(t.enqueue_inv.map(|(pos, _)| pos))
            .unwrap_or(0);
        let within = |inv: usize, done: usize| done > start && inv < seen_done;
        let acked = t
            .acks
            .iter()
            .filter(|a| a.outcome == Outcome::Ok && within(a.inv, a.done));
        let succeeded = deliveries::linked(facts, t, acked);
        let could_fail = t
            .deliveries
            .iter()
            .filter(|i| !succeeded.contains(i))
            .filter_map(|i| facts.deliveries.get(*i))
            .filter(|d| within(d.poll_inv, d.poll_done))
            .count();
        let bound = could_fail + facts.maybe_polls_before(seen_done);
        if (bound as i64) < budget {
            return Some(format!(
                "dead-lettered after at most {bound} failed attempts of max-attempts {budget}"
            ));
        }
    }
    None
}

/// Rule 2: an `:ok` ack (whatever its `:duplicate` says, the task is completed once it is
/// answered) surely came before the task was seen dead-lettered, with no replay that could
/// fall between them.
fn dead_after_completion(t: &Task) -> bool {
    let completions = t.acks.iter().filter(|a| a.outcome == Outcome::Ok);
    for ack in completions {
        for &(seen_inv, seen_done) in &t.dead {
            let replay_between = t
                .replays
                .iter()
                .chain(&t.maybe_replays)
                .any(|r| r.effect_end() > ack.inv && r.inv < seen_done);
            if ack.done < seen_inv && !replay_between {
                return true;
            }
        }
    }
    false
}

/// Rule 4: the budget surely spent in the last epoch (as many distinct deliveries surely
/// failed: nacked, abandoned or refused an ack), no ack that may have completed the task,
/// and yet absent from a final DLQ listing invoked after the failures.
fn missing_from_final_dlq(facts: &Facts, id: &Id, t: &Task, budget: i64) -> Option<String> {
    let (dlq_inv, listed) = facts.final_dlq.as_ref()?;
    if listed.contains(id) || t.expired {
        return None;
    }
    // Only failures surely after every replay belong to the last epoch (an indeterminate
    // replay may take effect at any time: none is surely after it).
    let start = t
        .replays
        .iter()
        .chain(&t.maybe_replays)
        .map(Event::effect_end)
        .max()
        .unwrap_or(0);
    let after = |e: &&Event| e.inv > start && e.done < *dlq_inv;
    if t.acks
        .iter()
        .any(|a| a.outcome != Outcome::Fail && a.done > start)
    {
        return None;
    }
    let events = t
        .nacks
        .iter()
        .filter(|n| n.outcome == Outcome::Ok)
        .chain(&t.abandons)
        .chain(t.acks.iter().filter(|a| a.outcome == Outcome::Fail))
        .filter(after);
    let failed = deliveries::linked(facts, t, events);
    (failed.len() as i64 >= budget).then(|| {
        format!(
            "{} attempts surely failed of max-attempts {budget}, yet not in the final dlq",
            failed.len()
        )
    })
}

/// Polls that returned a lower-priority task while a higher-priority one was surely ready
/// (enqueued, its dependencies acknowledged) and surely still waiting (first handed out
/// by a poll invoked after this one completed).
fn priority_inversions(facts: &Facts) -> usize {
    // Per priority: (ready position, first delivery's poll invocation), sorted by
    // readiness, with the running maximum of the latter.
    let mut levels: [Vec<(usize, usize)>; 3] = Default::default();
    for t in facts.tasks.values() {
        let (Some(spec), Some(enqueued)) = (&t.spec, t.enqueue_ok) else {
            continue;
        };
        let Some(rank) = spec.priority else { continue };
        let deps_acked: Option<Vec<usize>> = spec
            .deps
            .iter()
            .map(|d| Some(facts.tasks.get(d)?.first_ack_ok?.0))
            .collect();
        let Some(deps_acked) = deps_acked else {
            continue;
        };
        let ready = deps_acked.into_iter().fold(enqueued, usize::max);
        let first = t
            .deliveries
            .iter()
            .filter_map(|i| facts.deliveries.get(*i))
            .map(|d| d.poll_inv)
            .min();
        if let (Some(first), Some(level)) = (first, levels.get_mut(rank as usize)) {
            level.push((ready, first));
        }
    }
    for level in &mut levels {
        level.sort_unstable();
        let mut max = 0;
        for entry in level.iter_mut() {
            max = max.max(entry.1);
            entry.1 = max;
        }
    }
    let mut count = 0;
    for (inv, done, ds) in &facts.polls {
        let lowest = ds
            .iter()
            .filter_map(|i| {
                // The enqueue says what the priority is; the delivery's label only when no
                // enqueue was seen.
                let d = facts.deliveries.get(*i)?;
                facts
                    .tasks
                    .get(&d.id)
                    .and_then(|t| t.spec.as_ref()?.priority)
                    .or(d.priority)
            })
            .min();
        let Some(lowest) = lowest else { continue };
        let inverted = levels.iter().skip(lowest as usize + 1).any(|level| {
            let n = level.partition_point(|(ready, _)| ready < inv);
            n > 0 && level[n - 1].1 > *done
        });
        if inverted {
            count += 1;
        }
    }
    count
}

/// Jepsen's latency distribution at 0, 0.5, 0.95, 0.99 and 1, in milliseconds.
pub(crate) fn quantiles(mut ns: Vec<u64>) -> Edn {
    if ns.is_empty() {
        return Edn::Map(Vec::new());
    }
    ns.sort_unstable();
    let n = ns.len();
    let at = |p: f64| Edn::Float(ns[((n as f64 * p).floor() as usize).min(n - 1)] as f64 / 1e6);
    Edn::Map(vec![
        (Edn::Int(0), at(0.0)),
        (Edn::Float(0.5), at(0.5)),
        (Edn::Float(0.95), at(0.95)),
        (Edn::Float(0.99), at(0.99)),
        (Edn::Int(1), at(1.0)),
    ])
}

/// The first examples of one kind.
fn shown(examples: &[Edn]) -> Edn {
    Edn::Vector(examples.iter().take(SHOWN).cloned().collect())
}

/// A task enqueued by something outside the history (the Santa matcher), as its enqueue
/// would have said it.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    pub id: Edn,
    pub deps: Vec<Edn>,
    /// `express`, `standard` or `nice-child`.
    pub priority: String,
    pub max_attempts: i64,
    /// History time (ns) no later than the enqueue: the start of latencies.
    pub since_ns: u64,
}

/// Judges a task-queue history; see the module documentation.
pub fn check(history: &History) -> Edn {
    check_declared(history, &[])
}

/// Judges a history whose tasks were enqueued by `declared` (besides its own `:enqueue`
/// ops): each is known from the start of the history, as if its enqueue had been invoked
/// then, but not acknowledged, so whether it completed is for the caller to judge.
pub fn check_declared(history: &History, declared: &[Declared]) -> Edn {
    let mut facts = Facts::read(history);
    facts.declare(declared);
    let (lost, blocked_count) = lost(&facts);
    let (early_count, early_shown, phantoms) = early(&facts);
    let dlq_errors = dlq_errors(&facts);
    let counted = deliveries::count(&facts);

    let valid = if !lost.is_empty()
        || early_count > 0
        || phantoms > 0
        || !dlq_errors.is_empty()
        || counted.errors() > 0
    {
        Edn::Bool(false)
    } else if facts.enqueued == 0 && declared.is_empty() {
        Edn::kw("unknown")
    } else {
        Edn::Bool(true)
    };
    let dlq_shown: Vec<Edn> = dlq_errors
        .iter()
        .map(|(id, _, why)| Edn::map([("id", id.to_edn()), ("why", Edn::from(why.as_str()))]))
        .collect();
    let mut entries = vec![
        ("valid?", valid),
        ("lost-count", Edn::from(lost.len())),
        (
            "lost",
            Edn::Vector(lost.iter().take(SHOWN).map(Id::to_edn).collect()),
        ),
        ("blocked-count", Edn::from(blocked_count)),
        ("early-deliveries-count", Edn::from(early_count)),
        ("early-deliveries", Edn::Vector(early_shown)),
        ("phantom-deliveries-count", Edn::from(phantoms)),
    ];
    let kinds = [
        ("over-budget-count", "over-budget", &counted.over_budget),
        (
            "repeated-attempts-count",
            "repeated-attempts",
            &counted.repeated_attempts,
        ),
        (
            "attempt-regressions-count",
            "attempt-regressions",
            &counted.attempt_regressions,
        ),
        (
            "last-nack-not-dead-count",
            "last-nack-not-dead",
            &counted.last_nack_not_dead,
        ),
        ("dlq-errors-count", "dlq-errors", &dlq_shown),
    ];
    for (count, kind, examples) in kinds {
        entries.push((count, Edn::from(examples.len())));
        entries.push((kind, shown(examples)));
    }
    entries.extend(report(&facts, counted.uncertain));
    Edn::map(entries)
}

/// What is reported rather than judged: counts and latencies.
fn report(facts: &Facts, uncertain: usize) -> Vec<(&'static str, Edn)> {
    let tasks = facts.tasks.values();
    let delivered = tasks.clone().filter(|t| !t.deliveries.is_empty()).count();
    let completed = tasks.clone().filter(|t| t.first_ack_ok.is_some()).count();
    let dead_lettered = tasks.clone().filter(|t| !t.dead.is_empty()).count();
    let expired = tasks.clone().filter(|t| t.expired).count();
    let duplicate_deliveries = facts
        .deliveries
        .iter()
        .filter(|d| {
            facts
                .tasks
                .get(&d.id)
                .and_then(|t| t.first_ack_ok)
                .is_some_and(|(acked, _)| acked < d.poll_inv)
        })
        .count();
    // Every delivery of a task after its first, whatever attempt number it carries.
    let redeliveries = facts.deliveries.len() - delivered;
    // Acks answered `:ok` after another `:ok` ack of the task had completed it.
    let duplicate_completions: usize = tasks
        .clone()
        .filter_map(|t| {
            let (first, _) = t.first_ack_ok?;
            let later = t
                .acks
                .iter()
                .filter(|a| a.outcome == Outcome::Ok && a.inv > first);
            Some(later.count())
        })
        .sum();
    let stolen = facts.deliveries.iter().filter(|d| d.stolen).count();
    let (queue_wait, end_to_end) = latencies(facts);
    vec![
        ("enqueued", Edn::from(facts.enqueued)),
        ("enqueue-failed", Edn::from(facts.enqueue_failed)),
        (
            "enqueue-indeterminate",
            Edn::from(facts.enqueue_indeterminate),
        ),
        ("delivered", Edn::from(delivered)),
        ("deliveries", Edn::from(facts.deliveries.len())),
        ("duplicate-deliveries", Edn::from(duplicate_deliveries)),
        ("redeliveries", Edn::from(redeliveries)),
        ("delivery-count-uncertain", Edn::from(uncertain)),
        ("completed", Edn::from(completed)),
        ("duplicate-completions", Edn::from(duplicate_completions)),
        ("dead-lettered", Edn::from(dead_lettered)),
        ("replayed", Edn::from(facts.replayed)),
        ("expired", Edn::from(expired)),
        ("stolen", Edn::from(stolen)),
        ("priority-inversions", Edn::from(priority_inversions(facts))),
        ("queue-wait", queue_wait),
        ("end-to-end", end_to_end),
    ]
}

/// Queue-wait (enqueue invoked to first delivery) and end-to-end (to first `:ok` ack)
/// quantiles.
fn latencies(facts: &Facts) -> (Edn, Edn) {
    let (mut queue_wait, mut end_to_end) = (Vec::new(), Vec::new());
    for t in facts.tasks.values() {
        let Some((_, enqueued_ns)) = t.enqueue_inv else {
            continue;
        };
        let first_delivery = t
            .deliveries
            .iter()
            .filter_map(|i| facts.deliveries.get(*i))
            .min_by_key(|d| d.poll_done);
        if let Some(d) = first_delivery {
            queue_wait.push(d.poll_done_ns.saturating_sub(enqueued_ns));
        }
        if let Some((_, acked_ns)) = t.first_ack_ok {
            end_to_end.push(acked_ns.saturating_sub(enqueued_ns));
        }
    }
    (quantiles(queue_wait), quantiles(end_to_end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::tests_support::op_at;

    const MS: u64 = 1_000_000;

    /// Builds a history one op at a time, a millisecond apart.
    struct B {
        h: History,
        t: u64,
    }

    fn ids(xs: &[i64]) -> Edn {
        Edn::Vector(xs.iter().map(|x| Edn::Int(*x)).collect())
    }

    fn spec(id: i64, deps: &[i64], max: i64, priority: &str) -> Edn {
        Edn::map([
            ("id", Edn::Int(id)),
            ("priority", Edn::kw(priority)),
            ("kind", Edn::kw("assembly")),
            ("deps", ids(deps)),
            ("max-attempts", Edn::Int(max)),
        ])
    }

    fn delivery(id: i64, attempt: i64) -> Edn {
        delivery_of(id, attempt, "standard", false)
    }

    fn delivery_of(id: i64, attempt: i64, priority: &str, stolen: bool) -> Edn {
        Edn::map([
            ("id", Edn::Int(id)),
            ("attempt", Edn::Int(attempt)),
            ("priority", Edn::kw(priority)),
            ("partition", Edn::Int(0)),
            ("stolen", Edn::Bool(stolen)),
        ])
    }

    fn attempt_of(id: i64, attempt: i64) -> Edn {
        Edn::map([("id", Edn::Int(id)), ("attempt", Edn::Int(attempt))])
    }

    impl B {
        fn new() -> B {
            B {
                h: History::default(),
                t: 0,
            }
        }

        fn op(&mut self, p: u64, ty: OpType, f: &str, v: Edn) {
            self.t += MS;
            self.h.push(op_at(p, ty, f, v, self.t));
        }

        fn call(&mut self, p: u64, f: &str, inv: Edn, ty: OpType, done: Edn) {
            self.op(p, OpType::Invoke, f, inv);
            self.op(p, ty, f, done);
        }

        fn enqueue(&mut self, id: i64, deps: &[i64], max: i64) {
            self.enqueue_with(id, deps, max, "standard");
        }

        fn enqueue_with(&mut self, id: i64, deps: &[i64], max: i64, priority: &str) {
            let v = spec(id, deps, max, priority);
            self.call(0, "enqueue", v.clone(), OpType::Ok, v);
        }

        fn poll(&mut self, ds: &[(i64, i64)]) {
            let ds = ds.iter().map(|(id, a)| delivery(*id, *a)).collect();
            self.poll_raw(Edn::Vector(ds));
        }

        fn poll_raw(&mut self, value: Edn) {
            let max = Edn::map([("max", Edn::Int(5))]);
            self.call(1, "poll", max, OpType::Ok, value);
        }

        fn poll_info(&mut self) {
            let max = Edn::map([("max", Edn::Int(5))]);
            self.call(1, "poll", max.clone(), OpType::Info, max);
        }

        fn ack_as(&mut self, id: i64, attempt: i64, duplicate: bool) {
            let mut done = attempt_of(id, attempt);
            done.insert("duplicate", Edn::Bool(duplicate));
            self.call(2, "ack", attempt_of(id, attempt), OpType::Ok, done);
        }

        fn ack(&mut self, id: i64, attempt: i64) {
            self.ack_as(id, attempt, false);
        }

        fn nack(&mut self, id: i64, attempt: i64, dead: bool) {
            let mut done = attempt_of(id, attempt);
            done.insert("dead-lettered", Edn::Bool(dead));
            self.call(2, "nack", attempt_of(id, attempt), OpType::Ok, done);
        }

        fn abandon(&mut self, id: i64, attempt: i64) {
            let v = attempt_of(id, attempt);
            self.call(2, "abandon", v.clone(), OpType::Ok, v);
        }

        fn replay(&mut self, id: i64) {
            let v = Edn::map([("id", Edn::Int(id))]);
            self.call(3, "replay", v.clone(), OpType::Ok, v);
        }

        fn dlq(&mut self, listed: &[i64], final_read: bool) {
            let entries = listed
                .iter()
                .map(|id| {
                    Edn::map([
                        ("id", Edn::Int(*id)),
                        ("attempts", Edn::Int(3)),
                        ("max-attempts", Edn::Int(3)),
                    ])
                })
                .collect();
            self.call(3, "dlq", Edn::Nil, OpType::Ok, Edn::Vector(entries));
            if let Some(last) = self.h.ops.last_mut() {
                last.final_read = final_read;
            }
        }

        fn status(&mut self, id: i64, status: &str) {
            let inv = Edn::map([("id", Edn::Int(id))]);
            let done = Edn::map([
                ("id", Edn::Int(id)),
                ("status", Edn::kw(status)),
                ("attempts", Edn::Int(1)),
            ]);
            self.call(3, "status", inv, OpType::Ok, done);
        }

        fn check(&self) -> Edn {
            check(&self.h)
        }
    }

    fn count(r: &Edn, key: &str) -> i64 {
        r.get(key).and_then(Edn::as_i64).unwrap_or(-1)
    }

    fn valid(r: &Edn) -> Edn {
        r.get("valid?").cloned().unwrap_or(Edn::Nil)
    }

    fn whys(r: &Edn) -> Vec<String> {
        r.get("dlq-errors")
            .and_then(Edn::elements)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e.get("why")?.as_str().map(str::to_string))
            .collect()
    }

    /// Two tasks, the second depending on the first, each delivered once and acked.
    fn clean() -> B {
        let mut b = B::new();
        b.enqueue(1, &[], 3);
        b.enqueue(2, &[1], 3);
        b.poll(&[(1, 1)]);
        b.ack(1, 1);
        b.poll(&[(2, 1)]);
        b.ack(2, 1);
        b.dlq(&[], true);
        b
    }

    #[test]
    fn a_clean_history_is_valid_with_keys_in_order() {
        let r = clean().check();
        assert_eq!(valid(&r), Edn::Bool(true), "{}", r.to_pretty());
        let Edn::Map(entries) = &r else {
            panic!("not a map")
        };
        let keys: Vec<String> = entries.iter().map(|(k, _)| k.to_compact()).collect();
        assert_eq!(
            keys.join(" "),
            ":valid? :lost-count :lost :blocked-count :early-deliveries-count \
             :early-deliveries :phantom-deliveries-count :over-budget-count :over-budget \
             :repeated-attempts-count :repeated-attempts :attempt-regressions-count \
             :attempt-regressions :last-nack-not-dead-count :last-nack-not-dead \
             :dlq-errors-count :dlq-errors :enqueued :enqueue-failed :enqueue-indeterminate \
             :delivered :deliveries :duplicate-deliveries :redeliveries \
             :delivery-count-uncertain :completed :duplicate-completions \
             :dead-lettered :replayed :expired :stolen :priority-inversions :queue-wait \
             :end-to-end"
        );
        assert_eq!(count(&r, "enqueued"), 2);
        assert_eq!(count(&r, "delivered"), 2);
        assert_eq!(count(&r, "completed"), 2);
        // Task 1 is invoked at 1 ms, delivered by 6 ms and acked by 8 ms; task 2 is
        // invoked at 3 ms, delivered by 10 ms and acked by 12 ms.
        assert_eq!(
            r.get("queue-wait").unwrap().to_compact(),
            "{0 5.0, 0.5 7.0, 0.95 7.0, 0.99 7.0, 1 7.0}"
        );
        assert_eq!(
            r.get("end-to-end").unwrap().to_compact(),
            "{0 7.0, 0.5 9.0, 0.95 9.0, 0.99 9.0, 1 9.0}"
        );
    }

    #[test]
    fn no_acknowledged_enqueue_is_unknown() {
        let r = B::new().check();
        assert_eq!(valid(&r), Edn::kw("unknown"));
        assert_eq!(r.get("queue-wait"), Some(&Edn::Map(Vec::new())));
    }

    #[test]
    fn a_task_never_delivered_is_lost_unless_expired() {
        let mut b = B::new();
        b.enqueue(1, &[], 3);
        b.enqueue(2, &[], 3);
        let mut late = spec(3, &[], 3, "standard");
        late.insert("deadline", Edn::Int(5));
        b.call(0, "enqueue", late.clone(), OpType::Ok, late);
        // Without a deadline it cannot expire, whatever the queue says.
        b.enqueue(4, &[], 3);
        b.poll(&[(1, 1)]);
        b.ack(1, 1);
        b.dlq(&[], true);
        b.status(2, "pending");
        b.status(3, "expired");
        b.status(4, "expired");
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(false));
        assert_eq!(count(&r, "lost-count"), 2);
        assert_eq!(r.get("lost"), Some(&ids(&[2, 4])));
        assert_eq!(count(&r, "expired"), 1);
    }

    #[test]
    fn a_task_delivered_but_unfinished_after_the_drain_is_lost() {
        let mut b = B::new();
        b.enqueue(1, &[], 3);
        b.enqueue(2, &[], 3);
        b.poll(&[(1, 1), (2, 1)]);
        b.abandon(1, 1);
        b.ack(2, 1);
        b.dlq(&[], true);
        // Its lease was forgotten: nobody ever hands it out again.
        b.status(1, "assigned");
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(false));
        assert_eq!(r.get("lost"), Some(&ids(&[1])));
        // Completed after all, by an ack whose reply was lost: not lost. Reported
        // completed with no ack that can have completed it: lost.
        let completed = |ack: Option<OpType>| {
            let mut b = B::new();
            b.enqueue(1, &[], 3);
            b.poll(&[(1, 1)]);
            if let Some(ty) = ack {
                b.call(2, "ack", attempt_of(1, 1), ty, attempt_of(1, 1));
            }
            b.dlq(&[], true);
            b.status(1, "completed");
            count(&b.check(), "lost-count")
        };
        assert_eq!(completed(Some(OpType::Info)), 0);
        assert_eq!(completed(None), 1);
        assert_eq!(completed(Some(OpType::Fail)), 1);
    }

    #[test]
    fn a_poll_that_timed_out_before_the_task_existed_may_still_have_delivered_it() {
        // The poll sat in a paused node until after the task was enqueued: its client had
        // long recorded `:info`, and then it handed out attempt 1 unseen.
        let mut b = B::new();
        b.poll_info();
        b.enqueue(1, &[], 2);
        b.poll(&[(1, 2)]);
        b.abandon(1, 2);
        b.dlq(&[1], true);
        assert_eq!(count(&b.check(), "dlq-errors-count"), 0);
        // Without any indeterminate poll, the missing attempt is a real error.
        let mut b = B::new();
        b.enqueue(1, &[], 2);
        b.poll(&[(1, 2)]);
        b.abandon(1, 2);
        b.dlq(&[1], true);
        assert_eq!(count(&b.check(), "dlq-errors-count"), 1);
    }

    #[test]
    fn a_dependent_of_a_dead_lettered_task_is_blocked_not_lost() {
        let mut b = B::new();
        b.enqueue(1, &[], 1);
        b.enqueue(2, &[1], 3);
        b.enqueue(3, &[2], 3);
        b.poll(&[(1, 1)]);
        b.nack(1, 1, true);
        b.dlq(&[1], true);
        b.status(2, "pending");
        b.status(3, "pending");
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(true), "{}", r.to_pretty());
        assert_eq!(count(&r, "blocked-count"), 2);
        assert_eq!(count(&r, "dead-lettered"), 1);
    }

    #[test]
    fn a_delivery_before_its_dependency_was_acked_is_early() {
        let mut b = B::new();
        b.enqueue(1, &[], 3);
        b.enqueue(2, &[1], 3);
        b.poll(&[(1, 1)]);
        b.poll(&[(2, 1)]);
        b.ack(1, 1);
        b.ack(2, 1);
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(false));
        assert_eq!(count(&r, "early-deliveries-count"), 1);
        assert_eq!(
            r.get("early-deliveries").unwrap().to_compact(),
            "[{:id 2, :dep 1, :poll-index 7}]"
        );
    }

    #[test]
    fn a_delivery_concurrent_with_the_dependency_ack_is_not_early() {
        let mut b = B::new();
        b.enqueue(1, &[], 3);
        b.enqueue(2, &[1], 3);
        b.poll(&[(1, 1)]);
        // The ack of 1 is invoked before the poll completes, and completes after it.
        b.op(2, OpType::Invoke, "ack", attempt_of(1, 1));
        b.poll(&[(2, 1)]);
        let mut done = attempt_of(1, 1);
        done.insert("duplicate", Edn::Bool(false));
        b.op(2, OpType::Ok, "ack", done);
        b.ack(2, 1);
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(true), "{}", r.to_pretty());
        assert_eq!(count(&r, "early-deliveries-count"), 0);
    }

    #[test]
    fn a_delivery_of_a_task_never_enqueued_is_a_phantom() {
        let mut b = clean();
        b.poll(&[(99, 1)]);
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(false));
        assert_eq!(count(&r, "phantom-deliveries-count"), 1);
    }

    /// Two nacked attempts of three, then dead-lettered; `info_poll` adds an
    /// indeterminate poll that may have delivered a third attempt invisibly.
    fn dead_after_two(info_poll: bool) -> Edn {
        let mut b = B::new();
        b.enqueue(1, &[], 3);
        b.poll(&[(1, 1)]);
        b.nack(1, 1, false);
        if info_poll {
            b.poll_info();
        }
        b.poll(&[(1, 2)]);
        b.nack(1, 2, true);
        b.dlq(&[1], true);
        b.check()
    }

    #[test]
    fn dead_lettered_before_the_budget_is_an_error_unless_an_info_poll_explains_it() {
        let r = dead_after_two(false);
        assert_eq!(valid(&r), Edn::Bool(false));
        assert_eq!(count(&r, "dlq-errors-count"), 1);
        assert_eq!(
            whys(&r),
            ["dead-lettered after at most 2 failed attempts of max-attempts 3"]
        );
        let r = dead_after_two(true);
        assert_eq!(valid(&r), Edn::Bool(true), "{}", r.to_pretty());
    }

    #[test]
    fn dead_lettered_after_completion_is_an_error() {
        let mut b = B::new();
        b.enqueue(1, &[], 1);
        b.poll(&[(1, 1)]);
        b.ack(1, 1);
        b.dlq(&[1], true);
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(false));
        // Its only attempt was acked, so it could not have failed either.
        assert_eq!(
            whys(&r),
            [
                "dead-lettered after at most 0 failed attempts of max-attempts 1",
                "dead-lettered after an ack completed it"
            ]
        );
    }

    #[test]
    fn a_delivery_beyond_the_budget_is_an_error() {
        let mut b = B::new();
        b.enqueue(1, &[], 2);
        b.poll(&[(1, 1)]);
        b.nack(1, 1, false);
        b.poll(&[(1, 2)]);
        b.abandon(1, 2);
        b.poll(&[(1, 3)]);
        b.ack(1, 3);
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(false));
        assert_eq!(whys(&r), ["delivered as attempt 3 of max-attempts 2"]);
        assert_eq!(count(&r, "redeliveries"), 2);
    }

    #[test]
    fn a_spent_task_missing_from_the_final_dlq_is_an_error() {
        let spent = |listed: &[i64]| {
            let mut b = B::new();
            b.enqueue(1, &[], 2);
            b.poll(&[(1, 1)]);
            b.nack(1, 1, false);
            b.poll(&[(1, 2)]);
            b.abandon(1, 2);
            b.dlq(listed, true);
            b.check()
        };
        let r = spent(&[]);
        assert_eq!(valid(&r), Edn::Bool(false));
        assert_eq!(
            whys(&r),
            ["2 attempts surely failed of max-attempts 2, yet not in the final dlq"]
        );
        assert_eq!(valid(&spent(&[1])), Edn::Bool(true));
    }

    #[test]
    fn a_replay_starts_a_new_epoch() {
        let mut b = B::new();
        b.enqueue(1, &[], 2);
        b.poll(&[(1, 1)]);
        b.nack(1, 1, false);
        b.poll(&[(1, 2)]);
        b.nack(1, 2, true);
        b.dlq(&[1], false);
        b.replay(1);
        b.poll(&[(1, 1)]);
        b.nack(1, 1, false);
        b.poll(&[(1, 2)]);
        b.nack(1, 2, true);
        let mut again = B {
            h: b.h.clone(),
            t: b.t,
        };
        b.dlq(&[1], true);
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(true), "{}", r.to_pretty());
        assert_eq!(count(&r, "replayed"), 1);
        // Four deliveries of one task, attempt numbers restarting after the replay.
        assert_eq!(count(&r, "redeliveries"), 3);
        assert_eq!(count(&r, "repeated-attempts-count"), 0);
        assert_eq!(count(&r, "attempt-regressions-count"), 0);
        assert_eq!(count(&r, "over-budget-count"), 0);

        // Replayed again, then dead-lettered after one attempt: the earlier epochs'
        // failures do not count towards the new budget.
        again.replay(1);
        again.poll(&[(1, 1)]);
        again.nack(1, 1, true);
        again.dlq(&[1], true);
        let r = again.check();
        assert_eq!(valid(&r), Edn::Bool(false));
        assert_eq!(
            whys(&r),
            ["dead-lettered after at most 1 failed attempts of max-attempts 2"]
        );
    }

    #[test]
    fn redeliveries_duplicates_stealing_and_inversions_are_reported() {
        let mut b = B::new();
        b.enqueue_with(1, &[], 3, "express");
        b.enqueue_with(2, &[], 3, "nice-child");
        // Express task 1 is ready and waiting, yet nice-child task 2 comes first.
        b.poll_raw(Edn::Vector(vec![delivery_of(2, 1, "nice-child", true)]));
        b.ack(2, 1);
        b.poll_raw(Edn::Vector(vec![delivery_of(1, 1, "express", false)]));
        b.ack(1, 1);
        // Delivered again after its ack, and acked again.
        b.poll_raw(Edn::Vector(vec![delivery_of(1, 2, "express", false)]));
        b.ack_as(1, 2, true);
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(true), "{}", r.to_pretty());
        assert_eq!(count(&r, "priority-inversions"), 1);
        assert_eq!(count(&r, "stolen"), 1);
        assert_eq!(count(&r, "deliveries"), 3);
        assert_eq!(count(&r, "delivered"), 2);
        assert_eq!(count(&r, "duplicate-deliveries"), 1);
        assert_eq!(count(&r, "redeliveries"), 1);
        assert_eq!(count(&r, "duplicate-completions"), 1);
        assert_eq!(count(&r, "completed"), 2);
    }

    #[test]
    fn a_waiting_task_with_an_unacked_dependency_is_no_inversion() {
        let mut b = B::new();
        b.enqueue_with(1, &[], 3, "nice-child");
        b.enqueue_with(2, &[1], 3, "express");
        b.poll_raw(Edn::Vector(vec![delivery_of(1, 1, "nice-child", false)]));
        b.ack(1, 1);
        b.poll_raw(Edn::Vector(vec![delivery_of(2, 1, "express", false)]));
        b.ack(2, 1);
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(true), "{}", r.to_pretty());
        assert_eq!(count(&r, "priority-inversions"), 0);
    }

    /// The broken queue: a nack gives the attempt back, so the task comes back
    /// under the same number and nacks never dead-letter it.
    fn refunded(max: i64, nacks: i64) -> B {
        let mut b = B::new();
        b.enqueue(1, &[], max);
        for _ in 0..nacks {
            b.poll(&[(1, 1)]);
            b.nack(1, 1, false);
        }
        b.poll(&[(1, 1)]);
        b.ack(1, 1);
        b.dlq(&[], true);
        b
    }

    fn shown_of(r: &Edn, key: &str) -> String {
        r.get(key).map(Edn::to_compact).unwrap_or_default()
    }

    #[test]
    fn more_deliveries_than_the_budget_is_an_error_whatever_their_numbers() {
        let r = refunded(2, 3).check();
        assert_eq!(valid(&r), Edn::Bool(false), "{}", r.to_pretty());
        assert_eq!(count(&r, "over-budget-count"), 1);
        assert_eq!(
            shown_of(&r, "over-budget"),
            "[{:id 1, :deliveries 4, :max-attempts 2}]"
        );
        // No label above the budget: the old attempt-number rule saw nothing.
        assert_eq!(count(&r, "dlq-errors-count"), 0);
        // As many deliveries as the budget allows is fine.
        let mut b = B::new();
        b.enqueue(1, &[], 2);
        b.poll(&[(1, 1)]);
        b.nack(1, 1, false);
        b.poll(&[(1, 2)]);
        b.ack(1, 2);
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(true), "{}", r.to_pretty());
        assert_eq!(count(&r, "over-budget-count"), 0);
    }

    #[test]
    fn an_over_budget_count_that_rests_on_indeterminate_polls_is_only_reported() {
        let mut b = B::new();
        b.enqueue(1, &[], 2);
        b.poll(&[(1, 1)]);
        b.nack(1, 1, false);
        b.poll_info();
        b.poll(&[(1, 2)]);
        b.ack(1, 2);
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(true), "{}", r.to_pretty());
        assert_eq!(count(&r, "over-budget-count"), 0);
        assert_eq!(count(&r, "delivery-count-uncertain"), 1);
    }

    #[test]
    fn deliveries_straddling_a_replay_are_not_counted_in_one_epoch() {
        // An indeterminate replay may have started a new epoch between any two of them.
        let mut b = B::new();
        b.enqueue(1, &[], 1);
        b.poll(&[(1, 1)]);
        b.nack(1, 1, true);
        let v = Edn::map([("id", Edn::Int(1))]);
        b.call(3, "replay", v.clone(), OpType::Info, v);
        b.poll(&[(1, 1)]);
        b.ack(1, 1);
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(true), "{}", r.to_pretty());
        assert_eq!(count(&r, "delivery-count-uncertain"), 1);
    }

    #[test]
    fn two_deliveries_under_one_attempt_number_are_an_error() {
        let r = refunded(3, 1).check();
        assert_eq!(valid(&r), Edn::Bool(false), "{}", r.to_pretty());
        assert_eq!(count(&r, "repeated-attempts-count"), 1);
        assert_eq!(count(&r, "over-budget-count"), 0);
        assert_eq!(
            shown_of(&r, "repeated-attempts"),
            "[{:id 1, :attempt 1, :poll-indexes [3 7]}]"
        );
    }

    #[test]
    fn an_attempt_number_that_goes_down_is_an_error() {
        let mut b = B::new();
        b.enqueue(1, &[], 3);
        b.poll(&[(1, 2)]);
        b.nack(1, 2, false);
        b.poll(&[(1, 1)]);
        b.ack(1, 1);
        let r = b.check();
        assert_eq!(valid(&r), Edn::Bool(false), "{}", r.to_pretty());
        assert_eq!(count(&r, "attempt-regressions-count"), 1);
        assert_eq!(
            shown_of(&r, "attempt-regressions"),
            "[{:id 1, :from 2, :to 1, :poll-index 7}]"
        );
        // Concurrent polls may have taken effect in either order: no regression.
        let mut b = B::new();
        b.enqueue(1, &[], 3);
        b.op(1, OpType::Invoke, "poll", Edn::map([("max", Edn::Int(1))]));
        b.op(2, OpType::Invoke, "poll", Edn::map([("max", Edn::Int(1))]));
        b.op(1, OpType::Ok, "poll", Edn::Vector(vec![delivery(1, 2)]));
        b.op(2, OpType::Ok, "poll", Edn::Vector(vec![delivery(1, 1)]));
        assert_eq!(count(&b.check(), "attempt-regressions-count"), 0);
    }

    #[test]
    fn a_nack_of_the_last_attempt_that_keeps_the_task_is_an_error() {
        // By the attempt number: a budget of one, nacked at attempt 1.
        let r = refunded(1, 1).check();
        assert_eq!(valid(&r), Edn::Bool(false), "{}", r.to_pretty());
        assert_eq!(count(&r, "last-nack-not-dead-count"), 1);
        assert_eq!(
            shown_of(&r, "last-nack-not-dead"),
            "[{:id 1, :attempt 1, :deliveries 1, :max-attempts 1}]"
        );
        // By the count: the second delivery of a budget of two, numbered 1.
        let r = refunded(2, 2).check();
        assert_eq!(
            shown_of(&r, "last-nack-not-dead"),
            "[{:id 1, :attempt 1, :deliveries 2, :max-attempts 2}]"
        );
        // A nack of an earlier attempt keeps it: fine.
        let r = refunded(2, 1).check();
        assert_eq!(count(&r, "last-nack-not-dead-count"), 0);
    }

    #[test]
    fn a_spent_budget_is_counted_in_deliveries_not_attempt_numbers() {
        // Two failed deliveries of a budget of two, both numbered 1, never dead-lettered.
        let mut b = B::new();
        b.enqueue(1, &[], 2);
        b.poll(&[(1, 1)]);
        b.nack(1, 1, false);
        b.poll(&[(1, 1)]);
        b.abandon(1, 1);
        b.dlq(&[], true);
        assert_eq!(
            whys(&b.check()),
            ["2 attempts surely failed of max-attempts 2, yet not in the final dlq"]
        );
        // Dead-lettered after three deliveries of a budget of three, all numbered 1: the
        // budget may well be spent.
        let mut b = B::new();
        b.enqueue(1, &[], 3);
        for dead in [false, false, true] {
            b.poll(&[(1, 1)]);
            b.nack(1, 1, dead);
        }
        b.dlq(&[1], true);
        let r = b.check();
        assert_eq!(count(&r, "dlq-errors-count"), 0, "{}", r.to_pretty());
        assert_eq!(count(&r, "repeated-attempts-count"), 1);
    }

    #[test]
    fn an_acked_delivery_counts_once_however_it_is_numbered() {
        // Dead-lettered after one failed and one acked delivery, both numbered 1: only
        // one attempt can have failed, of a budget of two.
        let mut b = B::new();
        b.enqueue(1, &[], 2);
        b.poll(&[(1, 1)]);
        b.ack(1, 1);
        b.poll(&[(1, 1)]);
        b.nack(1, 1, true);
        b.dlq(&[1], true);
        let why = whys(&b.check());
        assert_eq!(
            why.first().map(String::as_str),
            Some("dead-lettered after at most 1 failed attempts of max-attempts 2")
        );
    }

    #[test]
    fn the_enqueued_priority_wins_over_the_delivered_label() {
        let mut b = B::new();
        b.enqueue_with(1, &[], 3, "express");
        b.enqueue_with(2, &[], 3, "nice-child");
        // Labelled express, yet enqueued nice-child: an inversion all the same.
        b.poll_raw(Edn::Vector(vec![delivery_of(2, 1, "express", false)]));
        b.ack(2, 1);
        b.poll(&[(1, 1)]);
        b.ack(1, 1);
        assert_eq!(count(&b.check(), "priority-inversions"), 1);
    }

    #[test]
    fn a_duplicate_completion_is_judged_by_the_acks_seen() {
        // The second ack is a duplicate whatever the queue answers.
        let mut b = B::new();
        b.enqueue(1, &[], 3);
        b.poll(&[(1, 1)]);
        b.ack(1, 1);
        b.ack(1, 1);
        let r = b.check();
        assert_eq!(count(&r, "duplicate-completions"), 1);
        // And a task dead-lettered after an ack claimed `duplicate` is still an error.
        let mut b = B::new();
        b.enqueue(1, &[], 1);
        b.poll(&[(1, 1)]);
        b.ack_as(1, 1, true);
        b.dlq(&[1], true);
        assert!(whys(&b.check()).contains(&"dead-lettered after an ack completed it".to_string()));
    }

    #[test]
    fn malformed_values_do_not_panic() {
        let mut b = B::new();
        b.call(0, "enqueue", Edn::Nil, OpType::Ok, Edn::Nil);
        let text_id = Edn::map([("id", Edn::from("a")), ("deps", Edn::Int(7))]);
        b.call(0, "enqueue", text_id.clone(), OpType::Ok, text_id);
        b.poll_raw(Edn::Nil);
        b.poll_raw(Edn::Vector(vec![
            Edn::Int(5),
            Edn::map([("id", Edn::from("a")), ("attempt", Edn::from("one"))]),
            Edn::map([("id", Edn::Vector(vec![]))]),
        ]));
        b.call(2, "ack", Edn::from("a"), OpType::Ok, Edn::Nil);
        b.call(
            2,
            "ack",
            Edn::map([("id", Edn::from("a"))]),
            OpType::Ok,
            Edn::Nil,
        );
        b.call(2, "nack", Edn::Nil, OpType::Ok, Edn::Int(3));
        b.call(3, "dlq", Edn::Nil, OpType::Ok, Edn::Int(5));
        b.call(3, "status", Edn::Nil, OpType::Ok, Edn::from("x"));
        b.call(3, "replay", Edn::Nil, OpType::Ok, Edn::Nil);
        b.op(9, OpType::Ok, "poll", Edn::Nil);
        b.h.push(op_at(7, OpType::Invoke, "ack", attempt_of(5, -1), 0));
        let mut nemesis = op_at(0, OpType::Info, "start-partition", Edn::Nil, 0);
        nemesis.process = Process::Nemesis;
        b.h.push(nemesis);
        let r = b.check();
        // The string id "a" was enqueued, delivered and acked; the bare 5 is a phantom.
        assert_eq!(count(&r, "completed"), 1, "{}", r.to_pretty());
        assert_eq!(count(&r, "phantom-deliveries-count"), 1);
        assert_eq!(count(&r, "lost-count"), 0);
    }
}
