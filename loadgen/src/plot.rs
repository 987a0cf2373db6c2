//! Latency-percentile curves as a hand-written SVG: x is the percentile on a log scale of
//! 1/(1 - p) (0, 90, 99, ... 99.999), y the latency in µs on a log scale.

use std::fmt::Write as _;

use crate::report::{axis_of_percentile, Report, CURVE_DECADES};

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 64.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

/// "50 µs", "1 ms", "2 s".
pub fn format_us(us: f64) -> String {
    let (v, unit) = if us >= 1e6 {
        (us / 1e6, "s")
    } else if us >= 1e3 {
        (us / 1e3, "ms")
    } else {
        (us, "µs")
    };
    if v >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// One curve to draw: its legend and (percentile, µs) points.
pub struct Series<'a> {
    pub label: String,
    pub points: &'a [[f64; 2]],
}

impl<'a> Series<'a> {
    pub fn of(r: &'a Report) -> Series<'a> {
        let mut label = format!(
            "{}: {:.0} ops/s, p50 {}, p99 {}",
            r.label,
            r.throughput_ops_s,
            format_us(r.latency_us.p50 as f64),
            format_us(r.latency_us.p99 as f64)
        );
        if let Some(s) = &r.server {
            let _ = write!(label, ", server {:.1} µs CPU/op", s.cpu_us_per_op);
        }
        Series {
            label,
            points: &r.curve,
        }
    }
}

/// Draws the series on one chart.
pub fn svg(title: &str, series: &[Series<'_>]) -> String {
    let values = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p[1]))
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = values.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (mut d_lo, mut d_hi) = if hi > 0.0 {
        (lo.log10().floor(), hi.log10().ceil())
    } else {
        (0.0, 3.0)
    };
    if d_hi <= d_lo {
        d_hi = d_lo + 1.0;
    }
    d_lo = d_lo.max(0.0);
    if d_hi <= d_lo {
        d_hi = d_lo + 1.0;
    }
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of =
        |pct: f64| LEFT + plot_w * (axis_of_percentile(pct) / CURVE_DECADES as f64).clamp(0.0, 1.0);
    let y_of = |us: f64| {
        let l = us.max(1.0).log10();
        TOP + plot_h * (1.0 - ((l - d_lo) / (d_hi - d_lo)).clamp(0.0, 1.0))
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    // Horizontal grid: decades, with lighter lines at 2x and 5x.
    let mut decade = d_lo;
    while decade <= d_hi + 1e-9 {
        let v = 10f64.powf(decade);
        let y = y_of(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#bbb"/>"##,
            WIDTH - RIGHT
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            escape(&format_us(v))
        );
        if decade < d_hi - 1e-9 {
            for m in [2.0, 5.0] {
                let y = y_of(v * m);
                let _ = writeln!(
                    s,
                    r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/>"##,
                    WIDTH - RIGHT
                );
            }
        }
        decade += 1.0;
    }
    // Vertical grid at 0, 90, 99, 99.9, ...
    for (i, label) in ["0", "90", "99", "99.9", "99.99", "99.999"]
        .iter()
        .enumerate()
    {
        let x = LEFT + plot_w * i as f64 / CURVE_DECADES as f64;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#bbb"/>"##,
            TOP + plot_h
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            TOP + plot_h + 18.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 14.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
    );
    for (i, series) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut pts = String::new();
        for p in series
            .points
            .iter()
            .filter(|p| p[0].is_finite() && p[1].is_finite())
        {
            let _ = write!(pts, "{:.1},{:.1} ", x_of(p[0]), y_of(p[1]));
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.trim_end()
        );
        // Legend, top left inside the plot.
        let ly = TOP + 16.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/>"#,
            LEFT + 10.0,
            LEFT + 34.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 40.0,
            ly + 4.0,
            escape(&series.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The chart of saved reports; the title names the workloads.
pub fn svg_of_reports(reports: &[Report]) -> String {
    let mut workloads: Vec<String> = reports
        .iter()
        .map(|r| {
            format!(
                "{} {}x{} {} B",
                r.workload, r.sessions, r.inflight, r.value_size
            )
        })
        .collect();
    workloads.dedup();
    let title = format!("Latency by percentile: {}", workloads.join(" | "));
    let series: Vec<Series<'_>> = reports.iter().map(Series::of).collect();
    svg(&title, &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that tags open and close in order (no XML parser needed for our own output).
    fn balanced(svg: &str) -> Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let end = rest[start..].find('>').ok_or("unclosed <")? + start;
            let tag = &rest[start + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
                if open != name {
                    return Err(format!("<{open}> closed by </{name}>"));
                }
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap_or("").to_owned());
            }
            rest = &rest[end + 1..];
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed: {stack:?}"))
        }
    }

    fn curve(scale: f64) -> Vec<[f64; 2]> {
        (0..=200)
            .map(|i| {
                let x = i as f64 / 40.0;
                [
                    crate::report::percentile_at(x),
                    scale * (1.0 + x * x * 10.0),
                ]
            })
            .collect()
    }

    #[test]
    fn svg_is_balanced_and_has_one_polyline_per_series() {
        let a = curve(50.0);
        let b = curve(300.0);
        let out = svg(
            "set 16x64 <100 B> & more",
            &[
                Series {
                    label: "zookeeper \"3.8\"".into(),
                    points: &a,
                },
                Series {
                    label: "rzk".into(),
                    points: &b,
                },
            ],
        );
        balanced(&out).unwrap();
        assert!(out.starts_with("<svg") && out.trim_end().ends_with("</svg>"));
        assert_eq!(out.matches("<polyline").count(), 2);
        assert!(out.contains("&lt;100 B&gt; &amp; more"));
        assert!(out.contains("zookeeper &quot;3.8&quot;"));
        assert!(!out.contains("NaN") && !out.contains("inf"));
        for label in ["99.999", "99.9", ">90<", "10 µs", "1 ms"] {
            assert!(out.contains(label), "{label}");
        }
    }

    #[test]
    fn points_stay_inside_the_plot_area() {
        let pts = curve(1.0);
        let out = svg(
            "t",
            &[Series {
                label: "x".into(),
                points: &pts,
            }],
        );
        let line = out.lines().find(|l| l.starts_with("<polyline")).unwrap();
        let coords = line
            .split("points=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches("\"/>");
        for pair in coords.split(' ') {
            let (x, y) = pair.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((LEFT..=WIDTH - RIGHT).contains(&x), "x {x}");
            assert!((TOP..=HEIGHT - BOTTOM).contains(&y), "y {y}");
        }
    }

    #[test]
    fn empty_and_degenerate_input_still_draws() {
        balanced(&svg("empty", &[])).unwrap();
        let flat = [[0.0, 7.0], [99.999, 7.0]];
        let out = svg(
            "flat",
            &[Series {
                label: "f".into(),
                points: &flat,
            }],
        );
        balanced(&out).unwrap();
        assert!(!out.contains("NaN"));
    }

    #[test]
    fn unit_labels() {
        assert_eq!(format_us(1.0), "1 µs");
        assert_eq!(format_us(2.5), "2.5 µs");
        assert_eq!(format_us(100.0), "100 µs");
        assert_eq!(format_us(1000.0), "1 ms");
        assert_eq!(format_us(1500.0), "1.5 ms");
        assert_eq!(format_us(2e6), "2 s");
    }
}
