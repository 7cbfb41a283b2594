//! Client sessions in the replicated state machine (the Raft paper's §8): every command a
//! client asked for is logged with the client's id and the `msg_id` of its request, and
//! applying it records the reply. A command that comes back (the network duplicated a
//! passed-on request, or a node passed it on twice) is answered with that recorded reply
//! and never executed again, on every replica alike.
//!
//! Memory is bounded by design, not by time. A Maelstrom client sends one request at a
//! time and numbers its `msg_id`s upwards, so only its newest request can still be
//! waited for: a session keeps the newest `msg_id` and its reply, nothing older. A copy
//! of an older request is refused as indefinite (the client gave up on it long ago and
//! its outcome was already reported as unknown or as the reply it got). Clients are
//! bounded by [`MAX_CLIENTS`] per group: beyond it the session applied longest ago is
//! dropped, the same on every replica since it is chosen by log index. A test's clients
//! number its concurrency (hundreds), far below the bound, so a live client's session
//! is never dropped; only a copy of a request from a client silent for `MAX_CLIENTS`
//! other clients' requests could run twice.

use std::collections::{BTreeMap, HashMap};

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Index;

/// Sessions kept per group; the oldest is dropped beyond this.
pub const MAX_CLIENTS: usize = 4_096;

/// Who originally asked for a command: the client and its request's `msg_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    pub client: String,
    pub msg_id: u64,
}

impl Origin {
    /// The origin of a request received from `src`: the client itself when `src` is not a
    /// node of the cluster, or what the node passing it on says (`carried`). A client
    /// cannot claim to be another client.
    pub fn of(
        node_ids: &[String],
        src: &str,
        msg_id: Option<u64>,
        carried: Option<Origin>,
    ) -> Option<Origin> {
        if node_ids.iter().any(|n| n == src) {
            return carried;
        }
        msg_id.map(|msg_id| Origin {
            client: src.to_string(),
            msg_id,
        })
    }
}

/// One client's newest request and its reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session<O> {
    msg_id: u64,
    /// Log index it was applied at: the age that decides eviction.
    at: Index,
    reply: O,
}

/// What the sessions say about a command about to be applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen<O> {
    /// Never applied: execute it.
    New,
    /// Applied already: this was the reply.
    Repeat(O),
    /// Older than the client's newest request: never execute it.
    Superseded,
}

/// Every client's session in one group; part of the group's snapshot. Looking a client
/// up is O(1); eviction follows the apply order kept in `by_age`, so it is the same on
/// every replica whatever the hash map's order.
#[derive(Debug, Clone)]
pub struct Sessions<O> {
    clients: HashMap<String, Session<O>>,
    /// Each session by the index it was applied at, oldest first.
    by_age: BTreeMap<Index, String>,
}

impl<O> Default for Sessions<O> {
    fn default() -> Self {
        Sessions {
            clients: HashMap::new(),
            by_age: BTreeMap::new(),
        }
    }
}

/// Serialized as `{"clients": {client: session}}`, oldest session first.
impl<O: Serialize> Serialize for Sessions<O> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        struct InAge<'a, O>(&'a Sessions<O>);
        impl<O: Serialize> Serialize for InAge<'_, O> {
            fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                let mut map = ser.serialize_map(Some(self.0.by_age.len()))?;
                for client in self.0.by_age.values() {
                    map.serialize_entry(client, &self.0.clients[client])?;
                }
                map.end()
            }
        }
        let mut outer = ser.serialize_map(Some(1))?;
        outer.serialize_entry("clients", &InAge(self))?;
        outer.end()
    }
}

impl<'de, O: Deserialize<'de>> Deserialize<'de> for Sessions<O> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(bound(deserialize = "O: Deserialize<'de>"))]
        struct Stored<O> {
            clients: BTreeMap<String, Session<O>>,
        }
        let stored = Stored::deserialize(de)?;
        let mut sessions = Sessions::default();
        for (client, session) in stored.clients {
            sessions.by_age.insert(session.at, client.clone());
            sessions.clients.insert(client, session);
        }
        Ok(sessions)
    }
}

impl<O: Clone> Sessions<O> {
    pub fn check(&self, origin: &Origin) -> Seen<O> {
        match self.clients.get(&origin.client) {
            Some(s) if s.msg_id == origin.msg_id => Seen::Repeat(s.reply.clone()),
            Some(s) if s.msg_id > origin.msg_id => Seen::Superseded,
            _ => Seen::New,
        }
    }

    /// Records the reply to `origin`'s request, applied at `at`.
    pub fn record(&mut self, origin: &Origin, at: Index, reply: O) {
        if let Some(s) = self.clients.get_mut(&origin.client) {
            let client = self
                .by_age
                .remove(&s.at)
                .unwrap_or_else(|| origin.client.clone());
            *s = Session {
                msg_id: origin.msg_id,
                at,
                reply,
            };
            self.by_age.insert(at, client);
            return;
        }
        let session = Session {
            msg_id: origin.msg_id,
            at,
            reply,
        };
        self.clients.insert(origin.client.clone(), session);
        self.by_age.insert(at, origin.client.clone());
        while self.clients.len() > MAX_CLIENTS {
            let Some((_, client)) = self.by_age.pop_first() else {
                break;
            };
            self.clients.remove(&client);
        }
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(client: &str, msg_id: u64) -> Origin {
        Origin {
            client: client.into(),
            msg_id,
        }
    }

    #[test]
    fn a_repeat_gets_the_first_reply_and_an_older_request_never_runs() {
        let mut s = Sessions::default();
        assert_eq!(s.check(&origin("c1", 3)), Seen::New);
        s.record(&origin("c1", 3), 10, "first");
        assert_eq!(s.check(&origin("c1", 3)), Seen::Repeat("first"));
        assert_eq!(s.check(&origin("c1", 2)), Seen::Superseded);
        assert_eq!(s.check(&origin("c1", 4)), Seen::New);
        assert_eq!(s.check(&origin("c2", 3)), Seen::New);
    }

    #[test]
    fn the_session_applied_longest_ago_is_dropped_beyond_the_bound() {
        let mut s = Sessions::default();
        for i in 0..=MAX_CLIENTS as u64 {
            s.record(&origin(&format!("c{i}"), 1), i + 1, i);
        }
        assert_eq!(s.len(), MAX_CLIENTS);
        assert_eq!(s.check(&origin("c0", 1)), Seen::New);
        assert_eq!(s.check(&origin("c1", 1)), Seen::Repeat(1));
    }

    #[test]
    fn sessions_survive_a_snapshot() {
        let mut s = Sessions::default();
        s.record(&origin("c1", 7), 3, "ok".to_string());
        let json = serde_json::to_value(&s).unwrap();
        let back: Sessions<String> = serde_json::from_value(json).unwrap();
        assert_eq!(back.check(&origin("c1", 7)), Seen::Repeat("ok".into()));
    }

    #[test]
    fn eviction_order_survives_a_snapshot() {
        let mut s = Sessions::default();
        for i in 0..MAX_CLIENTS as u64 {
            s.record(&origin(&format!("c{i}"), 1), 10 + i, i);
        }
        // c0 renewed: now the newest, so c1 is the oldest.
        s.record(&origin("c0", 2), 10 + MAX_CLIENTS as u64, 99);
        let json = serde_json::to_string(&s).unwrap();
        let mut back: Sessions<u64> = serde_json::from_str(&json).unwrap();
        back.record(&origin("new", 1), 20 + MAX_CLIENTS as u64, 7);
        assert_eq!(back.len(), MAX_CLIENTS);
        assert_eq!(back.check(&origin("c1", 1)), Seen::New);
        assert_eq!(back.check(&origin("c0", 2)), Seen::Repeat(99));
        assert_eq!(back.check(&origin("c2", 1)), Seen::Repeat(2));
    }

    #[test]
    fn a_client_cannot_claim_another_origin() {
        let nodes = vec!["n0".to_string(), "n1".to_string()];
        let forged = Some(origin("c9", 1));
        let direct = Origin::of(&nodes, "c1", Some(5), forged.clone());
        assert_eq!(direct, Some(origin("c1", 5)));
        assert_eq!(Origin::of(&nodes, "n1", Some(5), forged.clone()), forged);
        assert_eq!(Origin::of(&nodes, "c1", None, None), None);
    }
}
