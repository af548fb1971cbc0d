//! Device choice without a usable GPU: `auto` trains on the CPU, `cuda` is a clear error.

mod common;

use trainer::device::{self, Device, DeviceChoice};

#[test]
fn auto_falls_back_to_the_cpu_and_cuda_says_why_not() {
    let probe = device::probe_cuda();
    if probe.is_ok() {
        // A machine where CUDA runs: auto picks it.
        assert_eq!(device::resolve(DeviceChoice::Auto).unwrap(), Device::Cuda);
        return;
    }
    assert_eq!(device::resolve(DeviceChoice::Auto).unwrap(), Device::Cpu);
    assert_eq!(device::resolve(DeviceChoice::Cpu).unwrap(), Device::Cpu);
    let err = device::resolve(DeviceChoice::Cuda).unwrap_err().to_string();
    assert!(err.contains("CUDA is not usable"), "{err}");
    assert!("auto".parse::<DeviceChoice>() == Ok(DeviceChoice::Auto));
    assert!("tpu".parse::<DeviceChoice>().unwrap_err().contains("tpu"));

    // The CLI: a clear error, no panic, and no training started.
    let dir = tempfile::tempdir().unwrap();
    let out = common::train_cli(dir.path(), (10, 10), &["--device", "cuda"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("CUDA is not usable") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(!dir.path().join("models/cnn.onnx").exists());
}

#[test]
fn kernel_cache_follows_settings_files_then_the_cache_home() {
    use device::KernelCache;
    use std::ffi::OsString;
    use std::path::Path;

    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    let cwd = project.join("runs");
    std::fs::create_dir_all(&cwd).unwrap();
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    };
    let home = &[("HOME", "/home/u")];
    let in_home = KernelCache::Dir(Path::new("/home/u/.cache/cifar-onnx/cubecl").into());

    // No settings: XDG_CACHE_HOME when absolute, else HOME's .cache, else CubeCL's defaults.
    assert_eq!(KernelCache::find(&cwd, env(home)), in_home);
    assert_eq!(
        KernelCache::find(&cwd, env(&[("XDG_CACHE_HOME", "/c"), ("HOME", "/home/u")])),
        KernelCache::Dir(Path::new("/c/cifar-onnx/cubecl").into())
    );
    assert_eq!(
        KernelCache::find(&cwd, env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/home/u")])),
        in_home
    );
    assert_eq!(KernelCache::find(&cwd, env(&[])), KernelCache::Defaults);
    assert_eq!(
        KernelCache::find(&cwd, env(&[("HOME", "relative")])),
        KernelCache::Defaults
    );

    // A burn.toml without a [cubecl] table is Burn's business only.
    std::fs::write(project.join("burn.toml"), "[fusion]\nlevel = 1\n").unwrap();
    assert_eq!(KernelCache::find(&cwd, env(home)), in_home);
    // CubeCL's files decide, the nearest folder first: its own file, then Burn's with the table.
    std::fs::write(root.path().join("cubecl.toml"), "").unwrap();
    assert_eq!(
        KernelCache::find(&cwd, env(home)),
        KernelCache::Settings(root.path().join("cubecl.toml"))
    );
    for settings in [
        "[cubecl.autotune]\nlevel = \"minimal\"\n",
        "[ cubecl ]\n",
        "cubecl.autotune.level = \"minimal\"\n",
        "cubecl = { autotune = { level = \"minimal\" } }\n",
    ] {
        std::fs::write(project.join("burn.toml"), settings).unwrap();
        assert_eq!(
            KernelCache::find(&cwd, env(home)),
            KernelCache::Settings(project.join("burn.toml")),
            "{settings}"
        );
    }
    // A burn.toml that is not TOML is not taken for CubeCL settings.
    std::fs::write(project.join("burn.toml"), "[cubecl\n").unwrap();
    assert_eq!(
        KernelCache::find(&cwd, env(home)),
        KernelCache::Settings(root.path().join("cubecl.toml"))
    );

    assert_eq!(device::folder_name("NVIDIA H200"), "NVIDIA-H200");
    assert_eq!(device::folder_name("  "), "gpu");
}
