//! `:net`: how many messages the network carried, as Maelstrom's net checker reports it.
//! `:clients` counts messages with a client at either end, `:servers` all others
//! (node-to-node and node-to-service); `msgs-per-op` divides by client invocations.
//!
//! A cluster of several binaries also gets `:services`, keyed by service name: what the
//! service's nodes sent and received, how many of the sent went to each service's nodes, to
//! clients and to Maelstrom's services, and the same sent/received counts per node.

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

/// Messages by node, which the network counts: what each node sent (and to whom) and
/// received. Per-node and per-service figures are sums of these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeTraffic {
    /// Messages each node sent (accepted by the network), to anyone.
    pub sent: Vec<u64>,
    /// Messages delivered to each node.
    pub recv: Vec<u64>,
    /// `to_node[src][dest]`: messages node `src` sent to node `dest`.
    pub to_node: Vec<Vec<u64>>,
    /// Messages each node sent to clients.
    pub to_clients: Vec<u64>,
    /// Messages each node sent to Maelstrom's services (lin-kv, …).
    pub to_services: Vec<u64>,
}

impl NodeTraffic {
    /// No messages yet among `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        NodeTraffic {
            sent: vec![0; nodes],
            recv: vec![0; nodes],
            to_node: vec![vec![0; nodes]; nodes],
            to_clients: vec![0; nodes],
            to_services: vec![0; nodes],
        }
    }
}

/// The services of a cluster of several binaries and the traffic of its nodes.
#[derive(Debug, Clone, Copy)]
pub struct ServiceTraffic<'a> {
    /// Every node, in the order `traffic` counts them.
    pub nodes: &'a [String],
    /// (service name, its node ids), in order.
    pub services: &'a [(String, Vec<String>)],
    pub traffic: &'a NodeTraffic,
}

impl ServiceTraffic<'_> {
    /// The indexes of service `s`'s nodes.
    fn members(&self, s: usize) -> Vec<usize> {
        let ids = &self.services[s].1;
        (0..self.nodes.len())
            .filter(|&i| ids.contains(&self.nodes[i]))
            .collect()
    }

    /// `{"giftid" {:nodes [...], :send-count, :recv-count, :to {...}, ...}, ...}`.
    pub fn section(&self) -> Edn {
        let t = self.traffic;
        let groups: Vec<Vec<usize>> = (0..self.services.len()).map(|s| self.members(s)).collect();
        let sum = |v: &[u64], of: &[usize]| {
            of.iter()
                .map(|&i| v.get(i).copied().unwrap_or(0))
                .sum::<u64>()
        };
        let entries = self.services.iter().zip(&groups).map(|((name, ids), own)| {
            let to = self
                .services
                .iter()
                .zip(&groups)
                .map(|((other, _), theirs)| {
                    let n: u64 = own
                        .iter()
                        .map(|&s| theirs.iter().map(|&d| t.to_node[s][d]).sum::<u64>())
                        .sum();
                    (Edn::Str(other.clone()), Edn::from(n))
                });
            let by_node = own.iter().map(|&i| {
                let counts = Edn::map([
                    ("send-count", Edn::from(t.sent[i])),
                    ("recv-count", Edn::from(t.recv[i])),
                ]);
                (Edn::Str(self.nodes[i].clone()), counts)
            });
            let value = Edn::map([
                (
                    "nodes",
                    Edn::Vector(ids.iter().cloned().map(Edn::Str).collect()),
                ),
                ("send-count", Edn::from(sum(&t.sent, own))),
                ("recv-count", Edn::from(sum(&t.recv, own))),
                ("to", Edn::Map(to.collect())),
                ("to-clients", Edn::from(sum(&t.to_clients, own))),
                ("to-maelstrom-services", Edn::from(sum(&t.to_services, own))),
                ("by-node", Edn::Map(by_node.collect())),
            ]);
            (Edn::Str(name.clone()), value)
        });
        Edn::Map(entries.collect())
    }
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

/// The `:net` map; `services` adds `:services` for a cluster of several binaries.
pub fn check(history: &History, stats: &NetStats, services: Option<ServiceTraffic>) -> Edn {
    let ops = history.invocations().count() as f64;
    let mut entries = vec![
        ("all", counts(&stats.all, Some(ops))),
        ("clients", counts(&stats.clients, None)),
        ("servers", counts(&stats.servers, Some(ops))),
    ];
    if let Some(s) = services {
        entries.push(("services", s.section()));
    }
    entries.push(("valid?", Edn::Bool(true)));
    Edn::map(entries)
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
            check(&h, &stats, None).to_compact(),
            "{:all {:send-count 64, :recv-count 64, :msg-count 64, :msgs-per-op 2.064516}, \
             :clients {:send-count 64, :recv-count 64, :msg-count 64}, \
             :servers {:send-count 0, :recv-count 0, :msg-count 0, :msgs-per-op 0.0}, :valid? true}"
        );
    }

    #[test]
    fn services_sum_their_nodes_and_count_each_pair() {
        let names: Vec<String> = ["n0", "n1", "n2"].map(String::from).to_vec();
        let services = vec![
            ("a".to_string(), vec!["n0".to_string()]),
            ("b".to_string(), vec!["n1".to_string(), "n2".to_string()]),
        ];
        let traffic = NodeTraffic {
            sent: vec![5, 3, 4],
            recv: vec![6, 2, 1],
            to_node: vec![vec![1, 2, 1], vec![1, 0, 1], vec![0, 0, 0]],
            to_clients: vec![1, 1, 3],
            to_services: vec![0, 0, 1],
        };
        let s = ServiceTraffic {
            nodes: &names,
            services: &services,
            traffic: &traffic,
        };
        let net = check(&History::default(), &NetStats::default(), Some(s));
        let b = net.get("services").and_then(|m| match m {
            Edn::Map(e) => e
                .iter()
                .find(|(k, _)| *k == Edn::Str("b".into()))
                .map(|(_, v)| v.clone()),
            _ => None,
        });
        assert_eq!(
            b.unwrap().to_compact(),
            "{:nodes [\"n1\" \"n2\"], :send-count 7, :recv-count 3, :to {\"a\" 1, \"b\" 1}, \
             :to-clients 4, :to-maelstrom-services 1, \
             :by-node {\"n1\" {:send-count 3, :recv-count 2}, \"n2\" {:send-count 4, :recv-count 1}}}"
        );
        let a = net.to_compact();
        assert!(a.contains(":services {\"a\" {:nodes [\"n0\"], :send-count 5, :recv-count 6, :to {\"a\" 1, \"b\" 3}"), "{a}");
        assert!(a.ends_with(":valid? true}"), "{a}");
    }
}
