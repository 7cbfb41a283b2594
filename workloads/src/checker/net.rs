//! `:net`: how many messages the network carried, as Maelstrom's net checker reports it.
//! `:clients` counts messages with a client at either end, `:servers` all others
//! (node-to-node and node-to-service); `msgs-per-op` divides by client invocations.

use super::float32;
use crate::edn::Edn;
use crate::history::History;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounts {
    pub send: u64,
    pub recv: u64,
    /// Distinct messages sent.
    pub msg: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    pub all: NetCounts,
    pub clients: NetCounts,
    pub servers: NetCounts,
}

fn counts(c: &NetCounts, per_op: Option<f64>) -> Edn {
    let mut entries = vec![
        ("send-count", Edn::from(c.send)),
        ("recv-count", Edn::from(c.recv)),
        ("msg-count", Edn::from(c.msg)),
    ];
    if let Some(ops) = per_op {
        let ratio = if ops > 0.0 { c.msg as f64 / ops } else { 0.0 };
        entries.push(("msgs-per-op", float32(ratio)));
    }
    Edn::map(entries)
}

pub fn check(history: &History, stats: &NetStats) -> Edn {
    let ops = history.invocations().count() as f64;
    Edn::map([
        ("all", counts(&stats.all, Some(ops))),
        ("clients", counts(&stats.clients, None)),
        ("servers", counts(&stats.servers, Some(ops))),
        ("valid?", Edn::Bool(true)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::tests_support::invoke;

    #[test]
    fn matches_the_echo_reference_shape() {
        let mut h = History::default();
        for _ in 0..31 {
            h.push(invoke(0, "echo", Edn::Nil));
        }
        let c = NetCounts {
            send: 64,
            recv: 64,
            msg: 64,
        };
        let stats = NetStats {
            all: c,
            clients: c,
            servers: NetCounts::default(),
        };
        assert_eq!(
            check(&h, &stats).to_compact(),
            "{:all {:send-count 64, :recv-count 64, :msg-count 64, :msgs-per-op 2.064516}, \
             :clients {:send-count 64, :recv-count 64, :msg-count 64}, \
             :servers {:send-count 0, :recv-count 0, :msg-count 0, :msgs-per-op 0.0}, :valid? true}"
        );
    }
}
