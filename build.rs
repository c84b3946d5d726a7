//! Builds the ImageJ plugin jar next to the native library, so that one
//! `cargo build --release` yields both `target/release/libdenoisekit.so` and
//! `target/release/DenoiseKit_.jar`.
//!
//! The Java sources compile with `javac --release 8` (so the jar also loads in older Fijis)
//! against ImageJ 1.x: `$DENOISEKIT_IJ_JAR`, else Debian's `/usr/share/java/ij.jar`.
//! Without a JDK or ij.jar the step is skipped with a cargo warning; the native library
//! still builds.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn java_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            java_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "java") {
            out.push(p);
        }
    }
}

fn main() {
    // A macOS library is named by its install name when something links against it; the
    // linker's default is the build path, which means nothing on a user's Mac.
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libdenoisekit.dylib");
    }
    println!("cargo:rerun-if-changed=java-plugin/src/main");
    println!("cargo:rerun-if-env-changed=DENOISEKIT_IJ_JAR");
    let ij = env::var("DENOISEKIT_IJ_JAR").unwrap_or_else(|_| "/usr/share/java/ij.jar".into());
    if !Path::new(&ij).exists() {
        println!(
            "cargo:warning=ImageJ jar not found at {ij} (set DENOISEKIT_IJ_JAR or apt-get install libij-java): plugin jar not built"
        );
        return;
    }
    let javac_ok = Command::new("javac")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !javac_ok {
        println!("cargo:warning=no javac on PATH (install a JDK): plugin jar not built");
        return;
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is target/<profile>/build/<pkg>-<hash>/out; the jar goes to target/<profile>.
    let Some(profile_dir) = out_dir.ancestors().nth(3) else {
        println!(
            "cargo:warning=unexpected OUT_DIR layout {}: plugin jar not built",
            out_dir.display()
        );
        return;
    };
    let classes = out_dir.join("classes");
    let _ = fs::remove_dir_all(&classes);
    fs::create_dir_all(&classes).expect("create classes dir");
    let mut sources = Vec::new();
    java_sources(Path::new("java-plugin/src/main/java"), &mut sources);
    sources.sort();
    let status = Command::new("javac")
        .args([
            "--release",
            "8",
            "-nowarn",
            "-Xlint:-options",
            "-encoding",
            "UTF-8",
            "-cp",
            &ij,
            "-d",
        ])
        .arg(&classes)
        .args(&sources)
        .status()
        .expect("run javac");
    assert!(
        status.success(),
        "javac failed on java-plugin/src/main/java"
    );
    let resources = Path::new("java-plugin/src/main/resources");
    let jar = profile_dir.join("DenoiseKit_.jar");
    // The version names the native library's cache folder. Enable-Native-Access silences
    // Java 24+'s restricted-method warning for `java -jar` runs only (README: in Fiji
    // the launcher's --enable-native-access does it).
    let manifest = out_dir.join("MANIFEST.MF");
    fs::write(
        &manifest,
        format!(
            "Implementation-Title: DenoiseKit\nImplementation-Version: {}\nEnable-Native-Access: ALL-UNNAMED\n",
            env::var("CARGO_PKG_VERSION").unwrap_or_default()
        ),
    )
    .expect("write the jar manifest");
    let mut cmd = Command::new("jar");
    cmd.arg("cfm")
        .arg(&jar)
        .arg(&manifest)
        .arg("-C")
        .arg(&classes)
        .arg(".");
    if resources.exists() {
        cmd.arg("-C").arg(resources).arg(".");
    }
    let status = cmd.status().expect("run jar");
    assert!(status.success(), "jar failed");
    println!("cargo:rustc-env=DENOISEKIT_PLUGIN_JAR={}", jar.display());
}
