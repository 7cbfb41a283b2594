//! Every rule proven able to fail on a hand-written history, and silent on a correct one.

use std::collections::BTreeMap;

use super::{judge, Model};
use crate::edn::Edn;
use crate::history::{History, Op, OpType, Process};

/// A history written op by op; each op completes before the next is invoked unless
/// [`H::invoke`] and [`H::complete`] are used apart.
#[derive(Default)]
struct H {
    h: History,
    t: u64,
}

fn s(x: &str) -> Edn {
    Edn::Str(x.into())
}

fn strs(xs: &[&str]) -> Edn {
    Edn::Vector(xs.iter().map(|x| s(x)).collect())
}

impl H {
    fn push(&mut self, p: u64, t: OpType, f: &str, v: Edn, error: Option<Edn>, fin: bool) {
        self.t += 1_000_000;
        let mut op = Op::new(self.t, t, Process::Worker(p), f, v);
        op.error = error;
        op.final_read = fin;
        self.h.push(op);
    }

    fn invoke(&mut self, p: u64, f: &str, v: Edn) {
        self.push(p, OpType::Invoke, f, v, None, false);
    }

    fn complete(&mut self, p: u64, t: OpType, f: &str, v: Edn, error: Option<Edn>) {
        self.push(p, t, f, v, error, false);
    }

    fn reg_value(x: &str, who: &str, excl: &[&str], budget: Option<(i64, i64)>) -> Edn {
        let mut v = Edn::map([
            ("exchange", s(x)),
            ("participant", s(who)),
            ("exclusions", strs(excl)),
        ]);
        if let Some((min, max)) = budget {
            v.insert(
                "budget",
                Edn::map([("min", Edn::Int(min)), ("max", Edn::Int(max))]),
            );
        }
        v
    }

    fn reg_full(
        &mut self,
        x: &str,
        who: &str,
        excl: &[&str],
        budget: Option<(i64, i64)>,
        epoch: i64,
    ) {
        let v = Self::reg_value(x, who, excl, budget);
        self.invoke(0, "register", v.clone());
        let mut done = v;
        done.insert("epoch", Edn::Int(epoch));
        self.complete(0, OpType::Ok, "register", done, None);
    }

    fn reg(&mut self, x: &str, who: &str, epoch: i64) {
        self.reg_full(x, who, &[], None, epoch);
    }

    fn matched(&mut self, x: &str, no_mutual: bool, epoch: i64, who: &[&str]) {
        let v = Edn::map([("exchange", s(x)), ("no-mutual", Edn::Bool(no_mutual))]);
        self.invoke(1, "match", v.clone());
        let mut done = v;
        done.insert("epoch", Edn::Int(epoch));
        done.insert("participants", strs(who));
        self.complete(1, OpType::Ok, "match", done, None);
    }

    fn refused(&mut self, x: &str, no_mutual: bool) {
        let v = Edn::map([("exchange", s(x)), ("no-mutual", Edn::Bool(no_mutual))]);
        self.invoke(1, "match", v.clone());
        let err = Edn::Vector(vec![Edn::kw("precondition-failed"), s("nobody fits")]);
        self.complete(1, OpType::Fail, "match", v, Some(err));
    }

    fn read_value(x: &str, g: &str, r: &str, epoch: i64, gift: i64) -> Edn {
        Edn::map([
            ("exchange", s(x)),
            ("participant", s(g)),
            ("epoch", Edn::Int(epoch)),
            ("gift-id", Edn::Int(gift)),
            (
                "box",
                Edn::map([
                    ("exchange", s(x)),
                    ("giver", s(g)),
                    ("receiver", s(r)),
                    ("epoch", Edn::Int(epoch)),
                    ("gift-id", Edn::Int(gift)),
                ]),
            ),
            ("opens-with", strs(&[])),
        ])
    }

    fn read_as(&mut self, v: Edn, fin: bool) {
        let inv = Edn::map([
            ("exchange", v.get("exchange").cloned().unwrap()),
            ("participant", v.get("participant").cloned().unwrap()),
        ]);
        self.push(2, OpType::Invoke, "read", inv, None, fin);
        self.push(2, OpType::Ok, "read", v, None, fin);
    }

    fn read(&mut self, x: &str, g: &str, r: &str, epoch: i64, gift: i64, fin: bool) {
        self.read_as(Self::read_value(x, g, r, epoch, gift), fin);
    }

    fn unread(&mut self, x: &str, g: &str, fin: bool) {
        let v = Edn::map([("exchange", s(x)), ("participant", s(g))]);
        self.push(2, OpType::Invoke, "read", v.clone(), None, fin);
        let err = Edn::Vector(vec![Edn::kw("key-does-not-exist"), s("not matched")]);
        self.push(2, OpType::Fail, "read", v, Some(err), fin);
    }

    fn audit(&mut self, x: &str, events: &[(i64, i64, &str, &str, i64)], fin: bool) {
        let v = Edn::map([("exchange", s(x))]);
        self.push(3, OpType::Invoke, "audit", v.clone(), None, fin);
        let list = events
            .iter()
            .map(|(id, txn, kind, event, epoch)| {
                Edn::map([
                    ("id", Edn::Int(*id)),
                    ("txn", Edn::Int(*txn)),
                    ("kind", s(kind)),
                    ("event", s(event)),
                    ("epoch", Edn::Int(*epoch)),
                ])
            })
            .collect();
        let mut done = v;
        done.insert("events", Edn::Vector(list));
        self.push(3, OpType::Ok, "audit", done, None, fin);
    }

    /// Nonzero problem counts, as "property/kind".
    fn problems(&self) -> BTreeMap<String, usize> {
        let model = Model::of(&self.h);
        let mut out = BTreeMap::new();
        for p in judge(&model) {
            for (kind, count, _) in &p.kinds {
                if *count > 0 {
                    out.insert(format!("{}/{kind}", p.name), *count);
                }
            }
        }
        out
    }

    fn assert_only(&self, expected: &[&str]) {
        let got = self.problems();
        let kinds: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(kinds, expected, "{got:?}");
    }
}

const MATCH_EVENTS: [(i64, i64, &str, &str, i64); 2] = [
    (101, 100, "match", "prepared", 1),
    (102, 100, "match", "committed", 1),
];
const ALL_EVENTS: [(i64, i64, &str, &str, i64); 4] = [
    (101, 100, "match", "prepared", 1),
    (102, 100, "match", "committed", 1),
    (104, 103, "splice", "prepared", 2),
    (105, 103, "splice", "committed", 2),
];

/// Three participants matched in a ring, p3 spliced in between p0 and p1, everything read
/// and audited after healing.
fn correct() -> H {
    correct_but(12)
}

/// [`correct`], with p1's unchanged gift under gift ID `kept` in epoch 2.
fn correct_but(kept: i64) -> H {
    let mut h = H::default();
    for p in ["p0", "p1", "p2"] {
        h.reg("a", p, 0);
    }
    h.matched("a", true, 1, &["p0", "p1", "p2"]);
    h.read("a", "p0", "p1", 1, 11, false);
    h.read("a", "p1", "p2", 1, 12, false);
    h.read("a", "p2", "p0", 1, 13, false);
    h.audit("a", &MATCH_EVENTS, false);
    h.reg("a", "p3", 2);
    h.read("a", "p0", "p3", 2, 14, true);
    h.read("a", "p3", "p1", 2, 15, true);
    h.read("a", "p1", "p2", 2, kept, true);
    h.read("a", "p2", "p0", 2, 13, true);
    h.audit("a", &ALL_EVENTS, true);
    h
}

#[test]
fn a_correct_history_has_no_problem() {
    correct().assert_only(&[]);
    let result = super::check(&correct().h);
    assert_eq!(
        result.get("valid?"),
        Some(&Edn::Bool(true)),
        "{}",
        result.to_pretty()
    );
}

#[test]
fn an_exchange_unreadable_for_some_after_healing_is_partial() {
    let mut h = correct();
    h.unread("a", "p2", true);
    let got = h.problems();
    assert!(got.contains_key("atomicity/partial"), "{got:?}");
    assert!(got.contains_key("durability/lost"), "{got:?}");
}

#[test]
fn an_exchange_unreadable_for_all_is_not_partial_but_lost() {
    let mut h = H::default();
    h.reg("a", "p0", 0);
    h.reg("a", "p1", 0);
    h.matched("a", false, 1, &["p0", "p1"]);
    h.unread("a", "p0", true);
    h.unread("a", "p1", true);
    h.assert_only(&["agreement/backwards", "durability/lost"]);
}

#[test]
fn unreadable_before_anything_was_acknowledged_proves_nothing() {
    let mut h = H::default();
    h.reg("a", "p0", 0);
    h.reg("a", "p1", 0);
    h.unread("a", "p0", true);
    h.read("a", "p1", "p0", 1, 11, true);
    h.read("a", "p0", "p1", 1, 12, true);
    h.assert_only(&[]);
}

#[test]
fn validity_catches_each_broken_constraint() {
    // A self-gift and an unregistered receiver.
    let mut h = H::default();
    h.reg("a", "p0", 0);
    h.reg("a", "p1", 0);
    h.read("a", "p0", "p0", 1, 11, false);
    h.read("a", "p1", "zed", 1, 12, false);
    let got = h.problems();
    assert!(
        got.contains_key("validity/self-gifts") && got.contains_key("validity/unknown-receivers"),
        "{got:?}"
    );

    // Exclusions either way, and budgets apart.
    let mut h = H::default();
    h.reg_full("a", "p0", &[], Some((0, 10)), 0);
    h.reg_full("a", "p1", &["p2"], None, 0);
    h.reg_full("a", "p2", &[], Some((100, 200)), 0);
    h.read("a", "p0", "p2", 1, 11, false);
    h.read("a", "p2", "p1", 1, 12, false);
    h.read("a", "p1", "p0", 1, 13, false);
    assert_eq!(h.problems().get("validity/constraint-breaks"), Some(&2));

    // Two givers to one receiver, a repeated and an invalid gift ID.
    let mut h = H::default();
    for p in ["p0", "p1", "p2"] {
        h.reg("a", p, 0);
    }
    h.read("a", "p0", "p1", 1, 11, false);
    h.read("a", "p2", "p1", 1, 11, false);
    h.read("a", "p1", "p0", 1, -5, false);
    let got = h.problems();
    assert_eq!(got.get("validity/duplicate-receivers"), Some(&1), "{got:?}");
    assert_eq!(got.get("validity/bad-gift-ids"), Some(&2), "{got:?}");
}

#[test]
fn mutual_pairs_count_only_where_no_mutual_was_asked() {
    let build = |no_mutual| {
        let mut h = H::default();
        for p in ["p0", "p1", "p2", "p3"] {
            h.reg("a", p, 0);
        }
        h.matched("a", no_mutual, 1, &["p0", "p1", "p2", "p3"]);
        h.read("a", "p0", "p1", 1, 11, true);
        h.read("a", "p1", "p0", 1, 12, true);
        h.read("a", "p2", "p3", 1, 13, true);
        h.read("a", "p3", "p2", 1, 14, true);
        h
    };
    build(false).assert_only(&[]);
    assert_eq!(
        build(true).problems().get("validity/mutual-pairs"),
        Some(&2)
    );
}

#[test]
fn a_match_must_list_who_registered_before_it_and_only_who_is_in_it() {
    let mut h = H::default();
    for p in ["p0", "p1", "p2"] {
        h.reg("a", p, 0);
    }
    h.matched("a", false, 1, &["p0", "p1"]);
    h.read("a", "p0", "p1", 1, 11, false);
    h.read("a", "p1", "p2", 1, 12, false);
    let got = h.problems();
    assert_eq!(
        got.get("validity/missing-registrations"),
        Some(&1),
        "{got:?}"
    );
    assert_eq!(got.get("validity/outsiders"), Some(&1), "{got:?}");
}

#[test]
fn an_acknowledged_late_addition_must_be_in_the_final_epoch() {
    let mut h = correct();
    h.reg("a", "p4", 3);
    h.unread("a", "p4", true);
    let got = h.problems();
    assert!(got.contains_key("validity/late-missing"), "{got:?}");
    assert!(got.contains_key("durability/lost"), "{got:?}");
}

#[test]
fn agreement_catches_two_answers_two_lists_and_a_step_back() {
    let mut h = correct();
    h.read("a", "p0", "p2", 2, 14, false);
    assert_eq!(h.problems().get("agreement/disagreements"), Some(&1));

    let mut h = H::default();
    h.reg("a", "p0", 0);
    h.reg("a", "p1", 0);
    let v = Edn::map([("exchange", s("a")), ("no-mutual", Edn::Bool(false))]);
    h.invoke(4, "match", v.clone());
    h.matched("a", false, 1, &["p1", "p0"]);
    let mut done = v;
    done.insert("epoch", Edn::Int(1));
    done.insert("participants", strs(&["p0", "p1", "p2"]));
    h.complete(4, OpType::Ok, "match", done, None);
    h.assert_only(&["agreement/lists-differ"]);

    let mut h = correct();
    h.read("a", "p1", "p2", 1, 12, false);
    let got = h.problems();
    assert_eq!(got.get("agreement/backwards"), Some(&1), "{got:?}");
    assert_eq!(got.get("audit/stale-after-audit"), Some(&1), "{got:?}");
}

#[test]
fn an_indeterminate_read_proves_nothing() {
    let mut h = correct();
    let v = Edn::map([("exchange", s("a")), ("participant", s("p1"))]);
    h.invoke(2, "read", v.clone());
    h.complete(2, OpType::Info, "read", v, Some(Edn::kw("net-timeout")));
    h.assert_only(&[]);
}

#[test]
fn a_splice_changes_one_gift_into_two_and_nothing_else() {
    // p1's gift ID changes although its edge stays.
    correct_but(99).assert_only(&["splices/bad-splices"]);

    // The newcomer takes someone other than the old receiver of the spliced gift.
    let mut h = H::default();
    for p in ["p0", "p1", "p2"] {
        h.reg("a", p, 0);
    }
    h.matched("a", false, 1, &["p0", "p1", "p2"]);
    h.read("a", "p0", "p1", 1, 11, false);
    h.read("a", "p1", "p2", 1, 12, false);
    h.read("a", "p2", "p0", 1, 13, false);
    h.reg("a", "p3", 2);
    h.read("a", "p0", "p3", 2, 14, true);
    h.read("a", "p3", "p2", 2, 15, true);
    let got = h.problems();
    assert_eq!(got.get("splices/bad-splices"), Some(&1), "{got:?}");

    // Two gifts rewired between epochs (a fresh draw, not a splice).
    let mut h = H::default();
    for p in ["p0", "p1", "p2", "p3"] {
        h.reg("a", p, 0);
    }
    h.matched("a", false, 1, &["p0", "p1", "p2", "p3"]);
    h.read("a", "p0", "p1", 1, 11, false);
    h.read("a", "p1", "p2", 1, 12, false);
    h.read("a", "p2", "p3", 1, 13, false);
    h.read("a", "p3", "p0", 1, 14, false);
    h.reg("a", "p4", 2);
    h.read("a", "p0", "p2", 2, 15, true);
    h.read("a", "p2", "p1", 2, 16, true);
    assert!(h.problems().contains_key("splices/bad-splices"));
}

#[test]
fn whole_cycles_read_in_two_epochs_are_not_the_whole_epochs() {
    // Epoch 1 is two cycles, p0 <-> p1 and p2 <-> p3; p4 is spliced into p2 -> p3. Only
    // p0's cycle was read in epoch 1, and it plus the new cycle in epoch 2: each set of
    // reads looks closed, but neither is all of its epoch.
    let mut h = H::default();
    for p in ["p0", "p1", "p2", "p3"] {
        h.reg("a", p, 0);
    }
    h.matched("a", false, 1, &["p0", "p1", "p2", "p3"]);
    h.read("a", "p0", "p1", 1, 11, false);
    h.read("a", "p1", "p0", 1, 12, false);
    h.reg("a", "p4", 2);
    h.read("a", "p0", "p1", 2, 11, true);
    h.read("a", "p1", "p0", 2, 12, true);
    h.read("a", "p2", "p4", 2, 15, true);
    h.read("a", "p4", "p3", 2, 16, true);
    h.read("a", "p3", "p2", 2, 14, true);
    h.assert_only(&[]);
    // Everyone read in both epochs, and epoch 2 is no splice of epoch 1: p4 joined as a
    // cycle of its own with p3 (only p2's and p3's gifts changed, into p4's old place).
    let mut h = H::default();
    for p in ["p0", "p1", "p2", "p3"] {
        h.reg("a", p, 0);
    }
    h.matched("a", false, 1, &["p0", "p1", "p2", "p3"]);
    for (g, r, id) in [
        ("p0", "p1", 11),
        ("p1", "p0", 12),
        ("p2", "p3", 13),
        ("p3", "p2", 14),
    ] {
        h.read("a", g, r, 1, id, false);
    }
    h.reg("a", "p4", 2);
    for (g, r, id) in [
        ("p0", "p1", 11),
        ("p1", "p0", 12),
        ("p2", "p4", 15),
        ("p4", "p2", 16),
        ("p3", "p3", 17),
    ] {
        h.read("a", g, r, 2, id, true);
    }
    assert!(h.problems().contains_key("splices/bad-splices"));
}

#[test]
fn a_refused_exchange_the_oracle_can_match_is_an_error_where_the_set_is_certain() {
    let mut h = H::default();
    h.reg("a", "p0", 0);
    h.reg("a", "p1", 0);
    h.refused("a", false);
    h.assert_only(&["feasibility/refused-feasible"]);

    // Refusing a pair that excludes itself, or a pair without mutual gifts, is right.
    let mut h = H::default();
    h.reg_full("a", "p0", &["p1"], None, 0);
    h.reg("a", "p1", 0);
    h.refused("a", false);
    h.reg("b", "p0", 0);
    h.reg("b", "p1", 0);
    h.refused("b", true);
    h.assert_only(&[]);

    // A registration still in flight when the match was refused: the set is not certain.
    let mut h = H::default();
    h.reg("a", "p0", 0);
    h.reg("a", "p1", 0);
    let v = H::reg_value("a", "p2", &["p0", "p1"], None);
    h.invoke(0, "register", v.clone());
    h.refused("a", false);
    h.complete(0, OpType::Info, "register", v, Some(Edn::kw("net-timeout")));
    h.assert_only(&[]);
}

#[test]
fn secrecy_catches_wrong_keys_other_keys_false_plaintext_and_extra_fields() {
    let mut h = correct();
    let mut v = H::read_value("a", "p0", "p3", 2, 14);
    v.insert("opens-with", strs(&["p1"]));
    h.read_as(v, false);
    let mut v = H::read_value("a", "p0", "p3", 2, 14);
    if let Some(b) = match &mut v {
        Edn::Map(m) => m
            .iter_mut()
            .find(|(k, _)| *k == Edn::kw("box"))
            .map(|(_, b)| b),
        _ => None,
    } {
        b.insert("giver", s("p2"));
        b.insert("epoch", Edn::Int(1));
    }
    h.read_as(v, false);
    let mut v = H::read_value("a", "p1", "p2", 2, 12);
    v.insert("box-error", s("does not open with the giver's key"));
    if let Edn::Map(m) = &mut v {
        m.retain(|(k, _)| *k != Edn::kw("box"));
    }
    h.read_as(v, false);
    h.assert_only(&[
        "secrecy/opens-for-others",
        "secrecy/plaintext-disagrees",
        "secrecy/unopenable",
    ]);
}

#[test]
fn a_reply_with_a_field_beyond_the_protocol_is_a_leak() {
    let mut h = correct();
    let v = Edn::map([("exchange", s("a")), ("participant", s("p1"))]);
    h.invoke(2, "read", v.clone());
    let body = Edn::map([
        ("type", s("get_assignment_ok")),
        ("epoch", Edn::Int(2)),
        ("gift_id", Edn::Int(12)),
        ("sealed", s("…")),
        ("receiver", s("p2")),
        ("in_reply_to", Edn::Int(4)),
    ]);
    let data = Edn::map([("type", Edn::kw("malformed-rpc-response")), ("body", body)]);
    h.complete(
        2,
        OpType::Info,
        "read",
        v,
        Some(s("indeterminate: Malformed RPC response")),
    );
    let last = h.h.ops.len() - 1;
    h.h.ops[last]
        .extra
        .push(("exception".into(), Edn::map([("data", data)])));
    // An audit event with a participant in it.
    let v = Edn::map([("exchange", s("a"))]);
    h.invoke(3, "audit", v.clone());
    let mut done = v;
    done.insert("events", Edn::Vector(vec![]));
    done.insert("extra-keys", strs(&["giver"]));
    h.complete(3, OpType::Ok, "audit", done, None);
    assert_eq!(h.problems().get("secrecy/extra-fields"), Some(&2));
}

#[test]
fn audit_catches_ids_order_sharing_kinds_outcomes_and_gaps() {
    let check = |events: &[(i64, i64, &str, &str, i64)], expected: &[&str]| {
        let mut h = H::default();
        h.audit("a", events, true);
        h.assert_only(expected);
    };
    check(&[(0, 100, "match", "prepared", 1)], &["audit/bad-ids"]);
    check(
        &[
            (102, 100, "match", "prepared", 1),
            (101, 100, "match", "committed", 1),
        ],
        &["audit/unordered"],
    );
    // Listed by ID but not oldest first: a splice's events stamped below the match's.
    check(
        &[
            (101, 103, "splice", "prepared", 2),
            (102, 103, "splice", "committed", 2),
            (104, 100, "match", "prepared", 1),
            (105, 100, "match", "committed", 1),
        ],
        &["audit/unordered"],
    );
    check(
        &[
            (101, 100, "match", "aborted", 1),
            (102, 100, "match", "prepared", 1),
        ],
        &["audit/unordered"],
    );
    check(&[(101, 100, "match", "ready", 1)], &["audit/bad-events"]);
    check(
        &[
            (101, 100, "match", "committed", 1),
            (102, 100, "match", "aborted", 1),
        ],
        &["audit/conflicting-outcomes"],
    );
    check(
        &[
            (101, 100, "match", "committed", 1),
            (103, 102, "splice", "committed", 3),
        ],
        &["audit/epoch-gaps"],
    );
    let mut h = H::default();
    h.audit("a", &MATCH_EVENTS, true);
    h.audit("b", &MATCH_EVENTS, true);
    h.assert_only(&["audit/shared-ids"]);
}

#[test]
fn an_epoch_read_before_an_audit_must_be_committed_in_it() {
    let mut h = correct();
    h.audit("a", &MATCH_EVENTS, true);
    assert!(h.problems().contains_key("audit/uncommitted-reads"));
}

/// Matched in epoch 1; a splice of p3 is prepared, but a region shows its slice at once:
/// p0 reads epoch 2 before the splice is decided, and the registration fails. Then an
/// audit with `events`.
fn read_ahead(events: &[(i64, i64, &str, &str, i64)]) -> H {
    let mut h = H::default();
    for p in ["p0", "p1", "p2"] {
        h.reg("a", p, 0);
    }
    h.matched("a", false, 1, &["p0", "p1", "p2"]);
    let v = H::reg_value("a", "p3", &[], None);
    h.invoke(0, "register", v.clone());
    h.read("a", "p0", "p3", 2, 14, false);
    let err = Edn::Vector(vec![Edn::kw("temporarily-unavailable"), s("aborted")]);
    h.complete(0, OpType::Fail, "register", v, Some(err));
    h.audit("a", events, true);
    h
}

/// What the first `uncommitted-reads` example says the audit shows of the epoch read.
fn uncommitted_fate(h: &H) -> Option<Edn> {
    let result = super::check(&h.h);
    let examples = result.get("audit")?.get("uncommitted-reads-examples")?;
    let first = examples.elements()?.first()?.clone();
    first.get("detail")?.get("audit-shows").cloned()
}

#[test]
fn a_read_of_a_slice_whose_transaction_aborted_is_an_uncommitted_read() {
    let aborted = [
        MATCH_EVENTS[0],
        MATCH_EVENTS[1],
        (104, 103, "splice", "prepared", 2),
        (105, 103, "splice", "aborted", 2),
    ];
    let h = read_ahead(&aborted);
    h.assert_only(&["audit/uncommitted-reads"]);
    assert_eq!(uncommitted_fate(&h), Some(Edn::kw("aborted")));
    let undecided = read_ahead(&aborted[..3]);
    undecided.assert_only(&["audit/uncommitted-reads"]);
    assert_eq!(uncommitted_fate(&undecided), Some(Edn::kw("undecided")));
    let never = read_ahead(&MATCH_EVENTS);
    never.assert_only(&["audit/uncommitted-reads"]);
    assert_eq!(uncommitted_fate(&never), Some(Edn::kw("never-logged")));
    // Committed after all: the read was not ahead of anything the audit can show.
    let mut committed = aborted;
    committed[3].3 = "committed";
    read_ahead(&committed).assert_only(&[]);
}

#[test]
fn the_report_counts_latencies_aborts_and_retries() {
    let mut h = correct();
    h.reg("a", "p0", 2);
    h.audit(
        "a",
        &[
            (101, 100, "match", "prepared", 1),
            (102, 100, "match", "aborted", 1),
        ],
        true,
    );
    let result = super::check(&h.h);
    let stats = result.get("stats").unwrap();
    assert_eq!(
        stats.get("retries"),
        Some(&Edn::Int(1)),
        "{}",
        stats.to_pretty()
    );
    assert_eq!(stats.get("aborts"), Some(&Edn::Int(1)));
    assert_eq!(
        stats
            .get("all-match-latency-ms")
            .and_then(|m| m.get("count")),
        Some(&Edn::Int(1))
    );
}

#[test]
fn commit_latency_runs_from_the_first_match_to_the_first_match_ok() {
    let mut h = H::default();
    for p in ["p0", "p1"] {
        h.reg("a", p, 0);
    }
    let v = Edn::map([("exchange", s("a")), ("no-mutual", Edn::Bool(false))]);
    let mut ok = v.clone();
    ok.insert("epoch", Edn::Int(1));
    ok.insert("participants", strs(&["p0", "p1"]));
    // Two clients send the same match (invoked at 5 and 6 ms); the second is answered first
    // (at 7 ms), the first at 10 ms; a later repeat is answered from the committed state.
    h.invoke(1, "match", v.clone());
    h.invoke(2, "match", v.clone());
    h.complete(2, OpType::Ok, "match", ok.clone(), None);
    h.audit("a", &MATCH_EVENTS, false);
    h.complete(1, OpType::Ok, "match", ok.clone(), None);
    h.matched("a", false, 1, &["p0", "p1"]);
    // An exchange whose match was refused has no commit.
    h.reg("b", "q0", 0);
    h.refused("b", false);
    let stats = super::check(&h.h).get("stats").cloned().unwrap();
    let commit = stats.get("commit-latency-ms").unwrap();
    assert_eq!(
        commit.get("count"),
        Some(&Edn::Int(1)),
        "{}",
        stats.to_pretty()
    );
    assert_eq!(commit.get("p50"), Some(&Edn::Float(2.0)));
    assert_eq!(commit.get("max"), Some(&Edn::Float(2.0)));
    let all = stats.get("all-match-latency-ms").unwrap();
    assert_eq!(all.get("count"), Some(&Edn::Int(3)));
    assert_eq!(all.get("max"), Some(&Edn::Float(5.0)));
    assert_eq!(stats.get("committed-matches"), Some(&Edn::Int(1)));
    assert_eq!(stats.get("committed-splices"), Some(&Edn::Int(0)));
}

#[test]
fn committed_transactions_come_from_the_audits_or_else_from_match_ok() {
    let mut h = correct();
    // Exchange b was committed (its audit says so) though its match_ok was lost.
    h.reg("b", "q0", 0);
    h.reg("b", "q1", 0);
    let v = Edn::map([("exchange", s("b")), ("no-mutual", Edn::Bool(false))]);
    h.invoke(1, "match", v.clone());
    h.complete(1, OpType::Info, "match", v, Some(Edn::kw("net-timeout")));
    h.audit(
        "b",
        &[
            (201, 200, "match", "prepared", 1),
            (202, 200, "match", "committed", 1),
        ],
        true,
    );
    let stats = super::check(&h.h).get("stats").cloned().unwrap();
    assert_eq!(
        stats.get("committed-matches"),
        Some(&Edn::Int(2)),
        "{}",
        stats.to_pretty()
    );
    assert_eq!(stats.get("committed-splices"), Some(&Edn::Int(1)));
    assert_eq!(
        stats.get("commit-latency-ms").and_then(|c| c.get("count")),
        Some(&Edn::Int(1))
    );
}

#[test]
fn a_read_older_than_one_already_seen_is_flagged_apart_from_acknowledgements() {
    let mut h = H::default();
    for p in ["p0", "p1", "p2"] {
        h.reg("a", p, 0);
    }
    h.matched("a", false, 1, &["p0", "p1", "p2"]);
    h.read("a", "p1", "p2", 1, 12, false);
    // The late addition's reply is lost: only a read shows its epoch.
    let v = H::reg_value("a", "p3", &[], None);
    h.invoke(0, "register", v.clone());
    h.complete(0, OpType::Info, "register", v, Some(Edn::kw("net-timeout")));
    h.read("a", "p0", "p3", 2, 14, false);
    h.read("a", "p1", "p2", 1, 12, false);
    h.assert_only(&["agreement/older-than-seen"]);
}

#[test]
fn a_repeated_registration_answered_with_the_current_epoch_is_no_splice() {
    // p3 joins in epoch 2 and p4 in epoch 3; p3 registers again afterwards and is
    // answered with the current epoch, 3, as the protocol says. Epoch 3 is epoch 2 plus
    // p4, whoever else was answered 3, so epoch 4 adds only p5.
    let mut h = correct();
    h.reg("a", "p3", 3);
    h.reg("a", "p4", 3);
    h.read("a", "p0", "p3", 3, 14, true);
    h.read("a", "p3", "p1", 3, 15, true);
    h.read("a", "p1", "p4", 3, 16, true);
    h.read("a", "p4", "p2", 3, 17, true);
    h.read("a", "p2", "p0", 3, 13, true);
    // Then p5 joins between p4 and p2: epoch 4 is epoch 3 plus p5.
    h.reg("a", "p5", 4);
    h.read("a", "p0", "p3", 4, 14, true);
    h.read("a", "p3", "p1", 4, 15, true);
    h.read("a", "p1", "p4", 4, 16, true);
    h.read("a", "p4", "p5", 4, 18, true);
    h.read("a", "p5", "p2", 4, 19, true);
    h.read("a", "p2", "p0", 4, 13, true);
    h.assert_only(&[]);
}
