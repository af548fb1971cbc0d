//! The exported files checked: quantized variants written beside them, each file verified by ONNX
//! Runtime and tract against Burn's predictions, and the summary table.

use super::*;

/// An exported file that variants are written from: its path, its bytes (read once for all its
/// variants) and the ONNX Runtime library that calibrates (found once; none: tract calibrates).
pub struct VariantSource<'a> {
    pub path: &'a Path,
    pub bytes: &'a [u8],
    pub ort_library: Option<&'a Path>,
}

/// Writes `variant` of the exported file `source` beside it, int8 static calibrated on the
/// training split; returns its path, size and what was done.
pub fn write_variant(
    source: &VariantSource,
    variant: Variant,
    splits: &Splits,
    config: &QuantizeConfig,
) -> Result<(PathBuf, u64, String)> {
    let mut options = QuantizeOptions::new(variant);
    options.ort_library = source.ort_library.map(Path::to_path_buf);
    options.calibration = Some(Calibration {
        set: &splits.train,
        name: splits.source.clone(),
        images: config.calibration_images,
        method: runtime::quantize::DEFAULT_METHOD,
    });
    let made = runtime::quantize::quantize(source.bytes, source.path, &options)?;
    let path = variant.path_for(source.path);
    save::write_file(&path, &made.bytes)?;
    Ok((path, made.bytes.len() as u64, made.summary))
}

/// Runs the test split through ort (on the first usable of `providers`) and tract, compares with
/// Burn's predictions and writes `<model>.verify.json`.
pub fn verify(
    onnx: &Path,
    test: &Dataset,
    providers: &[Provider],
    batch: usize,
) -> Result<VerifyReport> {
    let report = runtime::verify::verify_model(
        onnx,
        TestImages::Loaded(test),
        &[EngineChoice::Ort, EngineChoice::Tract],
        providers,
        batch,
    )?;
    save::as_one_write(|| report.save())?;
    Ok(report)
}

/// One markdown table of several verification reports: per model, Burn's accuracy, then each
/// engine's accuracy and agreement with Burn.
pub fn summary_table(reports: &[VerifyReport]) -> String {
    let mut s = String::from(
        "| model | engine | provider | accuracy | top-1 agreement | max abs diff prob | seconds |\n|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let model = r.model.file_name().map_or_else(
            || r.model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        for row in r.rows() {
            s += &format!("| {model} | {row}\n");
        }
    }
    if let Some(first) = reports.first() {
        s += &format!(
            "\n{} test images of {}\n",
            first.samples,
            first.data.display()
        );
    }
    for line in reports.iter().flat_map(VerifyReport::notes) {
        s += &format!("{line}\n");
    }
    s
}
