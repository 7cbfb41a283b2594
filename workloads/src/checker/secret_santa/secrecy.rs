//! Secrecy, judged from the replies alone: every sealed box opens with its giver's key and
//! with no other participant's; its plaintext agrees with the reply; no reply carries a
//! field beyond the protocol's (a receiver in plaintext, say). A node may keep plaintext in
//! a service such as lin-kv: that is not visible here, and not judged.

use super::model::{Model, Span};
use super::Property;
use crate::edn::Edn;

fn example(problem: &str, x: &str, p: &str, span: &Span, detail: Edn) -> Edn {
    Edn::map([
        ("problem", Edn::kw(problem)),
        ("exchange", Edn::Str(x.into())),
        ("participant", Edn::Str(p.into())),
        ("detail", detail),
        ("op", span.example()),
    ])
}

pub fn check(model: &Model) -> Property {
    let mut prop = Property::new(
        "secrecy",
        &[
            "unopenable",
            "opens-for-others",
            "plaintext-disagrees",
            "extra-fields",
        ],
    );
    for r in model.reads.iter().filter(|r| r.span.ok()) {
        let (x, p) = (r.exchange.as_str(), r.participant.as_str());
        if let Some(why) = &r.box_error {
            prop.flag(
                "unopenable",
                example("unopenable", x, p, &r.span, Edn::Str(why.clone())),
            );
        }
        if !r.opens_with.is_empty() {
            let who = Edn::Vector(r.opens_with.iter().cloned().map(Edn::Str).collect());
            prop.flag(
                "opens-for-others",
                example("opens-for-others", x, p, &r.span, who),
            );
        }
        let Some(plain) = &r.plain else { continue };
        let reply_epoch = r.epoch.map_or(Edn::Nil, Edn::Int);
        let reply_gift = r.gift_id.clone().unwrap_or(Edn::Nil);
        let mismatches: Vec<Edn> = [
            ("exchange", &plain.exchange, Edn::Str(x.into())),
            ("giver", &plain.giver, Edn::Str(p.into())),
            ("epoch", &plain.epoch, reply_epoch),
            ("gift-id", &plain.gift_id, reply_gift),
        ]
        .into_iter()
        .filter(|(_, inside, outside)| *inside != outside)
        .map(|(k, _, _)| Edn::kw(k))
        .collect();
        if !mismatches.is_empty() || plain.receiver.as_str().is_none() {
            prop.flag(
                "plaintext-disagrees",
                example(
                    "plaintext-disagrees",
                    x,
                    p,
                    &r.span,
                    Edn::Vector(mismatches),
                ),
            );
        }
    }
    for m in &model.malformed {
        let keys = Edn::Vector(m.keys.iter().cloned().map(Edn::Str).collect());
        prop.flag(
            "extra-fields",
            example(&format!("{}-reply", m.f), "", "", &m.span, keys),
        );
    }
    for a in model.audits.iter().filter(|a| !a.extra_keys.is_empty()) {
        let keys = Edn::Vector(a.extra_keys.iter().cloned().map(Edn::Str).collect());
        prop.flag(
            "extra-fields",
            example("audit-event", &a.exchange, "", &a.span, keys),
        );
    }
    prop
}
