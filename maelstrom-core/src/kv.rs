//! Typed clients for Maelstrom's key-value services `lin-kv`, `seq-kv` and `lww-kv`.
//!
//! A request goes out through the node's [`Outbox`] as an RPC, so correlation and timeouts
//! are the runtime's; the outcome comes back to [`crate::Node::on_reply`] and is decoded
//! here into a [`KvError`] that says exactly what the service meant.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ErrorBody, ErrorCode};
use crate::message::RawMessage;
use crate::node::{Node, Outbox, Payload, RpcError};

/// Which service to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Linearizable.
    LinKv,
    /// Sequentially consistent: reads may be stale, but never go back in time per caller.
    SeqKv,
    /// Last-write-wins, eventually consistent; `cas` has no `create_if_not_exists`.
    LwwKv,
}

impl Service {
    pub fn node_id(self) -> &'static str {
        match self {
            Service::LinKv => "lin-kv",
            Service::SeqKv => "seq-kv",
            Service::LwwKv => "lww-kv",
        }
    }
}

/// A request body understood by every KV service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KvRequest {
    Read {
        key: Value,
    },
    Write {
        key: Value,
        value: Value,
    },
    Cas {
        key: Value,
        from: Value,
        to: Value,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        create_if_not_exists: bool,
    },
}

/// A client for one service; cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct Kv {
    pub service: Service,
    pub timeout: Duration,
}

impl Kv {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

    pub fn new(service: Service) -> Self {
        Kv {
            service,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    pub fn lin() -> Self {
        Self::new(Service::LinKv)
    }

    pub fn seq() -> Self {
        Self::new(Service::SeqKv)
    }

    pub fn lww() -> Self {
        Self::new(Service::LwwKv)
    }

    pub fn with_timeout(self, timeout: Duration) -> Self {
        Kv { timeout, ..self }
    }

    fn call<N: Node>(&self, out: &mut Outbox<N>, request: KvRequest, call: N::Call) -> u64 {
        out.rpc_payload(
            self.service.node_id().to_string(),
            Payload::Kv(request),
            self.timeout,
            call,
        )
    }

    /// Reads `key`; decode the outcome with [`read_value`] or [`read_as`].
    pub fn read<N: Node>(&self, out: &mut Outbox<N>, key: impl Into<Value>, call: N::Call) -> u64 {
        self.call(out, KvRequest::Read { key: key.into() }, call)
    }

    /// Writes `key`; decode the outcome with [`expect_ok`].
    pub fn write<N: Node>(
        &self,
        out: &mut Outbox<N>,
        key: impl Into<Value>,
        value: impl Into<Value>,
        call: N::Call,
    ) -> u64 {
        let request = KvRequest::Write {
            key: key.into(),
            value: value.into(),
        };
        self.call(out, request, call)
    }

    /// Compare-and-set; decode the outcome with [`expect_ok`].
    pub fn cas<N: Node>(
        &self,
        out: &mut Outbox<N>,
        key: impl Into<Value>,
        from: impl Into<Value>,
        to: impl Into<Value>,
        create_if_not_exists: bool,
        call: N::Call,
    ) -> u64 {
        let request = KvRequest::Cas {
            key: key.into(),
            from: from.into(),
            to: to.into(),
            create_if_not_exists,
        };
        self.call(out, request, call)
    }
}

/// Why a KV operation did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum KvError {
    /// Code 20: definite.
    KeyDoesNotExist,
    /// Code 21: definite.
    KeyAlreadyExists,
    /// Code 22, e.g. a CAS whose `from` did not match: definite.
    PreconditionFailed(String),
    /// No reply in time: the operation may have happened.
    Timeout,
    /// Any other error reply.
    Other(ErrorBody),
    /// A reply that is not what the service promises.
    Malformed(String),
}

impl KvError {
    pub fn is_definite(&self) -> bool {
        match self {
            KvError::KeyDoesNotExist
            | KvError::KeyAlreadyExists
            | KvError::PreconditionFailed(_) => true,
            KvError::Timeout | KvError::Malformed(_) => false,
            KvError::Other(body) => body.code.is_definite(),
        }
    }
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvError::KeyDoesNotExist => write!(f, "key does not exist"),
            KvError::KeyAlreadyExists => write!(f, "key already exists"),
            KvError::PreconditionFailed(text) => write!(f, "precondition failed: {text}"),
            KvError::Timeout => write!(f, "KV request timed out"),
            KvError::Other(body) => body.fmt(f),
            KvError::Malformed(text) => write!(f, "malformed KV reply: {text}"),
        }
    }
}

impl std::error::Error for KvError {}

fn check(reply: Result<RawMessage, RpcError>, expected: &str) -> Result<RawMessage, KvError> {
    match reply {
        Ok(msg) if msg.kind == expected => Ok(msg),
        Ok(msg) if msg.kind == "error" => {
            // The runtime turns error replies into RpcError::Remote; this covers bodies a
            // caller decoded by hand.
            let body: ErrorBody = serde_json::from_str(msg.body_json())
                .map_err(|err| KvError::Malformed(err.to_string()))?;
            Err(classify(body))
        }
        Ok(msg) => Err(KvError::Malformed(format!(
            "expected {expected}, got {}",
            msg.body_json()
        ))),
        Err(RpcError::Timeout) => Err(KvError::Timeout),
        Err(RpcError::Remote(body)) => Err(classify(body)),
    }
}

fn classify(body: ErrorBody) -> KvError {
    match body.code {
        ErrorCode::KeyDoesNotExist => KvError::KeyDoesNotExist,
        ErrorCode::KeyAlreadyExists => KvError::KeyAlreadyExists,
        ErrorCode::PreconditionFailed => KvError::PreconditionFailed(body.text.unwrap_or_default()),
        _ => KvError::Other(body),
    }
}

/// The value a `read` returned.
pub fn read_value(reply: Result<RawMessage, RpcError>) -> Result<Value, KvError> {
    read_as(reply)
}

/// The value a `read` returned, decoded as `T`.
pub fn read_as<T: DeserializeOwned>(reply: Result<RawMessage, RpcError>) -> Result<T, KvError> {
    #[derive(Deserialize)]
    struct ReadOk<T> {
        value: T,
    }
    let msg = check(reply, "read_ok")?;
    serde_json::from_str::<ReadOk<T>>(msg.body_json())
        .map(|ok| ok.value)
        .map_err(|err| KvError::Malformed(err.to_string()))
}

/// Success of a `write` or `cas`.
pub fn expect_ok(reply: Result<RawMessage, RpcError>) -> Result<(), KvError> {
    let msg = reply.as_ref().ok().map(|m| m.kind.clone());
    let expected = match msg.as_deref() {
        Some("cas_ok") => "cas_ok",
        _ => "write_ok",
    };
    check(reply, expected).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(body: Value) -> Result<RawMessage, RpcError> {
        let line = json!({"src":"lin-kv","dest":"n1","body":body}).to_string();
        Ok(RawMessage::parse(&line).unwrap())
    }

    #[test]
    fn requests_serialize_as_the_services_expect() {
        let cases = [
            (
                KvRequest::Read { key: json!("k") },
                json!({"type":"read","key":"k"}),
            ),
            (
                KvRequest::Write {
                    key: json!(1),
                    value: json!([1]),
                },
                json!({"type":"write","key":1,"value":[1]}),
            ),
            (
                KvRequest::Cas {
                    key: json!("k"),
                    from: json!(1),
                    to: json!(2),
                    create_if_not_exists: true,
                },
                json!({"type":"cas","key":"k","from":1,"to":2,"create_if_not_exists":true}),
            ),
            (
                KvRequest::Cas {
                    key: json!("k"),
                    from: json!(1),
                    to: json!(2),
                    create_if_not_exists: false,
                },
                json!({"type":"cas","key":"k","from":1,"to":2}),
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(serde_json::to_value(&request).unwrap(), expected);
        }
    }

    #[test]
    fn decodes_every_outcome() {
        assert_eq!(
            read_value(reply(json!({"type":"read_ok","value":5,"in_reply_to":1}))),
            Ok(json!(5))
        );
        assert_eq!(
            read_as::<u64>(reply(json!({"type":"read_ok","value":5}))),
            Ok(5)
        );
        assert!(matches!(
            read_as::<u64>(reply(json!({"type":"read_ok","value":"x"}))),
            Err(KvError::Malformed(_))
        ));
        assert_eq!(expect_ok(reply(json!({"type":"write_ok"}))), Ok(()));
        assert_eq!(expect_ok(reply(json!({"type":"cas_ok"}))), Ok(()));
        assert_eq!(
            expect_ok(reply(
                json!({"type":"error","code":22,"text":"current value 1 is not 2"})
            )),
            Err(KvError::PreconditionFailed(
                "current value 1 is not 2".into()
            ))
        );
        assert_eq!(
            read_value(Err(RpcError::Remote(ErrorBody::new(
                ErrorCode::KeyDoesNotExist,
                "key does not exist"
            )))),
            Err(KvError::KeyDoesNotExist)
        );
        assert_eq!(expect_ok(Err(RpcError::Timeout)), Err(KvError::Timeout));
        assert!(!KvError::Timeout.is_definite());
        assert!(KvError::PreconditionFailed(String::new()).is_definite());
    }
}
