//! Shared set-up of the end-to-end tests: where the build put the cdylib, the plugin jar
//! and the CLI, and a scratch folder.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

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

/// Whether end-to-end prerequisites are mandatory (the test suite sets this).
pub fn required() -> bool {
    std::env::var_os("DENOISEKIT_REQUIRE_JVM").is_some()
}

/// `ok`, or: panic if prerequisites are required, else print why the test skips.
pub fn require(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(
            !required(),
            "DENOISEKIT_REQUIRE_JVM is set but {what} is missing"
        );
        eprintln!("skipping: {what} is missing");
    }
    ok
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
