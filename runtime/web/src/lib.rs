//! The tract-only [`runtime::Classifier`] for web pages, through `wasm-bindgen`.
//!
//! `runtime/web/build.sh` compiles it for `wasm32-unknown-unknown` and writes a static site
//! (`index.html`, `main.js`, the generated `pkg/`) that any static file server can serve.
//!
//! ```js
//! import init, { WebClassifier } from "./pkg/runtime_web.js";
//! await init();
//! const classifier = new WebClassifier(modelBytes, "cnn.onnx");
//! const result = JSON.parse(classifier.classify(imageBytes, "cat.png", 3));
//! ```

use runtime::result_rows::FileOutcome;
use runtime::result_rows::{row, Format, RowContext};
use runtime::{Classifier, EngineChoice};
use wasm_bindgen::prelude::*;

/// A model loaded in the page, run by tract.
#[wasm_bindgen]
pub struct WebClassifier {
    inner: Classifier,
    name: String,
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
        Ok(Self {
            inner,
            name: name.to_owned(),
            rows,
        })
    }

    /// What the model takes and gives, as JSON: name, input size, classes.
    pub fn describe(&self) -> String {
        let config = self.inner.input_config();
        serde_json::json!({
            "model": self.name,
            "engine": self.inner.engine_name(),
            "height": config.height,
            "width": config.width,
            "classes": self.inner.info().classes,
        })
        .to_string()
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
}
