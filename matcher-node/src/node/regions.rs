//! Requests handled at a group's leader, and the region side of two-phase commit:
//! registrations, the parts the coordinator reads, votes on PREPARE, decisions, and
//! reads of sealed assignments, which resolve a prepared slice with the coordinator
//! before answering (never with the older state while a decision may exist).

use maelstrom_core::{Context, ErrorCode, Outbox, RpcError};

use super::{error, Call, CoordQuery, MatcherNode, Msg, Read, Wait, Waiter};
use crate::constraints::Participant;
use crate::sm::{Cmd, CoordOut, Gid, Lookup, Out, RegionCmd, RegionOut};

/// A prepared slice undecided this long makes its region ask the coordinator.
const STALE_PREPARED_MS: u64 = 1_000;

impl MatcherNode {
    /// A request for a group this node leads.
    pub(super) fn handle_here(
        &mut self,
        ctx: &Context,
        from: Waiter,
        group: Gid,
        req: Msg,
        out: &mut Outbox<Self>,
    ) {
        let origin = req.origin().cloned();
        let copies = self.passed_on(&from) && origin.is_some();
        let (wait, cmd) = match (group, req) {
            (Gid::Region(_), req @ Msg::Register { .. }) => match self.registration(req) {
                Ok((exchange, p)) => {
                    let cmd = RegionCmd::Register {
                        exchange: exchange.clone(),
                        participant: p.clone(),
                    };
                    (Wait::Register(from, exchange, Box::new(p)), cmd)
                }
                Err(why) => return self.fail(out, &from, ErrorCode::MalformedRequest, &why),
            },
            (Gid::Region(_), Msg::Prepare { slice }) => {
                (Wait::Vote(from), RegionCmd::Prepare(*slice))
            }
            (Gid::Region(_), Msg::Install { slice }) => {
                (Wait::Ack(from), RegionCmd::Install(*slice))
            }
            (
                Gid::Region(_),
                Msg::Decide {
                    exchange,
                    txn,
                    commit,
                },
            ) => {
                let cmd = RegionCmd::Decide {
                    exchange,
                    txn,
                    commit,
                };
                (Wait::Ack(from), cmd)
            }
            (Gid::Region(_), Msg::ReadPart { exchange }) => {
                return self.read(group, Wait::Part(from, exchange), out)
            }
            (
                Gid::Region(_),
                Msg::GetAssignment {
                    exchange,
                    participant,
                    at_region,
                },
            ) => {
                let read = Read {
                    to: from,
                    exchange,
                    participant,
                    at_region,
                    resolved: false,
                };
                return self.read(group, Wait::Assign(read), out);
            }
            (Gid::Coordinator, req) => return self.coord_request(ctx, from, req, out),
            (_, req) => {
                let text = format!("{} is not a request for {group:?}", req.kind());
                return self.fail(out, &from, ErrorCode::NotSupported, &text);
            }
        };
        let proposal =
            self.groups
                .propose(&group, Cmd::Region(cmd), origin.clone(), Some(wait), copies);
        match proposal {
            Ok((_, Some(old))) => self.finish(ctx, out, old),
            Ok(_) => {}
            Err((Some(wait), _)) => self.proposal_refused(ctx, out, (group, wait), origin.as_ref()),
            Err(_) => {}
        }
    }

    /// The exchange and validated participant of a `register`.
    fn registration(&self, req: Msg) -> Result<(String, Participant), String> {
        let registration = req.registration();
        let Msg::Register { exchange, .. } = req else {
            return Err("not a registration".into());
        };
        let registration = registration.ok_or("not a registration")?;
        let p = registration
            .validate(self.regions)
            .map_err(|e| e.to_string())?;
        Ok((exchange, p))
    }

    /// A request for the coordinator group, which this node leads.
    fn coord_request(&mut self, ctx: &Context, from: Waiter, req: Msg, out: &mut Outbox<Self>) {
        let query = match req {
            Msg::Match {
                exchange,
                no_mutual,
                deadline,
            } => CoordQuery::Match {
                exchange,
                no_mutual: no_mutual.unwrap_or(false),
                deadline,
            },
            Msg::GiftStatus {
                exchange,
                participant,
            } => CoordQuery::GiftStatus(exchange, participant),
            Msg::Audit { exchange } => CoordQuery::Audit(exchange),
            Msg::Resolve { txn } => CoordQuery::Resolve(txn),
            Msg::Splice {
                exchange,
                participant,
            } => CoordQuery::Splice(exchange, participant),
            other => {
                let text = format!("{} is not a request for the coordinator", other.kind());
                return self.fail(out, &from, ErrorCode::NotSupported, &text);
            }
        };
        let _ = ctx;
        self.read(Gid::Coordinator, Wait::Coord(from, query), out);
    }

    /// Serves a read of `group` once a read-index round confirmed this node leads it.
    fn read(&mut self, group: Gid, wait: Wait, out: &mut Outbox<Self>) {
        if let Err((wait, _)) = self.groups.read(&group, wait) {
            let e = error(
                ErrorCode::TemporarilyUnavailable,
                format!("not the leader of {group:?}"),
            );
            match wait {
                Wait::Part(to, _) | Wait::Coord(to, _) | Wait::Assign(Read { to, .. }) => {
                    self.respond(out, &to, Err(e))
                }
                _ => {}
            }
        }
    }

    /// What applying a waited-for command did.
    pub(super) fn applied(
        &mut self,
        ctx: &Context,
        group: Gid,
        wait: Wait,
        outcome: Out,
        out: &mut Outbox<Self>,
    ) {
        match (wait, outcome) {
            (Wait::Register(to, exchange, p), Out::Region(r)) => {
                let reply = match r {
                    RegionOut::Registered { epoch } => Ok(Msg::RegisterOk { epoch }),
                    RegionOut::Conflict(why) => Err(error(ErrorCode::PreconditionFailed, why)),
                    RegionOut::Locked => Err(error(
                        ErrorCode::TemporarilyUnavailable,
                        "the exchange is being matched; nothing changed, try again",
                    )),
                    RegionOut::Late => {
                        let req = Msg::Splice {
                            exchange,
                            participant: p,
                        };
                        return self.ask(ctx, Gid::Coordinator, req, Call::Late(to), out);
                    }
                    other => Err(error(ErrorCode::Crash, format!("unexpected {other:?}"))),
                };
                self.respond(out, &to, reply);
            }
            (Wait::Vote(to), Out::Region(RegionOut::Voted(vote))) => {
                self.respond(out, &to, Ok(Msg::PrepareOk { vote }))
            }
            (Wait::Ack(to), Out::Region(RegionOut::Decided)) => {
                self.respond(out, &to, Ok(Msg::DecideOk {}))
            }
            (Wait::Resolved(to), Out::Coord(CoordOut::Decided { commit, .. })) => {
                let reply = Msg::ResolveOk {
                    decision: Some(commit),
                };
                self.respond(out, &to, Ok(reply))
            }
            (wait, other) => eprintln!("{group:?}: {wait:?} got {other:?}"),
        }
    }

    /// Answers a `get_assignment` from the region's state, resolving a prepared slice or
    /// following the participant to its region first.
    pub(super) fn answer_read(
        &mut self,
        ctx: &Context,
        group: Gid,
        read: Read,
        out: &mut Outbox<Self>,
    ) {
        let Gid::Region(region) = group else {
            return;
        };
        let Some(sm) = self.region_sm(group) else {
            return self.fail(
                out,
                &read.to,
                ErrorCode::TemporarilyUnavailable,
                "not a replica",
            );
        };
        match sm.lookup(&read.exchange, &read.participant) {
            Lookup::Found { epoch, gift } => {
                let reply = Msg::GetAssignmentOk {
                    epoch,
                    gift_id: gift.gift_id,
                    sealed: gift.sealed,
                };
                self.respond(out, &read.to, Ok(reply));
            }
            Lookup::Pending { .. } if read.resolved => self.fail(
                out,
                &read.to,
                ErrorCode::TemporarilyUnavailable,
                "a transaction on this exchange is undecided; try again",
            ),
            Lookup::Pending { txn } => {
                let call = Call::Resolve {
                    txn,
                    region,
                    exchange: read.exchange.clone(),
                    then: Some(read),
                };
                self.ask(ctx, Gid::Coordinator, Msg::Resolve { txn }, call, out);
            }
            Lookup::Elsewhere(r) if read.at_region.is_none() => {
                let req = Msg::GetAssignment {
                    exchange: read.exchange,
                    participant: read.participant,
                    at_region: Some(r),
                };
                self.route(ctx, read.to, 0, Gid::Region(r), req, out);
            }
            Lookup::Elsewhere(_) | Lookup::Missing(_) => {
                let why = match sm.lookup(&read.exchange, &read.participant) {
                    Lookup::Missing(why) => why,
                    _ => format!("{} is not in this exchange's matching", read.participant),
                };
                self.fail(out, &read.to, ErrorCode::KeyDoesNotExist, &why);
            }
        }
    }

    /// The coordinator's answer on a prepared slice: log the decision in the region (then
    /// answer the read waiting for it), or refuse the read while it is undecided.
    pub(super) fn on_resolved(
        &mut self,
        ctx: &Context,
        (txn, region, exchange, then): (u64, u32, String, Option<Read>),
        result: Result<Msg, RpcError>,
        out: &mut Outbox<Self>,
    ) {
        self.resolving.remove(&txn);
        let decision = match result {
            Ok(Msg::ResolveOk {
                decision: Some(commit),
            }) => commit,
            other => {
                if let Some(read) = then {
                    let why = match other {
                        Ok(_) => "the transaction on this exchange is undecided".to_string(),
                        Err(e) => format!("cannot resolve the pending transaction: {e}"),
                    };
                    self.fail(out, &read.to, ErrorCode::TemporarilyUnavailable, &why);
                }
                return;
            }
        };
        let group = Gid::Region(region);
        let cmd = Cmd::Region(RegionCmd::Decide {
            exchange,
            txn,
            commit: decision,
        });
        let wait = then.map(|mut read| {
            read.resolved = true;
            Wait::Assign(read)
        });
        match self.groups.propose(&group, cmd, None, wait, false) {
            Ok((_, Some(old))) => self.finish(ctx, out, old),
            Ok(_) => {}
            Err((Some(wait), _)) => self.proposal_refused(ctx, out, (group, wait), None),
            Err(_) => {}
        }
    }

    /// Regions this node leads ask the coordinator about slices prepared long ago.
    pub(super) fn resolve_stale(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        let now = ctx.now_ms();
        let mut seen = Vec::new();
        for (&group, g) in self.groups.iter() {
            let (Gid::Region(region), Some(crate::sm::Sm::Region(sm))) = (group, Some(g.sm()))
            else {
                continue;
            };
            if !g.raft().is_leader() {
                continue;
            }
            for (exchange, txn) in sm.prepared() {
                seen.push((txn, region, exchange.to_string()));
            }
        }
        self.prepared_since
            .retain(|txn, _| seen.iter().any(|(t, ..)| t == txn));
        for (txn, region, exchange) in seen {
            let since = *self.prepared_since.entry(txn).or_insert(now);
            if now >= since + STALE_PREPARED_MS && self.resolving.insert(txn) {
                let call = Call::Resolve {
                    txn,
                    region,
                    exchange,
                    then: None,
                };
                self.ask(ctx, Gid::Coordinator, Msg::Resolve { txn }, call, out);
            }
        }
    }

    /// The answer to one of this node's own requests.
    pub(super) fn on_answer(
        &mut self,
        ctx: &Context,
        call: Call,
        result: Result<Msg, RpcError>,
        out: &mut Outbox<Self>,
    ) {
        match call {
            Call::Late(to) => {
                let reply = result.map_err(|e| match e {
                    RpcError::Remote(body) => body,
                    RpcError::Timeout => error(
                        ErrorCode::Crash,
                        "the coordinator did not answer in time; the late addition may commit",
                    ),
                });
                self.respond(out, &to, reply);
            }
            Call::Resolve {
                txn,
                region,
                exchange,
                then,
            } => self.on_resolved(ctx, (txn, region, exchange, then), result, out),
            Call::Part { job, region } => self.on_part(ctx, job, region, result, out),
            Call::Vote { job, region } => self.on_vote(ctx, job, region, result, out),
            Call::Ack { txn, region } => self.on_ack(txn, region, result),
            // Answered by on_service_reply before any decoding.
            Call::Service(call) => eprintln!("a service call answered as a node's: {call:?}"),
        }
    }
}
