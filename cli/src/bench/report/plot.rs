//! A hand-written SVG chart: copy time (log scale) against database size, one
//! line per copy method, from row 1's medians.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::bench::results::Results;

const W: f64 = 720.0;
const H: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 260.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 6] = [
    "#1b9e77", "#66a61e", "#d95f02", "#7570b3", "#e7298a", "#666666",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart as an SVG document.
pub fn copy_time_svg(r: &Results) -> String {
    // method -> [(size GiB, median ms)]
    let mut series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for m in r.measurements.iter().filter(|m| m.row == 1) {
        if let Some(size) = m.size_gib {
            if m.stats.median > 0.0 {
                series
                    .entry(&m.method)
                    .or_default()
                    .push((size, m.stats.median));
            }
        }
    }
    let points = series.values().flatten();
    let (mut xmax, mut ymin, mut ymax) = (0.0f64, f64::MAX, 0.0f64);
    for &(x, y) in points {
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if series.is_empty() {
        (xmax, ymin, ymax) = (1.0, 1.0, 10.0);
    }
    let (lo, hi) = (
        ymin.log10().floor(),
        ymax.log10().ceil().max(ymin.log10().floor() + 1.0),
    );
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let sx = |x: f64| LEFT + pw * x / (xmax * 1.05);
    let sy = |y: f64| TOP + ph * (1.0 - (y.log10() - lo) / (hi - lo));

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="15">Time to copy a database (log scale) by size</text>"#
    );
    // Axes and decade grid lines.
    let _ = writeln!(
        s,
        r#"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        TOP + ph,
        LEFT + pw,
        TOP + ph
    );
    let _ = writeln!(
        s,
        r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>"#,
        TOP + ph
    );
    let mut decade = lo;
    while decade <= hi {
        let y = sy(10f64.powf(decade));
        let label = match 10f64.powf(decade) {
            v if v >= 1000.0 => format!("{} s", v / 1000.0),
            v => format!("{v} ms"),
        };
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0
        );
        decade += 1.0;
    }
    let mut sizes: Vec<f64> = series.values().flatten().map(|p| p.0).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    for x in &sizes {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} GiB</text>"#,
            sx(*x),
            TOP + ph + 18.0,
            crate::bench::args::trim_float(*x)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">database size</text>"#,
        LEFT + pw / 2.0,
        H - 14.0
    );
    for (i, (method, pts)) in series.iter_mut().enumerate() {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for &(x, y) in pts.iter() {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                sx(x),
                sy(y)
            );
        }
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = LEFT + pw + 16.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            esc(method)
        );
    }
    s.push_str("</svg>\n");
    s
}
