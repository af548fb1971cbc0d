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

use runtime::{Classifier, EngineChoice};
use wasm_bindgen::prelude::*;

/// A model loaded in the page, run by tract.
#[wasm_bindgen]
pub struct WebClassifier {
    inner: Classifier,
    name: String,
}

#[wasm_bindgen]
impl WebClassifier {
    /// Loads an ONNX model from its bytes; `name` names it in errors.
    #[wasm_bindgen(constructor)]
    pub fn new(model: &[u8], name: &str) -> Result<WebClassifier, JsError> {
        let inner = Classifier::builder()
            .engine(EngineChoice::Tract)
            .build_from_bytes(model, name)
            .map_err(js_error)?;
        Ok(Self {
            inner,
            name: name.to_owned(),
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
    /// runtime does and classifies it. Returns JSON in the shape of one line of the CLI's
    /// `classify --format jsonl`: `{"path", "ok", "top": [{"class", "label", "probability"}]}`.
    pub fn classify(&mut self, image: &[u8], name: &str, top_k: usize) -> Result<String, JsError> {
        let prediction = self.inner.classify_bytes(image, name).map_err(js_error)?;
        let classes = self.inner.info().classes.clone().unwrap_or_default();
        let top: Vec<_> = prediction
            .top_k(top_k)
            .into_iter()
            .map(|(class, probability)| {
                let label = classes
                    .get(class)
                    .cloned()
                    .unwrap_or_else(|| class.to_string());
                serde_json::json!({"class": class, "label": label, "probability": probability})
            })
            .collect();
        Ok(serde_json::json!({
            "path": name,
            "ok": true,
            "engine": self.inner.engine_name(),
            "top": top,
        })
        .to_string())
    }
}

fn js_error(e: runtime::Error) -> JsError {
    JsError::new(&e.to_string())
}
