//! What the reads say about each committed epoch: atomicity, validity, agreement,
//! durability and splices.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Model, Read, Span};
use super::Property;
use crate::edn::Edn;

/// One giver's gift in one epoch, from the first read whose box opened.
#[derive(Debug, Clone)]
struct Gift<'a> {
    receiver: &'a str,
    gift_id: Edn,
    read: &'a Read,
}

/// Per (exchange, epoch), per giver, the gift read.
type Views<'a> = BTreeMap<(&'a str, i64), BTreeMap<&'a str, Gift<'a>>>;

fn views(model: &Model) -> Views<'_> {
    let mut out: Views = BTreeMap::new();
    for r in model.reads.iter().filter(|r| r.span.ok()) {
        let (Some(e), Some(receiver)) = (r.epoch, r.receiver()) else {
            continue;
        };
        out.entry((r.exchange.as_str(), e))
            .or_default()
            .entry(r.participant.as_str())
            .or_insert(Gift {
                receiver,
                gift_id: r.gift_id.clone().unwrap_or(Edn::Nil),
                read: r,
            });
    }
    out
}

/// Who is surely in epoch `e` of exchange `x`: givers and receivers read there, those a
/// `match_ok` of it listed, and late additions acknowledged with it.
fn members<'a>(model: &'a Model, views: &Views<'a>, x: &str, e: i64) -> BTreeSet<&'a str> {
    let mut out = BTreeSet::new();
    if let Some(v) = views.get(&(x, e)) {
        for (g, gift) in v {
            out.insert(*g);
            out.insert(gift.receiver);
        }
    }
    for m in model.matches.iter().filter(|m| m.span.ok()) {
        if m.exchange == x && m.epoch == Some(e) {
            out.extend(m.participants.iter().flatten().map(String::as_str));
        }
    }
    for r in model.registrations.iter().filter(|r| r.span.ok()) {
        if r.exchange == x && r.epoch == Some(e) && e >= 1 {
            out.insert(r.participant.as_str());
        }
    }
    out
}

/// [`members`] of every (exchange, epoch) the history mentions, computed once.
type Members<'a> = BTreeMap<(&'a str, i64), BTreeSet<&'a str>>;

fn member_sets<'a>(model: &'a Model, views: &Views<'a>) -> Members<'a> {
    let mut keys: BTreeSet<(&str, i64)> = views.keys().copied().collect();
    keys.extend(model.acks().iter().map(|(_, x, e)| (*x, *e)));
    keys.into_iter()
        .map(|(x, e)| ((x, e), members(model, views, x, e)))
        .collect()
}

fn is_member(sets: &Members, x: &str, e: i64, p: &str) -> bool {
    sets.get(&(x, e)).is_some_and(|m| m.contains(p))
}

/// Whether the gifts read of one epoch are all of it: everyone in it (`exactly`, when
/// known) was read giving. Gifts whose receivers all give as well are not enough: an
/// assignment may be several cycles, and a few whole ones look closed on their own.
fn all_read(v: &BTreeMap<&str, Gift>, exactly: Option<&BTreeSet<&str>>) -> bool {
    exactly.is_some_and(|m| v.keys().copied().eq(m.iter().copied()))
}

/// Everyone in epoch `e`, when the history says exactly: a `match_ok` of it lists them,
/// or epoch `e - 1` is known and a late addition was acknowledged with `e`.
fn exact_members<'a>(model: &'a Model, x: &str, e: i64) -> Option<BTreeSet<&'a str>> {
    let listed = model
        .matches
        .iter()
        .find(|m| m.span.ok() && m.exchange == x && m.epoch == Some(e));
    if let Some(p) = listed.and_then(|m| m.participants.as_ref()) {
        return Some(p.iter().map(String::as_str).collect());
    }
    if e <= 1 {
        return None;
    }
    // Epoch e's late addition: a registration answered with epoch e by someone not in
    // epoch e - 1. A repeated registration is answered with the current epoch, so one
    // answered e by a participant already in e - 1 says nothing about who joined.
    let mut members = exact_members(model, x, e - 1)?;
    let late = model.registrations.iter().find(|r| {
        r.span.ok()
            && r.exchange == x
            && r.epoch == Some(e)
            && !members.contains(r.participant.as_str())
    })?;
    members.insert(late.participant.as_str());
    Some(members)
}

fn example(kind: &str, x: &str, e: i64, p: &str, span: &Span) -> Edn {
    Edn::map([
        ("problem", Edn::kw(kind)),
        ("exchange", Edn::Str(x.into())),
        ("epoch", Edn::Int(e)),
        ("participant", Edn::Str(p.into())),
        ("op", span.example()),
    ])
}

/// After healing, a participant of an epoch acknowledged before the read finds no
/// assignment while the exchange is readable for others.
pub fn atomicity(model: &Model) -> Property {
    let mut prop = Property::new("atomicity", &["partial"]);
    let sets = member_sets(model, &views(model));
    let acks = model.acks();
    let mut flagged = BTreeSet::new();
    let readable: BTreeSet<&str> = model
        .reads
        .iter()
        .filter(|r| r.span.final_read && r.span.ok())
        .map(|r| r.exchange.as_str())
        .collect();
    for r in model
        .reads
        .iter()
        .filter(|r| r.span.final_read && r.span.not_found())
    {
        let x = r.exchange.as_str();
        if !readable.contains(x) || flagged.contains(x) {
            continue;
        }
        let proof = acks.iter().find(|(a, ax, e)| {
            *ax == x && a.before(&r.span) && is_member(&sets, x, *e, &r.participant)
        });
        if let Some((_, _, e)) = proof {
            flagged.insert(x);
            prop.flag(
                "partial",
                example("unreadable", x, *e, &r.participant, &r.span),
            );
        }
    }
    prop
}

/// Checks one epoch's gifts against the constraints and against each other.
fn validate_epoch(
    model: &Model,
    x: &str,
    e: i64,
    gifts: &BTreeMap<&str, Gift>,
    prop: &mut Property,
) {
    let mut receivers: BTreeMap<&str, &str> = BTreeMap::new();
    let mut ids: BTreeMap<String, &str> = BTreeMap::new();
    let no_mutual = model.no_mutual(x);
    for (g, gift) in gifts {
        let span = &gift.read.span;
        let r = gift.receiver;
        if r == *g {
            prop.flag("self-gifts", example("self-gift", x, e, g, span));
        }
        match (model.registration(x, g), model.registration(x, r)) {
            (Some(a), Some(b)) => {
                let excluded =
                    a.exclusions.iter().any(|p| p == r) || b.exclusions.iter().any(|p| p == g);
                let apart = match (a.budget, b.budget) {
                    (Some((amin, amax)), Some((bmin, bmax))) => amin > bmax || bmin > amax,
                    _ => false,
                };
                if excluded || apart {
                    prop.flag("constraint-breaks", example("constraint", x, e, g, span));
                }
            }
            _ => prop.flag(
                "unknown-receivers",
                example("unknown-receiver", x, e, g, span),
            ),
        }
        if let Some(other) = receivers.insert(r, g) {
            prop.flag(
                "duplicate-receivers",
                example(&format!("also-from-{other}"), x, e, g, span),
            );
        }
        if no_mutual && gifts.get(r).is_some_and(|back| back.receiver == *g) && *g < r {
            prop.flag("mutual-pairs", example("mutual", x, e, g, span));
        }
        match gift.gift_id.as_i64() {
            Some(id) if id > 0 => {
                if ids.insert(id.to_string(), g).is_some() {
                    prop.flag("bad-gift-ids", example("repeated-gift-id", x, e, g, span));
                }
            }
            _ => prop.flag("bad-gift-ids", example("invalid-gift-id", x, e, g, span)),
        }
        for m in model
            .matches
            .iter()
            .filter(|m| m.span.ok() && m.exchange == x && m.epoch == Some(e))
        {
            let listed = m.participants.iter().flatten();
            if !listed.clone().any(|p| p == g) || !listed.clone().any(|p| p == r) {
                prop.flag("outsiders", example("not-listed", x, e, g, span));
                break;
            }
        }
    }
}

/// Each epoch's opened assignments form one permutation of its listed participants and keep
/// every constraint; registrations acknowledged before a match are in it; acknowledged late
/// additions are in the final epoch.
pub fn validity(model: &Model) -> Property {
    let mut prop = Property::new(
        "validity",
        &[
            "self-gifts",
            "unknown-receivers",
            "constraint-breaks",
            "duplicate-receivers",
            "mutual-pairs",
            "bad-gift-ids",
            "outsiders",
            "missing-registrations",
            "late-missing",
        ],
    );
    for ((x, e), gifts) in &views(model) {
        validate_epoch(model, x, *e, gifts, &mut prop);
    }
    for m in model.matches.iter().filter(|m| m.span.ok()) {
        let listed = m.participants.iter().flatten().collect::<Vec<_>>();
        for r in model.registrations.iter() {
            if r.span.ok()
                && r.exchange == m.exchange
                && r.span.before(&m.span)
                && !listed.contains(&&r.participant)
            {
                let e = m.epoch.unwrap_or(0);
                prop.flag(
                    "missing-registrations",
                    example("left-out", &m.exchange, e, &r.participant, &m.span),
                );
            }
        }
    }
    for reg in model
        .registrations
        .iter()
        .filter(|r| r.span.ok() && r.epoch.unwrap_or(0) >= 1)
    {
        let lost = model.reads.iter().find(|r| {
            r.span.final_read
                && r.span.not_found()
                && r.exchange == reg.exchange
                && r.participant == reg.participant
                && reg.span.before(&r.span)
        });
        if let Some(r) = lost {
            prop.flag(
                "late-missing",
                example(
                    "late-unreadable",
                    &r.exchange,
                    reg.epoch.unwrap_or(0),
                    &r.participant,
                    &r.span,
                ),
            );
        }
    }
    prop
}

/// One receiver and gift ID per participant and epoch; one participant list per epoch; no
/// read older than an epoch acknowledged, or already read, before it was invoked.
pub fn agreement(model: &Model) -> Property {
    let mut prop = Property::new(
        "agreement",
        &[
            "disagreements",
            "lists-differ",
            "backwards",
            "older-than-seen",
        ],
    );
    let mut seen: BTreeMap<(&str, &str, i64), (&str, &Edn)> = BTreeMap::new();
    for r in model.reads.iter().filter(|r| r.span.ok()) {
        let (Some(e), Some(recv), Some(id)) = (r.epoch, r.receiver(), r.gift_id.as_ref()) else {
            continue;
        };
        let first = seen
            .entry((&r.exchange, &r.participant, e))
            .or_insert((recv, id));
        if *first != (recv, id) {
            prop.flag(
                "disagreements",
                example("disagree", &r.exchange, e, &r.participant, &r.span),
            );
        }
    }
    let mut lists: BTreeMap<(&str, i64), Vec<&String>> = BTreeMap::new();
    for m in model.matches.iter().filter(|m| m.span.ok()) {
        let (Some(e), Some(p)) = (m.epoch, m.participants.as_ref()) else {
            continue;
        };
        let mut sorted: Vec<&String> = p.iter().collect();
        sorted.sort();
        let first = lists
            .entry((&m.exchange, e))
            .or_insert_with(|| sorted.clone());
        if *first != sorted {
            prop.flag(
                "lists-differ",
                example("lists-differ", &m.exchange, e, "", &m.span),
            );
        }
    }
    backwards(model, &mut prop);
    prop
}

/// Reads older than an epoch acknowledged (`backwards`) or read (`older-than-seen`) before
/// they were invoked: a participant with no assignment counts as epoch 0 when the newer
/// epoch surely included it.
fn backwards(model: &Model, prop: &mut Property) {
    let sets = member_sets(model, &views(model));
    let acks = model.acks();
    for r in &model.reads {
        let got = match (r.span.ok(), r.epoch) {
            (true, Some(e)) => e,
            _ if r.span.not_found() => 0,
            _ => continue,
        };
        let newer = |by_read: bool| {
            acks.iter()
                .filter(|(a, x, e)| {
                    *x == r.exchange
                        && *e > got
                        && a.before(&r.span)
                        && a.op.as_ref().is_some_and(|o| o.f == "read") == by_read
                        && (got > 0 || is_member(&sets, x, *e, &r.participant))
                })
                .map(|(_, _, e)| *e)
                .max()
        };
        for (kind, by_read) in [("backwards", false), ("older-than-seen", true)] {
            if let Some(e) = newer(by_read) {
                let why = format!("read-{got}-after-{e}");
                prop.flag(
                    kind,
                    example(&why, &r.exchange, got, &r.participant, &r.span),
                );
            }
        }
    }
}

/// Every epoch acknowledged by `match_ok` or a late `register_ok` is still readable, for
/// the participants it acknowledged, after healing.
pub fn durability(model: &Model) -> Property {
    let mut prop = Property::new("durability", &["lost"]);
    let mut acked: Vec<(&Span, &str, i64, Vec<&str>)> = Vec::new();
    for m in model.matches.iter().filter(|m| m.span.ok()) {
        if let Some(e) = m.epoch {
            let who = m
                .participants
                .iter()
                .flatten()
                .map(String::as_str)
                .collect();
            acked.push((&m.span, &m.exchange, e, who));
        }
    }
    for r in model.registrations.iter().filter(|r| r.span.ok()) {
        if let Some(e) = r.epoch.filter(|e| *e >= 1) {
            acked.push((&r.span, &r.exchange, e, vec![r.participant.as_str()]));
        }
    }
    let mut flagged = BTreeSet::new();
    for (span, x, e, who) in acked {
        let lost = model.reads.iter().find(|r| {
            r.span.final_read
                && r.exchange == x
                && who.contains(&r.participant.as_str())
                && span.before(&r.span)
                && (r.span.not_found() || (r.span.ok() && r.epoch.is_some_and(|got| got < e)))
        });
        if let Some(r) = lost {
            if flagged.insert((x, e)) {
                prop.flag(
                    "lost",
                    example("acknowledged-epoch-unread", x, e, &r.participant, &r.span),
                );
            }
        }
    }
    prop
}

/// Checks that epoch `e + 1` is epoch `e` with one splice.
/// `surely` are participants surely in epoch `e`; `exactly` all of them, and all of epoch
/// `e + 1`, when known.
fn splice_step(
    x: &str,
    e: i64,
    (before, after): (&BTreeMap<&str, Gift>, &BTreeMap<&str, Gift>),
    (surely, exactly): (&BTreeSet<&str>, [Option<&BTreeSet<&str>>; 2]),
    prop: &mut Property,
) {
    let [exactly, exactly_after] = exactly;
    let mut bad =
        |why: &str, g: &str, span: &Span| prop.flag("bad-splices", example(why, x, e + 1, g, span));
    let changed: Vec<(&str, &Gift, &Gift)> = after
        .iter()
        .filter_map(|(g, b)| before.get(g).map(|a| (*g, a, b)))
        .filter(|(_, a, b)| a.receiver != b.receiver || a.gift_id != b.gift_id)
        .collect();
    let new: Vec<&str> = match exactly {
        Some(old) => after.keys().copied().filter(|g| !old.contains(g)).collect(),
        None => Vec::new(),
    };
    if changed.len() > 1 {
        bad(
            "more-than-one-gift-changed",
            changed[1].0,
            &changed[1].2.read.span,
        );
    }
    if new.len() > 1 {
        bad("more-than-one-new-giver", new[1], &after[new[1]].read.span);
    }
    for (g, a, b) in &changed {
        if a.receiver == b.receiver {
            bad("gift-id-changed-on-kept-edge", g, &b.read.span);
        } else if surely.contains(b.receiver) {
            bad("receiver-changed-to-an-old-participant", g, &b.read.span);
        } else if a.gift_id == b.gift_id {
            bad("new-edge-kept-old-gift-id", g, &b.read.span);
        } else if let Some(l) = after.get(b.receiver) {
            if l.receiver != a.receiver || l.gift_id == a.gift_id || l.gift_id == b.gift_id {
                bad(
                    "new-giver-does-not-take-the-old-receiver",
                    b.receiver,
                    &l.read.span,
                );
            }
        }
    }
    if all_read(before, exactly)
        && all_read(after, exactly_after)
        && (changed.len() != 1 || after.len() != before.len() + 1)
    {
        if let Some((g, gift)) = after.iter().next() {
            bad("not-exactly-one-splice", g, &gift.read.span);
        }
    }
}

/// Epoch e+1 differs from epoch e by exactly one splice, every other gift unchanged.
pub fn splices(model: &Model) -> Property {
    let mut prop = Property::new("splices", &["bad-splices"]);
    let v = views(model);
    for ((x, e), before) in &v {
        if let Some(after) = v.get(&(*x, e + 1)) {
            let surely = members(model, &v, x, *e);
            let exactly = exact_members(model, x, *e);
            let exactly_after = exact_members(model, x, e + 1);
            splice_step(
                x,
                *e,
                (before, after),
                (&surely, [exactly.as_ref(), exactly_after.as_ref()]),
                &mut prop,
            );
        }
    }
    prop
}
