//! `cifar_onnx._native`: the runtime's classifier as a Python extension module.
//!
//! Each call maps onto the `runtime` library: [`runtime::Classifier`] and its builder,
//! [`runtime::batch`]'s parallel decoding for many files or images, [`runtime::result_rows`]'s JSON
//! Lines row. The engine runs with the GIL released, so other Python threads go on meanwhile.
//! The Python package (`python/cifar_onnx`) re-exports these names and documents them in its
//! type stubs.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyDict, PyMemoryView};
use runtime::batch::{self, BatchOptions, FileOutcome};
use runtime::result_rows::{self, Format, RowContext};
use runtime::{EngineChoice, Provider};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

create_exception!(
    cifar_onnx,
    Error,
    PyException,
    "Any error of the runtime: the message names the file or engine and the reason."
);
create_exception!(
    cifar_onnx,
    ModelError,
    Error,
    "A model file that cannot be read or used."
);
create_exception!(
    cifar_onnx,
    ImageError,
    Error,
    "An image that cannot be read or decoded."
);
create_exception!(
    cifar_onnx,
    EngineError,
    Error,
    "An engine (ONNX Runtime or tract) that is missing or failed."
);
create_exception!(
    cifar_onnx,
    InputError,
    Error,
    "Input that does not fit the model (its size, its type)."
);

/// `value` when it is from 1 to `max`, else a `ValueError` naming `what`.
fn count(what: &str, value: usize, max: usize) -> PyResult<usize> {
    batch::check_count(what, value, max).map_err(PyValueError::new_err)
}

/// The runtime's error as the matching Python exception, with a `path` attribute where a file
/// is involved.
fn to_py(error: runtime::Error) -> PyErr {
    use runtime::Error as E;
    let message = error.to_string();
    let (err, path) = match &error {
        E::Io { path, .. } | E::BadModel { path, .. } => {
            (ModelError::new_err(message), Some(path.clone()))
        }
        E::Image { path, .. } => (ImageError::new_err(message), Some(path.clone())),
        E::Engine { .. } | E::OrtUnavailable(_) => (EngineError::new_err(message), None),
        E::InputShape { .. }
        | E::NotWholeImages { .. }
        | E::Pixels(_)
        | E::InputConfig(_)
        | E::DataMismatch(_)
        | E::Calibration { .. }
        | E::TritonName(_) => (InputError::new_err(message), None),
        _ => (Error::new_err(message), None),
    };
    Python::attach(|py| {
        let path = path.map(|p| p.display().to_string());
        // An exception object always takes attributes.
        let _ = err.value(py).setattr("path", path);
    });
    err
}

/// One image's result: its most probable classes, or why there is none.
#[pyclass(module = "cifar_onnx", frozen)]
struct Prediction {
    /// The file (or the name given to the image).
    #[pyo3(get)]
    path: String,
    /// Whether the image was classified.
    #[pyo3(get)]
    ok: bool,
    /// The most probable class's name (its index as text where the model names none).
    #[pyo3(get)]
    label: Option<String>,
    /// The most probable class's index.
    #[pyo3(get)]
    index: Option<usize>,
    /// Its probability.
    #[pyo3(get)]
    probability: Option<f32>,
    /// The `top_k` most probable classes, most probable first: `(label, index, probability)`.
    #[pyo3(get)]
    top: Vec<(String, usize, f32)>,
    /// Why the image was not classified.
    #[pyo3(get)]
    error: Option<String>,
    /// The engine that ran the model.
    #[pyo3(get)]
    engine: String,
    /// The execution provider that ran it.
    #[pyo3(get)]
    provider: String,
    probabilities: Vec<f32>,
    jsonl: String,
}

#[pymethods]
impl Prediction {
    /// Every class's probability (float32), empty where the image was not classified.
    #[getter]
    fn probabilities<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        self.probabilities.clone().into_pyarray(py)
    }

    /// The row `runtime classify --format jsonl` writes for this image, without its newline.
    fn to_json(&self) -> String {
        self.jsonl.clone()
    }

    /// This result as a flat dict of plain values (a row for a data frame or Ray Data):
    /// `path, ok, label, index, probability, top_labels, top_indices, top_probabilities, error,
    /// engine, provider`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let row = PyDict::new(py);
        row.set_item("path", &self.path)?;
        row.set_item("ok", self.ok)?;
        row.set_item("label", &self.label)?;
        row.set_item("index", self.index)?;
        row.set_item("probability", self.probability)?;
        row.set_item(
            "top_labels",
            self.top.iter().map(|t| t.0.clone()).collect::<Vec<_>>(),
        )?;
        row.set_item(
            "top_indices",
            self.top.iter().map(|t| t.1).collect::<Vec<_>>(),
        )?;
        row.set_item(
            "top_probabilities",
            self.top.iter().map(|t| t.2).collect::<Vec<_>>(),
        )?;
        row.set_item("error", &self.error)?;
        row.set_item("engine", &self.engine)?;
        row.set_item("provider", &self.provider)?;
        Ok(row)
    }

    fn __repr__(&self) -> String {
        match (&self.label, self.probability, &self.error) {
            (Some(label), Some(p), _) => format!(
                "Prediction(path={:?}, label={label:?}, probability={p:.4})",
                self.path
            ),
            (_, _, error) => format!(
                "Prediction(path={:?}, ok=False, error={:?})",
                self.path,
                error.as_deref().unwrap_or("")
            ),
        }
    }
}

impl Prediction {
    fn from_outcome(outcome: &FileOutcome, ctx: &RowContext) -> Prediction {
        let jsonl = result_rows::row(Format::Jsonl, outcome, ctx);
        let path = outcome.path.display().to_string();
        let (engine, provider) = (ctx.engine.clone(), ctx.provider.clone());
        match &outcome.result {
            Ok(p) => Prediction {
                path,
                ok: true,
                label: Some(p.class_name.clone()),
                index: Some(p.class),
                probability: Some(p.probability),
                top: p
                    .top_k(ctx.top_k)
                    .into_iter()
                    .map(|(c, prob)| {
                        let name = ctx.classes.get(c).cloned();
                        (name.unwrap_or_else(|| c.to_string()), c, prob)
                    })
                    .collect(),
                error: None,
                engine,
                provider,
                probabilities: p.probabilities.clone(),
                jsonl,
            },
            Err(e) => Prediction {
                path,
                ok: false,
                label: None,
                index: None,
                probability: None,
                top: Vec::new(),
                error: Some(e.clone()),
                engine,
                provider,
                probabilities: Vec::new(),
                jsonl,
            },
        }
    }
}

/// A model loaded into an engine, with its preprocessing.
#[pyclass(module = "cifar_onnx", frozen)]
struct Classifier {
    inner: Mutex<runtime::Classifier>,
    // What the classifier was built with and never changes: read without its lock (and so
    // without waiting, GIL held, for a call in another thread).
    info: runtime::ModelInfo,
    config: runtime::InputConfig,
    engine: &'static str,
    provider: String,
    fallback_reason: Option<String>,
}

/// Where ONNX Runtime's library is when the caller did not say: `ORT_DYLIB_PATH` is read by the
/// runtime itself; else the `onnxruntime` Python package's `capi` folder, found without
/// importing it.
fn onnxruntime_package_library(py: Python<'_>) -> Option<PathBuf> {
    if std::env::var_os(runtime::ort_library::ENV_VAR).is_some() {
        return None;
    }
    let spec = py
        .import("importlib.util")
        .ok()?
        .call_method1("find_spec", ("onnxruntime",))
        .ok()?;
    let folders: Vec<PathBuf> = spec
        .getattr("submodule_search_locations")
        .ok()?
        .extract()
        .ok()?;
    folders
        .iter()
        .find_map(|dir| runtime::ort_library::in_dir(&dir.join("capi")))
}

impl Classifier {
    fn lock(&self) -> std::sync::MutexGuard<'_, runtime::Classifier> {
        // A panic inside the engine poisons the lock; the classifier itself stays usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn context(&self, top_k: usize) -> PyResult<RowContext> {
        Ok(RowContext {
            classes: self.info.classes.clone().unwrap_or_default(),
            top_k: count("top_k", top_k, runtime::MAX_CLASSES)?,
            engine: self.engine.to_string(),
            provider: self.provider.clone(),
        })
    }

    fn options(batch: usize, threads: Option<usize>) -> PyResult<BatchOptions> {
        let mut options = BatchOptions {
            batch: count("batch", batch, batch::MAX_BATCH)?,
            ..BatchOptions::default()
        };
        if let Some(n) = threads {
            options.decode_threads = count("threads", n, batch::MAX_THREADS)?;
        }
        Ok(options)
    }
}

#[pymethods]
impl Classifier {
    #[new]
    #[pyo3(signature = (path, engine = "auto", providers = None, threads = None, ort_library = None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        engine: &str,
        providers: Option<Vec<String>>,
        threads: Option<usize>,
        ort_library: Option<PathBuf>,
    ) -> PyResult<Self> {
        let engine: EngineChoice = engine.parse().map_err(PyValueError::new_err)?;
        // Decoding threads share the cores with the engine: ONNX Runtime's threads sleep
        // between runs.
        let mut builder = runtime::Classifier::builder()
            .engine(engine)
            .spin_wait(false);
        if let Some(list) = providers {
            if list.is_empty() {
                return Err(PyValueError::new_err(
                    "providers is empty: name at least one of cuda, tensorrt, cpu (or leave it out)",
                ));
            }
            let list = list
                .iter()
                .map(|p| p.parse::<Provider>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(PyValueError::new_err)?;
            builder = builder.providers(list);
        }
        if let Some(n) = threads {
            builder = builder.threads(count("threads", n, batch::MAX_THREADS)?);
        }
        if let Some(library) = ort_library.or_else(|| onnxruntime_package_library(py)) {
            builder = builder.ort_library(library);
        }
        let classifier = py
            .detach(|| builder.build_from_file(&path))
            .map_err(to_py)?;
        Ok(Classifier {
            info: classifier.info().clone(),
            config: classifier.input_config().clone(),
            engine: classifier.engine_name(),
            provider: classifier.provider(),
            fallback_reason: classifier.fallback_reason().map(str::to_string),
            inner: Mutex::new(classifier),
        })
    }

    /// `"ort"` or `"tract"`.
    #[getter]
    fn engine(&self) -> &'static str {
        self.engine
    }

    /// The execution provider that runs the model (`"cpu"`, `"cuda"`, `"tensorrt"`).
    #[getter]
    fn provider(&self) -> String {
        self.provider.clone()
    }

    /// Why the engine or provider asked for first is not the one running, if it is not.
    #[getter]
    fn fallback_reason(&self) -> Option<String> {
        self.fallback_reason.clone()
    }

    /// The class names the model carries (empty when it names none).
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.info.classes.clone().unwrap_or_default()
    }

    /// The images' size as the model takes them: `(height, width)`.
    #[getter]
    fn input_size(&self) -> (usize, usize) {
        (self.config.height, self.config.width)
    }

    /// Classifies one image: a path, or the encoded bytes of a PNG, JPEG, BMP, GIF or WebP.
    #[pyo3(signature = (image, top_k = 5, name = None))]
    fn classify(
        &self,
        py: Python<'_>,
        image: &Bound<'_, PyAny>,
        top_k: usize,
        name: Option<String>,
    ) -> PyResult<Prediction> {
        let ctx = self.context(top_k)?;
        let encoded = match image.extract::<PyBackedBytes>() {
            Ok(bytes) => Some(bytes),
            Err(_) if image.is_instance_of::<PyMemoryView>() => {
                Some(image.call_method0("tobytes")?.extract::<PyBackedBytes>()?)
            }
            Err(_) => None,
        };
        let outcome = if let Some(bytes) = encoded {
            let name = PathBuf::from(name.unwrap_or_else(|| "<bytes>".into()));
            let result = py.detach(|| self.lock().classify_bytes(&bytes, &name));
            let result = result.map_err(|e| {
                // A file name passed as bytes (b"cat.png") reads as image content.
                let looks_like_a_path = bytes.len() < 4096
                    && std::str::from_utf8(&bytes).is_ok_and(|s| Path::new(s).exists());
                let err = to_py(e);
                if looks_like_a_path {
                    let hint = format!(
                        "{} (a file name goes in as str or pathlib.Path, not bytes)",
                        err.value(py)
                    );
                    ImageError::new_err(hint)
                } else {
                    err
                }
            })?;
            FileOutcome {
                path: name,
                result: Ok(result),
            }
        } else if let Ok(path) = image.extract::<PathBuf>() {
            let result = py.detach(|| self.lock().classify_file(&path));
            let path = name.map_or(path, PathBuf::from);
            FileOutcome {
                path,
                result: Ok(result.map_err(to_py)?),
            }
        } else {
            return Err(PyTypeError::new_err(format!(
                "image must be a path or the bytes of an encoded image, not {}",
                image.get_type().name()?
            )));
        };
        Ok(Prediction::from_outcome(&outcome, &ctx))
    }

    /// Classifies image files, and every image under folders (walked in name order, as
    /// `runtime classify` walks them), decoding on `threads` threads (default: all cores) while
    /// the model runs batches of `batch`. One result per file, in order; a file that cannot be
    /// read or decoded has `ok == False` and its `error`, and the others go on.
    #[pyo3(signature = (paths, batch = 32, top_k = 5, threads = None))]
    fn classify_files(
        &self,
        py: Python<'_>,
        paths: &Bound<'_, PyAny>,
        batch: usize,
        top_k: usize,
        threads: Option<usize>,
    ) -> PyResult<Vec<Prediction>> {
        let not_paths = || PyTypeError::new_err("paths must be a path or an iterable of paths");
        let paths: Vec<PathBuf> = match paths.extract::<PathBuf>() {
            Ok(one) => vec![one],
            Err(_) => paths
                .try_iter()
                .map_err(|_| not_paths())?
                .map(|item| item.and_then(|p| p.extract::<PathBuf>().map_err(|_| not_paths())))
                .collect::<PyResult<_>>()?,
        };
        let (options, ctx) = (Self::options(batch, threads)?, self.context(top_k)?);
        let outcomes = py.detach(|| {
            let list = batch::collect_files(&paths);
            let mut outcomes = list.errors;
            batch::classify_files(&mut self.lock(), &list.files, options, |o| outcomes.push(o));
            outcomes
        });
        Ok(outcomes
            .iter()
            .map(|o| Prediction::from_outcome(o, &ctx))
            .collect())
    }

    /// Classifies encoded images held in memory, as `classify_files` classifies files; `names`
    /// (one per image, default `"0"`, `"1"`, ...) are the results' `path`.
    #[pyo3(signature = (images, names = None, batch = 32, top_k = 5, threads = None))]
    fn classify_bytes(
        &self,
        py: Python<'_>,
        images: Vec<PyBackedBytes>,
        names: Option<Vec<String>>,
        batch: usize,
        top_k: usize,
        threads: Option<usize>,
    ) -> PyResult<Vec<Prediction>> {
        let names = match names {
            Some(names) if names.len() != images.len() => {
                return Err(PyValueError::new_err(format!(
                    "{} names for {} images",
                    names.len(),
                    images.len()
                )))
            }
            Some(names) => names,
            None => (0..images.len()).map(|i| i.to_string()).collect(),
        };
        let (options, ctx) = (Self::options(batch, threads)?, self.context(top_k)?);
        let named: Vec<(PathBuf, PyBackedBytes)> =
            names.into_iter().map(PathBuf::from).zip(images).collect();
        let outcomes = py.detach(|| {
            let mut outcomes = Vec::with_capacity(named.len());
            batch::classify_encoded(&mut self.lock(), &named, options, |o| outcomes.push(o));
            outcomes
        });
        Ok(outcomes
            .iter()
            .map(|o| Prediction::from_outcome(o, &ctx))
            .collect())
    }

    /// Class probabilities `[N, classes]` (float32) for a uint8 RGB batch `[N, H, W, 3]` (or one
    /// image `[H, W, 3]`) already at the model's size, preprocessed as the model says; the
    /// engine runs `batch` images at a time.
    #[pyo3(signature = (images, batch = 32))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArrayDyn<'py, u8>,
        batch: usize,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let batch = count("batch", batch, batch::MAX_BATCH)?;
        let shape = images.shape().to_vec();
        let (height, width) = self.input_size();
        let view = images.as_array();
        let view = match shape[..] {
            [h, w, 3] if (h, w) == (height, width) => view.insert_axis(numpy::ndarray::Axis(0)),
            [n, h, w, 3] if (h, w) == (height, width) && n > 0 => view,
            _ => {
                return Err(InputError::new_err(format!(
                    "images of shape {shape:?}: the model takes uint8 RGB [N, {height}, {width}, 3] (N at least 1) or one [{height}, {width}, 3]; classify() and classify_files() resize"
                )))
            }
        };
        let n = view.shape()[0];
        let mut probabilities: Vec<f32> = Vec::new();
        for first in (0..n).step_by(batch) {
            let end = (first + batch).min(n);
            // Copied in the array's logical order, whatever its strides, one batch at a time.
            let chunk = view.slice(numpy::ndarray::s![first..end, .., .., ..]);
            let planar: Vec<u8> = chunk
                .outer_iter()
                .flat_map(|image| {
                    let interleaved: Vec<u8> = image.iter().copied().collect();
                    runtime::images::interleaved_to_planar(&interleaved)
                })
                .collect();
            let run = py.detach(|| {
                let mut classifier = self.lock();
                let tensor = classifier.input_config().tensor_from_planar(&planar);
                classifier.run_tensor(&tensor, end - first)
            });
            probabilities.extend(run.map_err(to_py)?);
        }
        let classes = probabilities.len() / n;
        let array = Array2::from_shape_vec((n, classes), probabilities)
            .map_err(|e| EngineError::new_err(e.to_string()))?;
        Ok(array.into_pyarray(py))
    }

    /// What the model says about itself, and how it runs: a dict.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (info, config) = (&self.info, &self.config);
        let tensor = |t: &runtime::TensorInfo| -> PyResult<Bound<'py, PyDict>> {
            let d = PyDict::new(py);
            d.set_item("name", &t.name)?;
            d.set_item("shape", t.shape.clone())?;
            d.set_item("shape_text", t.shape_text())?;
            Ok(d)
        };
        let d = PyDict::new(py);
        d.set_item("path", path_text(&info.path))?;
        d.set_item("engine", self.engine)?;
        d.set_item("provider", &self.provider)?;
        d.set_item("fallback_reason", &self.fallback_reason)?;
        d.set_item("input", tensor(&info.input)?)?;
        d.set_item("output", tensor(&info.output)?)?;
        d.set_item("classes", info.classes.clone())?;
        d.set_item("num_classes", info.num_classes())?;
        d.set_item("outputs_probabilities", info.outputs_probabilities)?;
        let preprocessing = PyDict::new(py);
        for (key, value) in config.to_metadata() {
            preprocessing.set_item(key, value)?;
        }
        d.set_item("preprocessing", preprocessing)?;
        d.set_item("metadata", &info.metadata)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Classifier({:?}, engine={:?}, provider={:?}, input={})",
            path_text(&self.info.path),
            self.engine,
            self.provider,
            self.info.input.shape_text()
        )
    }
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// The extension module, imported by the `cifar_onnx` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // The panics the runtime catches and raises as errors stay off stderr; any other panic is
    // reported as before.
    std::panic::set_hook(runtime::panic_hook(std::panic::take_hook()));
    m.add_class::<Classifier>()?;
    m.add_class::<Prediction>()?;
    let error = py.get_type::<Error>();
    // Every error has a `path`: the file involved, or None.
    error.setattr("path", py.None())?;
    m.add("Error", error)?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("ImageError", py.get_type::<ImageError>())?;
    m.add("EngineError", py.get_type::<EngineError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ORT_VERSION", runtime::ort_library::ORT_VERSION)?;
    Ok(())
}
