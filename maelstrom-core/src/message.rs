//! The wire format: one JSON envelope `{"src","dest","body"}` per line.
//!
//! A body is a `type` tag, an optional `msg_id`, an optional `in_reply_to`, and the fields of
//! that type (the *payload*). Payloads are typed serde enums chosen by each node, tagged
//! with `#[serde(tag = "type", rename_all = "snake_case")]`. Fields a payload does not name
//! are tolerated (serde skips them) and stay reachable through [`Body::field`] and
//! [`Body::extra`], because the body's original JSON is kept alongside the typed payload.
//!
//! Parsing is split into [`RawMessage::parse`] (envelope and header only) and
//! [`RawMessage::decode`] (the payload), so that a reply to an RPC can be routed without
//! knowing its type, and so that an unknown `type` is told apart from a malformed body.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A message as it travels between nodes, clients and services.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message<P> {
    pub src: String,
    pub dest: String,
    pub body: Body<P>,
}

/// A message body: header fields plus a typed payload.
#[derive(Debug, Clone)]
pub struct Body<P> {
    pub msg_id: Option<u64>,
    pub in_reply_to: Option<u64>,
    pub payload: P,
    /// The body exactly as received; `None` for bodies built locally.
    raw: Option<Box<RawValue>>,
}

impl<P: PartialEq> PartialEq for Body<P> {
    /// Compares what the body says, not how it was spelt on the wire.
    fn eq(&self, other: &Self) -> bool {
        self.msg_id == other.msg_id
            && self.in_reply_to == other.in_reply_to
            && self.payload == other.payload
    }
}

impl<P> Body<P> {
    pub fn new(payload: P) -> Self {
        Body {
            msg_id: None,
            in_reply_to: None,
            payload,
            raw: None,
        }
    }

    /// The body's JSON as it arrived, if it arrived over the wire.
    pub fn raw(&self) -> Option<&str> {
        self.raw.as_deref().map(RawValue::get)
    }

    /// Any field of the received body, including fields the payload type does not declare.
    pub fn field(&self, name: &str) -> Option<Value> {
        let raw = self.raw.as_deref()?;
        let mut map: Map<String, Value> = serde_json::from_str(raw.get()).ok()?;
        map.remove(name)
    }

    /// Every received field other than `type`, `msg_id` and `in_reply_to`.
    pub fn extra(&self) -> Map<String, Value> {
        let mut map: Map<String, Value> = self
            .raw
            .as_deref()
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default();
        for header in ["type", "msg_id", "in_reply_to"] {
            map.remove(header);
        }
        map
    }
}

impl<P: Serialize> Serialize for Body<P> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a, P> {
            #[serde(flatten)]
            payload: &'a P,
            #[serde(skip_serializing_if = "Option::is_none")]
            msg_id: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            in_reply_to: Option<u64>,
        }
        Wire {
            payload: &self.payload,
            msg_id: self.msg_id,
            in_reply_to: self.in_reply_to,
        }
        .serialize(serializer)
    }
}

/// Whom to answer and which request the answer is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    pub src: String,
    pub msg_id: Option<u64>,
}

impl<P> Message<P> {
    /// Where a reply to this message goes.
    pub fn reply_to(&self) -> ReplyTo {
        ReplyTo {
            src: self.src.clone(),
            msg_id: self.body.msg_id,
        }
    }

    /// Splits off the payload, keeping what a later reply needs.
    pub fn into_parts(self) -> (ReplyTo, P) {
        let to = self.reply_to();
        (to, self.body.payload)
    }
}

impl<P: Serialize> Message<P> {
    /// The message as one line of JSON, without the trailing newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("message payloads serialize to JSON")
    }
}

impl<P: DeserializeOwned> Message<P> {
    /// Parses and decodes a whole line in one go.
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        RawMessage::parse(line)?.decode()
    }
}

/// A parsed envelope whose payload has not been decoded yet.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub src: String,
    pub dest: String,
    pub kind: String,
    pub msg_id: Option<u64>,
    pub in_reply_to: Option<u64>,
    body: Box<RawValue>,
}

#[derive(Deserialize)]
struct WireEnvelope<'a> {
    src: String,
    dest: String,
    #[serde(borrow)]
    body: &'a RawValue,
}

#[derive(Deserialize)]
struct WireHeader {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    msg_id: Option<u64>,
    #[serde(default)]
    in_reply_to: Option<u64>,
}

impl RawMessage {
    /// Reads the envelope and the header fields. Unknown top-level keys (Maelstrom's `id`)
    /// are ignored.
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        let envelope: WireEnvelope<'_> = serde_json::from_str(line).map_err(|err| {
            if err.is_syntax() || err.is_eof() {
                ParseError::NotJson(err.to_string())
            } else {
                ParseError::NotMessage(err.to_string())
            }
        })?;
        let header: WireHeader = serde_json::from_str(envelope.body.get())
            .map_err(|err| ParseError::NotMessage(format!("body: {err}")))?;
        Ok(RawMessage {
            src: envelope.src,
            dest: envelope.dest,
            kind: header.kind,
            msg_id: header.msg_id,
            in_reply_to: header.in_reply_to,
            body: envelope.body.to_owned(),
        })
    }

    /// The body's JSON text.
    pub fn body_json(&self) -> &str {
        self.body.get()
    }

    /// Decodes the payload into `P`, telling an unknown `type` apart from a bad body.
    pub fn decode<P: DeserializeOwned>(self) -> Result<Message<P>, ParseError> {
        match serde_json::from_str::<P>(self.body.get()) {
            Ok(payload) => Ok(Message {
                src: self.src,
                dest: self.dest,
                body: Body {
                    msg_id: self.msg_id,
                    in_reply_to: self.in_reply_to,
                    payload,
                    raw: Some(self.body),
                },
            }),
            Err(err) => {
                let text = err.to_string();
                // Only the body's own `type` makes an unknown type; an unknown variant of a
                // field inside the body is a malformed body.
                let own = format!("unknown variant `{}`", self.kind);
                if let Some(rest) = text.strip_prefix(own.as_str()) {
                    // serde lists the variants it knows: ", expected `a` or `b` at line…"
                    let known = rest
                        .split_once("expected ")
                        .map(|(_, known)| known.split(" at line").next().unwrap_or(known))
                        .unwrap_or("");
                    Err(ParseError::UnknownType {
                        kind: self.kind,
                        detail: format!("this node handles {known}"),
                    })
                } else {
                    Err(ParseError::BadBody {
                        kind: self.kind,
                        detail: text,
                    })
                }
            }
        }
    }

    /// Decodes the payload as a free-form JSON object.
    pub fn into_value(self) -> Message<Value> {
        self.decode::<Value>()
            .expect("a JSON object always decodes as a Value")
    }
}

/// Why a line could not be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The line is not JSON at all.
    NotJson(String),
    /// JSON, but not an envelope with `src`, `dest` and a body with a `type`.
    NotMessage(String),
    /// A well-formed message whose `type` the payload enum does not know.
    UnknownType { kind: String, detail: String },
    /// A known `type` whose fields do not fit it.
    BadBody { kind: String, detail: String },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotJson(detail) => write!(f, "not JSON: {detail}"),
            ParseError::NotMessage(detail) => write!(f, "not a Maelstrom message: {detail}"),
            ParseError::UnknownType { kind, detail } => {
                write!(f, "unsupported message type {kind:?}; {detail}")
            }
            ParseError::BadBody { kind, detail } => {
                write!(f, "malformed {kind:?} message: {detail}")
            }
        }
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Payload {
        Echo {
            echo: Value,
        },
        EchoOk {
            echo: Value,
        },
        Topology {
            topology: std::collections::BTreeMap<String, Vec<String>>,
        },
    }

    #[test]
    fn parses_maelstrom_documented_example_ignoring_top_level_id() {
        let line = r#"{"id":699,"src":"c2","dest":"n0","body":{"echo":"Please echo 123","type":"echo","msg_id":1}}"#;
        let msg = Message::<Payload>::parse(line).unwrap();
        assert_eq!(msg.src, "c2");
        assert_eq!(msg.dest, "n0");
        assert_eq!(msg.body.msg_id, Some(1));
        assert_eq!(msg.body.in_reply_to, None);
        assert_eq!(
            msg.body.payload,
            Payload::Echo {
                echo: json!("Please echo 123")
            }
        );
    }

    #[test]
    fn serializes_only_the_three_envelope_keys() {
        let mut body = Body::new(Payload::EchoOk { echo: json!(7) });
        body.msg_id = Some(2);
        body.in_reply_to = Some(1);
        let msg = Message {
            src: "n0".into(),
            dest: "c1".into(),
            body,
        };
        let value: Value = serde_json::from_str(&msg.to_json()).unwrap();
        assert_eq!(
            value,
            json!({"src":"n0","dest":"c1","body":{"type":"echo_ok","echo":7,"msg_id":2,"in_reply_to":1}})
        );
        let back = Message::<Payload>::parse(&msg.to_json()).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn unknown_fields_are_tolerated_and_reachable() {
        let line = r#"{"src":"c1","dest":"n1","body":{"type":"echo","echo":1,"msg_id":3,"trace":{"hop":2}}}"#;
        let msg = Message::<Payload>::parse(line).unwrap();
        assert_eq!(msg.body.field("trace"), Some(json!({"hop":2})));
        let extra = msg.body.extra();
        assert_eq!(extra.get("trace"), Some(&json!({"hop":2})));
        assert_eq!(extra.get("echo"), Some(&json!(1)));
        assert!(!extra.contains_key("type") && !extra.contains_key("msg_id"));
    }

    #[test]
    fn string_keyed_maps_survive_the_tagged_enum() {
        let line = r#"{"src":"c1","dest":"n1","body":{"type":"topology","topology":{"n1":["n2"],"n2":["n1"]},"msg_id":1}}"#;
        let msg = Message::<Payload>::parse(line).unwrap();
        let Payload::Topology { topology } = msg.body.payload else {
            panic!("wrong variant")
        };
        assert_eq!(topology["n1"], vec!["n2".to_string()]);
    }

    #[test]
    fn classifies_bad_lines() {
        type Expect = fn(&ParseError) -> bool;
        let cases: [(&str, Expect); 6] = [
            ("not json", |e| matches!(e, ParseError::NotJson(_))),
            (r#"{"src":"c1""#, |e| matches!(e, ParseError::NotJson(_))),
            (r#"[1,2]"#, |e| matches!(e, ParseError::NotMessage(_))),
            (r#"{"src":"c1","dest":"n1","body":{"echo":1}}"#, |e| {
                matches!(e, ParseError::NotMessage(_))
            }),
            (
                r#"{"src":"c1","dest":"n1","body":{"type":"frobnicate","msg_id":1}}"#,
                |e| matches!(e, ParseError::UnknownType { kind, .. } if kind == "frobnicate"),
            ),
            (
                r#"{"src":"c1","dest":"n1","body":{"type":"topology","topology":7}}"#,
                |e| matches!(e, ParseError::BadBody { kind, .. } if kind == "topology"),
            ),
        ];
        for (line, expected) in cases {
            let err = Message::<Payload>::parse(line).unwrap_err();
            assert!(expected(&err), "{line}: {err:?}");
        }
    }

    #[test]
    fn float_msg_id_is_not_a_message() {
        let err =
            RawMessage::parse(r#"{"src":"c1","dest":"n1","body":{"type":"echo","msg_id":1.5}}"#)
                .unwrap_err();
        assert!(matches!(err, ParseError::NotMessage(_)), "{err:?}");
    }
}
