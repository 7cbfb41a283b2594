//! `secret-santa`: Secret Santa exchanges matched all-or-nothing across regions (the
//! matcher's protocol, issue 14 §2). The checker is [`crate::checker::secret_santa`].
//!
//! Several exchanges run at once, [`ACTIVE`] at a time and [`MAX_EXCHANGES`] in all. Each
//! is planned by [`plan`]: 2 to 40 participants with families that exclude each other and
//! budget bands, or one of the infeasible designs (a pair excluding each other, someone
//! excluding everyone, disjoint budgets, a lone participant, a `no_mutual` pair). An
//! exchange registers its participants (spread over workers, hence nodes, and over the
//! regions `0..R`, `R` from the node's `--regions`), then sends the same `match` from
//! [`CONCURRENT_MATCHES`] workers at once (always with the exchange's one `no_mutual`
//! flag), then registers its late additions one at a time. Infeasible designs are matched
//! only once every registration is acknowledged, so the checker knows their exact set;
//! feasible ones sometimes match while their last registrations are still in flight,
//! and most have stragglers: unconstrained participants registered between the `match`es,
//! in the very next slots (a match takes milliseconds), so that registrations race the
//! coordinator's read of the regions. One that lands between that read and PREPARE moves
//! its region's registrations (the vote says no, the transaction aborts and is driven
//! again); one that lands later meets a prepared region (error 11, sent again) or a
//! matched exchange (a late addition). Reads of random participants at random nodes and
//! audits run throughout, and many reads go to exchanges with a match or a registration
//! in flight, where prepared and undecided slices are. Failed or indeterminate
//! registrations and matches are retried (the protocol makes them safe).
//!
//! The workload makes every participant's X25519 key pair and opens every sealed box as
//! the reply comes in: the completion records what the box said and which other
//! participants' keys open it too, so the checker judges from the history alone.
//!
//! Ops and values (EDN, keyword keys):
//! - `:register` `{:exchange x, :participant p, :public-key k, :exclusions [..], :budget
//!   {:min a, :max b}?, :region r?, :late? b}`; ok adds `:epoch`.
//! - `:match` `{:exchange x, :no-mutual b}`; ok adds `:epoch` and `:participants`.
//! - `:read` `{:exchange x, :participant p}`; ok adds `:epoch`, `:gift-id`, and either
//!   `:box {:exchange :giver :receiver :epoch :gift-id}` or `:box-error`, and
//!   `:opens-with [other participants whose keys open it]`.
//! - `:audit` `{:exchange x}`; ok adds `:events [{:id :txn :kind :event :epoch}]` and
//!   `:extra-keys` when events carry fields beyond the protocol's.
//!
//! Final phase: every participant of every exchange is read (retried after errors that
//! leave it unknown), then every exchange's audit.
//!
//! The santa workload's clients are this workload with its additions
//! (`SecretSanta::for_santa`): `:nice-child` registrations, `match` deadlines,
//! `:gift-status` reads (main and final phase), and reads of every participant after each
//! commit.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use crypto_box::SecretKey;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{Map, Value};

use super::{body, Ask, ClientRules, Cluster, GenOp, Next, Phase, Request, RunFacts, Workload};
use crate::edn::Edn;
use crate::history::{History, Op, OpType};
use crate::schema::{FieldType, Schema};

/// Exchanges in progress at once.
pub const ACTIVE: usize = 4;
/// Exchanges in a run, at most.
pub const MAX_EXCHANGES: usize = 40;
/// Workers that send an exchange's `match` at the same time.
pub const CONCURRENT_MATCHES: usize = 3;
/// Attempts at one registration, or rounds of matches, before the workload gives up.
const TRIES: u32 = 4;
/// Attempts at each final read.
const FINAL_TRIES: u32 = 4;
/// Share of main-phase slots that read an assignment (when something can be read).
const READ_SHARE: f64 = 0.3;
/// Share of main-phase slots that read an exchange with a match or registration in flight
/// (when there is one).
const HOT_READ_SHARE: f64 = 0.4;
/// Share of main-phase slots that ask an audit.
const AUDIT_SHARE: f64 = 0.03;
/// Santa: share of participants registered as nice children.
const NICE_SHARE: f64 = 0.2;
/// Santa: share of reads that ask for the gift's status instead.
const STATUS_SHARE: f64 = 0.5;
/// Share of feasible exchanges with stragglers.
const STRAGGLER_SHARE: f64 = 0.8;
/// Budget bands (cents): neighbours overlap, the first and the last do not.
const BANDS: [(i64, i64); 3] = [(0, 2_000), (1_500, 5_000), (4_000, 10_000)];

/// What an exchange is built to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// Random families and budgets; usually feasible, judged by the checker's own search.
    Random,
    /// Two participants, one excluding the other.
    MutualExclusion,
    /// Someone excludes everyone else.
    ExcludesEveryone,
    /// One participant's budget band meets nobody else's.
    DisjointBudgets,
    /// A single participant.
    Alone,
    /// Two participants and `no_mutual`.
    NoMutualPair,
}

impl Design {
    /// Infeasible by design: matched only once every registration is acknowledged.
    pub fn infeasible(self) -> bool {
        self != Design::Random
    }
}

/// One participant as the workload registers it.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub exclusions: Vec<String>,
    pub budget: Option<(i64, i64)>,
    pub region: Option<i64>,
    pub public_key: String,
    /// Registered with `nice_child: true` (santa only).
    pub nice_child: bool,
    reg: Reg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reg {
    Todo {
        tries: u32,
    },
    InFlight {
        tries: u32,
    },
    Ok,
    /// Gave up after a definite refusal or too many tries.
    Gone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Registering,
    Matching {
        round: u32,
        in_flight: usize,
        sent: usize,
    },
    /// Matched; late additions next.
    Matched,
    Done,
}

#[derive(Debug, Clone)]
struct Exchange {
    id: String,
    design: Design,
    no_mutual: bool,
    people: Vec<Person>,
    late: Vec<Person>,
    /// Registered between the `match`es, racing them.
    stragglers: Vec<Person>,
    /// Match while the last this many registrations may still be in flight.
    eager: usize,
    stage: Stage,
    ever_matched: bool,
    /// A match was refused as infeasible (error 22).
    refused: bool,
    /// The match's `deadline`, this far after the wall clock when it is sent (santa only).
    deadline_ahead_ms: Option<u64>,
}

impl Person {
    fn todo(&self) -> bool {
        matches!(self.reg, Reg::Todo { .. })
    }

    fn in_flight(&self) -> bool {
        matches!(self.reg, Reg::InFlight { .. })
    }

    /// A registration was sent at least once.
    fn sent(&self) -> bool {
        !matches!(self.reg, Reg::Todo { tries: 0 })
    }
}

impl Exchange {
    /// Everyone the workload registers in this exchange.
    fn everyone(&self) -> impl Iterator<Item = &Person> {
        self.people.iter().chain(&self.late).chain(&self.stragglers)
    }

    fn everyone_mut(&mut self) -> impl Iterator<Item = &mut Person> {
        let late = self.late.iter_mut().chain(self.stragglers.iter_mut());
        self.people.iter_mut().chain(late)
    }

    /// A match or a registration in flight: prepared, undecided slices may be about.
    fn hot(&self) -> bool {
        matches!(self.stage, Stage::Matching { in_flight, .. } if in_flight > 0)
            || self.everyone().any(Person::in_flight)
    }

    /// Once every registration is sent: whether matching may start (an infeasible design
    /// that lost a registration ends instead).
    fn registering(&mut self) -> bool {
        let open = self.people.iter().filter(|p| p.in_flight()).count();
        let gone = self.people.iter().any(|p| p.reg == Reg::Gone);
        if self.design.infeasible() && gone {
            self.stage = Stage::Done;
            return false;
        }
        open <= self.eager
    }

    /// After the match: stragglers sent again, then late additions one at a time.
    fn after_match(&mut self) -> Option<GenOp> {
        if let Some(p) = self.stragglers.iter_mut().find(|p| p.todo()) {
            return Some(register_op(&self.id, p, false));
        }
        if self.late.iter().any(Person::in_flight) {
            return None;
        }
        match self.late.iter_mut().find(|p| p.todo()) {
            Some(p) => Some(register_op(&self.id, p, true)),
            None => {
                self.stage = Stage::Done;
                None
            }
        }
    }
}

#[derive(Debug)]
pub struct SecretSanta {
    register: Schema,
    match_: Schema,
    read: Schema,
    audit: Schema,
    unsupported: Schema,
    regions: i64,
    exchanges: Vec<Exchange>,
    /// Secret keys by (exchange, participant).
    keys: HashMap<(String, String), [u8; 32]>,
    /// Final reads and audits still to send; tries per final read.
    final_queue: Option<VecDeque<GenOp>>,
    final_tries: HashMap<(&'static str, String, String), u32>,
    /// (exchange, participant, epoch) whose box was already tried with every other key:
    /// once per epoch is enough to catch a box sealed to the wrong key, at n openings each.
    tried_others: Mutex<HashSet<(String, String, i64)>>,
    /// The santa workload's additions, when this is its client side.
    santa: Option<Production>,
}

/// What the santa workload adds to the clients: `nice_child` registrations, `match`
/// deadlines, `gift_status` reads, and reads of every participant after each commit (so
/// that every committed epoch's gifts are known, the ones a splice replaces included).
#[derive(Debug)]
struct Production {
    gift_status: Schema,
    /// Unix ms at history time zero, and the latest history time asked at.
    wall_origin_ms: u64,
    now_ms: u64,
    /// Reads to send before anything else.
    follow_ups: VecDeque<GenOp>,
}

impl Default for SecretSanta {
    fn default() -> Self {
        Self::new()
    }
}

/// `--regions R` among the node's arguments, else 3 (or the node count when fewer).
pub fn regions_of(node_args: &[String], nodes: usize) -> i64 {
    let given = node_args
        .iter()
        .position(|a| a == "--regions")
        .and_then(|i| node_args.get(i + 1))
        .and_then(|r| r.parse::<i64>().ok())
        .filter(|r| *r > 0);
    given.unwrap_or_else(|| 3.min(nodes.max(1) as i64))
}

impl SecretSanta {
    pub fn new() -> Self {
        let strs = || FieldType::ListOf(Box::new(FieldType::Str));
        let events = FieldType::ListOf(Box::new(FieldType::MapOf(Box::new(FieldType::Any))));
        SecretSanta {
            register: Schema::reply("register_ok", &[("epoch", FieldType::Int)]),
            match_: Schema::reply(
                "match_ok",
                &[("epoch", FieldType::Int), ("participants", strs())],
            ),
            read: Schema::reply(
                "get_assignment_ok",
                &[
                    ("epoch", FieldType::Int),
                    ("gift_id", FieldType::Int),
                    ("sealed", FieldType::Str),
                ],
            ),
            audit: Schema::reply("audit_ok", &[("events", events)]),
            unsupported: Schema::reply("unsupported", &[]),
            regions: 3,
            exchanges: Vec::new(),
            keys: HashMap::new(),
            final_queue: None,
            final_tries: HashMap::new(),
            tried_others: Mutex::new(HashSet::new()),
            santa: None,
        }
    }

    /// The client side of the santa workload; deadlines are set from `wall_origin_ms`,
    /// the wall clock (unix ms) at history time zero.
    pub(crate) fn for_santa(wall_origin_ms: u64) -> Self {
        let mut w = SecretSanta::new();
        w.santa = Some(Production {
            gift_status: Schema::reply(
                "gift_status_ok",
                &[
                    ("epoch", FieldType::Int),
                    ("gift_id", FieldType::Int),
                    ("sealed", FieldType::Str),
                ],
            ),
            wall_origin_ms,
            now_ms: 0,
            follow_ups: VecDeque::new(),
        });
        w
    }

    /// The wall clock now (unix ms), for deadlines.
    fn wall_ms(&self) -> u64 {
        self.santa
            .as_ref()
            .map_or(0, |s| s.wall_origin_ms + s.now_ms)
    }

    /// Santa: reads of everyone registered in `exchange`, sent next, after a commit.
    fn follow(&mut self, exchange: &str) {
        let Some(x) = self.exchanges.iter().find(|x| x.id == exchange) else {
            return;
        };
        let reads: Vec<GenOp> = x
            .everyone()
            .filter(|p| p.sent())
            .map(|p| read_op(&x.id, &p.id))
            .collect();
        if let Some(s) = self.santa.as_mut() {
            for r in reads {
                if !s.follow_ups.contains(&r) {
                    s.follow_ups.push_back(r);
                }
            }
        }
    }

    /// Plans the next exchange and makes its participants' keys.
    fn open_exchange(&mut self, rng: &mut StdRng) {
        let id = format!("x{}", self.exchanges.len());
        let (design, no_mutual, specs, late) = plan(rng, self.regions);
        let santa = self.santa.is_some();
        let deadline_ahead_ms = santa.then(|| deadline_ahead(rng)).flatten();
        let mut person = |spec: Spec, rng: &mut StdRng| {
            let secret = SecretKey::generate(rng);
            let public_key = STANDARD.encode(secret.public_key().as_bytes());
            self.keys
                .insert((id.clone(), spec.id.clone()), secret.to_bytes());
            Person {
                id: spec.id,
                exclusions: spec.exclusions,
                budget: spec.budget,
                region: spec.region,
                public_key,
                nice_child: santa && rng.gen_bool(NICE_SHARE),
                reg: Reg::Todo { tries: 0 },
            }
        };
        let stragglers = stragglers(rng, design, self.regions);
        let people: Vec<Person> = specs.into_iter().map(|s| person(s, rng)).collect();
        let late: Vec<Person> = late.into_iter().map(|s| person(s, rng)).collect();
        let stragglers: Vec<Person> = stragglers.into_iter().map(|s| person(s, rng)).collect();
        let eager = if design.infeasible() || !rng.gen_bool(0.3) {
            0
        } else {
            rng.gen_range(1..=2).min(people.len().saturating_sub(2))
        };
        self.exchanges.push(Exchange {
            id,
            design,
            no_mutual,
            people,
            late,
            stragglers,
            eager,
            stage: Stage::Registering,
            ever_matched: false,
            refused: false,
            deadline_ahead_ms,
        });
    }

    /// The next step of exchange `i`, if it has one now.
    fn step(&mut self, i: usize) -> Option<GenOp> {
        let wall = self.wall_ms() as i64;
        let x = &mut self.exchanges[i];
        match x.stage {
            Stage::Registering => {
                if let Some(p) = x.people.iter_mut().find(|p| p.todo()) {
                    return Some(register_op(&x.id, p, false));
                }
                if !x.registering() {
                    return None;
                }
                x.stage = Stage::Matching {
                    round: 0,
                    in_flight: 0,
                    sent: 0,
                };
                self.step(i)
            }
            Stage::Matching {
                round,
                in_flight,
                sent,
            } => {
                // Stragglers go between the matches (one after each), racing them.
                let raced = x.stragglers.iter().filter(|p| p.sent()).count();
                if raced < sent || sent >= CONCURRENT_MATCHES {
                    if let Some(p) = x.stragglers.iter_mut().find(|p| p.todo()) {
                        return Some(register_op(&x.id, p, false));
                    }
                }
                (sent < CONCURRENT_MATCHES).then(|| {
                    x.stage = Stage::Matching {
                        round,
                        in_flight: in_flight + 1,
                        sent: sent + 1,
                    };
                    let deadline = x.deadline_ahead_ms.map(|ahead| (wall + ahead as i64, wall));
                    match_op(&x.id, x.no_mutual, deadline)
                })
            }
            Stage::Matched => x.after_match(),
            Stage::Done => None,
        }
    }

    /// A read of a random registered participant, or an audit, of a random exchange.
    fn observe(&self, rng: &mut StdRng, audit: bool) -> Option<GenOp> {
        let started: Vec<&Exchange> = self
            .exchanges
            .iter()
            .filter(|x| x.ever_matched || rng.gen_bool(0.1))
            .collect();
        let x = started.choose(rng)?;
        if audit {
            return Some(audit_op(&x.id));
        }
        let read = read_someone(x, rng)?;
        Some(match self.santa.is_some() && rng.gen_bool(STATUS_SHARE) {
            true => gift_status_op(&x.id, text(&read.value, "participant")?.as_str()),
            false => read,
        })
    }

    /// A read of a random participant of an exchange with a match or a registration in
    /// flight.
    fn observe_hot(&self, rng: &mut StdRng) -> Option<GenOp> {
        let hot: Vec<&Exchange> = self.exchanges.iter().filter(|x| x.hot()).collect();
        read_someone(hot.choose(rng)?, rng)
    }

    fn find_mut(&mut self, exchange: &str) -> Option<&mut Exchange> {
        self.exchanges.iter_mut().find(|x| x.id == exchange)
    }

    fn registered(&mut self, op: &GenOp, done: &Op) {
        let (Some(x), Some(p)) = (text(&op.value, "exchange"), text(&op.value, "participant"))
        else {
            return;
        };
        let Some(ex) = self.find_mut(&x) else { return };
        let Some(person) = ex.everyone_mut().find(|q| q.id == p) else {
            return;
        };
        let tries = match person.reg {
            Reg::InFlight { tries } => tries + 1,
            _ => return,
        };
        let committed = done.value.get("epoch").and_then(Edn::as_i64) >= Some(1);
        if done.op_type == OpType::Ok && committed {
            self.follow(&x);
        }
        let Some(person) = self
            .find_mut(&x)
            .and_then(|ex| ex.everyone_mut().find(|q| q.id == p))
        else {
            return;
        };
        person.reg = match done.op_type {
            OpType::Ok => Reg::Ok,
            // A definite refusal other than "unavailable" will not change on a retry.
            OpType::Fail if !error_is(done, "temporarily-unavailable") => Reg::Gone,
            _ if tries >= TRIES => Reg::Gone,
            _ => Reg::Todo { tries },
        };
    }

    /// Every match of a round is sent, whatever the first answer, so that the same match
    /// comes from several clients; the round decides once all have answered.
    fn matched(&mut self, op: &GenOp, done: &Op) {
        let Some(x) = text(&op.value, "exchange") else {
            return;
        };
        if done.op_type == OpType::Ok {
            self.follow(&x);
        }
        let Some(ex) = self.find_mut(&x) else { return };
        ex.ever_matched |= done.op_type == OpType::Ok;
        ex.refused |= done.op_type == OpType::Fail && error_is(done, "precondition-failed");
        let Stage::Matching {
            round,
            in_flight,
            sent,
        } = ex.stage
        else {
            return;
        };
        let in_flight = in_flight.saturating_sub(1);
        ex.stage = if in_flight > 0 || sent < CONCURRENT_MATCHES {
            Stage::Matching {
                round,
                in_flight,
                sent,
            }
        } else if ex.ever_matched {
            Stage::Matched
        } else if ex.refused || round + 1 >= TRIES {
            Stage::Done
        } else {
            Stage::Matching {
                round: round + 1,
                in_flight: 0,
                sent: 0,
            }
        };
    }

    /// The main phase: sometimes a read or an audit, else the next step of an exchange in
    /// progress, else a new exchange, else a read.
    fn next_main(&mut self, rng: &mut StdRng) -> Next {
        // A match in flight takes milliseconds: its next match or straggler cannot wait.
        for i in 0..self.exchanges.len() {
            if matches!(self.exchanges[i].stage, Stage::Matching { in_flight, .. } if in_flight > 0)
            {
                if let Some(op) = self.step(i) {
                    return Next::Op(op);
                }
            }
        }
        // Santa: the reads after a commit, before the next change.
        if let Some(op) = self.santa.as_mut().and_then(|s| s.follow_ups.pop_front()) {
            return Next::Op(op);
        }
        if rng.gen_bool(AUDIT_SHARE) {
            if let Some(op) = self.observe(rng, true) {
                return Next::Op(op);
            }
        }
        if rng.gen_bool(HOT_READ_SHARE) {
            if let Some(op) = self.observe_hot(rng) {
                return Next::Op(op);
            }
        }
        if rng.gen_bool(READ_SHARE) {
            if let Some(op) = self.observe(rng, false) {
                return Next::Op(op);
            }
        }
        let active: Vec<usize> = (0..self.exchanges.len())
            .filter(|&i| self.exchanges[i].stage != Stage::Done)
            .collect();
        for &i in &active {
            if let Some(op) = self.step(i) {
                return Next::Op(op);
            }
        }
        if active.len() < ACTIVE && self.exchanges.len() < MAX_EXCHANGES {
            self.open_exchange(rng);
            if let Some(op) = self.step(self.exchanges.len() - 1) {
                return Next::Op(op);
            }
        }
        match self.observe(rng, false) {
            Some(op) => Next::Op(op),
            None => Next::Wait(50),
        }
    }

    /// Whether the final phase began and still has reads to send.
    pub(crate) fn final_work_left(&self) -> Option<bool> {
        self.final_queue.as_ref().map(|q| !q.is_empty())
    }

    /// The final phase: the queue of [`SecretSanta::final_work`], shared by every worker.
    fn next_final(&mut self) -> Next {
        if self.final_queue.is_none() {
            self.final_queue = Some(self.final_work());
        }
        match self.final_queue.as_mut().and_then(VecDeque::pop_front) {
            Some(op) => Next::Op(op),
            None => Next::Done,
        }
    }

    /// The final phase's work: every participant read, then every audit.
    fn final_work(&self) -> VecDeque<GenOp> {
        let mut q = VecDeque::new();
        for x in &self.exchanges {
            for p in x.everyone().filter(|p| p.sent()) {
                q.push_back(final_op(read_op(&x.id, &p.id)));
                if self.santa.is_some() {
                    q.push_back(final_op(gift_status_op(&x.id, &p.id)));
                }
            }
        }
        for x in &self.exchanges {
            q.push_back(final_op(audit_op(&x.id)));
        }
        q
    }

    /// Opens a sealed box with the reader's key, and (once per participant and epoch)
    /// tries every other participant's key.
    fn open_box(&self, exchange: &str, reader: &str, sealed: &str, epoch: i64) -> (Edn, Vec<Edn>) {
        let Ok(bytes) = STANDARD.decode(sealed) else {
            return (
                Edn::Str("sealed is not standard padded base64".into()),
                vec![],
            );
        };
        let opened = |key: &[u8; 32]| SecretKey::from_bytes(*key).unseal(&bytes).ok();
        let first = self
            .tried_others
            .lock()
            .map(|mut t| t.insert((exchange.to_string(), reader.to_string(), epoch)))
            .unwrap_or(true);
        let mut others: Vec<Edn> = self
            .keys
            .iter()
            .filter(|((x, p), _)| first && x == exchange && p != reader)
            .filter(|(_, k)| opened(k).is_some())
            .map(|((_, p), _)| Edn::Str(p.clone()))
            .collect();
        others.sort_by_key(Edn::to_compact);
        let own = match self.unseal(exchange, reader, &bytes) {
            Ok(v) => envelope(&v),
            Err(why) => Edn::Str(why.into()),
        };
        (own, others)
    }

    /// The JSON object a sealed box holds, opened with the reader's key.
    fn unseal(&self, exchange: &str, reader: &str, bytes: &[u8]) -> Result<Value, &'static str> {
        let key = self
            .keys
            .get(&(exchange.to_string(), reader.to_string()))
            .ok_or("no key for this participant")?;
        let plain = SecretKey::from_bytes(*key)
            .unseal(bytes)
            .map_err(|_| "does not open with the giver's key")?;
        match serde_json::from_slice::<Value>(&plain) {
            Ok(v) if v.is_object() => Ok(v),
            _ => Err("plaintext is not a JSON object"),
        }
    }

    /// Santa: a `gift_status` box's `{gift_id, stage}` as EDN, or why it cannot be read.
    fn open_status(&self, exchange: &str, reader: &str, sealed: &str) -> Result<Edn, &'static str> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| "sealed is not standard padded base64")?;
        let v = self.unseal(exchange, reader, &bytes)?;
        let f = |k: &str| v.get(k).map_or(Edn::Nil, |x| Edn::from_json(x, false));
        Ok(Edn::map([("gift-id", f("gift_id")), ("stage", f("stage"))]))
    }
}

/// The plaintext's fields as EDN; a missing field is nil.
fn envelope(v: &Value) -> Edn {
    let f = |k: &str| v.get(k).map_or(Edn::Nil, |x| Edn::from_json(x, false));
    Edn::map([
        ("exchange", f("exchange")),
        ("giver", f("giver")),
        ("receiver", f("receiver")),
        ("epoch", f("epoch")),
        ("gift-id", f("gift_id")),
    ])
}

/// A read of a random participant whose registration was sent.
fn read_someone(x: &Exchange, rng: &mut StdRng) -> Option<GenOp> {
    let sent: Vec<&Person> = x.everyone().filter(|p| p.sent()).collect();
    let p = sent.choose(rng)?;
    Some(read_op(&x.id, &p.id))
}

fn final_op(mut op: GenOp) -> GenOp {
    op.final_read = true;
    op
}

fn text(v: &Edn, key: &str) -> Option<String> {
    v.get(key).and_then(Edn::as_str).map(str::to_string)
}

fn error_is(done: &Op, name: &str) -> bool {
    match &done.error {
        Some(Edn::Vector(v)) => v.first() == Some(&Edn::kw(name)),
        _ => false,
    }
}

fn register_op(exchange: &str, p: &mut Person, late: bool) -> GenOp {
    if let Reg::Todo { tries } = p.reg {
        p.reg = Reg::InFlight { tries };
    }
    let mut v = Edn::map([
        ("exchange", Edn::Str(exchange.into())),
        ("participant", Edn::Str(p.id.clone())),
        ("public-key", Edn::Str(p.public_key.clone())),
        (
            "exclusions",
            Edn::Vector(p.exclusions.iter().cloned().map(Edn::Str).collect()),
        ),
    ]);
    if let Some((min, max)) = p.budget {
        v.insert(
            "budget",
            Edn::map([("min", Edn::Int(min)), ("max", Edn::Int(max))]),
        );
    }
    if let Some(r) = p.region {
        v.insert("region", Edn::Int(r));
    }
    if p.nice_child {
        v.insert("nice-child", Edn::Bool(true));
    }
    v.insert("late?", Edn::Bool(late));
    GenOp::new("register", v)
}

/// A `match`; `deadline` is (the deadline, the wall clock when it was made), unix ms.
fn match_op(exchange: &str, no_mutual: bool, deadline: Option<(i64, i64)>) -> GenOp {
    let mut v = Edn::map([
        ("exchange", Edn::Str(exchange.into())),
        ("no-mutual", Edn::Bool(no_mutual)),
    ]);
    if let Some((deadline, made)) = deadline {
        v.insert("deadline", Edn::Int(deadline));
        v.insert("deadline-made", Edn::Int(made));
    }
    GenOp::new("match", v)
}

/// Santa: how far ahead of the wall clock an exchange's deadline lies, if it has one:
/// never between 12 and 48 hours, so that whether it is within 24 hours of the commit is
/// beyond doubt.
fn deadline_ahead(rng: &mut StdRng) -> Option<u64> {
    const HOUR_MS: u64 = 3_600_000;
    match rng.gen_range(0..10) {
        0..=3 => None,
        4..=6 => Some(rng.gen_range(HOUR_MS..=12 * HOUR_MS)),
        _ => Some(rng.gen_range(48 * HOUR_MS..=7 * 24 * HOUR_MS)),
    }
}

fn gift_status_op(exchange: &str, participant: &str) -> GenOp {
    let mut op = read_op(exchange, participant);
    op.f = "gift-status";
    op
}

fn read_op(exchange: &str, participant: &str) -> GenOp {
    GenOp::new(
        "read",
        Edn::map([
            ("exchange", Edn::Str(exchange.into())),
            ("participant", Edn::Str(participant.into())),
        ]),
    )
}

fn audit_op(exchange: &str) -> GenOp {
    GenOp::new("audit", Edn::map([("exchange", Edn::Str(exchange.into()))]))
}

/// A participant before its key is made.
#[derive(Debug, Clone)]
struct Spec {
    id: String,
    exclusions: Vec<String>,
    budget: Option<(i64, i64)>,
    region: Option<i64>,
}

/// An exchange's design, `no_mutual`, participants and late additions.
fn plan(rng: &mut StdRng, regions: i64) -> (Design, bool, Vec<Spec>, Vec<Spec>) {
    let region = |rng: &mut StdRng| rng.gen_bool(0.8).then(|| rng.gen_range(0..regions));
    let spec = |i: usize, rng: &mut StdRng| Spec {
        id: format!("p{i}"),
        exclusions: Vec::new(),
        budget: None,
        region: region(rng),
    };
    let design = match rng.gen_range(0..100) {
        0..=71 => Design::Random,
        72..=77 => Design::MutualExclusion,
        78..=83 => Design::ExcludesEveryone,
        84..=89 => Design::DisjointBudgets,
        90..=94 => Design::Alone,
        _ => Design::NoMutualPair,
    };
    let n = match design {
        Design::Random => match rng.gen_range(0..100) {
            0..=49 => rng.gen_range(2..=8),
            50..=84 => rng.gen_range(9..=20),
            _ => rng.gen_range(21..=40),
        },
        Design::MutualExclusion | Design::NoMutualPair => 2,
        Design::ExcludesEveryone | Design::DisjointBudgets => rng.gen_range(3..=6),
        Design::Alone => 1,
    };
    let mut people: Vec<Spec> = (0..n).map(|i| spec(i, rng)).collect();
    let mut no_mutual = design == Design::NoMutualPair;
    match design {
        Design::Random => {
            no_mutual = n >= 3 && rng.gen_bool(0.3);
            families(&mut people, rng);
            for p in &mut people {
                p.budget = rng
                    .gen_bool(0.7)
                    .then(|| BANDS[rng.gen_range(0..BANDS.len())]);
            }
        }
        Design::MutualExclusion => people[1].exclusions.push("p0".into()),
        Design::ExcludesEveryone => {
            let who = rng.gen_range(0..n);
            people[who].exclusions = (0..n)
                .filter(|&j| j != who)
                .map(|j| format!("p{j}"))
                .collect();
        }
        Design::DisjointBudgets => {
            let who = rng.gen_range(0..n);
            for (j, p) in people.iter_mut().enumerate() {
                p.budget = Some(if j == who { (0, 10) } else { (100, 200) });
            }
        }
        Design::Alone | Design::NoMutualPair => {}
    }
    let late_count = match design {
        Design::Random if rng.gen_bool(0.4) => rng.gen_range(1..=3),
        _ => 0,
    };
    let late = (n..n + late_count)
        .map(|i| {
            let mut s = spec(i, rng);
            if rng.gen_bool(0.3) {
                s.exclusions.push(format!("p{}", rng.gen_range(0..n)));
            }
            s
        })
        .collect();
    (design, no_mutual, people, late)
}

/// Participants of a feasible exchange registered while its match is in flight: no
/// exclusions and any budget, so that they can never make it infeasible, spread over the
/// regions.
fn stragglers(rng: &mut StdRng, design: Design, regions: i64) -> Vec<Spec> {
    if design.infeasible() || !rng.gen_bool(STRAGGLER_SHARE) {
        return Vec::new();
    }
    (0..rng.gen_range(1..=3))
        .map(|i| Spec {
            id: format!("s{i}"),
            exclusions: Vec::new(),
            budget: None,
            region: Some(rng.gen_range(0..regions)),
        })
        .collect()
}

/// Families of one to three neighbours (at most a third of the exchange) exclude each
/// other; sometimes only one side names the other, since exclusions are two-way anyway.
fn families(people: &mut [Spec], rng: &mut StdRng) {
    let n = people.len();
    let largest = (n / 3).clamp(1, 3);
    let mut start = 0;
    while start < n {
        let size = rng.gen_range(1..=largest).min(n - start);
        for a in start..start + size {
            for b in start..start + size {
                if a != b && rng.gen_bool(0.7) {
                    let other = people[b].id.clone();
                    people[a].exclusions.push(other);
                }
            }
        }
        start += size;
    }
    // An exclusion of someone who never registers is allowed and must change nothing.
    if rng.gen_bool(0.2) {
        people[0].exclusions.push("nobody".into());
    }
}

impl Workload for SecretSanta {
    fn name(&self) -> &'static str {
        "secret-santa"
    }

    fn client(&self) -> ClientRules {
        ClientRules {
            // Reads and audits change nothing; registrations and matches may have taken
            // effect when their answer is lost, and the checker must know it.
            idempotent: &["read", "audit", "gift-status"],
            reusable: true,
            latency_factor: 20,
            min_timeout_ms: 2_000,
            ..ClientRules::default()
        }
    }

    fn begin(&mut self, cluster: &Cluster) {
        self.regions = regions_of(&cluster.node_args, cluster.nodes.len());
    }

    fn next(&mut self, ask: Ask, rng: &mut StdRng) -> Next {
        if let Some(s) = self.santa.as_mut() {
            s.now_ms = ask.now_ms;
        }
        match ask.phase {
            Phase::Main => self.next_main(rng),
            Phase::Final => self.next_final(),
        }
    }

    fn has_final_phase(&self) -> bool {
        true
    }

    fn completed(&mut self, _worker: usize, op: &GenOp, done: &Op) {
        match op.f {
            "register" => self.registered(op, done),
            "match" => self.matched(op, done),
            "read" | "gift-status" if op.final_read && done.op_type != OpType::Ok => {
                // Retry a final read unless the answer was definite ("not matched").
                if error_is(done, "key-does-not-exist") {
                    return;
                }
                let (Some(x), Some(p)) =
                    (text(&op.value, "exchange"), text(&op.value, "participant"))
                else {
                    return;
                };
                let tries = self.final_tries.entry((op.f, x, p)).or_insert(1);
                if *tries < FINAL_TRIES {
                    *tries += 1;
                    if let Some(q) = self.final_queue.as_mut() {
                        q.push_front(op.clone());
                    }
                }
            }
            _ => {}
        }
    }

    fn request(&self, op: &GenOp) -> Request<'_> {
        let v = |key: &str| op.value.get(key).cloned().unwrap_or(Edn::Nil).to_json();
        let exchange = ("exchange", v("exchange"));
        let (kind, fields, reply) = match op.f {
            "register" => {
                let mut fields = vec![
                    exchange,
                    ("participant", v("participant")),
                    ("public_key", v("public-key")),
                    ("exclusions", v("exclusions")),
                ];
                for key in ["budget", "region"] {
                    if op.value.get(key).is_some() {
                        fields.push((key, v(key)));
                    }
                }
                if op.value.get("nice-child").is_some() {
                    fields.push(("nice_child", v("nice-child")));
                }
                ("register", fields, &self.register)
            }
            "match" => {
                let mut fields = vec![exchange, ("no_mutual", v("no-mutual"))];
                if op.value.get("deadline").is_some() {
                    fields.push(("deadline", v("deadline")));
                }
                ("match", fields, &self.match_)
            }
            "gift-status" => match &self.santa {
                Some(s) => (
                    "gift_status",
                    vec![exchange, ("participant", v("participant"))],
                    &s.gift_status,
                ),
                None => ("gift_status", Vec::new(), &self.unsupported),
            },
            "read" => (
                "get_assignment",
                vec![exchange, ("participant", v("participant"))],
                &self.read,
            ),
            "audit" => ("audit", vec![exchange], &self.audit),
            other => (other, Vec::new(), &self.unsupported),
        };
        Request {
            body: body(kind, &fields),
            reply,
        }
    }

    fn ok_value(&self, op: &GenOp, reply: &Map<String, Value>) -> Edn {
        let field = |k: &str| reply.get(k).map_or(Edn::Nil, |x| Edn::from_json(x, false));
        let mut v = op.value.clone();
        match op.f {
            "register" => v.insert("epoch", field("epoch")),
            "match" => {
                v.insert("epoch", field("epoch"));
                v.insert("participants", field("participants"));
            }
            "read" => {
                v.insert("epoch", field("epoch"));
                v.insert("gift-id", field("gift_id"));
                let x = text(&op.value, "exchange").unwrap_or_default();
                let p = text(&op.value, "participant").unwrap_or_default();
                let sealed = reply.get("sealed").and_then(Value::as_str).unwrap_or("");
                let epoch = reply.get("epoch").and_then(Value::as_i64).unwrap_or(-1);
                let (own, others) = self.open_box(&x, &p, sealed, epoch);
                match own {
                    Edn::Str(why) => v.insert("box-error", Edn::Str(why)),
                    plain => v.insert("box", plain),
                }
                v.insert("opens-with", Edn::Vector(others));
            }
            "gift-status" => {
                v.insert("epoch", field("epoch"));
                v.insert("gift-id", field("gift_id"));
                let x = text(&op.value, "exchange").unwrap_or_default();
                let p = text(&op.value, "participant").unwrap_or_default();
                let sealed = reply.get("sealed").and_then(Value::as_str).unwrap_or("");
                match self.open_status(&x, &p, sealed) {
                    Ok(status) => v.insert("status", status),
                    Err(why) => v.insert("box-error", Edn::Str(why.into())),
                }
            }
            "audit" => {
                let events = reply.get("events").and_then(Value::as_array);
                let mut extra: Vec<String> = Vec::new();
                let list = events.into_iter().flatten().filter_map(Value::as_object);
                let list = list
                    .map(|e| {
                        for k in e.keys() {
                            if !EVENT_KEYS.contains(&k.as_str()) && !extra.contains(k) {
                                extra.push(k.clone());
                            }
                        }
                        Edn::map(EVENT_KEYS.iter().map(|k| {
                            (*k, e.get(*k).map_or(Edn::Nil, |x| Edn::from_json(x, false)))
                        }))
                    })
                    .collect();
                v.insert("events", Edn::Vector(list));
                if !extra.is_empty() {
                    v.insert(
                        "extra-keys",
                        Edn::Vector(extra.into_iter().map(Edn::Str).collect()),
                    );
                }
            }
            _ => {}
        }
        v
    }

    fn check(&self, history: &History, _facts: &RunFacts) -> Edn {
        crate::checker::secret_santa::check(history)
    }
}

/// The fields of an audit event (§2).
pub const EVENT_KEYS: [&str; 5] = ["id", "txn", "kind", "event", "epoch"];

#[cfg(test)]
mod tests;
