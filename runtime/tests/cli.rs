//! The CLI says which engine ran and why, and reports bad models without panicking.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn runtime() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runtime"))
}

use common::tiny as tiny_model;

/// An 8x8 PNG of one colour in `dir`.
fn pixel_png(dir: &Path, rgb: [u8; 3]) -> PathBuf {
    let image = dir.join("pixel.png");
    image::RgbImage::from_pixel(8, 8, image::Rgb(rgb))
        .save(&image)
        .expect("writing a test image");
    image
}

#[test]
fn classify_without_onnxruntime_says_it_used_tract() {
    let dir = tempfile::tempdir().unwrap();
    let image = pixel_png(dir.path(), [200, 10, 10]);
    let model = tiny_model();
    let out = runtime()
        .env("ORT_DYLIB_PATH", dir.path().join("missing.so"))
        .arg("classify")
        .arg(&model)
        .arg(&image)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("using tract") && stderr.contains("missing.so"),
        "{stderr}"
    );
    assert!(stderr.contains("engine: tract"), "{stderr}");
    assert!(stdout.contains("pixel.png"), "{stdout}");
}

#[test]
fn corrupt_model_is_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("broken.onnx");
    std::fs::write(&model, [0x08u8, 0xff, 0xff, 0x12, 0x99]).unwrap();
    let out = runtime().args(["info"]).arg(&model).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("broken.onnx") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn classify_a_folder_of_odd_files_reports_each_and_writes_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    let nested = images.join("nested");
    std::fs::create_dir_all(&nested).unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([200, 10, 10]))
        .save(images.join("a_rgb.png"))
        .unwrap();
    image::GrayImage::from_pixel(5, 9, image::Luma([90]))
        .save(images.join("b_gray.png"))
        .unwrap();
    image::RgbaImage::from_pixel(30, 7, image::Rgba([1, 2, 250, 128]))
        .save(images.join("c_rgba.png"))
        .unwrap();
    image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(6, 6, image::Rgb([60000u16, 0, 0]))
        .save(images.join("d_16bit.png"))
        .unwrap();
    std::fs::write(images.join("e_empty.png"), b"").unwrap();
    let png = std::fs::read(images.join("a_rgb.png")).unwrap();
    std::fs::write(images.join("f_truncated.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(images.join("g_text.jpg"), b"hello, not a picture").unwrap();
    std::fs::write(images.join("notes.txt"), b"left out").unwrap();
    image::RgbImage::from_pixel(40, 40, image::Rgb([0, 0, 255]))
        .save(nested.join("h_big.jpg"))
        .unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&images, nested.join("loop")).unwrap();

    let model = tiny_model();
    let out_file = dir.path().join("results.csv");
    let out = runtime()
        .args([
            "classify", "--engine", "tract", "--format", "csv", "--top-k", "2", "--batch", "2",
            "--output",
        ])
        .arg(&out_file)
        .arg(&model)
        .arg(&images)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "some files failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("8 files: 5 classified, 3 failed, 1 files in folders skipped"),
        "{stderr}"
    );

    let csv = std::fs::read_to_string(&out_file).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "path,status,label_1,probability_1,label_2,probability_2,engine,provider,error"
    );
    assert_eq!(lines.len(), 9, "{csv}");
    let status = |name: &str| {
        let line = lines
            .iter()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{csv}"));
        line.split(',').nth(1).unwrap().to_string()
    };
    for good in [
        "a_rgb.png",
        "b_gray.png",
        "c_rgba.png",
        "d_16bit.png",
        "h_big.jpg",
    ] {
        assert_eq!(status(good), "ok");
    }
    for bad in ["e_empty.png", "f_truncated.png", "g_text.jpg"] {
        assert_eq!(status(bad), "error");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("e_empty.png") && l.contains("empty")),
        "{csv}"
    );
    // Rows come in path order, and the loop through the symlink did not repeat a file.
    let order: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    assert!(!dir.path().read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".tmp")));
}

/// `--provider` picks ONNX Runtime's execution providers in order and the CLI says which ran;
/// asking for a GPU only, where none runs, fails with the reason.
#[test]
fn provider_flag_reports_the_provider_that_ran() {
    common::ensure_ort();
    let dir = tempfile::tempdir().unwrap();
    let image = pixel_png(dir.path(), [10, 200, 10]);
    let model = tiny_model();
    let run = |providers: &str| {
        runtime()
            .args(["classify", "--engine", "ort", "--provider", providers])
            .arg(&model)
            .arg(&image)
            .output()
            .unwrap()
    };
    let out = run("cuda,cpu");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    if stderr.contains("provider cpu") {
        assert!(
            stderr.contains("execution provider cuda: not in this ONNX Runtime build"),
            "{stderr}"
        );
        let out = run("cuda");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains("no execution provider of cuda") && !stderr.contains("panicked"),
            "{stderr}"
        );
    } else {
        assert!(stderr.contains("provider cuda"), "{stderr}");
    }
}

/// `runtime verify` exits non-zero, saying which engine and why, when an engine does not run or
/// disagrees with the trainer's predictions; it verifies the first `samples` images of a larger
/// set (a model trained with a test limit).
#[test]
fn verify_fails_when_an_engine_disagrees_or_does_not_run() {
    use runtime::data::Dataset;
    use runtime::verify::ReferencePredictions;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&data).unwrap();
    let classes: Vec<String> = ["red", "green", "blue"].map(String::from).to_vec();
    let n = 12;
    let set = Dataset {
        side: 32,
        pixels: (0..n * 3 * 32 * 32)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
            .collect(),
        labels: (0..n).map(|i| (i % 3) as u8).collect(),
        classes: classes.clone(),
    };
    runtime::data::write_meta(&data, &classes).unwrap();
    runtime::data::write_cifar_file(&data.join("test_batch.bin"), &set).unwrap();
    let model = dir.path().join("tiny.onnx");
    std::fs::copy(tiny_model(), &model).unwrap();

    // The trainer's predictions: tract's own on the first 8 images, as logits.
    let mut first = set.clone();
    first.truncate(8);
    let mut tract = runtime::Classifier::builder()
        .engine(runtime::EngineChoice::Tract)
        .build_from_file(&model)
        .unwrap();
    let eval = runtime::verify::evaluate(&mut tract, &first, 4).unwrap();
    let mut reference = ReferencePredictions {
        producer: "reference".into(),
        data: data.clone(),
        fingerprint: first.fingerprint(),
        side: 32,
        samples: first.len(),
        num_classes: 3,
        logits: eval.probabilities.iter().map(|p| p.ln()).collect(),
    };
    let verify = |reference: &ReferencePredictions| {
        reference
            .save(&ReferencePredictions::path_for(&model))
            .unwrap();
        let out = runtime()
            .env("ORT_DYLIB_PATH", dir.path().join("missing.so"))
            .arg("verify")
            .arg(&model)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // tract agrees; ONNX Runtime cannot load here: a failure that names it.
    let (ok, stderr) = verify(&reference);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("ort did not run") && !stderr.contains("tract"),
        "{stderr}"
    );
    // Both engines, agreeing with the predictions: success, and a report that says so.
    let library = common::ensure_ort();
    reference
        .save(&ReferencePredictions::path_for(&model))
        .unwrap();
    let out = runtime()
        .env("ORT_DYLIB_PATH", &library)
        .arg("verify")
        .arg(&model)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("tiny.verify.json")).expect("the verification report"),
    )
    .expect("JSON");
    assert_eq!(report["samples"], 8, "{report}");
    let engines = report["engines"].as_array().expect("engines");
    let names: Vec<&str> = engines
        .iter()
        .filter_map(|e| e["engine"].as_str())
        .collect();
    assert_eq!(names, ["ort", "tract"], "{report}");
    for check in engines {
        assert_eq!(check["top1_agreement"], 1.0, "{report}");
        assert!(
            check["max_abs_prob_diff"]
                .as_f64()
                .is_some_and(|d| d < 1e-4),
            "{report}"
        );
        assert_eq!(check["error"], serde_json::Value::Null, "{report}");
    }
    assert_eq!(report["engine_agreement"], 1.0, "{report}");
    // The default providers are cuda, then cpu: where ort ran on the CPU, the report and the
    // table say why CUDA was passed over; tract has no providers to pass over.
    let ort = &engines[0];
    if ort["provider"] == "cpu" {
        let why = ort["passed_over"].as_str().unwrap_or_default();
        assert!(why.starts_with("execution provider cuda: "), "{report}");
        assert!(
            stdout.contains(&format!("tiny.onnx: ort ran on cpu; passed over: {why}")),
            "{stdout}"
        );
    } else {
        assert_eq!(ort["passed_over"], serde_json::Value::Null, "{report}");
    }
    assert_eq!(
        engines[1]["passed_over"],
        serde_json::Value::Null,
        "{report}"
    );
    // Predictions that tract disagrees with.
    reference.logits.reverse();
    let (ok, stderr) = verify(&reference);
    assert!(!ok && stderr.contains("tract disagrees"), "{stderr}");
}

#[test]
fn shards_of_a_folder_run_concatenate_to_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(images.join("sub")).unwrap();
    for i in 0..23u8 {
        let folder = if i % 3 == 0 {
            images.join("sub")
        } else {
            images.clone()
        };
        image::RgbImage::from_pixel(8, 8, image::Rgb([i * 10, 255 - i * 10, i]))
            .save(folder.join(format!("img{i:02}.png")))
            .unwrap();
    }
    std::fs::write(images.join("broken.png"), b"not a png").unwrap();
    let missing = dir.path().join("missing.png");
    let run = |format: &str, shard: Option<&str>, out: &Path| {
        let mut command = runtime();
        command
            .args([
                "classify", "--engine", "tract", "--top-k", "2", "--format", format,
            ])
            .arg(tiny_model())
            .arg(&images)
            .arg(&missing)
            .arg("-o")
            .arg(out);
        if let Some(shard) = shard {
            command.args(["--shard", shard]);
        }
        let result = command.output().unwrap();
        let written = std::fs::read_to_string(out).unwrap();
        // The broken and the missing file fail the run (exit 1) in the shard that has them; the
        // other shards succeed.
        let failing = written.contains("broken.png") || written.contains("missing.png");
        assert_eq!(
            result.status.code(),
            Some(i32::from(failing)),
            "{shard:?}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        (written, failing)
    };
    for format in ["csv", "jsonl"] {
        let (whole, failing) = run(format, None, &dir.path().join(format!("all.{format}")));
        assert!(failing);
        assert_eq!(whole.lines().count(), 25 + usize::from(format == "csv"));
        let mut joined = String::new();
        let mut succeeded = 0;
        for k in 1..=4 {
            let (part, failing) = run(
                format,
                Some(&format!("{k}/4")),
                &dir.path().join(format!("part{k}.{format}")),
            );
            assert!(!part.is_empty());
            joined.push_str(&part);
            succeeded += usize::from(!failing);
        }
        assert_eq!(joined, whole, "{format}");
        // Two failing files can be in two shards at most.
        assert!(succeeded >= 2, "{format}: {succeeded} shards succeeded");
    }
    let bad = runtime()
        .args(["classify", "--shard", "5/4"])
        .arg(tiny_model())
        .arg(&images)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("1 <= K <= N"));
}

#[test]
fn batch_and_thread_counts_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = pixel_png(dir.path(), [10, 200, 10]);
    for (flag, value, says) in [
        ("--batch", "0", "a batch must be from 1 to 4096, not 0"),
        ("--batch", "100000000", "a batch must be from 1 to 4096"),
        ("--threads", "100000", "threads must be from 1 to 1024"),
    ] {
        let out = runtime()
            .args(["classify", "--engine", "tract", flag, value])
            .arg(tiny_model())
            .arg(&image)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
    }
}

/// Files the CLI writes take the mode the user's umask gives, as a plain create would, not the
/// private mode of the temporary file they are written through.
#[cfg(unix)]
#[test]
fn written_files_take_the_umask_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.onnx");
    std::fs::copy(tiny_model(), &model).unwrap();
    for (umask, mode) in [("022", 0o644), ("027", 0o640)] {
        let out = dir.path().join(format!("tiny-{umask}.onnx"));
        let done = Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_runtime"))
            .args(["quantize", "--variant", "fp16", "-o"])
            .arg(&out)
            .arg(&model)
            .output()
            .unwrap();
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        let got = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, mode, "umask {umask}: mode {got:o}");
    }
}

/// `runtime evaluate` on a set whose confusion matrix is known by hand: plain magenta images,
/// which the tiny model calls "red", and plain cyan ones, which it calls "green" (it never says
/// "blue"), under labels of all three classes. Rows are the labels, columns the predictions, on
/// both engines.
#[test]
fn evaluate_reports_the_hand_computed_confusion_matrix() {
    use runtime::data::Dataset;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cifar-10-batches-bin");
    let classes: Vec<String> = ["red", "green", "blue"].map(String::from).to_vec();
    const MAGENTA: [u8; 3] = [240, 0, 240];
    const CYAN: [u8; 3] = [0, 240, 240];
    // (colour, label): magenta 3x as red, 1x as green, 1x as blue; cyan 1x as red, 2x as green,
    // 2x as blue.
    let images = [
        (MAGENTA, 0),
        (MAGENTA, 0),
        (MAGENTA, 0),
        (MAGENTA, 1),
        (MAGENTA, 2),
        (CYAN, 0),
        (CYAN, 1),
        (CYAN, 1),
        (CYAN, 2),
        (CYAN, 2),
    ];
    let plane = 32 * 32;
    let mut set = Dataset {
        side: 32,
        pixels: Vec::new(),
        labels: Vec::new(),
        classes: classes.clone(),
    };
    for (colour, label) in images {
        for value in colour {
            set.pixels.extend(std::iter::repeat_n(value, plane));
        }
        set.labels.push(label);
    }
    runtime::data::write_meta(&data, &classes).unwrap();
    runtime::data::write_cifar_file(&data.join("test_batch.bin"), &set).unwrap();
    let library = common::ensure_ort();
    for engine in ["ort", "tract"] {
        let out = runtime()
            .env("ORT_DYLIB_PATH", &library)
            .args(["evaluate", "--engine", engine])
            .arg(tiny_model())
            .arg(&data)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{engine}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.starts_with("accuracy 50.00 % on 10 images"),
            "{engine}: {stdout}"
        );
        let rows: Vec<Vec<&str>> = stdout
            .lines()
            .filter(|l| {
                classes
                    .iter()
                    .any(|c| l.trim_start().starts_with(c.as_str()))
            })
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            [
                ["red", "75.0", "3", "1", "0"],
                ["green", "66.7", "1", "2", "0"],
                ["blue", "0.0", "1", "2", "0"],
            ],
            "{engine}: {stdout}"
        );
    }
}

/// A model that makes tract panic inside (a raw STRING initializer, unused): tract's error that
/// names the file is all the user sees, with no panic message on stderr; ONNX Runtime runs it.
#[test]
fn a_panic_inside_an_engine_is_an_error_and_nothing_more() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/model_bytes/tract_string_initializer_raw_data.onnx");
    let dir = tempfile::tempdir().unwrap();
    let image = pixel_png(dir.path(), [10, 200, 10]);
    let library = common::ensure_ort();
    for engine in ["tract", "ort"] {
        let out = runtime()
            .env("ORT_DYLIB_PATH", &library)
            .env_remove("RUST_BACKTRACE")
            .args(["classify", "--engine", engine])
            .arg(&model)
            .arg(&image)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if engine == "tract" {
            assert_eq!(out.status.code(), Some(1), "{engine}: {stderr}");
            assert!(
                stderr.contains("tract_string_initializer_raw_data.onnx"),
                "{engine}: {stderr}"
            );
        } else {
            // ONNX Runtime leaves the unused initializer alone and runs the model.
            assert!(out.status.success(), "{engine}: {stderr}");
            assert!(String::from_utf8_lossy(&out.stdout).contains("pixel.png"));
        }
        assert!(
            !stderr.contains("panicked") && !stderr.contains("thread '"),
            "{engine}: {stderr}"
        );
    }
}
