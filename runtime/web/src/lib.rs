//! The tract-only [`runtime::Classifier`] for web pages, through `wasm-bindgen`.
//!
//! `runtime/web/build.sh` compiles it for `wasm32-unknown-unknown` (with SIMD) and writes a static
//! site (`index.html`, `main.js`, `worker.js`, the generated `pkg/`) that any static file server
//! can serve. The page runs the classifier in a worker, so that a folder of images does not
//! freeze it:
//!
//! ```js
//! import init, { WebClassifier } from "./pkg/runtime_web.js";
//! await init();
//! const classifier = new WebClassifier(modelBytes, "cnn.onnx");
//! const result = JSON.parse(classifier.classify(imageBytes, "cat.png", 3));
//! ```
//!
//! WebAssembly has no unwinding: a panic (a model tract cannot run, say) ends the module's
//! instance. The panic's message is handed to `globalThis.runtimePanic(message)` first, where the
//! page defines it, so that it can name what failed and start a new instance.

use runtime::result_rows::FileOutcome;
use runtime::result_rows::{row, Format, RowContext};
use runtime::{Classifier, EngineChoice};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = "export function report_panic(message) { \
    if (typeof globalThis.runtimePanic === 'function') globalThis.runtimePanic(message); }")]
extern "C" {
    fn report_panic(message: &str);
}

/// Hands panic messages to the page (see the crate's documentation). Called once by
/// `wasm-bindgen` when the module starts.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.payload_as_str().unwrap_or("no message");
        // Where: the crate's folder and file, without the build machine's cargo registry path.
        let place = info.location().map(|l| {
            let file: Vec<&str> = l.file().rsplit('/').take(3).collect();
            let file: Vec<&str> = file.into_iter().rev().collect();
            format!(" at {}:{}", file.join("/"), l.line())
        });
        report_panic(&format!("panicked{}: {message}", place.unwrap_or_default()));
    }));
}

/// A model loaded in the page, run by tract.
#[wasm_bindgen]
pub struct WebClassifier {
    inner: Classifier,
    /// What every result row shares: class names, engine, provider.
    rows: RowContext,
}

#[wasm_bindgen]
impl WebClassifier {
    /// Loads an ONNX model from its bytes; `name` names it in errors.
    #[wasm_bindgen(constructor)]
    pub fn new(model: &[u8], name: &str) -> Result<WebClassifier, JsError> {
        let inner = Classifier::builder()
            .engine(EngineChoice::Tract)
            .build_from_bytes(model, name)
            .map_err(|e| JsError::new(&e.to_string()))?;
        let rows = RowContext {
            classes: inner.info().classes.clone().unwrap_or_default(),
            top_k: 1,
            engine: inner.engine_name().to_string(),
            provider: inner.provider(),
        };
        Ok(Self { inner, rows })
    }

    /// What the model is and how images are prepared for it, as JSON
    /// ([`runtime::Description`]: input name, shape and size, layout, channel order, scale, mean,
    /// std, classes, quantized variant, opset, engine).
    pub fn describe(&self) -> String {
        self.inner.describe().to_json()
    }

    /// Decodes one image file's bytes (PNG, JPEG, BMP, GIF, WebP), resizes it as the native
    /// runtime does and classifies it. Returns the CLI's `classify --format jsonl` line for it:
    /// `{"path", "ok": true, "top": [{"class", "label", "probability"}], ...}`, or
    /// `{"path", "ok": false, "error"}` for a file that cannot be classified.
    pub fn classify(&mut self, image: &[u8], name: &str, top_k: usize) -> String {
        let outcome = FileOutcome {
            path: name.into(),
            result: self
                .inner
                .classify_bytes(image, name)
                .map_err(|e| e.to_string()),
        };
        self.rows.top_k = top_k;
        row(Format::Jsonl, &outcome, &self.rows)
    }

    /// The input tensor `classify` runs for one image file's bytes (decoded, resized and
    /// normalised, in the model's layout): to time or check another engine on the same input.
    pub fn prepare(&self, image: &[u8], name: &str) -> Result<Vec<f32>, JsError> {
        self.inner
            .prepare_bytes(image, name)
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// Runs prepared inputs (`batch` images, as `prepare` gives them, one after the other) and
    /// returns the class probabilities, `batch` rows of them.
    pub fn run(&mut self, input: &[f32], batch: usize) -> Result<Vec<f32>, JsError> {
        self.inner
            .run_tensor(input, batch)
            .map_err(|e| JsError::new(&e.to_string()))
    }
}
