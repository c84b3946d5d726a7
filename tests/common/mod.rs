//! Shared set-up of the end-to-end tests: where the build put the cdylib, the plugin jar
//! and the CLI, and a scratch folder.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Artifacts of the current build.
pub struct Env {
    /// The repository root.
    pub root: PathBuf,
    /// `libdenoisekit.so` (or the platform's name for it).
    pub lib: PathBuf,
    /// `DenoiseKit_.jar`.
    pub jar: PathBuf,
    /// The `denoisekit` CLI, if the workspace's binaries were built.
    pub cli: PathBuf,
    /// A fresh scratch folder for this test.
    pub tmp: PathBuf,
}

/// The environment variable that makes a test binary's prerequisites (a JVM, Wine, a
/// cross-built package) mandatory: the test suite sets it, and a missing one then fails
/// the test instead of skipping it.
pub struct Prerequisites(pub &'static str);

/// The JVM and ImageJ tests' switch.
pub const JVM: Prerequisites = Prerequisites("DENOISEKIT_REQUIRE_JVM");

impl Prerequisites {
    /// Whether the prerequisites are mandatory.
    pub fn required(&self) -> bool {
        std::env::var_os(self.0).is_some()
    }

    /// `ok`, or: panic if the prerequisites are required, else print why the test skips.
    pub fn require(&self, ok: bool, what: &str) -> bool {
        if !ok {
            assert!(!self.required(), "{} is set but {what} is missing", self.0);
            eprintln!("skipping: {what} is missing");
        }
        ok
    }
}

/// Whether the JVM and ImageJ tests' prerequisites are mandatory.
pub fn required() -> bool {
    JVM.required()
}

/// [`Prerequisites::require`] for the JVM and ImageJ tests.
pub fn require(ok: bool, what: &str) -> bool {
    JVM.require(ok, what)
}

impl Env {
    /// Locates the artifacts next to this test binary (target/<profile>/deps/...);
    /// `test` names the scratch folder, so tests running in parallel do not collide.
    pub fn find(test: &str) -> Option<Env> {
        let exe = std::env::current_exe().expect("current_exe");
        let deps = exe.parent().expect("deps dir").to_path_buf();
        let profile = deps.parent().expect("profile dir").to_path_buf();
        let name = format!(
            "{}denoisekit{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        let lib = [deps.join(&name), profile.join(&name)]
            .into_iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| deps.join(&name));
        let jar = profile.join("DenoiseKit_.jar");
        let cli = profile.join(format!("denoisekit{}", std::env::consts::EXE_SUFFIX));
        let java_ok = std::process::Command::new("java")
            .arg("-version")
            .output()
            .is_ok();
        if !require(java_ok, "a JDK (java)")
            || !require(lib.exists(), &format!("the cdylib {}", lib.display()))
            || !require(
                jar.exists(),
                &format!(
                    "the plugin jar {} (needs javac and ij.jar at build time)",
                    jar.display()
                ),
            )
        {
            return None;
        }
        let tmp =
            std::env::temp_dir().join(format!("denoisekit-test-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("create scratch dir");
        Some(Env {
            root: Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf(),
            lib,
            jar,
            cli,
            tmp,
        })
    }
}

/// Every page of a grey TIFF, as floats.
pub fn read_tiff(path: &Path) -> Vec<f32> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut dec = tiff::decoder::Decoder::new(std::io::BufReader::new(f)).expect("tiff header");
    let mut all = Vec::new();
    loop {
        match dec.read_image().expect("tiff page") {
            tiff::decoder::DecodingResult::U8(v) => all.extend(v.into_iter().map(f32::from)),
            tiff::decoder::DecodingResult::U16(v) => all.extend(v.into_iter().map(f32::from)),
            tiff::decoder::DecodingResult::F32(v) => all.extend(v),
            _ => panic!("unexpected sample type in {}", path.display()),
        }
        if !dec.more_images() {
            return all;
        }
        dec.next_image().expect("next page");
    }
}

/// One ImageJ at a time: on a 2-core CI machine several JVMs at once starve the GUI
/// harness, whose waits are timed.
pub static DISPLAY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A private X server for one ImageJ run, stopped when dropped. Started directly rather
/// than through `xvfb-run`, which installs its "ready" signal handler and then waits for
/// the server: when the signal lands before the wait starts (a loaded machine), it waits
/// for ever (a CI run lost 300 s to it). `-displayfd` has Xvfb choose a free display
/// and print its number once it accepts connections.
pub struct Xvfb {
    server: Child,
    /// The display to set in DISPLAY, e.g. ":3".
    pub display: String,
}

impl Xvfb {
    /// Starts a server and waits until it accepts connections (60 s at most).
    pub fn start() -> Xvfb {
        let mut server = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let out = server.stdout.take().expect("Xvfb stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.trim().parse::<u32>().is_ok() => Xvfb {
                server,
                display: format!(":{}", line.trim()),
            },
            other => {
                let _ = server.kill();
                let _ = server.wait();
                panic!("Xvfb did not report a display within 60 s: {other:?}");
            }
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
