//! The network journal: when each message of the first part of a run was sent and
//! delivered, for the Lamport diagram. Like Maelstrom's, it keeps a bounded prefix (the
//! first [`LIMIT`] messages) so a long run costs no more memory than a short one.

use std::collections::HashMap;

/// Messages kept, as Maelstrom's diagram keeps its first 10,000 journal events.
pub const LIMIT: usize = 5_000;

/// One message: who sent it to whom, when, and what it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    pub src: String,
    pub dest: String,
    /// Nanoseconds since the engine's clock started (not the history's origin).
    pub sent_ns: u64,
    /// `None` while in flight, or if the message was dropped.
    pub recv_ns: Option<u64>,
    /// The body's `type`, e.g. `echo_ok`.
    pub kind: String,
    /// The whole body as JSON text, cut to a few hundred characters.
    pub body: String,
}

impl Hop {
    pub fn is_error(&self) -> bool {
        self.kind == "error"
    }

    pub fn involves_client(&self) -> bool {
        is_client_name(&self.src) || is_client_name(&self.dest)
    }
}

fn is_client_name(name: &str) -> bool {
    name.strip_prefix('c')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The bounded record of messages, filled by the engine.
#[derive(Debug, Default)]
pub struct Journal {
    pub hops: Vec<Hop>,
    /// Messages sent after the journal was full.
    pub truncated: u64,
    by_id: HashMap<u64, usize>,
}

/// Bodies are cut to this many bytes (on a character boundary).
const BODY_CHARS: usize = 300;

impl Journal {
    /// Records a message the network accepted with id `id`.
    pub fn sent(&mut self, id: u64, src: &str, dest: &str, now_ns: u64, body: &str) {
        if self.hops.len() >= LIMIT {
            self.truncated += 1;
            return;
        }
        let kind = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
            .unwrap_or_default();
        let mut cut = body.len().min(BODY_CHARS);
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut text = body[..cut].to_string();
        if cut < body.len() {
            text.push('…');
        }
        self.by_id.insert(id, self.hops.len());
        self.hops.push(Hop {
            src: src.to_string(),
            dest: dest.to_string(),
            sent_ns: now_ns,
            recv_ns: None,
            kind,
            body: text,
        });
    }

    /// Records the delivery of message `id`, if it is journalled.
    pub fn received(&mut self, id: u64, now_ns: u64) {
        if let Some(i) = self.by_id.remove(&id) {
            self.hops[i].recv_ns = Some(now_ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_bounded_prefix_with_deliveries() {
        let mut j = Journal::default();
        j.sent(7, "c1", "n0", 10, r#"{"type":"echo","msg_id":1}"#);
        j.received(7, 25);
        j.received(99, 30);
        assert_eq!(j.hops[0].recv_ns, Some(25));
        assert_eq!(j.hops[0].kind, "echo");
        assert!(j.hops[0].involves_client());
        for id in 0..LIMIT as u64 + 3 {
            j.sent(100 + id, "n0", "n1", 40, "{}");
        }
        assert_eq!(j.hops.len(), LIMIT);
        assert_eq!(j.truncated, 4);
        assert!(!j.hops[1].involves_client());
    }

    #[test]
    fn long_bodies_are_cut_on_a_character_boundary() {
        let mut j = Journal::default();
        let body = format!("{{\"type\":\"x\",\"v\":\"{}\"}}", "é".repeat(400));
        j.sent(1, "n0", "n1", 0, &body);
        assert!(j.hops[0].body.ends_with('…'));
        assert!(j.hops[0].body.len() <= BODY_CHARS + '…'.len_utf8());
    }
}
