//! The two curves the article draws: accuracy and loss per epoch, training and validation.

use crate::error::{Error, Result};
use crate::train::History;
use plotters::prelude::*;
use std::path::Path;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 400;

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // ab_glyph draws text from an embedded font; no system font is needed.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

type Series<'a> = [(&'a str, Vec<(f64, f64)>, RGBColor)];

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    epochs: usize,
    series: &Series<'_>,
) -> std::result::Result<(), String> {
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(1f64..(epochs.max(2) as f64), (lo - pad)..(hi + pad))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(epochs.clamp(2, 10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, points, colour) in series {
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Draws accuracy and loss curves side by side into a PNG at `path`, atomically.
///
/// # Errors
/// When drawing, encoding or writing fails.
pub fn plot_history(history: &History, path: &Path) -> Result<()> {
    let failed = |reason: String| Error::Plot {
        path: path.to_path_buf(),
        reason,
    };
    register_font();
    let mut buffer = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(e.to_string()))?;
        let (left, right) = root.split_horizontally(WIDTH / 2);
        let points = |f: fn(&crate::train::EpochRecord) -> f64| -> Vec<(f64, f64)> {
            history
                .epochs
                .iter()
                .map(|e| (e.epoch as f64, f(e)))
                .collect()
        };
        let n = history.epochs.len();
        panel(
            &left,
            "model accuracy",
            n,
            &[
                ("train", points(|e| e.train_accuracy), BLUE),
                ("validation", points(|e| e.val_accuracy), RED),
            ],
        )
        .map_err(failed)?;
        panel(
            &right,
            "model loss",
            n,
            &[
                ("train", points(|e| e.train_loss), BLUE),
                ("validation", points(|e| e.val_loss), RED),
            ],
        )
        .map_err(failed)?;
        root.present().map_err(|e| failed(e.to_string()))?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&buffer, WIDTH, HEIGHT, image::ExtendedColorType::Rgb8)
        .map_err(|e| failed(format!("encoding the PNG: {e}")))?;
    crate::save::write_file(path, &png)
}

use image::ImageEncoder;
