//! A small hand-written SVG writer: how each figure of [`RunResult`] grows with the number of
//! clusters, relative to the smallest run, on log-log axes next to the line of linear growth.

use std::fmt::Write as _;

use crate::RunResult;

/// Plot area in SVG units: left, top, width, height.
const AREA: (f64, f64, f64, f64) = (70.0, 40.0, 520.0, 340.0);

/// One plotted line: label, colour, points (clusters, value relative to the smallest run).
type Series = (&'static str, &'static str, Vec<(f64, f64)>);

/// The plotted figures: label, colour, value of a run (`None`: not measured).
type Figure = (&'static str, &'static str, fn(&RunResult) -> Option<f64>);

const FIGURES: [Figure; 5] = [
    ("convergence wall time", "#1f77b4", |r| r.converge_s),
    ("reconciles", "#ff7f0e", |r| Some(r.reconciles)),
    ("API writes", "#2ca02c", |r| Some(r.writes as f64)),
    ("operator CPU time", "#d62728", |r| Some(r.cpu_s)),
    ("operator peak RSS", "#9467bd", |r| Some(r.peak_rss_mib)),
];

/// The SVG document for `runs` (sorted by cluster count; at least two runs make a line).
pub fn scaling(runs: &[RunResult]) -> String {
    let mut svg = String::new();
    let (left, top, width, height) = AREA;
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="820" height="440" viewBox="0 0 820 440" font-family="sans-serif" font-size="12">
<rect width="820" height="440" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="14">capt-host run: growth with the number of clusters (relative to the smallest run; log-log)</text>
"##,
        left + width / 2.0
    );
    let Some(base) = runs.first() else {
        svg.push_str("</svg>\n");
        return svg;
    };
    let n0 = base.clusters as f64;
    let n_max = runs.last().map_or(n0, |r| r.clusters as f64);
    // Relative values of every figure, next to linear growth (n / n0).
    let series: Vec<Series> = FIGURES
        .iter()
        .map(|(label, colour, value)| {
            let points = value(base).map_or_else(Vec::new, |v0| {
                runs.iter()
                    .filter_map(|r| Some((r.clusters as f64, value(r)? / v0)))
                    .filter(|(_, y)| *y > 0.0)
                    .collect()
            });
            (*label, *colour, points)
        })
        .collect();
    let ys = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(_, y)| *y));
    let (y_low, y_high) = ys.fold((1.0f64, n_max / n0), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (x_lo, x_hi) = (
        n0.log10().floor(),
        n_max.log10().ceil().max(n0.log10().floor() + 1.0),
    );
    let (y_lo, y_hi) = (y_low.log10().floor(), y_high.log10().ceil().max(1.0));
    let x = |n: f64| left + (n.log10() - x_lo) / (x_hi - x_lo) * width;
    let y = |v: f64| top + height - (v.log10() - y_lo) / (y_hi - y_lo) * height;

    // Grid and axes: one line per decade.
    for d in x_lo as i32..=x_hi as i32 {
        let px = x(10f64.powi(d));
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{}" stroke="#ddd"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            top + height,
            top + height + 18.0,
            10f64.powi(d)
        );
    }
    for d in y_lo as i32..=y_hi as i32 {
        let py = y(10f64.powi(d));
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">×{}</text>"##,
            left + width,
            left - 6.0,
            py + 4.0,
            10f64.powi(d)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#333"/>
<text x="{}" y="{}" text-anchor="middle">clusters</text>
<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">value / value at {} clusters</text>"##,
        left + width / 2.0,
        top + height + 36.0,
        top + height / 2.0,
        top + height / 2.0,
        base.clusters
    );

    // Linear growth, then the figures.
    let _ = writeln!(
        svg,
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888" stroke-dasharray="6 4"/>"##,
        x(n0),
        y(1.0),
        x(n_max),
        y(n_max / n0)
    );
    for (_, colour, points) in &series {
        let path: Vec<String> = points
            .iter()
            .map(|(n, v)| format!("{:.1},{:.1}", x(*n), y(*v)))
            .collect();
        let _ = writeln!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"##,
            path.join(" ")
        );
        for (n, v) in points {
            let _ = writeln!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"/>"##,
                x(*n),
                y(*v)
            );
        }
    }

    // Legend.
    let legend_x = left + width + 20.0;
    let _ = writeln!(
        svg,
        r##"<line x1="{legend_x}" y1="{top}" x2="{}" y2="{top}" stroke="#888" stroke-dasharray="6 4"/><text x="{}" y="{}">linear growth</text>"##,
        legend_x + 24.0,
        legend_x + 30.0,
        top + 4.0
    );
    for (i, (label, colour, _)) in series.iter().enumerate() {
        let ly = top + 24.0 * (i as f64 + 1.0);
        let _ = writeln!(
            svg,
            r##"<line x1="{legend_x}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{label}</text>"##,
            legend_x + 24.0,
            legend_x + 30.0,
            ly + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
