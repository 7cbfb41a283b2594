//! Closed reply schemas, checked as strictly as Maelstrom's `defrpc` does.
//!
//! A reply to a harness client may hold exactly the workload's fields, `type`, a required
//! integer `in_reply_to` and an optional integer `msg_id`; any other key is a *disallowed
//! key*, and `Int` refuses `1.0`. A reply that breaks its schema becomes a "Malformed RPC
//! response" exception whose text has the shape of Maelstrom's, so the same runs read the
//! same way. Error replies (`type: "error"`) are never checked against a schema.

use serde_json::{Map, Value};

use crate::edn::Edn;

/// What one field may hold.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    Any,
    Int,
    /// Exactly this string (the `type` field).
    Eq(&'static str),
    /// A JSON array whose elements are of the inner type.
    ListOf(Box<FieldType>),
    /// A JSON object with string keys whose values are of the inner type.
    MapOf(Box<FieldType>),
    Str,
}

impl FieldType {
    /// Prismatic Schema's printed form.
    fn render(&self) -> String {
        match self {
            FieldType::Any => "Any".into(),
            FieldType::Int => "Int".into(),
            FieldType::Str => "Str".into(),
            FieldType::Eq(s) => format!("(eq {})", Edn::Str(s.to_string()).to_compact()),
            FieldType::ListOf(t) => format!("[{}]", t.render()),
            FieldType::MapOf(t) => format!("{{Str {}}}", t.render()),
        }
    }

    /// `None` when `v` fits, else Prismatic's explanation of why not.
    fn check(&self, v: &Value) -> Option<String> {
        let pr = || Edn::from_json(v, false).to_compact();
        match self {
            FieldType::Any => None,
            FieldType::Int => {
                (!(v.is_i64() || v.is_u64())).then(|| format!("(not (integer? {}))", pr()))
            }
            FieldType::Str => {
                (!v.is_string()).then(|| format!("(not (instance? java.lang.String {}))", pr()))
            }
            FieldType::Eq(s) => (v.as_str() != Some(s)).then(|| {
                format!(
                    "(not (= {} {}))",
                    Edn::Str(s.to_string()).to_compact(),
                    pr()
                )
            }),
            FieldType::ListOf(t) => match v.as_array() {
                None => Some(format!("(not (sequential? {}))", pr())),
                Some(items) => {
                    let errs: Vec<String> = items
                        .iter()
                        .map(|x| t.check(x).unwrap_or_else(|| "nil".into()))
                        .collect();
                    errs.iter()
                        .any(|e| e != "nil")
                        .then(|| format!("[{}]", errs.join(" ")))
                }
            },
            FieldType::MapOf(t) => match v.as_object() {
                None => Some(format!("(not (map? {}))", pr())),
                Some(m) => {
                    let errs: Vec<String> = m
                        .iter()
                        .filter_map(|(k, x)| t.check(x).map(|e| format!("{k:?} {e}")))
                        .collect();
                    (!errs.is_empty()).then(|| format!("{{{}}}", errs.join(", ")))
                }
            },
        }
    }
}

/// A closed map schema for one reply type.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// (key, type, required), in Maelstrom's printing order.
    fields: Vec<(&'static str, FieldType, bool)>,
}

impl Schema {
    /// The schema of a reply of type `kind` with the given workload fields, plus Maelstrom's
    /// optional `msg_id` and required `in_reply_to`.
    pub fn reply(kind: &'static str, fields: &[(&'static str, FieldType)]) -> Schema {
        let mut all = vec![("type", FieldType::Eq(kind), true)];
        all.extend(fields.iter().map(|(k, t)| (*k, t.clone(), true)));
        all.push(("msg_id", FieldType::Int, false));
        all.push(("in_reply_to", FieldType::Int, true));
        Schema { fields: all }
    }

    /// The printed schema: `{:type (eq "generate_ok"), :id Any, {:k :msg_id} Int, :in_reply_to Int}`.
    pub fn render(&self) -> String {
        let parts: Vec<String> = self
            .fields
            .iter()
            .map(|(k, t, required)| {
                if *required {
                    format!(":{k} {}", t.render())
                } else {
                    format!("{{:k :{k}}} {}", t.render())
                }
            })
            .collect();
        format!("{{{}}}", parts.join(", "))
    }

    /// Checks a reply body. On failure, returns the explanation map's entries (key,
    /// printed reason), schema keys first, then disallowed keys in body order.
    pub fn check(&self, body: &Map<String, Value>) -> Result<(), Vec<(String, String)>> {
        let mut errs = Vec::new();
        for (k, t, required) in &self.fields {
            match body.get(*k) {
                Some(v) => {
                    if let Some(e) = t.check(v) {
                        errs.push((k.to_string(), e));
                    }
                }
                None if *required => errs.push((k.to_string(), "missing-required-key".into())),
                None => {}
            }
        }
        for k in body.keys() {
            if !self.fields.iter().any(|(name, _, _)| name == k) {
                errs.push((k.clone(), "disallowed-key".into()));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

/// Renders schema errors as the explanation map Maelstrom prints: `{:workshop disallowed-key}`.
pub fn render_errors(errs: &[(String, String)]) -> String {
    let parts: Vec<String> = errs
        .iter()
        .map(|(k, e)| format!("{} {e}", Edn::kw(k).to_compact()))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Maelstrom's "Malformed RPC response" text for a reply from `node` to `request`.
pub fn malformed_response_message(
    node: &str,
    request: &Map<String, Value>,
    schema: &Schema,
    body: &Map<String, Value>,
    errs: &[(String, String)],
) -> String {
    let pretty =
        |m: &Map<String, Value>| Edn::from_json(&Value::Object(m.clone()), true).to_pretty();
    format!(
        "Malformed RPC response. Maelstrom sent node {node} the following request:\n\n{}\n\n\
         And expected a response of the form:\n\n{}\n\n... but instead received\n\n{}\n\n\
         This is malformed because:\n\n{}\n\nSee doc/protocol.md for more guidance.",
        pretty(request).trim_end(),
        schema.render(),
        pretty(body).trim_end(),
        render_errors(errs),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn renders_like_prismatic_schema() {
        let s = Schema::reply("generate_ok", &[("id", FieldType::Any)]);
        assert_eq!(
            s.render(),
            r#"{:type (eq "generate_ok"), :id Any, {:k :msg_id} Int, :in_reply_to Int}"#
        );
    }

    #[test]
    fn closed_map_rejects_extra_keys_and_float_ints() {
        let s = Schema::reply("generate_ok", &[("id", FieldType::Any)]);
        assert!(s
            .check(&map(json!({"type":"generate_ok","id":1,"in_reply_to":1})))
            .is_ok());
        assert!(s
            .check(&map(
                json!({"type":"generate_ok","id":1,"in_reply_to":1,"msg_id":7})
            ))
            .is_ok());
        let errs = s
            .check(&map(
                json!({"type":"generate_ok","id":"x","workshop":3,"in_reply_to":1}),
            ))
            .unwrap_err();
        assert_eq!(render_errors(&errs), "{:workshop disallowed-key}");
        let errs = s
            .check(&map(json!({"type":"generate_ok","id":1,"in_reply_to":1.0})))
            .unwrap_err();
        assert_eq!(render_errors(&errs), "{:in_reply_to (not (integer? 1.0))}");
        let errs = s
            .check(&map(json!({"type":"generate","in_reply_to":1})))
            .unwrap_err();
        assert_eq!(
            render_errors(&errs),
            r#"{:type (not (= "generate_ok" "generate")), :id missing-required-key}"#
        );
    }

    #[test]
    fn lists_of_ints() {
        let s = Schema::reply(
            "read_ok",
            &[("messages", FieldType::ListOf(Box::new(FieldType::Int)))],
        );
        assert!(s
            .check(&map(
                json!({"type":"read_ok","messages":[1,2],"in_reply_to":1})
            ))
            .is_ok());
        let errs = s
            .check(&map(json!({"type":"read_ok","messages":3,"in_reply_to":1})))
            .unwrap_err();
        assert_eq!(render_errors(&errs), "{:messages (not (sequential? 3))}");
    }

    /// The text of the reference run unique-ids-extra-reply-field-invalid, byte for byte.
    #[test]
    fn malformed_message_matches_maelstroms_text() {
        let s = Schema::reply("generate_ok", &[("id", FieldType::Any)]);
        let body = map(
            json!({"type":"generate_ok","id":"11d714a4-4cae-449f-b74c-ad8b10f6da46",
                              "workshop":3,"in_reply_to":1,"msg_id":2}),
        );
        let errs = s.check(&body).unwrap_err();
        let req = map(json!({"type":"generate","msg_id":1}));
        let text = malformed_response_message("n0", &req, &s, &body, &errs);
        let expected = "Malformed RPC response. Maelstrom sent node n0 the following request:\n\n{:type \"generate\", :msg_id 1}\n\nAnd expected a response of the form:\n\n{:type (eq \"generate_ok\"), :id Any, {:k :msg_id} Int, :in_reply_to Int}\n\n... but instead received\n\n{:type \"generate_ok\",\n :id \"11d714a4-4cae-449f-b74c-ad8b10f6da46\",\n :workshop 3,\n :in_reply_to 1,\n :msg_id 2}\n\nThis is malformed because:\n\n{:workshop disallowed-key}\n\nSee doc/protocol.md for more guidance.";
        assert_eq!(text, expected);
    }

    #[test]
    fn malformed_message_names_the_disallowed_key() {
        let s = Schema::reply("generate_ok", &[("id", FieldType::Any)]);
        let body =
            map(json!({"type":"generate_ok","id":"u","workshop":3,"in_reply_to":1,"msg_id":2}));
        let errs = s.check(&body).unwrap_err();
        let req = map(json!({"type":"generate","msg_id":1}));
        let text = malformed_response_message("n0", &req, &s, &body, &errs);
        assert!(text.starts_with(
            "Malformed RPC response. Maelstrom sent node n0 the following request:\n\n{:type \"generate\", :msg_id 1}\n\n"
        ), "{text}");
        assert!(text.contains("{:workshop disallowed-key}"), "{text}");
    }
}
