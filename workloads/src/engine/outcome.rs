//! How a client turns what came back (a reply, an error reply, or nothing before the
//! timeout) into the completion of an operation, with Maelstrom's semantics:
//!
//! * Workloads using `with-errors` (echo, unique-ids, broadcast): a definite error is
//!   `:fail`; an indefinite one (or an unknown code) is `:info`, unless `f` is idempotent,
//!   then `:fail`; `:error` is `[:name "text"]`. A timeout is `:info` (`:fail` if idempotent)
//!   with `:error :net-timeout`.
//! * The others (g-set, g-counter, pn-counter): every error and timeout is `:info` with an
//!   `:exception`, as Jepsen records a client that threw.
//! * A reply that breaks its closed schema is always `:info` with a "Malformed RPC response"
//!   exception.

use maelstrom_core::ErrorCode;
use serde_json::{Map, Value};

use crate::edn::Edn;
use crate::schema;
use crate::workload::{GenOp, Workload};

/// How an operation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok(Edn),
    Fail { error: Edn },
    Info { error: Edn, exception: Option<Edn> },
}

/// The outcome of a reply `body` from `node` to `request`.
pub fn of_reply(
    workload: &dyn Workload,
    op: &GenOp,
    node: &str,
    request: &Map<String, Value>,
    body: &Map<String, Value>,
) -> Outcome {
    if body.get("type").and_then(Value::as_str) == Some("error") {
        return of_error(workload, op, body);
    }
    let req = workload.request(op);
    match req.reply.check(body) {
        Ok(()) => Outcome::Ok(workload.ok_value(op, body)),
        Err(errs) => {
            let message = schema::malformed_response_message(node, request, req.reply, body, &errs);
            let data = Edn::map(vec![
                ("type", Edn::kw("malformed-rpc-response")),
                ("body", Edn::from_json(&Value::Object(body.clone()), true)),
            ]);
            thrown(message, data)
        }
    }
}

fn of_error(workload: &dyn Workload, op: &GenOp, body: &Map<String, Value>) -> Outcome {
    let code = body.get("code").and_then(Value::as_i64);
    let known = code.map(ErrorCode::from_code);
    let name = known.map_or("unknown", ErrorCode::name);
    let definite = known.is_some_and(ErrorCode::is_definite);
    if workload.client().with_errors {
        let text = body
            .get("text")
            .map(|t| Edn::from_json(t, false))
            .unwrap_or(Edn::Nil);
        let error = Edn::Vector(vec![Edn::kw(name), text]);
        if definite || workload.client().is_idempotent(op.f) {
            Outcome::Fail { error }
        } else {
            Outcome::Info {
                error,
                exception: None,
            }
        }
    } else {
        let data = Edn::map(vec![
            ("type", Edn::kw("rpc-error")),
            ("code", code.map_or(Edn::Nil, Edn::Int)),
            ("name", Edn::kw(name)),
            ("definite?", Edn::Bool(definite)),
            ("body", Edn::from_json(&Value::Object(body.clone()), true)),
        ]);
        let message = format!("throw+: {}", data.to_compact());
        thrown(message, data)
    }
}

/// The outcome of a request that got no reply in time.
pub fn of_timeout(workload: &dyn Workload, op: &GenOp) -> Outcome {
    if workload.client().with_errors {
        let error = Edn::kw("net-timeout");
        if workload.client().is_idempotent(op.f) {
            Outcome::Fail { error }
        } else {
            Outcome::Info {
                error,
                exception: None,
            }
        }
    } else {
        let data = Edn::map(vec![
            ("type", Edn::kw("maelstrom.client/timeout")),
            ("name", Edn::kw("timeout")),
            ("definite?", Edn::Bool(false)),
            ("code", Edn::Int(0)),
        ]);
        thrown("Client read timeout".into(), data)
    }
}

/// An exception, recorded the way Jepsen's interpreter records a client that threw:
/// `:info`, the exception as data, and `:error "indeterminate: <message>"`.
fn thrown(message: String, data: Edn) -> Outcome {
    let via = Edn::map(vec![
        ("type", Edn::Symbol("clojure.lang.ExceptionInfo".into())),
        ("message", Edn::Str(message.clone())),
        ("data", data.clone()),
    ]);
    let exception = Edn::map(vec![
        ("via", Edn::Vector(vec![via])),
        ("trace", Edn::Vector(Vec::new())),
        ("cause", Edn::Str(message.clone())),
        ("data", data),
    ]);
    Outcome::Info {
        error: Edn::Str(format!("indeterminate: {message}")),
        exception: Some(exception),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::by_name;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn reply(workload: &str, op: GenOp, body: Value) -> Outcome {
        let w = by_name(workload).unwrap();
        let request = w.request(&op).body;
        of_reply(w.as_ref(), &op, "n0", &request, &map(body))
    }

    fn echo_op() -> GenOp {
        GenOp::new("echo", Edn::Str("Please echo 1".into()))
    }

    #[test]
    fn ok_reply_keeps_the_body_as_value() {
        let out = reply(
            "echo",
            echo_op(),
            json!({"type":"echo_ok","echo":"Please echo 1","in_reply_to":1}),
        );
        let Outcome::Ok(v) = out else {
            panic!("{out:?}")
        };
        assert_eq!(
            v.to_compact(),
            r#"{:type "echo_ok", :echo "Please echo 1", :in_reply_to 1}"#
        );
    }

    #[test]
    fn definite_errors_fail_and_indefinite_ones_are_info() {
        let body = json!({"type":"error","code":11,"text":"not now","in_reply_to":1,"extra":true});
        let out = reply("echo", echo_op(), body);
        assert_eq!(
            out,
            Outcome::Fail {
                error: Edn::Vector(vec![
                    Edn::kw("temporarily-unavailable"),
                    Edn::Str("not now".into())
                ])
            }
        );
        for code in [0, 13, 1000] {
            let out = reply(
                "echo",
                echo_op(),
                json!({"type":"error","code":code,"in_reply_to":1}),
            );
            assert!(
                matches!(
                    out,
                    Outcome::Info {
                        exception: None,
                        ..
                    }
                ),
                "{code}: {out:?}"
            );
        }
        // An indefinite error on an idempotent read is a failure.
        let read = GenOp::new("read", Edn::Nil);
        let out = reply(
            "broadcast",
            read,
            json!({"type":"error","code":13,"in_reply_to":1}),
        );
        assert!(matches!(out, Outcome::Fail { .. }), "{out:?}");
    }

    #[test]
    fn counters_turn_every_error_into_an_exception() {
        let add = GenOp::new("add", Edn::Int(2));
        let out = reply(
            "g-counter",
            add,
            json!({"type":"error","code":11,"in_reply_to":1}),
        );
        let Outcome::Info { error, exception } = out else {
            panic!()
        };
        assert!(exception.is_some());
        assert!(
            error.to_compact().contains("indeterminate: throw+"),
            "{}",
            error.to_compact()
        );
    }

    #[test]
    fn timeouts() {
        let w = by_name("echo").unwrap();
        assert_eq!(
            of_timeout(w.as_ref(), &echo_op()),
            Outcome::Info {
                error: Edn::kw("net-timeout"),
                exception: None
            }
        );
        let w = by_name("broadcast").unwrap();
        assert_eq!(
            of_timeout(w.as_ref(), &GenOp::new("read", Edn::Nil)),
            Outcome::Fail {
                error: Edn::kw("net-timeout")
            }
        );
        let w = by_name("pn-counter").unwrap();
        let Outcome::Info {
            error,
            exception: Some(_),
        } = of_timeout(w.as_ref(), &GenOp::new("read", Edn::Nil))
        else {
            panic!()
        };
        assert_eq!(error, Edn::Str("indeterminate: Client read timeout".into()));
    }

    #[test]
    fn malformed_reply_is_info_with_the_disallowed_key() {
        let op = GenOp::new("generate", Edn::Nil);
        let out = reply(
            "unique-ids",
            op,
            json!({"type":"generate_ok","id":"x","workshop":3,"in_reply_to":1}),
        );
        let Outcome::Info {
            error,
            exception: Some(_),
        } = out
        else {
            panic!("{out:?}")
        };
        let text = error.to_compact();
        assert!(text.contains("Malformed RPC response"), "{text}");
        assert!(text.contains("{:workshop disallowed-key}"), "{text}");
    }
}
