//! A cluster of several binaries on a run's page: its services and their nodes (from
//! run.json), and the messages by service and by node (results.edn's `:net :services`).

use std::fmt::Write as _;

use super::html::escape;
use crate::edn::Edn;

/// `giftid n0, n1 · queue n2, n3`, service names in bold.
pub fn services_cell(services: &[(String, Vec<String>)]) -> String {
    services
        .iter()
        .map(|(name, nodes)| format!("<b>{}</b> {}", escape(name), escape(&nodes.join(", "))))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The entries of an EDN map with string keys, in order.
fn string_keyed(map: &Edn) -> Vec<(&str, &Edn)> {
    match map {
        Edn::Map(entries) => entries
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v)))
            .collect(),
        _ => Vec::new(),
    }
}

fn count(map: &Edn, key: &str) -> String {
    map.get(key)
        .and_then(Edn::as_i64)
        .map_or_else(|| "?".to_string(), |n| n.to_string())
}

/// The "Messages by service" section: per service, what its nodes sent and received and
/// where the sent went; then per node. Empty when the run has no `:net :services`.
pub fn section(results: Option<&Edn>) -> String {
    let Some(services) = results.and_then(|r| r.get("net")?.get("services")) else {
        return String::new();
    };
    let services = string_keyed(services);
    if services.is_empty() {
        return String::new();
    }
    let mut html = String::from(
        "<h2>Messages by service</h2>\n<p class=\"muted\">Messages the nodes of each service \
         sent and received; a “to” column counts those sent to that service's nodes.</p>\n\
         <table class=\"figures\"><thead><tr><th>service</th><th>nodes</th>\
         <th class=\"num\">sent</th><th class=\"num\">received</th>",
    );
    for (name, _) in &services {
        let _ = write!(html, "<th class=\"num\">to {}</th>", escape(name));
    }
    html.push_str(
        "<th class=\"num\">to clients</th><th class=\"num\">to Maelstrom services</th>\
         </tr></thead>\n<tbody>\n",
    );
    for (name, s) in &services {
        let nodes: Vec<&str> = s
            .get("nodes")
            .and_then(Edn::elements)
            .map(|e| e.iter().filter_map(Edn::as_str).collect())
            .unwrap_or_default();
        let _ = write!(
            html,
            "<tr><td><b>{}</b></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
            escape(name),
            escape(&nodes.join(", ")),
            count(s, "send-count"),
            count(s, "recv-count")
        );
        let to = s.get("to").map(string_keyed).unwrap_or_default();
        for (other, _) in &services {
            let n = to
                .iter()
                .find(|(k, _)| k == other)
                .and_then(|(_, v)| v.as_i64());
            let _ = write!(
                html,
                "<td class=\"num\">{}</td>",
                n.map_or("?".into(), |n| n.to_string())
            );
        }
        let _ = writeln!(
            html,
            "<td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            count(s, "to-clients"),
            count(s, "to-maelstrom-services")
        );
    }
    html.push_str("</tbody></table>\n");
    html.push_str(&by_node(&services));
    html
}

/// Sent and received per node, with its service.
fn by_node(services: &[(&str, &Edn)]) -> String {
    let mut html = String::from(
        "<table class=\"figures\"><thead><tr><th>node</th><th>service</th>\
         <th class=\"num\">sent</th><th class=\"num\">received</th></tr></thead>\n<tbody>\n",
    );
    for (name, s) in services {
        for (node, counts) in s.get("by-node").map(string_keyed).unwrap_or_default() {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(node),
                escape(name),
                count(counts, "send-count"),
                count(counts, "recv-count")
            );
        }
    }
    html.push_str("</tbody></table>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_and_their_messages_are_tabulated() {
        let results = Edn::parse(
            "{:net {:all {:send-count 9}, :services {\"a\" {:nodes [\"n0\"], :send-count 5, \
             :recv-count 6, :to {\"a\" 1, \"b<x>\" 3}, :to-clients 1, :to-maelstrom-services 0, \
             :by-node {\"n0\" {:send-count 5, :recv-count 6}}}, \"b<x>\" {:nodes [\"n1\"], \
             :send-count 2, :recv-count 1, :to {\"a\" 2}, :to-clients 0, \
             :to-maelstrom-services 0, :by-node {\"n1\" {:send-count 2, :recv-count 1}}}}}}",
        )
        .unwrap();
        let html = section(Some(&results));
        assert!(
            html.contains("<th class=\"num\">to a</th><th class=\"num\">to b&lt;x&gt;</th>"),
            "{html}"
        );
        assert!(html.contains(
            "<tr><td><b>a</b></td><td>n0</td><td class=\"num\">5</td><td class=\"num\">6</td>\
             <td class=\"num\">1</td><td class=\"num\">3</td><td class=\"num\">1</td><td class=\"num\">0</td></tr>"
        ), "{html}");
        assert!(
            html.contains("<td class=\"num\">2</td><td class=\"num\">?</td>"),
            "a missing pair is ?: {html}"
        );
        assert!(html.contains("<tr><td>n1</td><td>b&lt;x&gt;</td><td class=\"num\">2</td><td class=\"num\">1</td></tr>"));
        let one_binary = Edn::parse("{:net {:all {:send-count 9}}}").unwrap();
        assert_eq!(section(Some(&one_binary)), "");
        assert_eq!(section(None), "");
        let cell = services_cell(&[
            ("a".into(), vec!["n0".into(), "n1".into()]),
            ("b".into(), vec!["n2".into()]),
        ]);
        assert_eq!(cell, "<b>a</b> n0, n1 · <b>b</b> n2");
    }
}
