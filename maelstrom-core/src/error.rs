//! Maelstrom's error codes and the `error` body.
//!
//! The table mirrors Maelstrom's `resources/errors.edn`. Whether a code is *definite* decides
//! how a client records a failed operation: definite errors mean the operation certainly did
//! not happen (`:fail`), indefinite ones mean it may have (`:info`). Codes Maelstrom does not
//! know (including every custom code from 1000 up) are treated as indefinite, as Maelstrom
//! does, so a node can never make an unknown outcome look certain by inventing a code.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One of Maelstrom's error codes, or any other integer code a node chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    Timeout,
    NodeNotFound,
    NotSupported,
    TemporarilyUnavailable,
    MalformedRequest,
    Crash,
    Abort,
    KeyDoesNotExist,
    KeyAlreadyExists,
    PreconditionFailed,
    TxnConflict,
    /// A code outside Maelstrom's table; always indefinite.
    Other(i64),
}

impl ErrorCode {
    /// Every code of Maelstrom's table, in numeric order.
    pub const KNOWN: [ErrorCode; 11] = [
        ErrorCode::Timeout,
        ErrorCode::NodeNotFound,
        ErrorCode::NotSupported,
        ErrorCode::TemporarilyUnavailable,
        ErrorCode::MalformedRequest,
        ErrorCode::Crash,
        ErrorCode::Abort,
        ErrorCode::KeyDoesNotExist,
        ErrorCode::KeyAlreadyExists,
        ErrorCode::PreconditionFailed,
        ErrorCode::TxnConflict,
    ];

    pub fn from_code(code: i64) -> ErrorCode {
        match code {
            0 => ErrorCode::Timeout,
            1 => ErrorCode::NodeNotFound,
            10 => ErrorCode::NotSupported,
            11 => ErrorCode::TemporarilyUnavailable,
            12 => ErrorCode::MalformedRequest,
            13 => ErrorCode::Crash,
            14 => ErrorCode::Abort,
            20 => ErrorCode::KeyDoesNotExist,
            21 => ErrorCode::KeyAlreadyExists,
            22 => ErrorCode::PreconditionFailed,
            30 => ErrorCode::TxnConflict,
            other => ErrorCode::Other(other),
        }
    }

    pub fn code(self) -> i64 {
        match self {
            ErrorCode::Timeout => 0,
            ErrorCode::NodeNotFound => 1,
            ErrorCode::NotSupported => 10,
            ErrorCode::TemporarilyUnavailable => 11,
            ErrorCode::MalformedRequest => 12,
            ErrorCode::Crash => 13,
            ErrorCode::Abort => 14,
            ErrorCode::KeyDoesNotExist => 20,
            ErrorCode::KeyAlreadyExists => 21,
            ErrorCode::PreconditionFailed => 22,
            ErrorCode::TxnConflict => 30,
            ErrorCode::Other(code) => code,
        }
    }

    /// Maelstrom's keyword for the code (`:key-does-not-exist`), without the colon;
    /// `unknown` for codes outside the table, as Maelstrom's client names them.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Timeout => "timeout",
            ErrorCode::NodeNotFound => "node-not-found",
            ErrorCode::NotSupported => "not-supported",
            ErrorCode::TemporarilyUnavailable => "temporarily-unavailable",
            ErrorCode::MalformedRequest => "malformed-request",
            ErrorCode::Crash => "crash",
            ErrorCode::Abort => "abort",
            ErrorCode::KeyDoesNotExist => "key-does-not-exist",
            ErrorCode::KeyAlreadyExists => "key-already-exists",
            ErrorCode::PreconditionFailed => "precondition-failed",
            ErrorCode::TxnConflict => "txn-conflict",
            ErrorCode::Other(_) => "unknown",
        }
    }

    /// True when an error with this code proves the operation did not take place.
    pub fn is_definite(self) -> bool {
        !matches!(
            self,
            ErrorCode::Timeout | ErrorCode::Crash | ErrorCode::Other(_)
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.name())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.code())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        i64::deserialize(deserializer).map(ErrorCode::from_code)
    }
}

/// The payload of an `error` message: `{"type":"error","code":C,"text":"…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, text: impl Into<String>) -> Self {
        ErrorBody {
            code,
            text: Some(text.into()),
        }
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(text) => write!(f, "error {}: {}", self.code, text),
            None => write!(f, "error {}", self.code),
        }
    }
}

impl std::error::Error for ErrorBody {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_round_trips_through_json() {
        for code in ErrorCode::KNOWN {
            let body = ErrorBody::new(code, format!("because {}", code.name()));
            let json = serde_json::to_string(&body).unwrap();
            assert!(
                json.contains(&format!("\"code\":{}", code.code())),
                "{json}"
            );
            let back: ErrorBody = serde_json::from_str(&json).unwrap();
            assert_eq!(back, body);
            assert_eq!(ErrorCode::from_code(code.code()), code);
        }
    }

    #[test]
    fn definiteness_matches_maelstrom_table() {
        let indefinite: Vec<i64> = ErrorCode::KNOWN
            .iter()
            .filter(|c| !c.is_definite())
            .map(|c| c.code())
            .collect();
        assert_eq!(indefinite, vec![0, 13]);
        assert_eq!(
            ErrorCode::KNOWN.map(|c| c.code()),
            [0, 1, 10, 11, 12, 13, 14, 20, 21, 22, 30]
        );
    }

    #[test]
    fn custom_codes_are_indefinite_and_round_trip() {
        for raw in [2, 15, 999, 1000, 4242, -1] {
            let code = ErrorCode::from_code(raw);
            assert_eq!(code, ErrorCode::Other(raw));
            assert!(!code.is_definite());
            assert_eq!(code.name(), "unknown");
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn text_is_optional_and_extra_keys_are_tolerated() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"code":22,"extra":{"x":1},"type":"error"}"#).unwrap();
        assert_eq!(body.code, ErrorCode::PreconditionFailed);
        assert_eq!(body.text, None);
    }
}
