//! Message routing: lines nodes print go into the network (or are counted and dropped as
//! problems), and the network's deliveries go to node stdin, to a service, or to a client.

use serde_json::Value;

use super::Engine;
use crate::engine::process::{LineError, NodeLine};
use crate::net::{Addr, Nanos, SendError};

impl Engine {
    pub(super) fn name_of(&self, addr: Addr) -> String {
        match addr {
            Addr::Node(i) => self.names[i as usize].clone(),
            Addr::Service(s) => s.name().to_string(),
            Addr::Client(c) => format!("c{c}"),
        }
    }

    /// The address of a node, service or client named `name`.
    pub(super) fn resolve(&self, name: &str) -> Option<Addr> {
        self.by_name
            .get(name)
            .copied()
            .or_else(|| client_addr(name))
    }

    pub(super) fn log_message(&self, what: &str, src: Addr, dest: Addr, body: &str) {
        self.console.info(
            "net",
            "workloads.net",
            &format!(
                ":{what} {{:src {:?}, :dest {:?}, :body {body}}}",
                self.name_of(src),
                self.name_of(dest)
            ),
        );
    }

    pub(super) fn on_line(&mut self, now: Nanos, line: NodeLine) {
        let node = self.names[line.node as usize].clone();
        let thread = format!("{node} stdout");
        let env = match line.parsed {
            Ok(env) => env,
            Err(LineError::NotJson(why)) => {
                self.problems.not_json += 1;
                let msg = format!(
                    "Node {node} printed a line to STDOUT which was not well-formed JSON: {} ({why}). \
                     Log to STDERR instead; STDOUT is for messages only.",
                    line.text
                );
                self.console.warn(&thread, "workloads.net", &msg);
                self.problems
                    .note(format!("{node}: not JSON: {}", line.text));
                return;
            }
            Err(LineError::Malformed(why)) => {
                self.problems.malformed += 1;
                let msg = format!(
                    "Malformed network message from {node}: {} ({why}). A message is exactly \
                     {{\"src\", \"dest\", \"body\"}} (plus an optional integer \"id\").",
                    line.text
                );
                self.console.warn(&thread, "workloads.net", &msg);
                self.problems
                    .note(format!("{node}: malformed: {}", line.text));
                return;
            }
        };
        let src = self.resolve(&env.src);
        let dest = self.resolve(&env.dest);
        let result = match (src, dest) {
            (Some(s), Some(d)) => self.net.send(now, s, d, env.body.get().into()).map(|id| {
                self.journal_sent(id, s, d, now, env.body.get());
                (s, d)
            }),
            (None, _) => Err(SendError::UnknownSrc),
            (_, None) => Err(SendError::UnknownDest),
        };
        match result {
            Ok((s, d)) => {
                if self.settings.log_net_send {
                    self.log_message("send", s, d, env.body.get());
                }
            }
            Err(SendError::UnknownSrc) => {
                self.problems.unknown_src += 1;
                let msg = format!(
                    "Node {node} sent a message from unknown source {:?}; dropped: {}",
                    env.src, line.text
                );
                self.console.warn(&thread, "workloads.net", &msg);
                self.problems
                    .note(format!("{node}: unknown src: {}", line.text));
            }
            Err(SendError::UnknownDest) => {
                self.problems.unknown_dest += 1;
                let why = match dest {
                    Some(d) if self.net.is_closed_client(d) => format!(
                        "client {} is closed (it was an init client, or timed out and was replaced); \
                         reply once per request, only to live clients",
                        env.dest
                    ),
                    _ => format!("{:?} is not a node, client or service", env.dest),
                };
                let msg = format!(
                    "Node {node} sent a message to an unknown destination: {why}; dropped: {}",
                    line.text
                );
                self.console.warn(&thread, "workloads.net", &msg);
                self.problems
                    .note(format!("{node}: unknown dest: {}", line.text));
            }
        }
    }

    pub(super) fn journal_sent(&mut self, id: u64, src: Addr, dest: Addr, now: Nanos, body: &str) {
        if self.journal.hops.len() < crate::journal::LIMIT {
            let (src, dest) = (self.name_of(src), self.name_of(dest));
            self.journal.sent(id, &src, &dest, now, body);
        } else {
            self.journal.truncated += 1;
        }
    }

    pub(super) fn deliver(&mut self, now: Nanos, packet: crate::net::Packet) {
        if self.settings.log_net_recv {
            self.log_message("recv", packet.src, packet.dest, &packet.body);
        }
        if let Addr::Node(i) = packet.dest {
            if self.faults.down[i as usize] {
                // A killed process reads nothing: what reaches it is lost.
                self.problems.lost_to_dead_nodes += 1;
                return;
            }
        }
        self.journal.received(packet.id, now);
        match packet.dest {
            Addr::Node(i) => {
                let src = self.name_of(packet.src);
                let line = node_line(packet.id, &src, &self.names[i as usize], &packet.body);
                self.nodes[i as usize].send(line);
            }
            Addr::Service(s) => {
                let Ok(body) = serde_json::from_str::<Value>(&packet.body) else {
                    return;
                };
                let src = self.name_of(packet.src);
                if let Some(reply) = self.services.handle(s, &src, &body) {
                    let text = reply.to_string();
                    if let Ok(id) =
                        self.net
                            .send(now, packet.dest, packet.src, text.as_str().into())
                    {
                        self.journal_sent(id, packet.dest, packet.src, now, &text);
                    }
                }
            }
            Addr::Client(c) => self.client_received(now, c, &packet.body),
        }
    }
}

/// A client's address from its name, `c<digits>`.
fn client_addr(name: &str) -> Option<Addr> {
    let digits = name.strip_prefix('c')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Addr::Client)
}

/// The stdin line that delivers message `id` to a node: the body as the sender wrote it.
fn node_line(id: u64, src: &str, dest: &str, body: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(body.len() + 64);
    line.extend_from_slice(
        format!(
            "{{\"id\":{id},\"src\":{},\"dest\":{},\"body\":",
            Value::String(src.to_string()),
            Value::String(dest.to_string())
        )
        .as_bytes(),
    );
    line.extend_from_slice(body.as_bytes());
    line.extend_from_slice(b"}\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_named_c_and_digits_only() {
        assert_eq!(client_addr("c12"), Some(Addr::Client(12)));
        for name in ["c", "cx", "c1a", "n1", "c-1", "c99999999999"] {
            assert_eq!(client_addr(name), None, "{name}");
        }
    }

    #[test]
    fn a_delivery_is_one_json_line_with_the_body_untouched() {
        let body = r#"{"type":"echo", "echo":"a\"b"}"#;
        let line = node_line(7, "c3", "n\"1", body);
        let text = String::from_utf8(line).unwrap();
        assert_eq!(
            text,
            "{\"id\":7,\"src\":\"c3\",\"dest\":\"n\\\"1\",\"body\":{\"type\":\"echo\", \"echo\":\"a\\\"b\"}}\n"
        );
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["dest"], "n\"1");
        assert_eq!(parsed["body"]["echo"], "a\"b");
    }
}
