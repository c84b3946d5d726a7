#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (a JDK,
# ImageJ 1.x, JUnit 5, Mesa's software Vulkan driver, Xvfb), builds once in release mode
# and runs every test: Rust unit, property, naive-reference and doc tests, GPU-vs-CPU on
# lavapipe, the JVM tests under -Xcheck:jni and the ImageJ macro tests under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
# A full JDK: ImageJ's dialogs need AWT's X11 library, which the headless JDK lacks.
java_home=""
if command -v javac >/dev/null 2>&1; then
  java_home="$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")"
fi
[ -n "$java_home" ] && [ -f "$java_home/lib/libawt_xawt.so" ] || missing+=(default-jdk)
[ -f /usr/share/java/ij.jar ] || missing+=(libij-java)
[ -f /usr/share/java/junit-platform-console-standalone.jar ] || missing+=(junit5)
command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The GPU tests must run (on lavapipe when there is no GPU), not skip; so must the JVM
# and ImageJ tests. Mesa wants a private runtime dir.
export WGPU_BACKEND=vulkan DENOISEKIT_REQUIRE_GPU=1 DENOISEKIT_REQUIRE_JVM=1
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
export CARGO_TERM_COLOR=never

cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo fmt --all -- --check
cargo build --release --workspace --locked
cargo test --release --workspace --locked
