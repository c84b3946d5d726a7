//! `denoisekit run` on OME-Zarr stores: handed to the Python package's Dask driver
//! (`denoisekit.dask.denoise_ome_zarr`, through `python -m denoisekit.zarr_cli`), so the
//! command line and Python share one chunked, resumable job instead of two.

use std::path::Path;
use std::process::Command;

/// The environment variable naming the Python interpreter that has `denoisekit[dask]`
/// installed (default `python3`).
pub const PYTHON_ENV: &str = "DENOISEKIT_PYTHON";

/// Whether `path` names a Zarr store: a `.zarr` name, or a folder with Zarr metadata.
pub fn is_zarr(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zarr"))
        || ["zarr.json", ".zgroup", ".zattrs"]
            .iter()
            .any(|f| path.join(f).is_file())
}

/// Where the job runs: local worker processes, or a running scheduler.
pub struct Cluster {
    pub workers: Option<usize>,
    pub scheduler: Option<String>,
    pub resume: bool,
    pub overwrite: bool,
}

/// Runs the Dask driver and passes its output through; its exit status is ours.
pub fn run(
    method: &str,
    input: &Path,
    output: &Path,
    params: &[String],
    backend: &str,
    cluster: &Cluster,
) -> Result<(), String> {
    let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".into());
    let missing = || {
        format!(
            "OME-Zarr needs the Python package with Dask: {python} cannot import \
             denoisekit.dask; pip install 'denoisekit[dask]' there, or set {PYTHON_ENV} to a \
             Python that has it"
        )
    };
    // Checked first, so that a failed job is never mistaken for a missing package.
    let probe = Command::new(&python)
        .args(["-c", "import denoisekit.dask"])
        .output()
        .map_err(|e| format!("{} ({e})", missing()))?;
    if !probe.status.success() {
        return Err(missing());
    }
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "denoisekit.zarr_cli", method])
        .arg(input)
        .arg(output)
        .args(params)
        .args(["--backend", backend]);
    if let Some(n) = cluster.workers {
        cmd.args(["--workers", &n.to_string()]);
    }
    if let Some(a) = &cluster.scheduler {
        cmd.args(["--scheduler", a]);
    }
    if cluster.resume {
        cmd.arg("--resume");
    }
    if cluster.overwrite {
        cmd.arg("--overwrite");
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {python}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "the Dask job failed ({status}); its error is above"
        ))
    }
}
