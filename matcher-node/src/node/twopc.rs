//! The coordinator's transaction driver, on the coordinator group's leader only (its
//! memory is volatile; everything that must survive a failover is in the coordinator's
//! log). A job reads every region's part at the region's leader (a read-index read, with
//! the registrations' version), computes the assignment or splice, logs the transaction
//! (sealed slices for the regions, plaintext kept in the coordinator's state), PREPAREs
//! every region, logs COMMIT or ABORT **before** telling anyone, and answers the client
//! once that decision is applied. Decisions are then resent to every region until each
//! acknowledges ([`MatcherNode::deliver_decisions`]); a transaction the log holds with no
//! decision and no job driving it (a predecessor's) is aborted: presumed abort.
//!
//! With the giftid service, a job whose transaction's IDs are not all in the pool waits
//! for them before planning (no attempt spent), and a decision whose event ID is missing
//! is logged at the next tick that has one.
//!
//! One job at a time changes an exchange; a `match` that finds one under way waits for
//! its outcome. A vote lost to a registration that landed between the read and the
//! PREPARE aborts the transaction and the job tries again, [`MAX_ATTEMPTS`] times.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use maelstrom_core::raft::{Groups, Outcome};
use maelstrom_core::{Context, ErrorBody, ErrorCode, Outbox, RpcError};

use super::ids::{Floors, Ids};
use super::{error, Call, CoordQuery, Flaw, MatcherNode, Msg, Reply, Wait, Waiter};
use crate::assign::assign;
use crate::constraints::Participant;
use crate::seal::{seal, Envelope};
use crate::sm::{
    Cmd, CoordCmd, CoordExchange, CoordOut, Gid, Gift, Kind, Out, Part, Sealed, Slice, Sm, Txn,
};
use crate::splice::{splice, SpliceError};

/// Tries of one job: reads that found a region locked, aborts for changed registrations.
pub const MAX_ATTEMPTS: u32 = 20;
/// Pause before trying again.
const RETRY_MS: u64 = 50;
/// How long the `commit-before-log` flaw leaves a decision unlogged after COMMIT.
const DEFERRED_LOG_MS: u64 = 1_000;
/// How long an acknowledgement proposed to the log holds back resending its decision.
const ACK_LOG_MS: u64 = 1_000;

#[derive(Debug, Default)]
pub struct Driver {
    jobs: BTreeMap<u64, Job>,
    next: u64,
    /// Exchange -> the job changing it, then those queued behind it.
    lanes: BTreeMap<String, VecDeque<u64>>,
    /// Decisions sent to a region and not answered yet.
    sending: BTreeSet<(u64, u32)>,
    /// Acknowledgements to log.
    acked: BTreeMap<u64, BTreeSet<u32>>,
    /// Acknowledgements proposed to the log and not applied yet, with when: their
    /// decisions are not resent meanwhile.
    logging: BTreeMap<(u64, u32), u64>,
    /// Presumed aborts proposed.
    aborting: BTreeSet<u64>,
    /// Jobs whose decision waits for a gift ID from the giftid service: job -> commit.
    starved: BTreeMap<u64, bool>,
    /// Commits told to the regions and not yet logged (the `commit-before-log` flaw):
    /// job -> (txn, regions that acknowledged, when COMMIT first went out).
    deferred: BTreeMap<u64, (u64, BTreeSet<u32>, u64)>,
}

#[derive(Debug)]
struct Job {
    exchange: String,
    work: Work,
    waiters: Vec<Waiter>,
    attempts: u32,
    phase: Phase,
    /// The last abort was a vote against changed registrations: worth another try.
    conflict: bool,
    why: String,
}

#[derive(Debug, Clone)]
enum Work {
    Match {
        no_mutual: bool,
        deadline: Option<u64>,
    },
    Splice(Box<Participant>),
    /// An audit of an exchange the coordinator never matched: does any region know it?
    Probe,
}

#[derive(Debug)]
enum Phase {
    Queued,
    Reading {
        parts: BTreeMap<u32, Part>,
        waiting: usize,
        failed: Option<String>,
    },
    Retry {
        at: u64,
    },
    Begin {
        txn: u64,
        reply: Msg,
    },
    Prepare {
        txn: u64,
        reply: Msg,
        waiting: BTreeSet<u32>,
    },
    Decide {
        txn: u64,
        reply: Msg,
    },
}

impl Phase {
    /// The transaction this phase drives, once logged (or being logged).
    fn txn(&self) -> Option<u64> {
        match self {
            Phase::Begin { txn, .. } | Phase::Prepare { txn, .. } | Phase::Decide { txn, .. } => {
                Some(*txn)
            }
            _ => None,
        }
    }
}

/// The people and gifts of the epoch a transaction creates.
struct Next {
    kind: Kind,
    participants: BTreeMap<String, Participant>,
    gifts: BTreeMap<String, Gift>,
    no_mutual: bool,
    deadline: Option<u64>,
}

/// What a job's reads lead to.
enum Plan {
    Txn(Box<Txn>, Msg),
    Answer(Reply),
}

fn unavailable(text: impl Into<String>) -> ErrorBody {
    error(ErrorCode::TemporarilyUnavailable, text)
}

impl MatcherNode {
    /// A read of the coordinator's state, confirmed by a read-index round.
    pub(super) fn coord_read(
        &mut self,
        ctx: &Context,
        to: Waiter,
        query: CoordQuery,
        out: &mut Outbox<Self>,
    ) {
        let Some(sm) = self.coord_sm() else {
            return self.respond(out, &to, Err(unavailable("not a coordinator")));
        };
        match query {
            CoordQuery::Match {
                exchange,
                no_mutual,
                deadline,
            } => {
                if let Some(reply) = sm.exchanges.get(&exchange).and_then(matched) {
                    return self.respond(out, &to, Ok(reply));
                }
                let work = Work::Match {
                    no_mutual,
                    deadline,
                };
                self.enqueue(ctx, to, exchange, work, out);
            }
            CoordQuery::GiftStatus(exchange, participant) => {
                self.gift_status(ctx, to, &exchange, &participant, out)
            }
            CoordQuery::Audit(exchange) => match sm.audit(&exchange) {
                Some(events) => self.respond(out, &to, Ok(Msg::AuditOk { events })),
                None => {
                    let id = self.new_job(to, exchange, Work::Probe);
                    self.start(ctx, id, out);
                }
            },
            CoordQuery::Resolve(txn) => match sm.decision(txn) {
                Some(decision) => self.respond(out, &to, Ok(Msg::ResolveOk { decision })),
                None => {
                    // No record: log ABORT before answering (presumed abort).
                    let Some(event) = self.one_id(ctx, out) else {
                        return self.respond(out, &to, Err(unavailable("no gift ID now")));
                    };
                    let cmd = CoordCmd::Decide {
                        txn,
                        commit: false,
                        event,
                        at: ctx.wall_ms(),
                    };
                    self.propose_coord(ctx, cmd, Wait::Resolved(to), out);
                }
            },
            CoordQuery::Splice(exchange, late) => {
                let ex = sm.exchanges.get(&exchange);
                match ex.and_then(|ex| ex.participants.get(&late.id).map(|p| (ex.epoch, p))) {
                    Some((epoch, p)) if *p == *late => {
                        let reply = Ok(Msg::RegisterOk { epoch });
                        self.answer_after_work(&exchange, vec![to], reply, out)
                    }
                    Some(_) => {
                        let why = format!("{} is already matched with other fields", late.id);
                        self.respond(out, &to, Err(error(ErrorCode::PreconditionFailed, why)))
                    }
                    None => self.enqueue(ctx, to, exchange, Work::Splice(late), out),
                }
            }
        }
    }

    fn new_job(&mut self, to: Waiter, exchange: String, work: Work) -> u64 {
        let id = self.driver.next;
        self.driver.next += 1;
        let job = Job {
            exchange,
            work,
            waiters: vec![to],
            attempts: 0,
            phase: Phase::Queued,
            conflict: false,
            why: String::new(),
        };
        self.driver.jobs.insert(id, job);
        id
    }

    /// Joins a job that will give the same answer, or queues a new one. A job joins only
    /// while it has yet to read the regions: one that read them before this request came
    /// may refuse on registrations acknowledged since, which the request must see (a
    /// commit would be safe, as the versions at PREPARE catch them; a refusal is not).
    fn enqueue(
        &mut self,
        ctx: &Context,
        to: Waiter,
        exchange: String,
        work: Work,
        out: &mut Outbox<Self>,
    ) {
        let lane = self.driver.lanes.entry(exchange.clone()).or_default();
        let same = lane.iter().copied().find(|id| {
            self.driver.jobs.get(id).is_some_and(|job| {
                let unread = matches!(job.phase, Phase::Queued | Phase::Retry { .. });
                let same = match (&job.work, &work) {
                    (Work::Match { .. }, Work::Match { .. }) => true,
                    (Work::Splice(a), Work::Splice(b)) => a == b,
                    _ => false,
                };
                unread && same
            })
        });
        if let Some(job) = same.and_then(|id| self.driver.jobs.get_mut(&id)) {
            job.waiters.push(to);
            return;
        }
        let id = self.new_job(to, exchange.clone(), work);
        let lane = self.driver.lanes.entry(exchange).or_default();
        lane.push_back(id);
        if lane.len() == 1 {
            self.start(ctx, id, out);
        }
    }

    /// Reads every region's part of the job's exchange.
    fn start(&mut self, ctx: &Context, id: u64, out: &mut Outbox<Self>) {
        let Some(job) = self.driver.jobs.get_mut(&id) else {
            return;
        };
        job.phase = Phase::Reading {
            parts: BTreeMap::new(),
            waiting: self.regions as usize,
            failed: None,
        };
        let exchange = job.exchange.clone();
        for region in 0..self.regions {
            let req = Msg::ReadPart {
                exchange: exchange.clone(),
            };
            let call = Call::Part { job: id, region };
            self.ask(ctx, Gid::Region(region), req, call, out);
        }
    }

    pub(super) fn on_part(
        &mut self,
        ctx: &Context,
        id: u64,
        region: u32,
        result: Result<Msg, RpcError>,
        out: &mut Outbox<Self>,
    ) {
        let Some(Job {
            phase:
                Phase::Reading {
                    parts,
                    waiting,
                    failed,
                },
            ..
        }) = self.driver.jobs.get_mut(&id)
        else {
            return;
        };
        match result {
            Ok(Msg::PartOk { part }) => {
                parts.insert(region, part);
            }
            Ok(other) => *failed = Some(format!("region {region} answered {}", other.kind())),
            Err(e) => *failed = Some(format!("region {region}: {e}")),
        }
        *waiting -= 1;
        if *waiting == 0 {
            self.compute(ctx, id, out);
        }
    }

    /// Every part is in: answer, try again later, or log a transaction.
    fn compute(&mut self, ctx: &Context, id: u64, out: &mut Outbox<Self>) {
        let Some(job) = self.driver.jobs.get_mut(&id) else {
            return;
        };
        let Phase::Reading { parts, failed, .. } = std::mem::replace(&mut job.phase, Phase::Queued)
        else {
            return;
        };
        if let Some(why) = failed {
            // An election in a region, most likely: read again shortly.
            let why = format!("cannot read the exchange's registrations: {why}");
            return self.retry(ctx, id, why, out);
        }
        if matches!(job.work, Work::Probe) {
            let reply = match parts.values().any(|p| p.exists) {
                true => Ok(Msg::AuditOk { events: Vec::new() }),
                false => Err(error(
                    ErrorCode::KeyDoesNotExist,
                    format!("unknown exchange {}", job.exchange),
                )),
            };
            return self.end_job(ctx, id, reply, out);
        }
        if let Some(txn) = parts.values().find_map(|p| p.locked) {
            let why = format!("transaction {txn} still holds a region");
            return self.retry(ctx, id, why, out);
        }
        let work = job.work.clone();
        if !self.ids_ready(&work, &parts) {
            // Waits for the giftid service, however long: no attempt is spent.
            let Some(job) = self.driver.jobs.get_mut(&id) else {
                return;
            };
            job.why = "waiting for gift IDs from the giftid service".into();
            job.phase = Phase::Retry {
                at: ctx.now_ms() + RETRY_MS,
            };
            return;
        }
        match self.plan(ctx, id, &parts, out) {
            Ok(Plan::Answer(reply)) => self.end_job(ctx, id, reply, out),
            Ok(Plan::Txn(txn, reply)) => self.begin(ctx, id, txn, reply, out),
            Err(e) => self.end_job(ctx, id, Err(e), out),
        }
    }

    /// Tries the job again after a pause, or gives up.
    fn retry(&mut self, ctx: &Context, id: u64, why: String, out: &mut Outbox<Self>) {
        let Some(job) = self.driver.jobs.get_mut(&id) else {
            return;
        };
        job.attempts += 1;
        if job.attempts >= MAX_ATTEMPTS {
            let e = unavailable(format!("gave up after {} attempts: {why}", job.attempts));
            return self.end_job(ctx, id, Err(e), out);
        }
        job.why = why;
        job.phase = Phase::Retry {
            at: ctx.now_ms() + RETRY_MS,
        };
    }

    /// The transaction a job's reads call for, or the answer when none is needed.
    fn plan(
        &mut self,
        ctx: &Context,
        id: u64,
        parts: &BTreeMap<u32, Part>,
        out: &mut Outbox<Self>,
    ) -> Result<Plan, ErrorBody> {
        let job = &self.driver.jobs[&id];
        let (exchange, work) = (job.exchange.clone(), job.work.clone());
        let ex = self
            .coord_sm()
            .and_then(|sm| sm.exchanges.get(&exchange))
            .cloned()
            .unwrap_or_default();
        let next = match self.next_epoch(ctx, work, &ex, parts, &exchange, out) {
            Ok(next) => next,
            Err(reply) => return Ok(Plan::Answer(*reply)),
        };
        let Next {
            kind,
            participants,
            gifts,
            no_mutual,
            deadline,
        } = next;
        let epoch = ex.epoch + 1;
        let txn_id = self
            .one_id(ctx, out)
            .ok_or_else(|| unavailable("no gift ID now"))?;
        let added = match kind {
            Kind::Splice => participants
                .values()
                .filter(|p| !ex.participants.contains_key(&p.id))
                .cloned()
                .collect(),
            Kind::Match => Vec::new(),
        };
        let slices = self.slices(
            &exchange,
            txn_id,
            epoch,
            &participants,
            &gifts,
            parts,
            added,
        )?;
        let reply = match kind {
            Kind::Match => Msg::MatchOk {
                epoch,
                participants: participants.keys().cloned().collect(),
            },
            Kind::Splice => Msg::RegisterOk { epoch },
        };
        let txn = Txn {
            id: txn_id,
            exchange,
            kind,
            epoch,
            no_mutual,
            participants,
            gifts,
            slices,
            decision: None,
            acked: BTreeSet::new(),
            deadline,
        };
        Ok(Plan::Txn(Box::new(txn), reply))
    }

    /// Who takes part in the next epoch and their gifts; or the answer when there is
    /// nothing to commit (matched already, unknown exchange, no valid assignment).
    fn next_epoch(
        &mut self,
        ctx: &Context,
        work: Work,
        ex: &CoordExchange,
        parts: &BTreeMap<u32, Part>,
        exchange: &str,
        out: &mut Outbox<Self>,
    ) -> Result<Next, Box<Reply>> {
        match work {
            Work::Match {
                no_mutual,
                deadline,
            } => {
                if let Some(reply) = matched(ex) {
                    return Err(Box::new(Ok(reply)));
                }
                if !parts.values().any(|p| p.exists) {
                    let e = format!("unknown exchange {exchange}");
                    return Err(Box::new(Err(error(ErrorCode::KeyDoesNotExist, e))));
                }
                let participants = joined(parts);
                let gifts = self
                    .draw(ctx, &participants, no_mutual, out)
                    .map_err(|e| Box::new(Err(e)))?;
                Ok(Next {
                    kind: Kind::Match,
                    participants,
                    gifts,
                    no_mutual,
                    deadline,
                })
            }
            Work::Splice(late) => {
                if ex.epoch == 0 {
                    let e = unavailable("the exchange is not matched yet; try again");
                    return Err(Box::new(Err(e)));
                }
                if let Some(p) = ex.participants.get(&late.id) {
                    return Err(Box::new(match *p == *late {
                        true => Ok(Msg::RegisterOk { epoch: ex.epoch }),
                        false => Err(error(ErrorCode::PreconditionFailed, "matched already")),
                    }));
                }
                let gifts = self
                    .splice_in(ctx, ex, &late, out)
                    .map_err(|e| Box::new(Err(e)))?;
                let mut participants = ex.participants.clone();
                participants.insert(late.id.clone(), *late);
                Ok(Next {
                    kind: Kind::Splice,
                    participants,
                    gifts,
                    no_mutual: ex.no_mutual,
                    deadline: ex.deadline,
                })
            }
            Work::Probe => Err(Box::new(Err(unavailable("nothing to plan")))),
        }
    }

    /// A random valid assignment with fresh gift IDs, or why there is none (error 22).
    fn draw(
        &mut self,
        ctx: &Context,
        participants: &BTreeMap<String, Participant>,
        no_mutual: bool,
        out: &mut Outbox<Self>,
    ) -> Result<BTreeMap<String, Gift>, ErrorBody> {
        let list: Vec<Participant> = participants.values().cloned().collect();
        let assignment = assign(&list, no_mutual, &mut self.rng)
            .map_err(|e| error(ErrorCode::PreconditionFailed, e.to_string()))?;
        let floors = floors(&self.groups);
        let ids = self
            .ids
            .take(ctx, list.len(), floors, out)
            .map_err(unavailable)?;
        Ok(assignment
            .receiver_of
            .iter()
            .enumerate()
            .map(|(g, &r)| {
                let gift = Gift {
                    receiver: list[r].id.clone(),
                    gift_id: ids[g],
                };
                (list[g].id.clone(), gift)
            })
            .collect())
    }

    /// The committed gifts with `late` spliced in: two new gift IDs, the rest unchanged.
    fn splice_in(
        &mut self,
        ctx: &Context,
        ex: &CoordExchange,
        late: &Participant,
        out: &mut Outbox<Self>,
    ) -> Result<BTreeMap<String, Gift>, ErrorBody> {
        let list: Vec<Participant> = ex.participants.values().cloned().collect();
        let edges = ex
            .gifts
            .iter()
            .map(|(g, gift)| (g.clone(), gift.receiver.clone()))
            .collect();
        let s = splice(&list, &edges, late, &mut self.rng).map_err(|e| match e {
            SpliceError::NoPlace(_) => error(ErrorCode::PreconditionFailed, e.to_string()),
            other => error(ErrorCode::Crash, other.to_string()),
        })?;
        let floors = floors(&self.groups);
        let ids = self.ids.take(ctx, 2, floors, out).map_err(unavailable)?;
        let mut gifts = ex.gifts.clone();
        for ((giver, receiver), gift_id) in s.added.into_iter().zip(ids) {
            gifts.insert(giver, Gift { receiver, gift_id });
        }
        Ok(gifts)
    }

    /// Each region's slice: the boxes of its givers, sealed to each giver's key.
    #[allow(clippy::too_many_arguments)]
    fn slices(
        &mut self,
        exchange: &str,
        txn: u64,
        epoch: u64,
        participants: &BTreeMap<String, Participant>,
        gifts: &BTreeMap<String, Gift>,
        parts: &BTreeMap<u32, Part>,
        added: Vec<Participant>,
    ) -> Result<BTreeMap<u32, Slice>, ErrorBody> {
        let directory: BTreeMap<String, u32> = participants
            .values()
            .map(|p| (p.id.clone(), p.region))
            .collect();
        let mut slices: BTreeMap<u32, Slice> = (0..self.regions)
            .map(|r| {
                let slice = Slice {
                    txn,
                    exchange: exchange.to_string(),
                    epoch,
                    version: parts.get(&r).map_or(0, |p| p.version),
                    boxes: BTreeMap::new(),
                    directory: directory.clone(),
                    added: added.iter().filter(|p| p.region == r).cloned().collect(),
                };
                (r, slice)
            })
            .collect();
        for (giver, gift) in gifts {
            let p = &participants[giver];
            let envelope = Envelope {
                exchange: exchange.to_string(),
                giver: giver.clone(),
                receiver: gift.receiver.clone(),
                epoch,
                gift_id: gift.gift_id,
            };
            let sealed = seal(&envelope, &p.public_key, &mut self.rng)
                .map_err(|e| error(ErrorCode::Crash, e.to_string()))?;
            if let Some(slice) = slices.get_mut(&p.region) {
                let gift_id = gift.gift_id;
                slice
                    .boxes
                    .insert(giver.clone(), Sealed { gift_id, sealed });
            }
        }
        Ok(slices)
    }

    fn one_id(&mut self, ctx: &Context, out: &mut Outbox<Self>) -> Option<u64> {
        let floors = floors(&self.groups);
        self.ids.take(ctx, 1, floors, out).ok().map(|ids| ids[0])
    }

    /// Whether the pool holds the IDs a job's transaction takes: one per gift, the
    /// transaction's and its two events'.
    fn ids_ready(&mut self, work: &Work, parts: &BTreeMap<u32, Part>) -> bool {
        let gifts = match work {
            Work::Splice(_) => 2,
            _ => joined(parts).len(),
        };
        let floors = floors(&self.groups);
        self.ids.ready(gifts + 3, floors)
    }

    fn propose_coord(&mut self, ctx: &Context, cmd: CoordCmd, wait: Wait, out: &mut Outbox<Self>) {
        let cmd = Cmd::Coord(cmd);
        match self
            .groups
            .propose(&Gid::Coordinator, cmd, None, Some(wait), false)
        {
            Ok((_, Some(old))) => self.finish(ctx, out, old),
            Ok(_) => {}
            Err((Some(Wait::Job(id)), _)) => {
                let e = unavailable("not the coordinator's leader any more");
                self.end_job(ctx, id, Err(e), out)
            }
            Err((Some(wait), _)) => self.proposal_refused(ctx, out, (Gid::Coordinator, wait), None),
            Err(_) => {}
        }
    }

    /// Logs the transaction record, then (once applied) PREPAREs the regions.
    fn begin(&mut self, ctx: &Context, id: u64, txn: Box<Txn>, reply: Msg, out: &mut Outbox<Self>) {
        let Some(event) = self.one_id(ctx, out) else {
            return self.end_job(ctx, id, Err(unavailable("no gift ID now")), out);
        };
        if let Some(job) = self.driver.jobs.get_mut(&id) {
            job.phase = Phase::Begin { txn: txn.id, reply };
        }
        let at = ctx.wall_ms();
        let cmd = CoordCmd::Begin { txn, event, at };
        self.propose_coord(ctx, cmd, Wait::Job(id), out);
    }

    /// What a job's logged command did.
    pub(super) fn job_outcome(
        &mut self,
        ctx: &Context,
        id: u64,
        outcome: Outcome<Out>,
        out: &mut Outbox<Self>,
    ) {
        let Some(job) = self.driver.jobs.get_mut(&id) else {
            return;
        };
        let phase = std::mem::replace(&mut job.phase, Phase::Queued);
        match (phase, outcome) {
            (Phase::Begin { txn, reply }, Outcome::Applied(Out::Coord(CoordOut::Begun))) => {
                self.prepare(ctx, id, txn, reply, out)
            }
            (Phase::Begin { .. }, Outcome::Applied(Out::Coord(CoordOut::Refused(why)))) => {
                self.retry(ctx, id, why, out)
            }
            (Phase::Decide { reply, .. }, Outcome::Applied(Out::Coord(decided))) => {
                let CoordOut::Decided { commit, .. } = decided else {
                    return;
                };
                self.deliver_decisions(ctx, out);
                match commit {
                    true => self.end_job(ctx, id, Ok(reply), out),
                    false if job_conflict(&self.driver, id) => {
                        let why = self.driver.jobs[&id].why.clone();
                        self.retry(ctx, id, why, out);
                        if let Some(Phase::Retry { at }) =
                            self.driver.jobs.get_mut(&id).map(|j| &mut j.phase)
                        {
                            *at = ctx.now_ms();
                        }
                    }
                    false => {
                        let why = format!("aborted: {}", self.driver.jobs[&id].why);
                        self.end_job(ctx, id, Err(unavailable(why)), out)
                    }
                }
            }
            (Phase::Begin { .. }, Outcome::Failed(e)) => self.end_job(ctx, id, Err(e), out),
            (_, Outcome::Failed(e)) => {
                let why = format!("the decision was not logged here: {e}; outcome unknown");
                self.end_job(ctx, id, Err(error(ErrorCode::Crash, why)), out)
            }
            (phase, outcome) => {
                eprintln!("job {id}: {phase:?} got {outcome:?}");
            }
        }
    }

    /// PREPAREs every region (the `no-2pc` flaw logs COMMIT at once instead).
    fn prepare(&mut self, ctx: &Context, id: u64, txn: u64, reply: Msg, out: &mut Outbox<Self>) {
        if self.flaw == Flaw::No2pc {
            return self.decide(ctx, id, txn, reply, true, out);
        }
        let slices: BTreeMap<u32, Slice> = self
            .coord_sm()
            .and_then(|sm| sm.txns.get(&txn))
            .map(|t| t.slices.clone())
            .unwrap_or_default();
        if let Some(job) = self.driver.jobs.get_mut(&id) {
            let waiting = slices.keys().copied().collect();
            job.phase = Phase::Prepare {
                txn,
                reply,
                waiting,
            };
        }
        for (region, slice) in slices {
            let req = Msg::Prepare {
                slice: Box::new(slice),
            };
            self.ask(
                ctx,
                Gid::Region(region),
                req,
                Call::Vote { job: id, region },
                out,
            );
        }
    }

    pub(super) fn on_vote(
        &mut self,
        ctx: &Context,
        id: u64,
        region: u32,
        result: Result<Msg, RpcError>,
        out: &mut Outbox<Self>,
    ) {
        let Some(job) = self.driver.jobs.get_mut(&id) else {
            return;
        };
        let Phase::Prepare { txn, waiting, .. } = &mut job.phase else {
            return;
        };
        let txn = *txn;
        if !waiting.remove(&region) {
            return;
        }
        let all_in = waiting.is_empty();
        let no = match result {
            Ok(Msg::PrepareOk { vote }) if vote.yes => None,
            Ok(Msg::PrepareOk { vote }) => Some((vote.conflict, vote.why)),
            Ok(other) => Some((false, format!("answered {}", other.kind()))),
            Err(e) => Some((false, format!("no vote: {e}"))),
        };
        if no.is_none() && !all_in {
            return;
        }
        let Phase::Prepare { reply, .. } = std::mem::replace(&mut job.phase, Phase::Queued) else {
            return;
        };
        match no {
            Some((conflict, why)) => {
                job.conflict = conflict;
                job.why = format!("region {region} voted no: {why}");
                self.decide(ctx, id, txn, reply, false, out);
            }
            None => self.decide(ctx, id, txn, reply, true, out),
        }
    }

    /// Logs the decision; only once it is applied does anyone hear of it (unless the
    /// `commit-before-log` flaw tells the regions first).
    fn decide(
        &mut self,
        ctx: &Context,
        id: u64,
        txn: u64,
        reply: Msg,
        commit: bool,
        out: &mut Outbox<Self>,
    ) {
        if let Some(job) = self.driver.jobs.get_mut(&id) {
            job.phase = Phase::Decide { txn, reply };
        }
        if commit && self.flaw == Flaw::CommitBeforeLog {
            // Wrong on purpose: COMMIT goes out first, and the decision is logged only
            // once every region acknowledged it, in a batch at most once a second.
            let entry = (txn, BTreeSet::new(), ctx.now_ms());
            self.driver.deferred.insert(id, entry);
            return self.commit_unlogged(ctx, id, out);
        }
        self.log_decision(ctx, id, txn, commit, out);
    }

    /// Sends COMMIT of a job's unlogged decision to the regions that have not
    /// acknowledged it (the `commit-before-log` flaw).
    fn commit_unlogged(&mut self, ctx: &Context, id: u64, out: &mut Outbox<Self>) {
        let Some((txn, acked, _)) = self.driver.deferred.get(&id).cloned() else {
            return;
        };
        let Some(exchange) = self.driver.jobs.get(&id).map(|j| j.exchange.clone()) else {
            return;
        };
        for region in (0..self.regions).filter(|r| !acked.contains(r)) {
            if !self.driver.sending.insert((txn, region)) {
                continue;
            }
            let exchange = exchange.clone();
            let req = Msg::Decide {
                exchange,
                txn,
                commit: true,
            };
            self.ask(
                ctx,
                Gid::Region(region),
                req,
                Call::Ack { txn, region },
                out,
            );
        }
    }

    /// Logs the decision of job `id`, in its decide phase.
    fn log_decision(
        &mut self,
        ctx: &Context,
        id: u64,
        txn: u64,
        commit: bool,
        out: &mut Outbox<Self>,
    ) {
        let Some(event) = self.one_id(ctx, out) else {
            if matches!(self.ids, Ids::Service(_)) {
                // Tried again at the next tick, once the pool has an ID.
                self.driver.starved.insert(id, commit);
                return;
            }
            let e = error(
                ErrorCode::Crash,
                "no gift ID for the decision; outcome unknown",
            );
            return self.end_job(ctx, id, Err(e), out);
        };
        let at = ctx.wall_ms();
        let cmd = CoordCmd::Decide {
            txn,
            commit,
            event,
            at,
        };
        self.propose_coord(ctx, cmd, Wait::Job(id), out);
    }

    /// Answers a job's waiters and starts the next job of its exchange.
    fn end_job(&mut self, ctx: &Context, id: u64, reply: Reply, out: &mut Outbox<Self>) {
        let Some(job) = self.driver.jobs.remove(&id) else {
            return;
        };
        self.answer_after_work(&job.exchange, job.waiters.clone(), reply, out);
        let Some(lane) = self.driver.lanes.get_mut(&job.exchange) else {
            return;
        };
        lane.retain(|j| *j != id);
        match lane.front().copied() {
            Some(next) => self.start(ctx, next, out),
            None => {
                self.driver.lanes.remove(&job.exchange);
            }
        }
    }

    pub(super) fn on_ack(&mut self, txn: u64, region: u32, result: Result<Msg, RpcError>) {
        self.driver.sending.remove(&(txn, region));
        if let Ok(Msg::DecideOk {}) = result {
            self.driver.acked.entry(txn).or_default().insert(region);
            for (t, acked, _) in self.driver.deferred.values_mut() {
                if *t == txn {
                    acked.insert(region);
                }
            }
        }
    }

    /// On the coordinator's leader: logs acknowledgements, resends decisions to regions
    /// that have not acknowledged them and aborts transactions nobody drives (presumed
    /// abort). Jobs whose pause is over restart at the tick (`restart_due`).
    pub(super) fn deliver_decisions(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        if !self.groups.is_leader(&Gid::Coordinator) {
            return;
        }
        let now = ctx.now_ms();
        let now_wall = ctx.wall_ms();
        let deferred: Vec<(u64, u64, bool, bool)> = (self.driver.deferred.iter())
            .map(|(&id, (txn, acked, at))| {
                let all = acked.len() == self.regions as usize;
                (id, *txn, all, now >= at + DEFERRED_LOG_MS)
            })
            .collect();
        for (id, txn, all, due) in deferred {
            if !all {
                self.commit_unlogged(ctx, id, out);
            }
            if !(all && due) {
                continue;
            }
            self.driver.deferred.remove(&id);
            if let Some(Phase::Decide { .. }) = self.driver.jobs.get(&id).map(|j| &j.phase) {
                self.log_decision(ctx, id, txn, true, out);
            }
        }
        for (txn, regions) in std::mem::take(&mut self.driver.acked) {
            for &region in &regions {
                self.driver.logging.insert((txn, region), now);
            }
            let regions = regions.into_iter().collect();
            self.log_quietly(CoordCmd::Acked { txn, regions });
        }
        let (sends, aborts) = self.undelivered(now);
        for (txn, region, req) in sends {
            self.driver.sending.insert((txn, region));
            let call = Call::Ack { txn, region };
            self.ask(ctx, Gid::Region(region), req, call, out);
        }
        for txn in aborts {
            let Some(event) = self.one_id(ctx, out) else {
                break;
            };
            self.driver.aborting.insert(txn);
            let (commit, at) = (false, now_wall);
            self.log_quietly(CoordCmd::Decide {
                txn,
                commit,
                event,
                at,
            });
        }
    }

    /// Restarts the jobs whose pause is over; called at every tick, so that a pause lasts
    /// what it says rather than until the next heartbeat.
    pub(super) fn restart_due(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        if self.driver.jobs.is_empty() || !self.groups.is_leader(&Gid::Coordinator) {
            return;
        }
        for (id, commit) in std::mem::take(&mut self.driver.starved) {
            if let Some(Phase::Decide { txn, .. }) = self.driver.jobs.get(&id).map(|j| &j.phase) {
                let txn = *txn;
                self.log_decision(ctx, id, txn, commit, out);
            }
        }
        let now = ctx.now_ms();
        let due: Vec<u64> = self
            .driver
            .jobs
            .iter()
            .filter(|(_, j)| matches!(j.phase, Phase::Retry { at } if at <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.start(ctx, id, out);
        }
    }

    /// Proposes a coordinator command nobody waits for (it is retried if lost).
    fn log_quietly(&mut self, cmd: CoordCmd) {
        let cmd = Cmd::Coord(cmd);
        let _ = self
            .groups
            .propose(&Gid::Coordinator, cmd, None, None, false);
    }

    /// Decisions regions have not acknowledged and are not being sent, as
    /// (txn, region, message); and the undecided transactions no job drives.
    #[allow(clippy::type_complexity)]
    fn undelivered(&mut self, now: u64) -> (Vec<(u64, u32, Msg)>, Vec<u64>) {
        let driven: BTreeSet<u64> = self
            .driver
            .jobs
            .values()
            .filter_map(|j| j.phase.txn())
            .collect();
        let (mut sends, mut aborts) = (Vec::new(), Vec::new());
        let Some(Sm::Coord(sm)) = self.groups.get(&Gid::Coordinator).map(|g| g.sm()) else {
            return (sends, aborts);
        };
        let driver = &mut self.driver;
        driver.aborting.retain(|t| sm.decision(*t) == Some(None));
        driver.logging.retain(|(t, r), at| {
            now < *at + ACK_LOG_MS && sm.txns.get(t).is_some_and(|x| !x.acked.contains(r))
        });
        for txn in sm.open.iter().filter_map(|t| sm.txns.get(t)) {
            let Some(commit) = txn.decision else {
                if !driven.contains(&txn.id) && !driver.aborting.contains(&txn.id) {
                    aborts.push(txn.id);
                }
                continue;
            };
            let mut todo = txn.slices.iter().filter(|(r, _)| !txn.acked.contains(r));
            if self.flaw == Flaw::No2pc && commit {
                // Region by region: the next one only after the last.
                let busy = driver.sending.iter().any(|(t, _)| *t == txn.id);
                if let (false, Some((&r, slice))) = (busy, todo.next()) {
                    let slice = Box::new(slice.clone());
                    sends.push((txn.id, r, Msg::Install { slice }));
                }
                continue;
            }
            let busy = |r: u32| {
                driver.sending.contains(&(txn.id, r)) || driver.logging.contains_key(&(txn.id, r))
            };
            for (&r, _) in todo.filter(|(r, _)| !busy(**r)) {
                let exchange = txn.exchange.clone();
                let txn = txn.id;
                sends.push((
                    txn,
                    r,
                    Msg::Decide {
                        exchange,
                        txn,
                        commit,
                    },
                ));
            }
        }
        (sends, aborts)
    }

    /// This node no longer leads the coordinator: its jobs end. A job that logged
    /// nothing had no effect; one that did may still commit under the next leader.
    pub(super) fn driver_stepped_down(&mut self, out: &mut Outbox<Self>) {
        if self.driver.jobs.is_empty() && self.driver.sending.is_empty() {
            return;
        }
        let driver = std::mem::take(&mut self.driver);
        for job in driver.jobs.into_values() {
            let e = match job.phase.txn() {
                Some(_) => error(
                    ErrorCode::Crash,
                    "the coordinator lost its leadership during the transaction; outcome unknown",
                ),
                None => unavailable("the coordinator lost its leadership; nothing changed"),
            };
            for to in &job.waiters {
                self.respond(out, to, Err(e.clone()));
            }
        }
        self.driver.next = driver.next;
    }
}

/// The floors under which gift IDs are not used: the coordinator log's highest.
pub(super) fn floors(groups: &Groups<Gid, Sm, Wait>) -> Floors<'_> {
    match groups.get(&Gid::Coordinator).map(|g| g.sm()) {
        Some(Sm::Coord(sm)) => Floors {
            highest: sm.highest_id,
            workshops: Some(&sm.workshops),
        },
        _ => Floors {
            highest: 0,
            workshops: None,
        },
    }
}

/// `match_ok` for a matched exchange.
fn matched(ex: &CoordExchange) -> Option<Msg> {
    (ex.epoch > 0).then(|| Msg::MatchOk {
        epoch: ex.epoch,
        participants: ex.participants.keys().cloned().collect(),
    })
}

/// Every region's participants; a participant registered in two regions counts once,
/// as the lower region has them.
fn joined(parts: &BTreeMap<u32, Part>) -> BTreeMap<String, Participant> {
    let mut all = BTreeMap::new();
    for part in parts.values() {
        for p in &part.participants {
            all.entry(p.id.clone()).or_insert_with(|| p.clone());
        }
    }
    all
}

fn job_conflict(driver: &Driver, id: u64) -> bool {
    driver.jobs.get(&id).is_some_and(|j| j.conflict)
}
