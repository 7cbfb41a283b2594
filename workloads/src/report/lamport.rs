//! Maelstrom's `messages.svg`: a Lamport (space-time) diagram of the journalled messages,
//! so causality, slow replies and lost messages can be followed by eye.
//!
//! One vertical line per participant (nodes, then services, then clients), time flowing
//! down, one arrow per message from the sender at its send time to the receiver at its
//! delivery time. So that the nodes keep most of a [`WIDTH`]-pixel picture, clients share
//! lines when there are many: one per node they talk to, or one for all. Rows are spaced by
//! elapsed time but clamped between a minimum (bursts stay legible) and a maximum (idle
//! stretches stay short), then scaled so the picture is never taller than [`MAX_HEIGHT`]
//! pixels. Time counts from the first message (the cluster's setup, when it comes before the
//! workload), and a rule marks where the workload's history starts.

use std::fmt::Write;

use serde_json::{Map, Value};

use super::{escape, fmt_ms, shorten};
use crate::journal::{Hop, Journal};

/// Tallest picture drawn, in pixels.
pub const MAX_HEIGHT: f64 = 20_000.0;
/// Widest picture drawn while clients can still share lines, in pixels.
pub const WIDTH: f64 = 1400.0;
/// Narrowest line spacing before clients share lines.
const MIN_COL: f64 = 110.0;
/// Left margin holding the time labels.
const GUTTER: f64 = 80.0;
const MIN_GAP: f64 = 18.0;
const MAX_GAP: f64 = 80.0;
const PX_PER_MS: f64 = 10.0;
/// Participant names are repeated this often down the picture.
const HEADER_EVERY: f64 = 1000.0;
const BOTTOM: f64 = 50.0;

/// Height of the band naming a service above its nodes' lines.
const BAND: f64 = 30.0;
/// Background tints of the services' groups of lines, in turn.
const TINTS: [&str; 4] = ["#EEF4FF", "#FFF3E6", "#EEF9EE", "#F6EEFB"];

const CLIENT: &str = "#81BFFC";
const ERROR: &str = "#FF1E90";
const NODE: &str = "#000000";

const STYLE: &str = "svg { font-family: Helvetica, Arial, sans-serif; font-size: 11px; }
.m line { stroke-width: 2; }
.m:hover line { stroke-width: 4; }
.lost line { stroke-dasharray: 5 3; }
.l { font-size: 10px; text-anchor: middle; paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
.hd { text-anchor: middle; font-weight: bold; fill: #000; }
.hd.r { fill: #aaa; font-weight: normal; }
.t { fill: #888; text-anchor: end; font-size: 10px; }
.life { stroke: #ccc; }
.start { stroke: #888; stroke-dasharray: 2 4; }
.warn { fill: #B00020; font-weight: bold; }
.svc { text-anchor: middle; font-weight: bold; font-size: 12px; fill: #333; }";

/// The diagram of `journal`; `origin_ns` is the history's start on the journal's clock.
/// `services` (a cluster of several binaries; empty for one binary) groups the node lines
/// by service, under a band naming each.
pub fn messages_svg(
    journal: &Journal,
    origin_ns: u64,
    services: &[(String, Vec<String>)],
) -> String {
    let hops = &journal.hops;
    let notice = (journal.truncated > 0).then(|| {
        format!(
            "Showing the first {} messages only: {} later messages were not recorded.",
            hops.len(),
            journal.truncated
        )
    });
    let columns = columns(hops, services);
    let banded = columns.iter().any(|c| c.service.is_some());
    let col = ((WIDTH - GUTTER - 20.0) / columns.len().max(1) as f64).clamp(MIN_COL, 600.0);
    let x_of = |name: &str| {
        let i = columns
            .iter()
            .position(|c| c.members.iter().any(|m| m == name))
            .unwrap_or(0);
        GUTTER + (i as f64 + 0.5) * col
    };
    // Time zero: the history's start, or the first message when setup came before it.
    let first = hops.iter().map(|h| h.sent_ns).min().unwrap_or(origin_ns);
    let zero = origin_ns.min(first);
    let name_y = if notice.is_some() { 40.0 } else { 20.0 } + if banded { BAND } else { 0.0 };
    let top = name_y + 30.0;
    let rows = Rows::new(hops, top, MAX_HEIGHT - top - BOTTOM);
    let bottom = rows.bottom() + 20.0;
    let width = (GUTTER + col * columns.len() as f64 + 20.0).max(400.0);
    let height = bottom + BOTTOM;

    let mut svg = String::with_capacity(600 + hops.len() * 700);
    open_svg(&mut svg, (width, height), notice.as_deref());
    if hops.is_empty() {
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{:.0}\">No messages were recorded.</text>",
            top
        );
    }

    // Service bands, lifelines, then the names, repeated so they stay in sight while
    // scrolling.
    svg.push_str("<g>\n");
    if banded {
        service_bands(&mut svg, &columns, col, name_y - BAND, bottom);
    }
    lifelines(&mut svg, &columns, col, name_y, bottom);
    if zero < origin_ns && !hops.is_empty() {
        let y = rows.y(origin_ns);
        let _ = writeln!(
            svg,
            "<line class=\"start\" x1=\"0\" y1=\"{y:.1}\" x2=\"{width:.0}\" y2=\"{y:.1}\"/>\
             <text class=\"t\" x=\"{:.0}\" y=\"{:.1}\">workload starts</text>",
            width - 10.0,
            y - 4.0
        );
    }
    svg.push_str("</g>\n<g>\n");
    time_labels(&mut svg, &rows, zero);
    svg.push_str("</g>\n<g>\n");

    let labelled = rows.min_gap() >= 10.0;
    for hop in hops {
        arrow(&mut svg, hop, &x_of, &rows, zero, labelled);
    }
    svg.push_str("</g>\n");
    if let Some(text) = &notice {
        let _ = writeln!(
            svg,
            "<text class=\"warn\" x=\"10\" y=\"{:.0}\">{}</text>",
            bottom + 30.0,
            escape(text)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The SVG's head, style and arrow heads, a white page, and the notice if any.
fn open_svg(svg: &mut String, (width, height): (f64, f64), notice: Option<&str>) {
    let _ = write!(
        svg,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{width:.0}\" \
         height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">\n<style>\n{STYLE}\n</style>\n{}",
        defs()
    );
    svg.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n");
    if let Some(text) = notice {
        let _ = writeln!(
            svg,
            "<text class=\"warn\" x=\"10\" y=\"18\">{}</text>",
            escape(text)
        );
    }
}

/// Each column's lifeline and its name, repeated every [`HEADER_EVERY`].
fn lifelines(svg: &mut String, columns: &[Column], col: f64, name_y: f64, bottom: f64) {
    for (i, column) in columns.iter().enumerate() {
        let x = GUTTER + (i as f64 + 0.5) * col;
        let name = &column.label;
        let _ = writeln!(
            svg,
            "<line class=\"life\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/>",
            name_y + 10.0
        );
        let mut y = name_y;
        let mut class = "hd";
        while y < bottom {
            let _ = writeln!(
                svg,
                "<text class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\"><title>{}</title>{}</text>",
                escape(&column.members.join(" ")),
                escape(name)
            );
            y += HEADER_EVERY;
            class = "hd r";
        }
    }
}

/// For each run of lines of one service: a tinted background down the picture and the
/// service's name at the top, over its lines.
fn service_bands(svg: &mut String, columns: &[Column], col: f64, top: f64, bottom: f64) {
    let mut i = 0;
    let mut shade = 0;
    while i < columns.len() {
        let Some(name) = &columns[i].service else {
            i += 1;
            continue;
        };
        let run = columns[i..]
            .iter()
            .take_while(|c| c.service.as_ref() == Some(name))
            .count();
        let x = GUTTER + i as f64 * col + 2.0;
        let w = run as f64 * col - 4.0;
        let _ = writeln!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\" rx=\"4\"/>\
             <text class=\"svc\" x=\"{:.1}\" y=\"{:.1}\"><title>service {} ({} node line(s))</title>{}</text>",
            bottom - top,
            TINTS[shade % TINTS.len()],
            x + w / 2.0,
            top + 14.0,
            escape(name),
            run,
            escape(name)
        );
        shade += 1;
        i += run;
    }
}

/// Times down the gutter, at least 60 px apart.
fn time_labels(svg: &mut String, rows: &Rows, zero: u64) {
    let mut last_label = f64::NEG_INFINITY;
    for (t, y) in rows.times.iter().zip(&rows.ys) {
        if *y - last_label >= 60.0 {
            let _ = writeln!(
                svg,
                "<text class=\"t\" x=\"{:.0}\" y=\"{:.1}\">{} ms</text>",
                GUTTER - 8.0,
                y + 3.0,
                fmt_ms(relative_ms(*t, zero))
            );
            last_label = *y;
        }
    }
}

/// One message: an arrow from sender to receiver (or a short one ending in a cross when it
/// was never delivered), its body on hover and, when rows are far enough apart, its label.
fn arrow(
    svg: &mut String,
    hop: &Hop,
    x_of: &dyn Fn(&str) -> f64,
    rows: &Rows,
    zero: u64,
    labelled: bool,
) {
    let (x1, y1) = (x_of(&hop.src), rows.y(hop.sent_ns));
    let colour = if hop.is_error() {
        ERROR
    } else if hop.involves_client() {
        CLIENT
    } else {
        NODE
    };
    let head = if hop.is_error() {
        "e"
    } else if hop.involves_client() {
        "c"
    } else {
        "n"
    };
    let sent = fmt_ms(relative_ms(hop.sent_ns, zero));
    let (class, x2, y2, marker, when) = match hop.recv_ns {
        Some(recv) => {
            let received = fmt_ms(relative_ms(recv, zero));
            let took = fmt_ms(recv.saturating_sub(hop.sent_ns) as f64 / 1e6);
            let when = format!("sent {sent} ms, received {received} ms ({took} ms)");
            ("m", x_of(&hop.dest), rows.y(recv), head, when)
        }
        None => {
            let dx = x_of(&hop.dest) - x1;
            let reach = (dx.abs() * 0.35).clamp(30.0, 160.0).copysign(dx);
            let (x2, y2) = if dx == 0.0 {
                (x1, y1 + 24.0)
            } else {
                (x1 + reach, y1 + 10.0)
            };
            let when = format!("sent {sent} ms, never delivered");
            ("m lost", x2, y2, "x", when)
        }
    };
    let _ = write!(
        svg,
        "<g class=\"{class}\"><title>{} → {}, {when}\n{}</title>\
         <line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{colour}\" \
         marker-end=\"url(#{marker})\"/>",
        escape(&hop.src),
        escape(&hop.dest),
        escape(&hop.body),
    );
    if labelled && hop.recv_ns.is_some() {
        let mut angle = (y2 - y1).atan2(x2 - x1).to_degrees();
        if angle > 90.0 {
            angle -= 180.0;
        } else if angle < -90.0 {
            angle += 180.0;
        }
        let _ = write!(
            svg,
            "<text class=\"l\" transform=\"translate({:.1} {:.1}) rotate({angle:.2})\" \
             y=\"-5\">{}</text>",
            (x1 + x2) / 2.0,
            (y1 + y2) / 2.0,
            escape(&label(hop))
        );
    }
    svg.push_str("</g>\n");
}

/// Arrow heads per colour and the cross that ends a lost message.
fn defs() -> String {
    let mut defs = String::from("<defs>\n");
    for (id, colour) in [("c", CLIENT), ("e", ERROR), ("n", NODE)] {
        let _ = writeln!(
            defs,
            "<marker id=\"{id}\" viewBox=\"0 0 12 8\" refX=\"12\" refY=\"4\" markerWidth=\"12\" \
             markerHeight=\"8\" markerUnits=\"userSpaceOnUse\" orient=\"auto\">\
             <path d=\"M0,0L12,4L0,8z\" fill=\"{colour}\"/></marker>"
        );
    }
    defs.push_str(
        "<marker id=\"x\" viewBox=\"0 0 10 10\" refX=\"5\" refY=\"5\" markerWidth=\"10\" \
         markerHeight=\"10\" markerUnits=\"userSpaceOnUse\">\
         <path d=\"M1,1L9,9M9,1L1,9\" stroke=\"#D62020\" stroke-width=\"2\"/></marker>\n</defs>\n",
    );
    defs
}

fn relative_ms(t: u64, origin_ns: u64) -> f64 {
    (i128::from(t) - i128::from(origin_ns)) as f64 / 1e6
}

/// One vertical line: a participant, or clients sharing it.
#[derive(Debug, Clone, PartialEq)]
struct Column {
    label: String,
    members: Vec<String>,
    /// The service of a node's line, in a cluster of several binaries.
    service: Option<String>,
}

/// Nodes `n<N>` (by number; grouped by service first when there are `services`), then the
/// others (services such as `lin-kv`) by name, then clients `c<N>`: one line each when all
/// fit in [`WIDTH`], else one line per node the clients talk to, else one line for them
/// all.
fn columns(hops: &[Hop], services: &[(String, Vec<String>)]) -> Vec<Column> {
    let names = participants(hops);
    let (clients, mut others): (Vec<String>, Vec<String>) =
        names.into_iter().partition(|n| rank(n).0 == 2);
    let service_of = |name: &str| {
        services
            .iter()
            .position(|(_, nodes)| nodes.iter().any(|n| n == name))
    };
    others.sort_by(|a, b| {
        let key = |n: &str| service_of(n).unwrap_or(usize::MAX);
        (key(a), rank(a)).cmp(&(key(b), rank(b)))
    });
    let room = ((WIDTH - GUTTER - 20.0) / MIN_COL).floor() as usize;
    let single = |name: String| Column {
        label: name.clone(),
        members: vec![name],
        service: None,
    };
    let mut out: Vec<Column> = others
        .into_iter()
        .map(|name| Column {
            service: service_of(&name).map(|s| services[s].0.clone()),
            ..single(name)
        })
        .collect();
    if out.len() + clients.len() <= room {
        out.extend(clients.into_iter().map(single));
        return out;
    }
    let mut by_node: Vec<(String, Vec<String>)> = Vec::new();
    for client in clients {
        let node = peer_of(hops, &client);
        match by_node.iter_mut().find(|(n, _)| *n == node) {
            Some((_, members)) => members.push(client),
            None => by_node.push((node, vec![client])),
        }
    }
    by_node.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)));
    if out.len() + by_node.len() <= room {
        out.extend(by_node.into_iter().map(|(node, members)| Column {
            label: format!("clients of {node} ({})", members.len()),
            members,
            service: None,
        }));
    } else {
        let members: Vec<String> = by_node.into_iter().flat_map(|(_, m)| m).collect();
        out.push(Column {
            label: format!("clients ({})", members.len()),
            members,
            service: None,
        });
    }
    out
}

/// The first participant `client` exchanged a message with.
fn peer_of(hops: &[Hop], client: &str) -> String {
    hops.iter()
        .find_map(|h| {
            if h.src == client {
                Some(h.dest.clone())
            } else if h.dest == client {
                Some(h.src.clone())
            } else {
                None
            }
        })
        .unwrap_or_default()
}

/// Everyone who sent or received, in [`rank`] order.
fn participants(hops: &[Hop]) -> Vec<String> {
    let mut names: Vec<&str> = hops
        .iter()
        .flat_map(|h| [h.src.as_str(), h.dest.as_str()])
        .collect();
    names.sort_unstable();
    names.dedup();
    names.sort_by_key(|n| rank(n));
    names.into_iter().map(str::to_string).collect()
}

/// Nodes first, then services, then clients.
fn rank(name: &str) -> (u8, u64, &str) {
    let number = |prefix: char| {
        name.strip_prefix(prefix)
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u64>().ok())
    };
    match (number('n'), number('c')) {
        (Some(n), _) => (0, n, name),
        (_, Some(n)) => (2, n, name),
        _ => (1, 0, name),
    }
}

/// The text along an arrow: the body's type and its fields other than the message ids.
fn label(hop: &Hop) -> String {
    let text = match serde_json::from_str::<Value>(&hop.body) {
        Ok(Value::Object(body)) => {
            let rest: Map<String, Value> = body
                .into_iter()
                .filter(|(k, _)| !matches!(k.as_str(), "type" | "msg_id" | "in_reply_to"))
                .collect();
            if rest.is_empty() {
                hop.kind.clone()
            } else {
                format!("{} {}", hop.kind, Value::Object(rest))
            }
        }
        _ => hop.body.clone(),
    };
    shorten(&text, 70)
}

/// The y of every distinct event time.
struct Rows {
    times: Vec<u64>,
    ys: Vec<f64>,
    scale: f64,
    top: f64,
}

impl Rows {
    fn new(hops: &[Hop], top: f64, budget: f64) -> Rows {
        let mut times: Vec<u64> = hops
            .iter()
            .flat_map(|h| std::iter::once(h.sent_ns).chain(h.recv_ns))
            .collect();
        times.sort_unstable();
        times.dedup();
        let mut ys = Vec::with_capacity(times.len());
        let mut y = 0.0;
        for (i, t) in times.iter().enumerate() {
            if i > 0 {
                let dt_ms = (t - times[i - 1]) as f64 / 1e6;
                y += (dt_ms * PX_PER_MS).clamp(MIN_GAP, MAX_GAP);
            }
            ys.push(y);
        }
        let scale = if y > budget { budget / y } else { 1.0 };
        for y in &mut ys {
            *y = top + *y * scale;
        }
        Rows {
            times,
            ys,
            scale,
            top,
        }
    }

    fn y(&self, t: u64) -> f64 {
        match self.times.binary_search(&t) {
            Ok(i) => self.ys[i],
            Err(i) => self.ys.get(i).copied().unwrap_or(self.top),
        }
    }

    fn bottom(&self) -> f64 {
        self.ys.last().copied().unwrap_or(self.top) + 30.0
    }

    /// The smallest distance between rows.
    fn min_gap(&self) -> f64 {
        MIN_GAP * self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::LIMIT;
    use crate::report::test_support::assert_balanced_svg;

    const MS: u64 = 1_000_000;

    fn sample() -> Journal {
        let mut j = Journal::default();
        j.sent(
            1,
            "n1",
            "lin-kv",
            2 * MS,
            r#"{"type":"read","key":1,"msg_id":5}"#,
        );
        j.received(1, 3 * MS);
        j.sent(
            2,
            "c10",
            "n1",
            10 * MS,
            r#"{"type":"echo","echo":"<b>&'x'","msg_id":1}"#,
        );
        j.received(2, 11 * MS);
        j.sent(
            3,
            "n1",
            "c10",
            12 * MS,
            r#"{"type":"error","code":11,"in_reply_to":1}"#,
        );
        j.received(3, 13 * MS);
        j.sent(4, "n1", "n0", 14 * MS, r#"{"type":"gossip","seen":[1,2]}"#);
        j.sent(
            5,
            "c2",
            "n0",
            15 * MS,
            r#"{"type":"echo","echo":"x","msg_id":1}"#,
        );
        j.received(5, 16 * MS);
        j
    }

    #[test]
    fn draws_one_arrow_per_message_in_participant_order() {
        let svg = messages_svg(&sample(), 10 * MS, &[]);
        assert_balanced_svg(&svg);
        assert_eq!(svg.matches("<g class=\"m").count(), 5);
        assert_eq!(svg.matches("marker-end=\"url(#x)\"").count(), 1, "one lost");
        assert_eq!(svg.matches("stroke=\"#FF1E90\" marker-end").count(), 1);
        assert_eq!(svg.matches("stroke=\"#81BFFC\" marker-end").count(), 2);
        assert_eq!(svg.matches("stroke=\"#000000\" marker-end").count(), 2);
        let first = |name: &str| svg.find(&format!(">{name}</text>")).unwrap();
        assert!(first("n0") < first("n1"), "nodes first");
        assert!(first("n1") < first("lin-kv"), "then services");
        assert!(first("lin-kv") < first("c2"), "then clients");
        assert!(first("c2") < first("c10"));
        assert!(svg.contains("&lt;b&gt;&amp;&#39;x&#39;"), "escaped body");
        assert!(svg.contains("c10 → n1, sent 8.0 ms, received 9.0 ms"));
        assert!(
            svg.contains("sent 0.000 ms"),
            "time counts from the first message"
        );
        assert!(!svg.contains(">-"), "no negative time on the axis");
        assert!(
            svg.contains(">workload starts</text>"),
            "the history's start is marked"
        );
        assert!(
            svg.contains(">read {&quot;key&quot;:1}</text>"),
            "label drops ids"
        );
        assert!(svg.contains("never delivered"));
        assert!(!svg.contains("class=\"warn\""));
    }

    fn width_of(svg: &str) -> f64 {
        svg.split("width=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .unwrap()
    }

    /// `clients` clients spread over `nodes` nodes, each sending one request.
    fn crowd(nodes: u64, clients: u64) -> Journal {
        let mut j = Journal::default();
        for c in 0..clients {
            let (client, node) = (format!("c{}", c + 10), format!("n{}", c % nodes));
            j.sent(c, &client, &node, (c + 1) * MS, "{\"type\":\"read\"}");
            j.received(c, (c + 1) * MS + MS / 2);
        }
        j
    }

    #[test]
    fn many_clients_share_a_line_per_node_and_the_picture_fits_1400_px() {
        let svg = messages_svg(&crowd(5, 15), 0, &[]);
        assert_balanced_svg(&svg);
        assert!(width_of(&svg) <= WIDTH, "width {}", width_of(&svg));
        assert_eq!(svg.matches("<line class=\"life\"").count(), 10);
        let at = |label: &str| svg.find(&format!(">{label}</text>")).unwrap();
        assert!(at("n4") < at("clients of n0 (3)"), "nodes before clients");
        assert!(svg.contains("<title>c10 c15 c20</title>"), "members named");
        // Too many nodes for a line per node's clients: one line for them all.
        let svg = messages_svg(&crowd(9, 18), 0, &[]);
        assert!(svg.contains(">clients (18)</text>"));
        assert_eq!(svg.matches("<line class=\"life\"").count(), 10);
        // Few clients keep their own lines.
        let svg = messages_svg(&crowd(3, 3), 0, &[]);
        assert!(svg.contains(">c12</text>") && !svg.contains("clients of"));
    }

    #[test]
    fn long_journals_stay_bounded_and_say_they_were_cut() {
        let mut j = Journal::default();
        for id in 0..LIMIT as u64 + 7 {
            j.sent(id, "n0", "n1", id * 200 * MS, "{\"type\":\"x\"}");
            j.received(id, id * 200 * MS + MS);
        }
        let svg = messages_svg(&j, 0, &[]);
        assert_balanced_svg(&svg);
        assert!(svg.contains("Showing the first 5000 messages only: 7 later messages"));
        let height: f64 = svg
            .split("height=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert!(height <= MAX_HEIGHT + 100.0, "height {height}");
        assert!(
            svg.matches("class=\"hd r\"").count() >= 2 * 10,
            "names repeated"
        );
    }

    #[test]
    fn empty_and_odd_journals_do_not_panic() {
        let svg = messages_svg(&Journal::default(), 0, &[]);
        assert_balanced_svg(&svg);
        assert!(svg.contains("No messages were recorded."));
        let mut j = Journal::default();
        j.sent(1, "n0", "n0", 5, "not json <");
        j.sent(2, "n0", "n1", 9, "{}");
        j.received(2, 3);
        let svg = messages_svg(&j, u64::MAX, &[]);
        assert_balanced_svg(&svg);
        assert!(svg.contains("not json &lt;"));
    }

    #[test]
    fn node_lines_are_grouped_and_labelled_by_service() {
        let mut j = Journal::default();
        for (id, (src, dest)) in [("n3", "n0"), ("n0", "n1"), ("n1", "n2"), ("c9", "n2")]
            .into_iter()
            .enumerate()
        {
            j.sent(id as u64, src, dest, id as u64 * MS, "{\"type\":\"x\"}");
            j.received(id as u64, id as u64 * MS + MS / 2);
        }
        let services = vec![
            (
                "queue".to_string(),
                vec!["n2".to_string(), "n3".to_string()],
            ),
            (
                "giftid".to_string(),
                vec!["n0".to_string(), "n1".to_string()],
            ),
        ];
        let svg = messages_svg(&j, 0, &services);
        assert_balanced_svg(&svg);
        let at = |text: &str| svg.find(text).unwrap_or_else(|| panic!("no {text}"));
        assert!(
            at(">queue</text>") < at(">giftid</text>"),
            "bands in service order"
        );
        assert!(at(">n2</text>") < at(">n3</text>"));
        assert!(at(">n3</text>") < at(">n0</text>"), "queue's nodes first");
        assert!(at(">n1</text>") < at(">c9</text>"), "clients last");
        assert_eq!(svg.matches("class=\"svc\"").count(), 2);
        assert!(svg.contains("<title>service giftid (2 node line(s))</title>"));
        let plain = messages_svg(&j, 0, &[]);
        assert!(!plain.contains("class=\"svc\""), "one binary: no bands");
        assert!(plain.find(">n0</text>").unwrap() < plain.find(">n3</text>").unwrap());
    }
}
