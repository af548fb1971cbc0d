//! Which Burn backend trains: the `flex` CPU backend always, CUDA with the `cuda` feature.

use crate::error::{Error, Result};
use crate::ops::Kernels;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// What training needs of a backend: autodiff, with the models' layers ([`Kernels`]) on it and on
/// its inner backend (where evaluation and the frozen layers run).
pub trait TrainBackend:
    burn::tensor::backend::AutodiffBackend<InnerBackend: Kernels> + Kernels
{
}

impl<B> TrainBackend for B
where
    B: burn::tensor::backend::AutodiffBackend + Kernels,
    B::InnerBackend: Kernels,
{
}

/// The Burn CPU backend with autodiff.
pub type Cpu = burn::backend::Autodiff<burn::backend::Flex>;
/// The CPU backend's device.
pub fn cpu_device() -> burn::backend::flex::FlexDevice {
    burn::backend::flex::FlexDevice
}

/// The CUDA backend with autodiff.
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Autodiff<burn::backend::Cuda>;

/// Where to train, as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when a device is usable, else the CPU (with a one-line notice).
    #[default]
    Auto,
    Cpu,
    /// CUDA or an error saying why not.
    Cuda,
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            other => Err(format!(
                "unknown device {other:?}: expected auto, cpu or cuda"
            )),
        }
    }
}

/// Where training runs, once the choice is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
}

/// Where CUDA training keeps what it learns about the GPU between runs: the kernels NVRTC compiled
/// and the autotune results (which kernel is fastest for each shape). Without them every process
/// compiles its kernels again, and a new working directory tunes them again too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelCache {
    /// A CubeCL settings file found from the working directory up decides: `cubecl.toml`, or
    /// `burn.toml` with a `[cubecl]` table.
    Settings(PathBuf),
    /// This folder, with a subfolder per GPU model (compiled kernels and tuning results are
    /// for one architecture): the compiled kernels, the autotune results and their log
    /// (`autotune.log`).
    Dir(PathBuf),
    /// No settings file and no home folder: CubeCL's defaults.
    Defaults,
}

impl KernelCache {
    /// What applies to a run from `cwd`, reading the environment through `var`: a settings
    /// file, else `$XDG_CACHE_HOME/cifar-onnx/cubecl`, else `$HOME/.cache/cifar-onnx/cubecl`.
    pub fn find(cwd: &Path, var: impl Fn(&str) -> Option<OsString>) -> Self {
        // CubeCL's own search: in each folder from `cwd` up, its own file, then Burn's.
        for dir in cwd.ancestors() {
            for name in ["cubecl.toml", "CubeCL.toml"] {
                if dir.join(name).is_file() {
                    return KernelCache::Settings(dir.join(name));
                }
            }
            for name in ["burn.toml", "Burn.toml"] {
                let path = dir.join(name);
                if std::fs::read_to_string(&path).is_ok_and(|text| has_cubecl_table(&text)) {
                    return KernelCache::Settings(path);
                }
            }
        }
        let absolute = |name| var(name).map(PathBuf::from).filter(|dir| dir.is_absolute());
        let cache_home =
            absolute("XDG_CACHE_HOME").or_else(|| absolute("HOME").map(|home| home.join(".cache")));
        cache_home.map_or(KernelCache::Defaults, |dir| {
            KernelCache::Dir(dir.join("cifar-onnx").join("cubecl"))
        })
    }
}

impl std::fmt::Display for KernelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelCache::Settings(file) => write!(f, "CubeCL settings from {}", file.display()),
            KernelCache::Dir(dir) => {
                write!(f, "kernels and autotune results kept in {}", dir.display())
            }
            KernelCache::Defaults => f.write_str("CubeCL's default caches"),
        }
    }
}

/// Whether a TOML text has CubeCL settings (a `cubecl` table, in any of TOML's spellings). A text
/// that is not TOML has none that CubeCL could read either.
fn has_cubecl_table(text: &str) -> bool {
    text.parse::<toml::Table>()
        .is_ok_and(|table| table.get("cubecl").is_some_and(toml::Value::is_table))
}

/// A GPU's name as a folder name: `NVIDIA H200` becomes `NVIDIA-H200`.
pub fn folder_name(gpu: &str) -> String {
    let name: String = gpu
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "gpu".into()
    } else {
        name
    }
}

/// Whether CUDA can train here: `Ok(device description)` or the reason it cannot. The answer is
/// worked out once per process, by running a small kernel on device 0 in a thread of its own, so
/// a missing driver, a missing NVRTC or a driver too old for the kernels is an answer, not a crash.
pub fn probe_cuda() -> Result<String, String> {
    static PROBE: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    PROBE.get_or_init(probe_cuda_once).clone()
}

#[cfg(not(feature = "cuda"))]
fn probe_cuda_once() -> Result<String, String> {
    Err("this trainer was built without CUDA support (rebuild with `--features cuda`)".into())
}

#[cfg(feature = "cuda")]
fn probe_cuda_once() -> Result<String, String> {
    use burn::prelude::*;
    // Burn reports CUDA failures by panicking, often on its own server thread (the caller then
    // sees only a closed channel): the probe's panics are its answer, kept off the terminal.
    let (outcome, panics) = capture_panics(true, || {
        let (send, receive) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("cuda-probe".into())
            .spawn(move || {
                let outcome = std::panic::catch_unwind(|| {
                    let gpu = gpu_name()?;
                    let cache = configure_cubecl(&gpu);
                    let device = burn::backend::cuda::CudaDevice::default();
                    let x = Tensor::<burn::backend::Cuda, 1>::from_floats([1.0, 2.0, 3.0], &device);
                    let sum: f32 = x.sum().into_scalar().elem();
                    Ok::<_, String>((format!("cuda:{} ({gpu}); {cache}", device.index), sum))
                });
                let _ = send.send(outcome.map_err(|p| panic_message(p.as_ref())));
            });
        match spawned {
            Err(e) => Err(format!("cannot start the CUDA probe: {e}")),
            Ok(_) => match receive.recv_timeout(std::time::Duration::from_secs(180)) {
                Ok(Ok(Ok((description, 6.0)))) => Ok(description),
                Ok(Ok(Ok((_, sum)))) => Err(format!("a test kernel computed {sum} instead of 6")),
                Ok(Ok(Err(why)) | Err(why)) => Err(why),
                Err(_) => Err("CUDA did not answer within 180 s".into()),
            },
        }
    });
    outcome.map_err(|why| panics.into_iter().next().unwrap_or(why))
}

/// The name of CUDA device 0, which Burn trains on; the driver is loaded here first.
#[cfg(feature = "cuda")]
fn gpu_name() -> Result<String, String> {
    use cudarc::driver::result;
    result::init().map_err(|e| format!("the CUDA driver did not start: {e:?}"))?;
    let device = result::device::get(0).map_err(|e| format!("no CUDA device 0: {e:?}"))?;
    result::device::get_name(device).map_err(|e| format!("CUDA device 0 has no name: {e:?}"))
}

/// Points CubeCL's caches at [`KernelCache::find`]'s folder, in a subfolder for this GPU model
/// (CubeCL's keys for both name the device by its index only), unless a settings file decides.
/// It must run before anything reads CubeCL's settings, so the probe runs it first.
#[cfg(feature = "cuda")]
fn configure_cubecl(gpu: &str) -> KernelCache {
    use burn::cubecl::config::{cache::CacheConfig, CubeClRuntimeConfig, RuntimeConfig};
    let cwd = std::env::current_dir().unwrap_or_default();
    let cache = KernelCache::find(&cwd, |name| std::env::var_os(name));
    let KernelCache::Dir(dir) = &cache else {
        return cache;
    };
    let dir = dir.join(folder_name(gpu));
    // A folder that cannot be written (a read-only home), or settings already read by something
    // else, leave CubeCL to its defaults.
    let writable = std::fs::create_dir_all(&dir).and_then(|()| tempfile::tempfile_in(&dir));
    if writable.is_err() || CubeClRuntimeConfig::storage().lock().is_some() {
        return KernelCache::Defaults;
    }
    // CUBECL_AUTOTUNE_LEVEL and the other CubeCL variables still apply.
    let mut config = CubeClRuntimeConfig::default().override_from_env();
    config.autotune.cache = CacheConfig::File(dir.clone());
    config.compilation.cache = Some(CacheConfig::File(dir.clone()));
    let log = &mut config.autotune.logger;
    if log.file.is_none() && !log.stdout && !log.stderr {
        log.file = Some(dir.join("autotune.log"));
    }
    CubeClRuntimeConfig::set(config);
    KernelCache::Dir(dir)
}

/// What [`panic_hook`] records while [`capture_panics`] runs.
struct Capture {
    /// Keep the panics off stderr.
    silent: bool,
    /// The first line of each panic's message.
    messages: Vec<String>,
}

static CAPTURE: std::sync::Mutex<Option<Capture>> = std::sync::Mutex::new(None);

/// The panic hook for a binary's `main` (`std::panic::set_hook(panic_hook(std::panic::take_hook()))`):
/// Burn reports CUDA failures by panicking, often on a thread of its own, so the CUDA probe and
/// [`dispatch`] learn why CUDA failed from the messages this hook records while they run (the
/// probe's are kept off stderr); every other panic goes to `previous`. Without it the reasons
/// are only the panic payloads the calls catch. The library itself never changes the hook.
pub fn panic_hook(
    previous: Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync + 'static>,
) -> Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync + 'static> {
    Box::new(move |info| {
        let silent = {
            let mut capture = CAPTURE.lock().unwrap_or_else(|e| e.into_inner());
            capture.as_mut().is_some_and(|capture| {
                let text = info.payload_as_str().unwrap_or("a panic without a message");
                let first = text.lines().next().unwrap_or_default();
                // cudarc lists every file name it tried after this.
                let first = first.split(" - searched for").next().unwrap_or(first);
                capture.messages.push(first.to_string());
                capture.silent
            })
        };
        if !silent {
            previous(info);
        }
    })
}

/// Runs `f`, collecting the messages of panics raised meanwhile on any thread when the binary
/// installed [`panic_hook`]; `silent` keeps them off stderr.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn capture_panics<R>(silent: bool, f: impl FnOnce() -> R) -> (R, Vec<String>) {
    *CAPTURE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Capture {
        silent,
        messages: Vec::new(),
    });
    let result = f();
    let messages = CAPTURE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .map(|capture| capture.messages)
        .unwrap_or_default();
    (result, messages)
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

/// Resolves `choice`: `Auto` becomes CUDA when [`probe_cuda`] says so, else the CPU with a
/// notice on stderr; `Cuda` is an error when CUDA cannot run.
pub fn resolve(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => probe_cuda()
            .map(|description| cuda_notice(&description))
            .map_err(|why| Error::Cuda(format!("CUDA is not usable: {why}"))),
        DeviceChoice::Auto => match probe_cuda() {
            Ok(description) => Ok(cuda_notice(&description)),
            Err(why) => {
                static NOTICE: std::sync::Once = std::sync::Once::new();
                NOTICE.call_once(|| eprintln!("device: CPU (CUDA is not usable: {why})"));
                Ok(Device::Cpu)
            }
        },
    }
}

/// Says once on stderr which GPU trains and where its kernels are kept.
fn cuda_notice(description: &str) -> Device {
    static NOTICE: std::sync::Once = std::sync::Once::new();
    NOTICE.call_once(|| eprintln!("device: {description}"));
    Device::Cuda
}

/// Work generic over the training backend, run by [`dispatch`] on the one the user chose.
pub trait OnBackend {
    type Output;
    /// Runs on backend `B`'s `device`; `name` describes it for reports (`burn (cuda)`).
    /// `after_cuda_failure`: this is the CPU's rerun of work that failed on CUDA; it should
    /// continue from the checkpoints the CUDA run left.
    fn run<B: TrainBackend>(
        &self,
        device: &B::Device,
        name: &str,
        after_cuda_failure: bool,
    ) -> Result<Self::Output>;
}

/// Runs `work` on the backend of `choice`. A CUDA failure during the work (out of memory, say)
/// becomes an error, or, under `Auto`, a notice and a rerun on the CPU that continues from the
/// checkpoints the CUDA run left (see [`OnBackend::run`]).
pub fn dispatch<W: OnBackend>(choice: DeviceChoice, work: W) -> Result<W::Output> {
    match resolve(choice)? {
        Device::Cpu => on_cpu(&work, false),
        Device::Cuda => after_cuda(choice, run_cuda(&work), &work),
    }
}

fn on_cpu<W: OnBackend>(work: &W, after_cuda_failure: bool) -> Result<W::Output> {
    work.run::<Cpu>(&cpu_device(), "burn (flex, cpu)", after_cuda_failure)
}

/// What follows the work's run on CUDA: its result, or after a CUDA failure the CPU's rerun
/// (under `Auto`) or an error.
fn after_cuda<W: OnBackend>(
    choice: DeviceChoice,
    outcome: std::result::Result<Result<W::Output>, String>,
    work: &W,
) -> Result<W::Output> {
    match outcome {
        Ok(result) => result,
        Err(why) if choice == DeviceChoice::Auto => {
            eprintln!(
                "CUDA failed ({why}); training on the CPU instead, from CUDA's last checkpoint if there is one"
            );
            on_cpu(work, true)
        }
        Err(why) => Err(Error::Cuda(format!(
            "CUDA failed: {why} (if it ran out of memory, try a smaller batch size)"
        ))),
    }
}

/// The work on CUDA; `Err` holds the message of a panic inside Burn or CubeCL.
#[cfg(feature = "cuda")]
fn run_cuda<W: OnBackend>(work: &W) -> std::result::Result<Result<W::Output>, String> {
    let (outcome, panics) = capture_panics(false, || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            work.run::<Cuda>(
                &burn::backend::cuda::CudaDevice::default(),
                "burn (cuda)",
                false,
            )
        }))
    });
    outcome.map_err(|p| {
        panics
            .into_iter()
            .next()
            .unwrap_or_else(|| panic_message(p.as_ref()))
    })
}

#[cfg(not(feature = "cuda"))]
fn run_cuda<W: OnBackend>(_: &W) -> std::result::Result<Result<W::Output>, String> {
    Err("this trainer was built without CUDA support".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work that answers whether it was a rerun after a CUDA failure.
    struct Rerun;

    impl OnBackend for Rerun {
        type Output = (String, bool);
        fn run<B: TrainBackend>(
            &self,
            _: &B::Device,
            name: &str,
            after_cuda_failure: bool,
        ) -> Result<(String, bool)> {
            Ok((name.to_string(), after_cuda_failure))
        }
    }

    #[test]
    fn a_cuda_failure_under_auto_reruns_on_the_cpu_from_the_checkpoints() {
        let failed = || Err("CUDA_ERROR_OUT_OF_MEMORY".to_string());
        let (name, resumed) = after_cuda(DeviceChoice::Auto, failed(), &Rerun).unwrap();
        assert!(name.contains("cpu") && resumed);
        let refused = after_cuda(DeviceChoice::Cuda, failed(), &Rerun).unwrap_err();
        assert!(refused.to_string().contains("OUT_OF_MEMORY"), "{refused}");
        let done = Ok(Ok(("burn (cuda)".to_string(), false)));
        assert_eq!(
            after_cuda(DeviceChoice::Auto, done, &Rerun).unwrap(),
            ("burn (cuda)".to_string(), false)
        );
    }
}
