//! PNG line charts (plotters, bitmap backend).
//!
//! Text is drawn with plotters' pure-Rust `ab_glyph` renderer from a TrueType file read at run
//! time, so the build needs neither fontconfig nor freetype. The font is DejaVu Sans from
//! Debian's `fonts-dejavu-core` (on this machine kind by default), or any `.ttf` under
//! `/usr/share/fonts`, or the file named by `TOYSTORE_FONT`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Where DejaVu Sans (or a comparable sans) usually is.
const CANDIDATES: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

fn find_ttf(dir: &Path, depth: usize) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in &paths {
        if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ttf")) {
            return Some(p.clone());
        }
    }
    if depth == 0 {
        return None;
    }
    paths.iter().filter(|p| p.is_dir()).find_map(|p| find_ttf(p, depth - 1))
}

/// The font file to use.
pub fn font_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TOYSTORE_FONT").map(PathBuf::from).filter(|p| p.is_file()) {
        return Some(p);
    }
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file()).or_else(|| find_ttf(Path::new("/usr/share/fonts"), 3))
}

/// Register the font as plotters' `sans-serif` (once per process).
pub fn ensure_font() -> anyhow::Result<()> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        let path = font_path().ok_or_else(|| {
            "no TrueType font found (install Debian's fonts-dejavu-core or set TOYSTORE_FONT=/path/to/font.ttf)".to_string()
        })?;
        let bytes = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        for style in [FontStyle::Normal, FontStyle::Bold] {
            plotters::style::register_font("sans-serif", style, bytes)
                .map_err(|_| format!("{} is not a usable TrueType font", path.display()))?;
        }
        Ok(path)
    });
    r.as_ref().map(|_| ()).map_err(|e| anyhow!("{e}"))
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    /// Dashed (e.g. p99) instead of solid (e.g. mean).
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// A line chart of `series` to a PNG at `path`; y from 0 to a little above the largest value.
pub fn line_chart(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> anyhow::Result<()> {
    ensure_font()?;
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    if !x0.is_finite() {
        bail!("{title}: nothing to plot");
    }
    let (x0, x1) = if x1 > x0 { (x0, x1) } else { (x0 - 0.5, x0 + 0.5) };
    let pad = (x1 - x0) * 0.04;
    let y_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0f64, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.12 } else { 1.0 };

    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d((x0 - pad)..(x1 + pad), 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|x| format!("{x:.1}"))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .label_style(("sans-serif", 15))
            .draw()?;
        for s in series {
            let style = ShapeStyle { color: s.color.to_rgba(), filled: false, stroke_width: 2 };
            let color = s.color;
            let anno = if s.dashed {
                chart.draw_series(DashedLineSeries::new(s.points.clone(), 8, 6, style))?
            } else {
                chart.draw_series(LineSeries::new(s.points.clone(), style))?
            };
            anno.label(s.label.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(s.points.iter().map(|&(x, y)| Circle::new((x, y), 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow!("draw {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png() {
        if font_path().is_none() {
            eprintln!("no font on this machine; skipping");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.png");
        let s = vec![
            Series { label: "cache on, mean".into(), color: BLUE, dashed: false, points: vec![(0.0, 1.0), (0.4, 2.0), (0.8, 1.5)] },
            Series { label: "cache on, p99".into(), color: BLUE, dashed: true, points: vec![(0.0, 3.0), (0.4, 4.0), (0.8, 3.5)] },
        ];
        line_chart(&p, "lookup latency", "p (order probability)", "ms", &s).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(line_chart(&d.path().join("y.png"), "empty", "x", "y", &[]).is_err());
    }
}
