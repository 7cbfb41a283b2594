//! Getting a request to its group's leader, through maelstrom-core's [`Router`]: handled
//! here when this node leads the group, passed on in a `fwd` envelope (at most
//! `max_hops` times) to the leader this node knows of or to a member that will know, and
//! parked while the group elects a leader. The node's own requests to other groups (a
//! coordinator reading regions, PREPARE, COMMIT, a region resolving a prepared slice) go
//! the same way but are not parked: their callers try again (a job's next attempt, the
//! next round of decisions), which bounds how long a client waits for them.

use std::collections::BTreeMap;
use std::time::Duration;

use maelstrom_core::raft::route::Unparked;
use maelstrom_core::raft::{Outcome, Relayed, Route, RouteConfig, Router, Target};
use maelstrom_core::{Context, ErrorCode, Outbox, ReplyTo};

use super::{error, forward, members, Call, MatcherNode, Msg, Waiter};
use crate::constraints::home_region;
use crate::sm::{Gid, Out, RegionOut};

/// How long a passed-on client request may take (a match runs a whole 2PC).
const RELAY_TIMEOUT: Duration = Duration::from_millis(3_000);
/// How long this node's own requests to other groups may take.
pub const ASK_TIMEOUT: Duration = Duration::from_millis(1_000);

/// The router of a node of cluster `node_ids` with `regions` regions.
pub(super) fn router(me: &str, node_ids: &[String], regions: u32) -> Router<Gid, Msg> {
    let placement: BTreeMap<Gid, Vec<String>> = (0..regions)
        .map(Gid::Region)
        .chain([Gid::Coordinator])
        .map(|g| (g, members(node_ids, g)))
        .collect();
    Router::new(me, node_ids, placement, RouteConfig::default())
}

impl MatcherNode {
    /// A client request: checked, then sent towards its group.
    pub(super) fn on_request(
        &mut self,
        ctx: &Context,
        from: ReplyTo,
        req: Msg,
        out: &mut Outbox<Self>,
    ) {
        match self.group_of(&req) {
            Ok(group) => self.route(ctx, Waiter::Direct(from), 0, group, req, out),
            Err((code, text)) => out.reply_error(&from, code, text),
        }
    }

    /// The group a client request goes to, or why it is refused.
    fn group_of(&self, req: &Msg) -> Result<Gid, (ErrorCode, String)> {
        let bad = |text: &str| Err((ErrorCode::MalformedRequest, text.to_string()));
        match req {
            Msg::Register { exchange, .. }
            | Msg::Match { exchange, .. }
            | Msg::GetAssignment { exchange, .. }
            | Msg::Audit { exchange }
            | Msg::GiftStatus { exchange, .. }
                if exchange.is_empty() =>
            {
                bad("exchange id is empty")
            }
            Msg::Register { .. } => {
                let registration = req.registration().unwrap_or_else(|| unreachable!());
                match registration.validate(self.regions) {
                    Ok(p) => Ok(Gid::Region(p.region)),
                    Err(e) => Err((ErrorCode::MalformedRequest, e.to_string())),
                }
            }
            Msg::GetAssignment { participant, .. } | Msg::GiftStatus { participant, .. }
                if participant.is_empty() =>
            {
                bad("participant id is empty")
            }
            Msg::GetAssignment {
                at_region: Some(r), ..
            } if *r >= self.regions => bad("at_region is not a region"),
            Msg::GetAssignment {
                participant,
                at_region,
                ..
            } => Ok(Gid::Region(
                at_region.unwrap_or_else(|| home_region(participant, self.regions)),
            )),
            Msg::Match { .. } | Msg::Audit { .. } | Msg::GiftStatus { .. } => Ok(Gid::Coordinator),
            other => Err((
                ErrorCode::NotSupported,
                format!("{} is not a client request", other.kind()),
            )),
        }
    }

    /// Handles `req` here if this node leads `group`, else passes it on, parks it or
    /// refuses it.
    pub(super) fn route(
        &mut self,
        ctx: &Context,
        from: Waiter,
        hops: u8,
        group: Gid,
        req: Msg,
        out: &mut Outbox<Self>,
    ) {
        let now = ctx.now_ms();
        let call = match from {
            Waiter::Direct(from) => {
                return match self.router.route(&self.groups, now, group, from, hops, req) {
                    Route::Here { from, req } => {
                        self.handle_here(ctx, Waiter::Direct(from), group, req, out)
                    }
                    Route::Pass(pass) => {
                        pass.send(out, RELAY_TIMEOUT, |hops, req| forward(group, hops, req))
                    }
                    Route::Parked => {}
                    Route::Refuse { from, req } => {
                        self.refuse_unrouted(ctx, from, group, &req, out)
                    }
                };
            }
            Waiter::Local(call) => call,
        };
        match self.router.target(&self.groups, now, &group) {
            Target::Here => self.handle_here(ctx, Waiter::Local(call), group, req, out),
            Target::Leader(to) | Target::Node(to) => {
                out.rpc(to, forward(group, 1, req), ASK_TIMEOUT, Relayed::Own(*call));
            }
            Target::Nowhere => {
                let e = error(
                    ErrorCode::TemporarilyUnavailable,
                    format!("no leader known for {group:?}"),
                );
                self.respond(out, &Waiter::Local(call), Err(e));
            }
        }
    }

    /// Refuses a request no leader could be found for: with its recorded reply if a copy
    /// applied here, indefinitely if a copy (passed on by a node) may still take effect,
    /// definitely otherwise.
    fn refuse_unrouted(
        &mut self,
        ctx: &Context,
        from: ReplyTo,
        group: Gid,
        req: &Msg,
        out: &mut Outbox<Self>,
    ) {
        let _ = ctx;
        let why = format!("no leader known for {group:?}");
        let copies = self.router.passed_on(&from);
        let reply = match self.groups.refusal(&group, req.origin(), copies, &why) {
            Outcome::Applied(Out::Region(RegionOut::Registered { epoch })) => {
                Ok(Msg::RegisterOk { epoch })
            }
            Outcome::Failed(e) => Err(e),
            _ => Err(error(ErrorCode::Timeout, why)),
        };
        self.respond(out, &Waiter::Direct(from), reply);
    }

    /// Sends one of this node's own requests to `group`'s leader; the answer comes back
    /// to [`MatcherNode::on_answer`] with `call`.
    pub(super) fn ask(
        &mut self,
        ctx: &Context,
        group: Gid,
        req: Msg,
        call: Call,
        out: &mut Outbox<Self>,
    ) {
        self.route(ctx, Waiter::Local(Box::new(call)), 0, group, req, out);
    }

    /// Takes up parked requests whose group found a leader; refuses those that waited
    /// too long.
    pub(super) fn unpark(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        for p in self.router.unpark(&self.groups, ctx.now_ms()) {
            match p {
                Unparked::Ready(p) => {
                    self.route(ctx, Waiter::Direct(p.from), p.hops, p.group, p.req, out)
                }
                Unparked::Expired(p) => self.refuse_unrouted(ctx, p.from, p.group, &p.req, out),
            }
        }
    }

    pub(super) fn heartbeat(&mut self, ctx: &Context, out: &mut Outbox<Self>) {
        let leads: Vec<(Gid, u64)> = self
            .groups
            .iter()
            .filter(|(_, g)| g.raft().is_leader())
            .map(|(&id, g)| (id, g.raft().term()))
            .collect();
        for peer in ctx.peers() {
            let leads = leads.clone();
            out.send(peer, Msg::Heartbeat { leads });
        }
    }

    pub(super) fn on_heartbeat(&mut self, ctx: &Context, src: &str, leads: Vec<(Gid, u64)>) {
        let now = ctx.now_ms();
        self.router.heard(src, now);
        for (group, term) in leads {
            self.router.hint(group, src, term, (), now);
        }
    }
}
