//! Getting a request to its group's leader: handled here when this node leads the group,
//! passed on (at most [`MAX_HOPS`] times) to the leader this node knows of (its own Raft
//! group's, or the one peers announce in heartbeats) or to a member that will know, and
//! parked while the group elects a leader.

use std::time::Duration;

use maelstrom_core::{Context, ErrorCode, Outbox, ReplyTo};

use super::{error, members, millis, Call, MatcherNode, Msg, Waiter};
use crate::constraints::home_region;
use crate::sm::Gid;

/// A request is passed on at most this many times (a non-member to a member, a follower
/// to its leader), so stale leader hints cannot make it circle.
pub const MAX_HOPS: u8 = 2;
/// How long a request waits for its group to elect a leader before it is refused.
const PARK_MS: u64 = 1_000;
/// A peer silent this long is presumed dead.
const PEER_TIMEOUT_MS: u64 = 1_000;
/// How long a passed-on client request may take (a match runs a whole 2PC).
const RELAY_TIMEOUT: Duration = Duration::from_millis(3_000);
/// How long this node's own requests to other groups may take.
pub const ASK_TIMEOUT: Duration = Duration::from_millis(1_000);

/// A request waiting for its group to have a leader.
#[derive(Debug)]
pub struct Parked {
    until: u64,
    group: Gid,
    from: Waiter,
    hops: u8,
    req: Msg,
}

/// What a peer announced it leads.
#[derive(Debug, Clone)]
pub struct Hint {
    leader: String,
    term: u64,
    at: u64,
}

enum Target {
    Here,
    Leader(String),
    Node(String),
    Nowhere,
}

impl MatcherNode {
    fn peer_alive(&self, ctx: &Context, peer: &str) -> bool {
        self.last_seen
            .get(peer)
            .is_some_and(|&at| millis(ctx) <= at + PEER_TIMEOUT_MS)
    }

    fn target(&self, ctx: &Context, group: Gid) -> Target {
        if let Some(g) = self.groups.get(&group) {
            if g.raft().is_leader() {
                return Target::Here;
            }
            if let Some(leader) = g.raft().leader().filter(|l| *l != ctx.node_id) {
                return Target::Leader(leader.to_string());
            }
        }
        if let Some(hint) = self.hints.get(&group) {
            if hint.leader != ctx.node_id && self.peer_alive(ctx, &hint.leader) {
                return Target::Leader(hint.leader.clone());
            }
        }
        if !self.groups.contains(&group) {
            let members = members(&ctx.node_ids, group);
            if let Some(m) = members.iter().find(|m| self.peer_alive(ctx, m)) {
                return Target::Node(m.clone());
            }
            if let Some(m) = members.first() {
                return Target::Node(m.clone());
            }
        }
        Target::Nowhere
    }

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
            Msg::GetAssignment { participant, .. } if participant.is_empty() => {
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
            Msg::Match { .. } | Msg::Audit { .. } => Ok(Gid::Coordinator),
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
        match self.target(ctx, group) {
            Target::Here => self.handle_here(ctx, from, group, req, out),
            Target::Leader(node) | Target::Node(node) if hops < MAX_HOPS => {
                let fwd = Msg::Fwd {
                    hops: hops + 1,
                    group,
                    req: Box::new(req),
                };
                match from {
                    Waiter::Direct(to) => {
                        out.rpc(node, fwd, RELAY_TIMEOUT, Call::Relay(to));
                    }
                    Waiter::Local(call) => {
                        out.rpc(node, fwd, ASK_TIMEOUT, *call);
                    }
                }
            }
            Target::Nowhere => self.parked.push(Parked {
                until: millis(ctx) + PARK_MS,
                group,
                from,
                hops,
                req,
            }),
            _ => self.refuse_unrouted(ctx, &from, group, &req, out),
        }
    }

    /// Refuses a request no leader could be found for: definitely not done, unless a copy
    /// of it (passed on by a node) may still take effect elsewhere.
    fn refuse_unrouted(
        &mut self,
        ctx: &Context,
        from: &Waiter,
        group: Gid,
        req: &Msg,
        out: &mut Outbox<Self>,
    ) {
        let text = format!("no leader known for {group:?}");
        let changes = matches!(req, Msg::Register { .. } | Msg::Match { .. });
        let code = if changes && Self::passed_on(ctx, from) {
            ErrorCode::Timeout
        } else {
            ErrorCode::TemporarilyUnavailable
        };
        self.respond(out, from, Err(error(code, text)));
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
        if self.parked.is_empty() {
            return;
        }
        let now = millis(ctx);
        for p in std::mem::take(&mut self.parked) {
            if !matches!(self.target(ctx, p.group), Target::Nowhere) {
                self.route(ctx, p.from, p.hops, p.group, p.req, out);
            } else if now >= p.until {
                self.refuse_unrouted(ctx, &p.from, p.group, &p.req, out);
            } else {
                self.parked.push(p);
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
            out.send(
                peer,
                Msg::Heartbeat {
                    leads: leads.clone(),
                },
            );
        }
    }

    pub(super) fn on_heartbeat(&mut self, ctx: &Context, src: &str, leads: Vec<(Gid, u64)>) {
        let now = millis(ctx);
        self.last_seen.insert(src.to_string(), now);
        for (group, term) in leads {
            let newer = self
                .hints
                .get(&group)
                .map_or(true, |h| h.term <= term || now > h.at + PEER_TIMEOUT_MS);
            if newer {
                let leader = src.to_string();
                self.hints.insert(
                    group,
                    Hint {
                        leader,
                        term,
                        at: now,
                    },
                );
            }
        }
    }
}
