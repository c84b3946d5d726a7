//! Runs the Java tests of every native entry (tests/jvm_roundtrip) in a real JVM with
//! `-Xcheck:jni`, against the cdylib and plugin jar this build produced.
//!
//! Skips when no JDK, JUnit or plugin jar is present, unless `DENOISEKIT_REQUIRE_JVM`
//! is set (the test suite sets it), in which case a missing piece fails the test.

mod common;

use common::{Env, require};
use std::process::Command;

#[test]
fn every_native_entry_behaves_under_xcheck_jni() {
    let Some(env) = Env::find("jvm") else { return };
    let junit = "/usr/share/java/junit-platform-console-standalone.jar";
    if !require(
        std::path::Path::new(junit).exists(),
        "JUnit 5 console (apt-get install junit5)",
    ) {
        return;
    }
    let classes = env.tmp.join("jvm-classes");
    std::fs::create_dir_all(&classes).unwrap();
    let src = env.root.join("tests/jvm_roundtrip/org/denoisekit");
    let status = Command::new("javac")
        .args(["-encoding", "UTF-8", "-d"])
        .arg(&classes)
        .arg("-cp")
        .arg(format!("{}:{junit}", env.jar.display()))
        .arg(src.join("NativeBridgeTest.java"))
        .arg(src.join("HardeningTest.java"))
        .arg(src.join("OutOfMemoryCheck.java"))
        .status()
        .expect("run javac");
    assert!(status.success(), "javac failed");
    let out = Command::new("java")
        .arg("-Xcheck:jni")
        .arg(format!("-Ddenoisekit.library={}", env.lib.display()))
        .args([
            "-jar",
            junit,
            "--disable-banner",
            "--disable-ansi-colors",
            "--details=tree",
            "--fail-if-no-tests",
            "-cp",
        ])
        .arg(format!("{}:{}", classes.display(), env.jar.display()))
        .arg("--select-class=org.denoisekit.NativeBridgeTest")
        .arg("--select-class=org.denoisekit.HardeningTest")
        .env("WGPU_BACKEND", "vulkan")
        .output()
        .expect("run java");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    let count = |what: &str| -> usize {
        stdout
            .lines()
            .find(|l| l.contains(&format!("tests {what}")))
            .and_then(|l| {
                l.split_whitespace()
                    .find_map(|w| w.trim_start_matches('[').parse().ok())
            })
            .unwrap_or(0)
    };
    let (passed, failed) = (count("successful"), count("failed"));
    println!("JVM: {passed} passed, {failed} failed");
    assert!(out.status.success(), "JUnit reported failures");
    assert!(
        passed >= 17 && failed == 0,
        "expected at least 17 passing JVM tests"
    );
    for bad in [
        "WARNING in native method",
        "FATAL ERROR",
        "A fatal error has been detected",
    ] {
        assert!(!stderr.contains(bad), "-Xcheck:jni reported: {bad}");
    }
}

#[test]
fn a_result_the_java_heap_cannot_hold_raises_the_jvms_out_of_memory_error() {
    // 48 MiB in, 48 MiB out, in a 100 MiB heap: the input fits, the result does not. The
    // JVM's OutOfMemoryError reaches Java (Fiji then says to raise its memory) instead of
    // a DenoiseKitException saying only that a JNI call failed.
    let Some(env) = Env::find("jvm_oom") else {
        return;
    };
    let classes = env.tmp.join("oom-classes");
    std::fs::create_dir_all(&classes).unwrap();
    let src = env
        .root
        .join("tests/jvm_roundtrip/org/denoisekit/OutOfMemoryCheck.java");
    let status = Command::new("javac")
        .args(["-encoding", "UTF-8", "-d"])
        .arg(&classes)
        .arg("-cp")
        .arg(&env.jar)
        .arg(src)
        .status()
        .expect("run javac");
    assert!(status.success(), "javac failed");
    let out = Command::new("java")
        .args(["-Xcheck:jni", "-Xmx100m"])
        .arg(format!("-Ddenoisekit.library={}", env.lib.display()))
        .arg("-cp")
        .arg(format!("{}:{}", classes.display(), env.jar.display()))
        .arg("org.denoisekit.OutOfMemoryCheck")
        .output()
        .expect("run java");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("thrown: OutOfMemoryError"),
        "{stdout}\n{stderr}"
    );
    assert!(!stderr.contains("FATAL ERROR"), "{stderr}");
}
