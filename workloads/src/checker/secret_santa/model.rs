//! The history read once into what the rules need: every registration, match, read and
//! audit with its invocation and completion positions.

use std::collections::BTreeSet;

use crate::edn::Edn;
use crate::history::{History, Op, OpType};

/// The completion position of an op still open when the history ended: after everything.
pub const OPEN: usize = usize::MAX;

/// What every operation has: where it was invoked and completed, and how.
#[derive(Debug, Clone)]
pub struct Span {
    pub invoke: usize,
    pub complete: usize,
    pub outcome: OpType,
    /// The error's name (`:key-does-not-exist` → `key-does-not-exist`), if any.
    pub error: Option<String>,
    pub process: u64,
    pub time_ns: (u64, u64),
    pub final_read: bool,
    /// The completion, for examples.
    pub op: Option<Op>,
}

impl Span {
    /// Surely before `other`: completed before it was invoked.
    pub fn before(&self, other: &Span) -> bool {
        self.complete < other.invoke
    }

    pub fn ok(&self) -> bool {
        self.outcome == OpType::Ok
    }

    /// A definite "no such thing" (error 20): the exchange is unknown, not matched, or the
    /// participant is not in the matching.
    pub fn not_found(&self) -> bool {
        self.outcome == OpType::Fail && self.error.as_deref() == Some("key-does-not-exist")
    }

    pub fn example(&self) -> Edn {
        self.op.as_ref().map_or(Edn::Nil, crate::checker::op_edn)
    }
}

#[derive(Debug, Clone)]
pub struct Registration {
    pub span: Span,
    pub exchange: String,
    pub participant: String,
    pub exclusions: Vec<String>,
    pub budget: Option<(i64, i64)>,
    pub epoch: Option<i64>,
    /// Registered with `nice_child: true`.
    pub nice_child: bool,
}

#[derive(Debug, Clone)]
pub struct Match {
    pub span: Span,
    pub exchange: String,
    pub no_mutual: bool,
    pub epoch: Option<i64>,
    /// The `deadline` sent (unix ms) and the wall clock (unix ms) when it was made.
    pub deadline: Option<(i64, i64)>,
    pub participants: Option<Vec<String>>,
}

/// What an opened sealed box said.
#[derive(Debug, Clone, PartialEq)]
pub struct Plain {
    pub exchange: Edn,
    pub giver: Edn,
    pub receiver: Edn,
    pub epoch: Edn,
    pub gift_id: Edn,
}

#[derive(Debug, Clone)]
pub struct Read {
    pub span: Span,
    pub exchange: String,
    pub participant: String,
    pub epoch: Option<i64>,
    pub gift_id: Option<Edn>,
    pub plain: Option<Plain>,
    pub box_error: Option<String>,
    pub opens_with: Vec<String>,
}

impl Read {
    /// The receiver the box names, when it opened to a string.
    pub fn receiver(&self) -> Option<&str> {
        self.plain.as_ref().and_then(|p| p.receiver.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: Edn,
    pub txn: Edn,
    pub kind: Edn,
    pub event: Edn,
    pub epoch: Edn,
}

#[derive(Debug, Clone)]
pub struct Audit {
    pub span: Span,
    pub exchange: String,
    pub events: Vec<Event>,
    pub extra_keys: Vec<String>,
}

/// A reply that broke its schema, with the keys it should not have had.
#[derive(Debug, Clone)]
pub struct Malformed {
    pub span: Span,
    pub f: String,
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Model {
    pub registrations: Vec<Registration>,
    pub matches: Vec<Match>,
    pub reads: Vec<Read>,
    pub audits: Vec<Audit>,
    pub malformed: Vec<Malformed>,
}

fn text(v: &Edn, key: &str) -> String {
    v.get(key).and_then(Edn::as_str).unwrap_or("").to_string()
}

fn strings(v: Option<&Edn>) -> Vec<String> {
    v.and_then(Edn::elements)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

fn error_name(done: &Op) -> Option<String> {
    match &done.error {
        Some(Edn::Vector(v)) => match v.first() {
            Some(Edn::Keyword(k)) => Some(k.clone()),
            _ => None,
        },
        Some(Edn::Keyword(k)) => Some(k.clone()),
        _ => None,
    }
}

/// The keys a malformed reply carried that its schema does not allow.
fn disallowed(done: &Op) -> Vec<String> {
    let body = done
        .extra("exception")
        .and_then(|e| e.get("data"))
        .filter(|d| d.get("type") == Some(&Edn::kw("malformed-rpc-response")))
        .and_then(|d| d.get("body"));
    let Some(Edn::Map(entries)) = body else {
        return Vec::new();
    };
    let kind = body.and_then(|b| b.get("type")).and_then(Edn::as_str);
    let allowed: &[&str] = match kind {
        Some("register_ok") => &["epoch"],
        Some("match_ok") => &["epoch", "participants"],
        Some("get_assignment_ok") => &["epoch", "gift_id", "sealed"],
        Some("audit_ok") => &["events"],
        _ => return Vec::new(),
    };
    entries
        .iter()
        .filter_map(|(k, _)| match k {
            Edn::Keyword(k) => Some(k.as_str()),
            _ => None,
        })
        .filter(|k| !["type", "msg_id", "in_reply_to"].contains(k) && !allowed.contains(k))
        .map(str::to_string)
        .collect()
}

impl Model {
    /// Reads every client call through the harness's one pairing ([`History::calls`]);
    /// positions, not `:index`, order them.
    pub fn of(history: &History) -> Model {
        let mut m = Model::default();
        for call in history.calls().into_iter().filter(|c| !c.is_orphan()) {
            let (invoke, done) = (call.invoke, call.complete);
            let crate::history::Process::Worker(process) = invoke.process else {
                continue;
            };
            let span = Span {
                invoke: call.invoke_pos,
                complete: call.complete_pos.unwrap_or(OPEN),
                outcome: done.map_or(OpType::Info, |d| d.op_type),
                error: done.and_then(error_name),
                process,
                time_ns: (invoke.time_ns, done.map_or(u64::MAX, |d| d.time_ns)),
                final_read: invoke.final_read,
                op: done.cloned(),
            };
            let value = match done {
                Some(d) if d.op_type == OpType::Ok => &d.value,
                _ => &invoke.value,
            };
            if let Some(d) = done {
                let keys = disallowed(d);
                if !keys.is_empty() {
                    m.malformed.push(Malformed {
                        span: span.clone(),
                        f: invoke.f.clone(),
                        keys,
                    });
                }
            }
            m.add(&invoke.f, span, value);
        }
        m
    }

    fn add(&mut self, f: &str, span: Span, v: &Edn) {
        let exchange = text(v, "exchange");
        let epoch = v.get("epoch").and_then(Edn::as_i64);
        match f {
            "register" => {
                let budget = v
                    .get("budget")
                    .and_then(|b| Some((b.get("min")?.as_i64()?, b.get("max")?.as_i64()?)));
                self.registrations.push(Registration {
                    span,
                    exchange,
                    participant: text(v, "participant"),
                    exclusions: strings(v.get("exclusions")),
                    budget,
                    epoch,
                    nice_child: v.get("nice-child") == Some(&Edn::Bool(true)),
                });
            }
            "match" => self.matches.push(Match {
                span,
                exchange,
                no_mutual: v.get("no-mutual") == Some(&Edn::Bool(true)),
                epoch,
                deadline: v
                    .get("deadline")
                    .and_then(Edn::as_i64)
                    .zip(v.get("deadline-made").and_then(Edn::as_i64)),
                participants: v.get("participants").map(|p| strings(Some(p))),
            }),
            "read" => {
                let plain = v.get("box").map(|b| Plain {
                    exchange: b.get("exchange").cloned().unwrap_or(Edn::Nil),
                    giver: b.get("giver").cloned().unwrap_or(Edn::Nil),
                    receiver: b.get("receiver").cloned().unwrap_or(Edn::Nil),
                    epoch: b.get("epoch").cloned().unwrap_or(Edn::Nil),
                    gift_id: b.get("gift-id").cloned().unwrap_or(Edn::Nil),
                });
                self.reads.push(Read {
                    span,
                    exchange,
                    participant: text(v, "participant"),
                    epoch,
                    gift_id: v.get("gift-id").cloned(),
                    plain,
                    box_error: v.get("box-error").and_then(Edn::as_str).map(str::to_string),
                    opens_with: strings(v.get("opens-with")),
                });
            }
            "audit" => {
                let field = |e: &Edn, k: &str| e.get(k).cloned().unwrap_or(Edn::Nil);
                let events = v
                    .get("events")
                    .and_then(Edn::elements)
                    .unwrap_or_default()
                    .iter()
                    .map(|e| Event {
                        id: field(e, "id"),
                        txn: field(e, "txn"),
                        kind: field(e, "kind"),
                        event: field(e, "event"),
                        epoch: field(e, "epoch"),
                    })
                    .collect();
                self.audits.push(Audit {
                    span,
                    exchange,
                    events,
                    extra_keys: strings(v.get("extra-keys")),
                });
            }
            _ => {}
        }
    }

    /// Every exchange named by an operation, sorted.
    pub fn exchanges(&self) -> BTreeSet<&str> {
        let r = self.registrations.iter().map(|r| r.exchange.as_str());
        let m = self.matches.iter().map(|m| m.exchange.as_str());
        r.chain(m).collect()
    }

    /// The fields a participant registered with (its last registration invoked).
    pub fn registration(&self, exchange: &str, participant: &str) -> Option<&Registration> {
        self.registrations
            .iter()
            .rev()
            .find(|r| r.exchange == exchange && r.participant == participant)
    }

    /// Whether every `match` of the exchange asked for `no_mutual`.
    pub fn no_mutual(&self, exchange: &str) -> bool {
        let mut of = self.matches.iter().filter(|m| m.exchange == exchange);
        of.clone().next().is_some() && of.all(|m| m.no_mutual)
    }

    /// Acknowledgements of a committed epoch: `match_ok`, a late `register_ok` (epoch ≥ 1)
    /// and ok reads, as (span, exchange, epoch).
    pub fn acks(&self) -> Vec<(&Span, &str, i64)> {
        let mut out = Vec::new();
        for m in self.matches.iter().filter(|m| m.span.ok()) {
            if let Some(e) = m.epoch {
                out.push((&m.span, m.exchange.as_str(), e));
            }
        }
        for r in self.registrations.iter().filter(|r| r.span.ok()) {
            if let Some(e) = r.epoch.filter(|e| *e >= 1) {
                out.push((&r.span, r.exchange.as_str(), e));
            }
        }
        for r in self.reads.iter().filter(|r| r.span.ok()) {
            if let Some(e) = r.epoch {
                out.push((&r.span, r.exchange.as_str(), e));
            }
        }
        out
    }
}
