//! Jepsen's performance plots (`latency-raw`, `rate`) and a clock-offset plot, as SVG.
//!
//! They show when operations slowed down, failed or stopped, and the shaded fault periods
//! show whether that lines up with the nemesis. Layout and colours follow Jepsen's gnuplot
//! graphs so a reader of Maelstrom results finds the same picture: the plot on the left,
//! the legend on the right, each fault a band along the top with lines at its ends.

use std::error::Error;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::faults::{self, Interval};
use crate::history::{History, OpType};

/// Jepsen's colours for completions.
pub const OK: RGBColor = RGBColor(0x81, 0xBF, 0xFC);
pub const INFO: RGBColor = RGBColor(0xFF, 0xA4, 0x00);
pub const FAIL: RGBColor = RGBColor(0xFF, 0x1E, 0x90);

const WIDTH: u32 = 900;
const HEIGHT: u32 = 400;
const LEGEND_WIDTH: u32 = 220;
const LEGEND_ROW: i32 = 18;
const FONT: &str = "sans-serif";
const SHAPES: usize = 8;
/// Latencies below one microsecond are drawn at one microsecond (log scale).
const LATENCY_FLOOR_MS: f64 = 0.001;
/// Per-node line colours of the clock plot.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x2E, 0x6F, 0xD8),
    RGBColor(0xE0, 0x59, 0x2A),
    RGBColor(0x3B, 0xA5, 0x5C),
    RGBColor(0x9B, 0x59, 0xB6),
    RGBColor(0xC9, 0xA2, 0x27),
    RGBColor(0x1B, 0xA3, 0xB5),
    RGBColor(0xD6, 0x45, 0x7A),
    RGBColor(0x6B, 0x6B, 0x6B),
];

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn Error>>;
/// A rate line: marker shape, colour and (time s, ops/s) points.
type Series = (usize, RGBColor, Vec<(f64, f64)>);

/// How a legend entry is drawn.
enum Swatch {
    Marker(usize, RGBColor),
    LineMarker(usize, RGBColor),
    Line(RGBColor),
    Band(RGBColor),
}

struct Entry {
    label: String,
    swatch: Swatch,
}

/// The outcomes in legend order, with their colours.
const OUTCOMES: [(OpType, RGBColor); 3] =
    [(OpType::Ok, OK), (OpType::Info, INFO), (OpType::Fail, FAIL)];

fn outcome_colour(t: OpType) -> RGBColor {
    match t {
        OpType::Ok => OK,
        OpType::Fail => FAIL,
        _ => INFO,
    }
}

/// One point per completed client op, at its invocation time, at its latency (log scale).
pub fn latency_svg(history: &History, intervals: &[Interval]) -> String {
    let fs = client_fs(history);
    let points: Vec<(usize, OpType, f64, f64)> = history
        .pairs()
        .into_iter()
        .filter_map(|(invoke, done)| {
            let done = done?;
            let f = fs.iter().position(|f| *f == invoke.f)?;
            let latency = done.time_ns.saturating_sub(invoke.time_ns) as f64 / 1e6;
            let outcome = match done.op_type {
                OpType::Invoke => OpType::Info,
                t => t,
            };
            Some((
                f,
                outcome,
                secs(invoke.time_ns),
                latency.max(LATENCY_FLOOR_MS),
            ))
        })
        .collect();
    let mut legend = series_entries(&fs, false, |f, t| {
        points.iter().any(|p| p.0 == f && p.1 == t)
    });
    legend.extend(fault_entries(intervals));
    let (lo, hi) = points.iter().fold((f64::INFINITY, 0f64), |(lo, hi), p| {
        (lo.min(p.3), hi.max(p.3))
    });
    let (y_lo, y_hi) = if points.is_empty() {
        (1.0, 100.0)
    } else {
        log_range(lo, hi)
    };
    let x_max = x_extent(history, intervals);
    let title = format!("{} latency", title_of(&fs));
    render(height_for(&legend), |root| {
        let (plot, side) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&title, (FONT, 18))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, (y_lo..y_hi).log_scale())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("Time (s)")
            .y_desc("Latency (ms)")
            .x_labels(10)
            .y_labels(60)
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| decade_label(*v))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()?;
        let frame = chart.plotting_area().get_pixel_range();
        shade(
            root,
            intervals,
            |s| chart.backend_coord(&(s, y_lo)).0,
            &frame,
        )?;
        draw_frame(root, &frame)?;
        for &(f, outcome, x, y) in &points {
            let at = chart.backend_coord(&(x, y));
            draw_marker(root, f, at, outcome_colour(outcome))?;
        }
        if points.is_empty() {
            note(root, &frame, "No completed client operations")?;
        }
        draw_legend(&side, &legend)
    })
}

/// Completions per second of each (f, outcome), in buckets over the run.
pub fn rate_svg(history: &History, intervals: &[Interval]) -> String {
    let fs = client_fs(history);
    let x_max = x_extent(history, intervals);
    let width = bucket_width(x_max);
    let buckets = ((x_max / width).ceil() as usize).clamp(1, 100_000);
    let counts = rate_counts(history, &fs, width, buckets);
    let series = rate_series(&counts, width, x_max);
    let mut legend = series_entries(&fs, true, |f, t| {
        let o = OUTCOMES.iter().position(|(x, _)| *x == t).unwrap_or(1);
        counts[f * OUTCOMES.len() + o].iter().any(|n| *n > 0)
    });
    legend.extend(fault_entries(intervals));
    let y_max = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(0f64, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let title = format!("{} rate", title_of(&fs));
    render(height_for(&legend), |root| {
        let (plot, side) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&title, (FONT, 18))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("Time (s)")
            .y_desc("Throughput (hz)")
            .x_labels(10)
            .y_labels(8)
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()?;
        let frame = chart.plotting_area().get_pixel_range();
        shade(
            root,
            intervals,
            |s| chart.backend_coord(&(s, 0.0)).0,
            &frame,
        )?;
        draw_frame(root, &frame)?;
        for (shape, colour, points) in &series {
            chart.draw_series(LineSeries::new(points.iter().copied(), colour))?;
            for p in points {
                draw_marker(root, *shape, chart.backend_coord(p), *colour)?;
            }
        }
        if series.is_empty() {
            note(root, &frame, "No completed client operations")?;
        }
        draw_legend(&side, &legend)
    })
}

/// Each node's clock offset in milliseconds (`(history ns, offset ms)` samples) as a step
/// line: an offset holds until the next sample.
pub fn clock_svg(clocks: &[(String, Vec<(u64, f64)>)], intervals: &[Interval]) -> String {
    let series = clock_series(clocks);
    let last_ns = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .chain(intervals.iter().map(|i| i.end_ns))
        .max()
        .unwrap_or(0);
    let x_max = if last_ns > 0 { secs(last_ns) } else { 1.0 };
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold((0f64, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = if hi > lo { (hi - lo) * 0.1 } else { 1.0 };
    let (y_lo, y_hi) = (lo - pad, hi + pad);
    let mut legend: Vec<Entry> = series
        .iter()
        .enumerate()
        .map(|(i, (node, _))| Entry {
            label: node.to_string(),
            swatch: Swatch::Line(PALETTE[i % PALETTE.len()]),
        })
        .collect();
    legend.extend(fault_entries(intervals));
    let empty = series.iter().all(|s| s.1.is_empty());
    render(height_for(&legend), |root| {
        let (plot, side) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot)
            .caption("clock offsets", (FONT, 18))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, y_lo..y_hi)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("Time (s)")
            .y_desc("Offset (ms)")
            .x_labels(10)
            .y_labels(8)
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()?;
        let frame = chart.plotting_area().get_pixel_range();
        shade(
            root,
            intervals,
            |s| chart.backend_coord(&(s, 0.0)).0,
            &frame,
        )?;
        draw_frame(root, &frame)?;
        let zero = [(0.0, 0.0), (x_max, 0.0)];
        chart.draw_series(LineSeries::new(zero, RGBColor(0xBB, 0xBB, 0xBB)))?;
        for (i, (_, samples)) in series.iter().enumerate() {
            let path = step_path(samples, x_max);
            let colour = PALETTE[i % PALETTE.len()];
            chart.draw_series(LineSeries::new(path, colour.stroke_width(2)))?;
        }
        if empty {
            note(root, &frame, "No clock offsets recorded")?;
        }
        draw_legend(&side, &legend)
    })
}

/// Completions per bucket of each (f, outcome), indexed `f * OUTCOMES.len() + outcome`.
fn rate_counts(history: &History, fs: &[String], width: f64, buckets: usize) -> Vec<Vec<u32>> {
    let mut counts = vec![vec![0u32; buckets]; fs.len() * OUTCOMES.len()];
    for op in history.completions() {
        let Some(f) = fs.iter().position(|f| *f == op.f) else {
            continue;
        };
        let o = OUTCOMES
            .iter()
            .position(|(t, _)| *t == op.op_type)
            .unwrap_or(1);
        let b = ((secs(op.time_ns) / width) as usize).min(buckets - 1);
        counts[f * OUTCOMES.len() + o][b] += 1;
    }
    counts
}

/// One line per (f, outcome) that happened: each bucket's rate at its middle.
fn rate_series(counts: &[Vec<u32>], width: f64, x_max: f64) -> Vec<Series> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, c)| c.iter().any(|n| *n > 0))
        .map(|(i, c)| {
            let points = c
                .iter()
                .enumerate()
                .map(|(b, n)| {
                    let start = b as f64 * width;
                    let end = ((b + 1) as f64 * width).min(x_max);
                    let span = if end > start { end - start } else { width };
                    ((start + end) / 2.0, f64::from(*n) / span)
                })
                .collect();
            (i / OUTCOMES.len(), OUTCOMES[i % OUTCOMES.len()].1, points)
        })
        .collect()
}

/// Each node's finite samples, in time order.
fn clock_series(clocks: &[(String, Vec<(u64, f64)>)]) -> Vec<(&str, Vec<(u64, f64)>)> {
    clocks
        .iter()
        .map(|(node, samples)| {
            let mut s: Vec<(u64, f64)> = samples
                .iter()
                .copied()
                .filter(|p| p.1.is_finite())
                .collect();
            s.sort_by_key(|p| p.0);
            (node.as_str(), s)
        })
        .collect()
}

/// The samples as a step line in seconds: each offset holds until the next sample, the
/// last one until `x_max`.
fn step_path(samples: &[(u64, f64)], x_max: f64) -> Vec<(f64, f64)> {
    let mut path = Vec::with_capacity(samples.len() * 2 + 1);
    for (t, v) in samples {
        if let Some(&(_, prev)) = path.last() {
            path.push((secs(*t), prev));
        }
        path.push((secs(*t), *v));
    }
    if let Some(&(_, v)) = path.last() {
        path.push((x_max, v));
    }
    path
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The run's length in seconds (at least a nominal second, so axes never collapse).
fn x_extent(history: &History, intervals: &[Interval]) -> f64 {
    let last = history
        .ops
        .iter()
        .map(|op| op.time_ns)
        .chain(intervals.iter().map(|i| i.end_ns))
        .max()
        .unwrap_or(0);
    if last > 0 {
        secs(last)
    } else {
        1.0
    }
}

/// The client `f`s, sorted; their position picks the marker shape.
fn client_fs(history: &History) -> Vec<String> {
    let mut fs: Vec<String> = history.invocations().map(|op| op.f.clone()).collect();
    fs.sort();
    fs.dedup();
    fs
}

fn title_of(fs: &[String]) -> String {
    if fs.is_empty() {
        return "client".to_string();
    }
    super::shorten(&fs.join(", "), 60)
}

/// A log-scale range a little wider than `lo..hi`, stretched to the nearest power of ten
/// when it would otherwise contain none (the only labelled ticks).
fn log_range(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = (lo / 1.4, hi * 1.4);
    let (below, above) = (lo.log10().floor(), hi.log10().ceil());
    if lo.log10().ceil() <= hi.log10().floor() {
        (lo, hi)
    } else if lo.log10() - below <= above - hi.log10() {
        (10f64.powf(below) / 1.05, hi)
    } else {
        (lo, 10f64.powf(above) * 1.05)
    }
}

/// Buckets of a round 1, 2 or 5 × 10^k seconds, about 40 over the run, at least 0.1 s.
fn bucket_width(duration_s: f64) -> f64 {
    let raw = (duration_s / 40.0).max(0.1);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|w| *w >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// Legend entries `f outcome` for each series present; `lines` draws a line through the
/// marker, for line plots.
fn series_entries(
    fs: &[String],
    lines: bool,
    present: impl Fn(usize, OpType) -> bool,
) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (i, f) in fs.iter().enumerate() {
        for (t, colour) in OUTCOMES {
            if present(i, t) {
                entries.push(Entry {
                    label: format!("{f} {}", t.name()),
                    swatch: if lines {
                        Swatch::LineMarker(i, colour)
                    } else {
                        Swatch::Marker(i, colour)
                    },
                });
            }
        }
    }
    entries
}

fn fault_entries(intervals: &[Interval]) -> Vec<Entry> {
    faults::kinds(intervals)
        .into_iter()
        .map(|kind| Entry {
            label: kind.to_string(),
            swatch: Swatch::Band(faults::colour(kind)),
        })
        .collect()
}

/// Tall enough for the legend.
fn height_for(legend: &[Entry]) -> u32 {
    HEIGHT.max(60 + legend.len() as u32 * LEGEND_ROW as u32)
}

/// Draws onto a fresh SVG; any drawing error yields a small SVG saying so.
fn render(height: u32, draw: impl FnOnce(&Area) -> Drawn) -> String {
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root));
        drawn.and_then(|()| root.present().map_err(Into::into))
    };
    match drawn {
        Ok(()) => svg,
        Err(e) => format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\">\
             <text x=\"20\" y=\"30\">Could not draw this plot: {}</text></svg>\n",
            super::escape(&e.to_string())
        ),
    }
}

/// Each fault as a light tint over the plot, a solid band along the top (one row per
/// kind) and a line at each end, as Jepsen draws nemesis activity.
fn shade(
    root: &Area,
    intervals: &[Interval],
    x_px: impl Fn(f64) -> i32,
    (xr, yr): &(std::ops::Range<i32>, std::ops::Range<i32>),
) -> Drawn {
    let kinds = faults::kinds(intervals);
    let band = ((yr.end - yr.start) / 14).max(4);
    for i in intervals {
        let colour = faults::colour(&i.kind);
        let row = kinds.iter().position(|k| *k == i.kind).unwrap_or(0) as i32;
        let x0 = x_px(secs(i.start_ns)).clamp(xr.start, xr.end);
        let x1 = x_px(secs(i.end_ns)).clamp(xr.start, xr.end).max(x0 + 1);
        root.draw(&Rectangle::new(
            [(x0, yr.start), (x1, yr.end)],
            colour.mix(0.25).filled(),
        ))?;
        let top = yr.start + row * band;
        root.draw(&Rectangle::new(
            [(x0, top), (x1, top + band)],
            colour.filled(),
        ))?;
        for x in [x0, x1] {
            root.draw(&PathElement::new(vec![(x, yr.start), (x, yr.end)], colour))?;
        }
    }
    Ok(())
}

fn draw_frame(root: &Area, (xr, yr): &(std::ops::Range<i32>, std::ops::Range<i32>)) -> Drawn {
    root.draw(&Rectangle::new(
        [(xr.start, yr.start), (xr.end - 1, yr.end - 1)],
        BLACK.stroke_width(1),
    ))?;
    Ok(())
}

fn note(root: &Area, (xr, yr): &(std::ops::Range<i32>, std::ops::Range<i32>), text: &str) -> Drawn {
    let style = TextStyle::from((FONT, 17).into_font())
        .color(&RGBColor(0x77, 0x77, 0x77))
        .pos(Pos::new(HPos::Center, VPos::Center));
    let at = ((xr.start + xr.end) / 2, (yr.start + yr.end) / 2);
    root.draw(&Text::new(text.to_string(), at, style))?;
    Ok(())
}

/// Gnuplot's point types: open square, circle, triangle, diamond, inverted triangle, then
/// the filled square, circle and triangle.
fn draw_marker(area: &Area, shape: usize, (x, y): (i32, i32), colour: RGBColor) -> Drawn {
    let line = colour.stroke_width(1);
    let fill = colour.filled();
    let triangle = vec![(x, y - 4), (x + 4, y + 3), (x - 4, y + 3), (x, y - 4)];
    match shape % SHAPES {
        0 => area.draw(&Rectangle::new([(x - 3, y - 3), (x + 3, y + 3)], line))?,
        1 => area.draw(&Circle::new((x, y), 3, line))?,
        2 => area.draw(&PathElement::new(triangle, line))?,
        3 => {
            let diamond = vec![(x, y - 4), (x + 4, y), (x, y + 4), (x - 4, y), (x, y - 4)];
            area.draw(&PathElement::new(diamond, line))?
        }
        4 => {
            let down = vec![(x, y + 4), (x + 4, y - 3), (x - 4, y - 3), (x, y + 4)];
            area.draw(&PathElement::new(down, line))?
        }
        5 => area.draw(&Rectangle::new([(x - 3, y - 3), (x + 3, y + 3)], fill))?,
        6 => area.draw(&Circle::new((x, y), 3, fill))?,
        _ => area.draw(&Polygon::new(triangle, fill))?,
    }
    Ok(())
}

/// Jepsen's key: labels right-aligned, each followed by its swatch.
fn draw_legend(area: &Area, entries: &[Entry]) -> Drawn {
    let style = TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    let (text_x, swatch_x) = (140, 172);
    for (i, entry) in entries.iter().enumerate() {
        let y = 40 + i as i32 * LEGEND_ROW;
        area.draw(&Text::new(entry.label.clone(), (text_x, y), style.clone()))?;
        let span = vec![(swatch_x - 20, y), (swatch_x + 20, y)];
        match entry.swatch {
            Swatch::Marker(shape, colour) => draw_marker(area, shape, (swatch_x, y), colour)?,
            Swatch::LineMarker(shape, colour) => {
                area.draw(&PathElement::new(span, colour))?;
                draw_marker(area, shape, (swatch_x, y), colour)?;
            }
            Swatch::Line(colour) => area.draw(&PathElement::new(span, colour.stroke_width(2)))?,
            Swatch::Band(colour) => area.draw(&Rectangle::new(
                [(swatch_x - 20, y - 3), (swatch_x + 20, y + 3)],
                colour.filled(),
            ))?,
        }
    }
    Ok(())
}

/// A plain decimal with at most four places and no trailing zeros.
fn fmt_num(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Labels only powers of ten, leaving the ticks between them unlabelled, as gnuplot does.
fn decade_label(v: f64) -> String {
    let exp = v.log10().round();
    if v > 0.0 && (v.log10() - exp).abs() < 1e-6 {
        fmt_num(10f64.powi(exp as i32))
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::faults::intervals;
    use crate::report::test_support::*;

    fn sample() -> History {
        let mut h = History::default();
        call(&mut h, 0, "read", 0, 3, OpType::Ok);
        nemesis(&mut h, "start-partition", 100);
        call(&mut h, 1, "write", 120, 150, OpType::Fail);
        call(&mut h, 0, "read", 200, 1200, OpType::Info);
        nemesis(&mut h, "stop-partition", 1500);
        call(&mut h, 2, "read", 1600, 1601, OpType::Ok);
        h
    }

    #[test]
    fn latency_has_one_marker_per_completed_op_and_shading() {
        let h = sample();
        let svg = latency_svg(&h, &intervals(&h));
        assert_balanced_svg(&svg);
        // "read" has shape 0 (open squares), "write" shape 1 (open circles); one extra each
        // for the legend swatch.
        let ok_squares = svg
            .lines()
            .filter(|l| l.starts_with("<rect") && l.contains("fill=\"none\""))
            .filter(|l| l.contains("stroke=\"#81BFFC\""))
            .count();
        assert_eq!(ok_squares, 2 + 1);
        assert_eq!(svg.matches("stroke=\"#FFA400\"").count(), 1 + 1);
        assert_eq!(svg.matches("<circle").count(), 1 + 1);
        assert!(svg.contains("fill=\"#E9DCA0\""), "partition band");
        for label in [
            "read ok",
            "read info",
            "write fail",
            "partition",
            "Latency (ms)",
        ] {
            assert!(svg.contains(label), "missing {label}");
        }
        assert!(!svg.contains("write ok"));
    }

    #[test]
    fn rate_has_a_line_per_series() {
        let h = sample();
        let svg = rate_svg(&h, &intervals(&h));
        assert_balanced_svg(&svg);
        assert_eq!(
            svg.lines()
                .filter(|l| l.starts_with("<polyline") && l.contains("#81BFFC"))
                .filter(|l| l.matches(',').count() > 2)
                .count(),
            1,
            "one multi-point line for read ok"
        );
        assert!(svg.contains("Throughput (hz)"));
        assert!(svg.contains("write fail"));
    }

    #[test]
    fn the_phases_after_the_main_one_are_labelled() {
        let mut h = sample();
        call(&mut h, 3, "read", 12_000, 12_010, OpType::Ok);
        h.ops
            .iter_mut()
            .rev()
            .take(2)
            .for_each(|op| op.final_read = true);
        let periods = crate::report::faults::periods(&h);
        for svg in [latency_svg(&h, &periods), rate_svg(&h, &periods)] {
            assert_balanced_svg(&svg);
            assert!(svg.contains("recovery wait") && svg.contains("final phase"));
            assert!(svg.contains("fill=\"#C9D6E8\""), "final phase band");
        }
        assert!(!latency_svg(&sample(), &periods[..1]).contains("final phase"));
    }

    #[test]
    fn clock_draws_steps_per_node() {
        let clocks = vec![
            ("n0".to_string(), vec![(0, 0.0), (1_000_000_000, 250.0)]),
            ("n1".to_string(), vec![(500_000_000, -40.0)]),
        ];
        let svg = clock_svg(&clocks, &[]);
        assert_balanced_svg(&svg);
        assert!(svg.contains(">\nn1\n</text>"), "legend names each node");
        assert!(svg.contains("#2E6FD8") && svg.contains("#E0592A"));
        assert!(svg.contains("Offset (ms)"));
    }

    #[test]
    fn degenerate_inputs_draw_an_empty_chart_with_a_note() {
        let mut only_nemesis = History::default();
        nemesis(&mut only_nemesis, "start-kill", 0);
        let mut single = History::default();
        single.push(op(
            0,
            OpType::Invoke,
            crate::history::Process::Worker(0),
            "read",
            crate::edn::Edn::Nil,
        ));
        let mut instant = History::default();
        call(&mut instant, 0, "read", 0, 0, OpType::Ok);
        for h in [History::default(), only_nemesis, single, instant] {
            let iv = intervals(&h);
            for svg in [latency_svg(&h, &iv), rate_svg(&h, &iv)] {
                assert_balanced_svg(&svg);
            }
        }
        assert!(latency_svg(&History::default(), &[]).contains("No completed client operations"));
        let svg = clock_svg(&[("n0".to_string(), vec![])], &[]);
        assert!(svg.contains("No clock offsets recorded"));
        assert_balanced_svg(&clock_svg(&[], &[]));
        assert_balanced_svg(&clock_svg(&[("n0".into(), vec![(0, f64::NAN)])], &[]));
    }

    #[test]
    fn helpers() {
        assert_eq!(bucket_width(30.0), 1.0);
        assert_eq!(bucket_width(10.0), 0.5);
        assert_eq!(bucket_width(0.0), 0.1);
        assert_eq!(decade_label(0.001), "0.001");
        assert_eq!(decade_label(100.0), "100");
        assert_eq!(decade_label(200.0), "");
        assert_eq!(fmt_num(2.5000001), "2.5");
        assert_eq!(fmt_num(-0.00001), "0");
        let (lo, hi) = log_range(1.5, 3.0);
        assert!(lo < 1.0 && hi > 3.0, "stretched down to 1: {lo} {hi}");
        let (lo, hi) = log_range(30.0, 90.0);
        assert!(lo < 30.0 && hi > 100.0, "stretched up to 100: {lo} {hi}");
        assert_eq!(log_range(0.5, 20.0), (0.5 / 1.4, 28.0));
    }
}
