//! Getting a request to its group's leader and its answer back: the routing every node
//! with Raft groups needs, as a pure table the node owns next to its [`Groups`].
//!
//! A [`Router`] decides where a request for a group goes ([`Router::target`]): here when
//! this node leads the group; to the leader this node's own replica knows, or the one a
//! live peer announced ([`Router::hint`]); to a live replica of the group when this node
//! holds none (it will know the leader); nowhere while an election is under way. It bounds
//! how often one request is passed on (`max_hops`, so stale hints cannot make it circle),
//! holds requests while their group has no leader ([`Router::unpark`] takes them up again
//! or gives them back to be refused), and keeps the requesters of requests passed on in
//! batches, with deadlines ([`Router::expire_relays`]). It sends nothing: the node wraps a
//! request passed on in its own message type (a `fwd` envelope, a batch, the request
//! itself) and answers in its own words.
//!
//! What to answer when time runs out: a request passed on whose answer did not come back
//! may still take effect, so its requester gets an indefinite error (timeout); a parked
//! request that found no leader was not proposed here, so its answer is
//! [`Groups::refusal`]: its recorded reply if a copy applied here, an indefinite error if
//! it came through another node (copies may exist), a definite one otherwise.
//!
//! ```
//! use maelstrom_core::raft::route::{RouteConfig, Route, Router};
//! use maelstrom_core::ReplyTo;
//! # use maelstrom_core::raft::route::{Leadership, Local};
//!
//! #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
//! enum G { Region(u32), Coordinator }
//! #[derive(Debug, Clone)]
//! enum Req { Register(String), Match(String) }
//! # struct NoGroups;
//! # impl Leadership<G> for NoGroups {
//! #     fn local(&self, _: &G) -> Option<Local<'_>> { None }
//! # }
//! # let groups = NoGroups;
//!
//! let nodes: Vec<String> = ["n0", "n1", "n2"].map(String::from).to_vec();
//! let placement = [(G::Region(0), vec!["n1".into()]), (G::Coordinator, nodes.clone())];
//! let mut router: Router<G, Req> =
//!     Router::new("n0", &nodes, placement.into_iter().collect(), RouteConfig::default());
//! let now = 0;
//! router.heard("n1", now);
//! let from = ReplyTo { src: "c1".into(), msg_id: Some(1) };
//! // `groups` is the node's `Groups`; this node replicates neither group here.
//! match router.route(&groups, now, G::Region(0), from, 0, Req::Register("ann".into())) {
//!     Route::Here { .. } => { /* propose to the group */ }
//!     Route::Pass(pass) => {
//!         // e.g. pass.send(out, TIMEOUT, |hops, req| Msg::Fwd { hops, req })
//!         assert_eq!((pass.to.as_str(), pass.hops), ("n1", 1));
//!     }
//!     Route::Parked => { /* taken up again by `router.unpark` on the next tick */ }
//!     Route::Refuse { .. } => { /* answer `groups.refusal(…)` */ }
//! }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use serde_json::Value;

use super::groups::{Groups, StateMachine};
use super::Term;
use crate::message::{RawMessage, ReplyTo};
use crate::node::{decode_reply, Node, Outbox, RpcError};

/// The tag of a node's RPC ([`Node::Call`]): a request passed on ([`Route::Pass`]) for
/// its requester, whose reply goes back to it as it came, or one of the node's own.
#[derive(Debug, Clone)]
pub enum Relayed<C> {
    Relay(ReplyTo),
    Own(C),
}

/// One of a node's own RPCs and its decoded reply.
pub type OwnReply<C, M> = (C, Result<M, RpcError>);

/// The outcome of an RPC this node made: a passed-on request's goes back to its
/// requester as it came and `None` is left; one of the node's own comes back with its
/// reply decoded ([`decode_reply`]).
pub fn relay_or_decode<N: Node<Call = Relayed<C>>, C>(
    out: &mut Outbox<N>,
    call: Relayed<C>,
    reply: Result<RawMessage, RpcError>,
) -> Option<OwnReply<C, N::Msg>> {
    match call {
        Relayed::Relay(to) => {
            out.relay(&to, reply);
            None
        }
        Relayed::Own(call) => Some((call, decode_reply(reply))),
    }
}

/// Timing and limits, in milliseconds of the node's monotonic clock.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// A request is passed on at most this many times.
    pub max_hops: u8,
    /// How long a request waits for its group to have a leader; `None`: it is refused at
    /// once.
    pub park_ms: Option<u64>,
    /// How long a request passed on in a batch waits for its answer.
    pub relay_ms: u64,
    /// A peer silent this long is presumed dead, and its leader hints stale.
    pub peer_timeout_ms: u64,
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            max_hops: 2,
            park_ms: Some(1_000),
            relay_ms: 1_000,
            peer_timeout_ms: 1_000,
        }
    }
}

/// What this node's own replica of a group knows of its leadership.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    pub leading: bool,
    pub leader: Option<&'a str>,
}

/// The node's replicas of groups, as far as routing cares: [`Groups`] is one.
pub trait Leadership<G> {
    /// `None` when this node holds no replica of `group`.
    fn local(&self, group: &G) -> Option<Local<'_>>;
}

impl<G: Ord + Copy + std::fmt::Debug, S: StateMachine, W> Leadership<G> for Groups<G, S, W> {
    fn local(&self, group: &G) -> Option<Local<'_>> {
        self.get(group).map(|g| Local {
            leading: g.raft().is_leader(),
            leader: g.raft().leader(),
        })
    }
}

/// Where a request for a group should go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Here,
    /// The group's leader, as far as this node knows.
    Leader(String),
    /// A replica that will know the leader.
    Node(String),
    Nowhere,
}

/// A request to pass on to `to` (the group's leader when `leader`) as its `hops`-th hop.
#[derive(Debug)]
pub struct Pass<R> {
    pub to: String,
    pub leader: bool,
    pub hops: u8,
    pub from: ReplyTo,
    pub req: R,
}

impl<R> Pass<R> {
    /// Sends the request on in the node's forwarding message `wrap(hops, req)`, tagged so
    /// that its reply goes back to the requester as it comes ([`relay_or_decode`]), or a
    /// timeout error after `timeout` (indefinite: the request may still take effect).
    pub fn send<N: Node<Call = Relayed<C>>, C>(
        self,
        out: &mut Outbox<N>,
        timeout: Duration,
        wrap: impl FnOnce(u8, R) -> N::Msg,
    ) {
        let fwd = wrap(self.hops, self.req);
        out.rpc(self.to, fwd, timeout, Relayed::Relay(self.from));
    }
}

/// What to do with a request ([`Router::route`]).
#[derive(Debug)]
pub enum Route<R> {
    /// This node leads the group: handle it here.
    Here { from: ReplyTo, req: R },
    /// Pass it on.
    Pass(Pass<R>),
    /// Held until the group has a leader: see [`Router::unpark`].
    Parked,
    /// Nowhere to go (the hop limit, or no leader and no parking): refuse it.
    Refuse { from: ReplyTo, req: R },
}

/// A request waiting for its group to have a leader.
#[derive(Debug)]
pub struct Parked<G, R> {
    pub until: u64,
    pub group: G,
    pub from: ReplyTo,
    pub hops: u8,
    pub req: R,
}

/// A parked request given back by [`Router::unpark`].
#[derive(Debug)]
pub enum Unparked<G, R> {
    /// Its group has somewhere to go now: route it again.
    Ready(Parked<G, R>),
    /// It waited too long: refuse it ([`Groups::refusal`]).
    Expired(Parked<G, R>),
}

/// A leader a peer announced, with what the node's heartbeats carry beside it (`H`).
#[derive(Debug, Clone)]
pub struct Hint<H> {
    pub leader: String,
    pub term: Term,
    /// When it was heard.
    pub at: u64,
    pub info: H,
}

/// Routing state of one node, for groups `G`, requests `R` and leader hints carrying `H`.
pub struct Router<G, R, H = ()> {
    me: String,
    nodes: Vec<String>,
    /// Each group's replicas, in the order every node computes alike.
    placement: BTreeMap<G, Vec<String>>,
    config: RouteConfig,
    hints: BTreeMap<G, Hint<H>>,
    last_seen: HashMap<String, u64>,
    parked: Vec<Parked<G, R>>,
    /// Tag -> the requester of a request passed on in a batch.
    relayed: HashMap<u64, ReplyTo>,
    /// (deadline, tag) of relayed requests, oldest first.
    relay_deadlines: VecDeque<(u64, u64)>,
    next_tag: u64,
    /// Requests to pass on, gathered per leader until the node's next round.
    batches_out: BTreeMap<String, Vec<(u64, R)>>,
    /// Answers to peers' batches, gathered per peer until the node's next round.
    answers_out: BTreeMap<String, Vec<(u64, Value)>>,
}

impl<G: Ord + Copy + std::fmt::Debug, R, H> Router<G, R, H> {
    /// A router for node `me` of cluster `nodes`, whose groups have these replicas.
    pub fn new(
        me: &str,
        nodes: &[String],
        placement: BTreeMap<G, Vec<String>>,
        config: RouteConfig,
    ) -> Self {
        Router {
            me: me.to_string(),
            nodes: nodes.to_vec(),
            placement,
            config,
            hints: BTreeMap::new(),
            last_seen: HashMap::new(),
            parked: Vec::new(),
            relayed: HashMap::new(),
            relay_deadlines: VecDeque::new(),
            next_tag: 0,
            batches_out: BTreeMap::new(),
            answers_out: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &RouteConfig {
        &self.config
    }

    /// Whether a request from `from` came through another node of the cluster, so that
    /// copies of it may exist.
    pub fn passed_on(&self, from: &ReplyTo) -> bool {
        self.nodes.contains(&from.src)
    }

    /// Records that `peer` was heard from at `now`.
    pub fn heard(&mut self, peer: &str, now: u64) {
        self.last_seen.insert(peer.to_string(), now);
    }

    pub fn alive(&self, peer: &str, now: u64) -> bool {
        self.last_seen
            .get(peer)
            .is_some_and(|&at| now <= at + self.config.peer_timeout_ms)
    }

    /// Records that `leader` announced leading `group` in `term`; an older term's hint
    /// does not replace a newer one until that one is stale.
    pub fn hint(&mut self, group: G, leader: &str, term: Term, info: H, now: u64) {
        let newer = self.hints.get(&group).map_or(true, |h| {
            h.term <= term || now > h.at + self.config.peer_timeout_ms
        });
        if newer {
            let leader = leader.to_string();
            let hint = Hint {
                leader,
                term,
                at: now,
                info,
            };
            self.hints.insert(group, hint);
        }
    }

    /// Hints heard within the peer timeout.
    pub fn fresh_hints(&self, now: u64) -> impl Iterator<Item = (&G, &Hint<H>)> {
        let timeout = self.config.peer_timeout_ms;
        self.hints
            .iter()
            .filter(move |(_, h)| now <= h.at + timeout)
    }

    /// Where a request for `group` should go now.
    pub fn target(&self, local: &impl Leadership<G>, now: u64, group: &G) -> Target {
        let mine = local.local(group);
        if let Some(l) = mine {
            if l.leading {
                return Target::Here;
            }
            if let Some(leader) = l.leader.filter(|&leader| leader != self.me) {
                return Target::Leader(leader.to_string());
            }
        }
        if let Some(hint) = self.hints.get(group) {
            if hint.leader != self.me && self.alive(&hint.leader, now) {
                return Target::Leader(hint.leader.clone());
            }
        }
        if mine.is_none() {
            let replicas = self.placement.get(group).map_or(&[][..], Vec::as_slice);
            if let Some(r) = replicas.iter().find(|r| self.alive(r, now)) {
                return Target::Node(r.clone());
            }
            if let Some(r) = replicas.first() {
                return Target::Node(r.clone());
            }
        }
        Target::Nowhere
    }

    /// Decides what to do with `req` for `group`, passed on `hops` times so far; parks it
    /// when no leader is known and parking is on.
    pub fn route(
        &mut self,
        local: &impl Leadership<G>,
        now: u64,
        group: G,
        from: ReplyTo,
        hops: u8,
        req: R,
    ) -> Route<R> {
        let (to, leader) = match self.target(local, now, &group) {
            Target::Here => return Route::Here { from, req },
            Target::Leader(to) => (to, true),
            Target::Node(to) => (to, false),
            Target::Nowhere => {
                let Some(park_ms) = self.config.park_ms else {
                    return Route::Refuse { from, req };
                };
                // An election is under way: wait for it rather than fail at once.
                self.parked.push(Parked {
                    until: now + park_ms,
                    group,
                    from,
                    hops,
                    req,
                });
                return Route::Parked;
            }
        };
        if hops >= self.config.max_hops {
            return Route::Refuse { from, req };
        }
        Route::Pass(Pass {
            to,
            leader,
            hops: hops + 1,
            from,
            req,
        })
    }

    /// Gives back, in the order they came, the parked requests whose group has somewhere
    /// to go now and those that waited too long; keeps the others.
    pub fn unpark(&mut self, local: &impl Leadership<G>, now: u64) -> Vec<Unparked<G, R>> {
        if self.parked.is_empty() {
            return Vec::new();
        }
        let mut back = Vec::new();
        for p in std::mem::take(&mut self.parked) {
            if self.target(local, now, &p.group) != Target::Nowhere {
                back.push(Unparked::Ready(p));
            } else if now >= p.until {
                back.push(Unparked::Expired(p));
            } else {
                self.parked.push(p);
            }
        }
        back
    }

    /// Queues `req` for `leader`'s next batch; its answer goes to `from`
    /// ([`Router::relayed`]) unless the relay deadline passes first.
    pub fn batch(&mut self, leader: String, from: ReplyTo, now: u64, req: R) {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.relayed.insert(tag, from);
        let until = now + self.config.relay_ms;
        self.relay_deadlines.push_back((until, tag));
        self.batches_out.entry(leader).or_default().push((tag, req));
    }

    /// The batches to send, per leader, gathered since the last call.
    pub fn take_batches(&mut self) -> BTreeMap<String, Vec<(u64, R)>> {
        std::mem::take(&mut self.batches_out)
    }

    /// The requester of a batched request whose answer came back, once.
    pub fn relayed(&mut self, tag: u64) -> Option<ReplyTo> {
        self.relayed.remove(&tag)
    }

    /// The requesters of batched requests whose answers did not come back in time: each
    /// gets an indefinite error (the request may still take effect).
    pub fn expire_relays(&mut self, now: u64) -> Vec<ReplyTo> {
        let mut expired = Vec::new();
        while let Some(&(until, tag)) = self.relay_deadlines.front() {
            if until > now {
                break;
            }
            self.relay_deadlines.pop_front();
            expired.extend(self.relayed.remove(&tag));
        }
        expired
    }

    /// Queues the answer `body` to request `tag` of a batch from `node`.
    pub fn answer_batched(&mut self, node: &str, tag: u64, body: Value) {
        let answers = self.answers_out.entry(node.to_string()).or_default();
        answers.push((tag, body));
    }

    /// The answers to peers' batches, per peer, gathered since the last call.
    pub fn take_batch_answers(&mut self) -> BTreeMap<String, Vec<(u64, Value)>> {
        std::mem::take(&mut self.answers_out)
    }
}

impl<G: std::fmt::Debug, R, H> std::fmt::Debug for Router<G, R, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("me", &self.me)
            .field("hinted", &self.hints.keys().collect::<Vec<_>>())
            .field("parked", &self.parked.len())
            .field("relayed", &self.relayed.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This node's replicas: group -> (leading, leader).
    struct Mine(BTreeMap<u32, (bool, Option<&'static str>)>);

    impl Leadership<u32> for Mine {
        fn local(&self, group: &u32) -> Option<Local<'_>> {
            self.0
                .get(group)
                .map(|&(leading, leader)| Local { leading, leader })
        }
    }

    fn names(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// n0 of n0..n3; group 0 on n0,n1,n2, group 1 on n1,n2,n3.
    fn router() -> Router<u32, &'static str, u64> {
        let placement = [
            (0, names(&["n0", "n1", "n2"])),
            (1, names(&["n1", "n2", "n3"])),
        ];
        let nodes = names(&["n0", "n1", "n2", "n3"]);
        Router::new("n0", &nodes, placement.into(), RouteConfig::default())
    }

    fn client(id: u64) -> ReplyTo {
        ReplyTo {
            src: "c1".into(),
            msg_id: Some(id),
        }
    }

    #[test]
    fn targets_follow_own_leadership_then_hints_then_live_replicas() {
        let mut r = router();
        let mut mine = Mine([(0, (true, Some("n0")))].into());
        assert_eq!(r.target(&mine, 0, &0), Target::Here);
        mine.0.insert(0, (false, Some("n2")));
        assert_eq!(r.target(&mine, 0, &0), Target::Leader("n2".into()));
        mine.0.insert(0, (false, None));
        assert_eq!(r.target(&mine, 0, &0), Target::Nowhere);
        // A replica of group 1 nobody heard from: the first one; then a live one.
        assert_eq!(r.target(&mine, 0, &1), Target::Node("n1".into()));
        r.heard("n2", 0);
        assert_eq!(r.target(&mine, 10, &1), Target::Node("n2".into()));
        // A hint from a live peer wins; a dead peer's does not.
        r.heard("n3", 0);
        r.hint(1, "n3", 4, 7, 0);
        assert_eq!(r.target(&mine, 10, &1), Target::Leader("n3".into()));
        r.hint(0, "n3", 4, 7, 0);
        assert_eq!(r.target(&mine, 10, &0), Target::Leader("n3".into()));
        assert_eq!(r.target(&mine, 5_000, &0), Target::Nowhere);
    }

    #[test]
    fn an_older_terms_hint_waits_until_the_newer_one_is_stale() {
        let mut r = router();
        r.hint(1, "n3", 5, 0, 0);
        r.hint(1, "n2", 4, 0, 10);
        assert_eq!(r.hints[&1].leader, "n3");
        r.hint(1, "n2", 4, 0, 2_000);
        assert_eq!(r.hints[&1].leader, "n2");
        assert_eq!(r.fresh_hints(2_500).count(), 1);
        assert_eq!(r.fresh_hints(3_001).count(), 0);
    }

    #[test]
    fn hops_are_bounded() {
        let mut r = router();
        let mine = Mine([(0, (false, Some("n1")))].into());
        match r.route(&mine, 0, 0, client(1), 1, "a") {
            Route::Pass(Pass {
                to, leader, hops, ..
            }) => assert_eq!((&*to, leader, hops), ("n1", true, 2)),
            other => panic!("{other:?}"),
        }
        let refused = r.route(&mine, 0, 0, client(2), 2, "b");
        assert!(
            matches!(refused, Route::Refuse { req: "b", .. }),
            "{refused:?}"
        );
    }

    #[test]
    fn parked_requests_resume_in_order_or_expire() {
        let mut r = router();
        let mut mine = Mine([(0, (false, None))].into());
        assert!(matches!(
            r.route(&mine, 0, 0, client(1), 0, "a"),
            Route::Parked
        ));
        assert!(matches!(
            r.route(&mine, 600, 0, client(2), 0, "b"),
            Route::Parked
        ));
        assert!(r.unpark(&mine, 500).is_empty());
        let back = r.unpark(&mine, 1_000);
        assert!(
            matches!(&back[..], [Unparked::Expired(p)] if p.req == "a"),
            "{back:?}"
        );
        mine.0.insert(0, (true, Some("n0")));
        let back = r.unpark(&mine, 1_100);
        assert!(
            matches!(&back[..], [Unparked::Ready(p)] if p.req == "b"),
            "{back:?}"
        );
        assert!(r.unpark(&mine, 5_000).is_empty());
        // Without parking, nowhere to go is a refusal at once.
        let config = RouteConfig {
            park_ms: None,
            ..RouteConfig::default()
        };
        let mut r: Router<u32, &str> = Router::new("n0", &[], BTreeMap::new(), config);
        mine.0.insert(0, (false, None));
        assert!(matches!(
            r.route(&mine, 0, 0, client(3), 0, "c"),
            Route::Refuse { .. }
        ));
    }

    #[test]
    fn batched_requests_are_answered_once_or_expire() {
        let mut r = router();
        r.batch("n1".into(), client(1), 0, "a");
        r.batch("n1".into(), client(2), 500, "b");
        let batches = r.take_batches();
        let tags: Vec<u64> = batches["n1"].iter().map(|(t, _)| *t).collect();
        assert_eq!(tags.len(), 2);
        assert!(r.take_batches().is_empty());
        assert_eq!(r.relayed(tags[1]), Some(client(2)));
        assert_eq!(r.relayed(tags[1]), None);
        assert!(r.expire_relays(999).is_empty());
        assert_eq!(r.expire_relays(1_000), vec![client(1)]);
        assert!(r.expire_relays(2_000).is_empty(), "b was answered");
        r.answer_batched("n2", 7, Value::Null);
        assert_eq!(r.take_batch_answers()["n2"], vec![(7, Value::Null)]);
        assert!(r.passed_on(&ReplyTo {
            src: "n3".into(),
            msg_id: None
        }));
        assert!(!r.passed_on(&client(1)));
    }
}
