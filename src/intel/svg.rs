//! Charts as inline SVG, written by hand (no plotting crate to compile): a line chart of
//! series over dates, a horizontal bar chart, and a reliability diagram. Text is escaped;
//! the output has no scripts and no external references.

use std::fmt::Write;

/// Colours of series, in order.
const PALETTE: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939",
];

/// Escape text for XML/HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn nice_max(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= x {
            return m * mag;
        }
    }
    10.0 * mag
}

/// A line chart: `labels` on the x axis (dates), one polyline per series.
pub fn line_chart(title: &str, labels: &[String], series: &[(String, Vec<f64>)]) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 300.0, 50.0, 180.0, 30.0, 40.0);
    let max = nice_max(
        series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .fold(0.0, f64::max),
    );
    let n = labels.len().max(2);
    let x = |i: usize| left + (w - left - right) * i as f64 / (n - 1) as f64;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / max);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            w - right,
            left - 4.0,
            y(v) + 3.0,
            fmt_num(v),
            y = y(v)
        );
    }
    let step = (labels.len() / 6).max(1);
    for (i, l) in labels.iter().enumerate().step_by(step) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">{}</text>"#,
            x(i),
            h - bottom + 14.0,
            esc(l)
        );
    }
    for (si, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let pts: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/><rect x="{}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
            pts.join(" "),
            w - right + 10.0,
            top + 16.0 * si as f64,
            w - right + 24.0,
            top + 16.0 * si as f64 + 9.0,
            esc(name)
        );
    }
    s.push_str("</svg>");
    s
}

/// A horizontal bar chart of labelled values.
pub fn bar_chart(title: &str, rows: &[(String, f64)]) -> String {
    let (w, left, right, bar) = (760.0, 230.0, 90.0, 18.0);
    let h = 30.0 + bar * 1.3 * rows.len().max(1) as f64;
    let max = nice_max(rows.iter().map(|r| r.1).fold(0.0, f64::max));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = 10.0 + bar * 1.3 * i as f64;
        let len = (w - left - right) * (v / max).clamp(0.0, 1.0);
        let short: String = label.chars().take(34).collect();
        let _ = write!(
            s,
            r##"<text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text><rect x="{left}" y="{y:.1}" width="{len:.1}" height="{bar}" fill="#1f77b4"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"##,
            left - 6.0,
            y + 13.0,
            esc(&short),
            left + len + 4.0,
            y + 13.0,
            fmt_num(*v)
        );
    }
    s.push_str("</svg>");
    s
}

/// A reliability diagram: predicted (x) against observed (y) per bin, with the diagonal
/// of perfect calibration; dot area grows with the bin's size.
pub fn reliability(title: &str, bins: &[(f64, f64, usize)]) -> String {
    let (size, pad) = (260.0, 34.0);
    let span = size - 2.0 * pad;
    let px = |v: f64| pad + span * v.clamp(0.0, 1.0);
    let py = |v: f64| size - pad - span * v.clamp(0.0, 1.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img" aria-label="{t}"><title>{t}</title><rect x="{pad}" y="{pad}" width="{span}" height="{span}" fill="none" stroke="#999"/><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#bbb" stroke-dasharray="4 3"/>"##,
        px(0.0),
        py(0.0),
        px(1.0),
        py(1.0),
        t = esc(title)
    );
    for k in 0..=4 {
        let v = f64::from(k) / 4.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" font-size="9" text-anchor="middle">{v}</text><text x="{}" y="{:.1}" font-size="9" text-anchor="end">{v}</text>"#,
            px(v),
            size - pad + 12.0,
            pad - 4.0,
            py(v) + 3.0
        );
    }
    let total: usize = bins.iter().map(|b| b.2).sum::<usize>().max(1);
    let pts: Vec<String> = bins
        .iter()
        .map(|(p, o, _)| format!("{:.1},{:.1}", px(*p), py(*o)))
        .collect();
    let _ = write!(
        s,
        r##"<polyline fill="none" stroke="#d62728" stroke-width="1.5" points="{}"/>"##,
        pts.join(" ")
    );
    for (p, o, n) in bins {
        let r = 2.5 + 9.0 * (*n as f64 / total as f64).sqrt();
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="{r:.1}" fill="#d62728" fill-opacity="0.5"><title>predicted {p:.3}, observed {o:.3}, n = {n}</title></circle>"##,
            px(*p),
            py(*o)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" font-size="10" text-anchor="middle">predicted</text><text x="10" y="{}" font-size="10" transform="rotate(-90 10 {})" text-anchor="middle">observed</text></svg>"#,
        size / 2.0,
        size - 6.0,
        size / 2.0,
        size / 2.0
    );
    s
}

/// A number for axis labels (thousands as k, millions as M).
pub fn fmt_num(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_escaped_svg() {
        let l = line_chart(
            "a<b",
            &["2026-01-01".into(), "2026-01-02".into()],
            &[("x&y".into(), vec![1.0, 3.0])],
        );
        assert!(l.starts_with("<svg") && l.ends_with("</svg>"));
        assert!(l.contains("a&lt;b") && l.contains("x&amp;y"));
        assert!(!l.contains("<script"));
        let b = bar_chart("t", &[("c\"d".into(), 5.0)]);
        assert!(b.contains("c&quot;d"));
        let r = reliability("r", &[(0.1, 0.12, 100), (0.5, 0.45, 20)]);
        assert_eq!(r.matches("<circle").count(), 2);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(0.0), 1.0);
    }
}
