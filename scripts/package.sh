#!/usr/bin/env bash
# Builds what a user downloads, from this Linux x86_64 machine: one DenoiseKit_.jar that
# carries the native library of every platform Fiji runs on, under
# natives/<os>-<arch>/ (NativeBridge extracts the one it needs once), and the
# `denoisekit` command line for each platform.
#
#   bash scripts/package.sh [--out DIR] [--platforms LIST] [--no-build] [--all-targets]
#   bash scripts/package.sh --assemble OUT_JAR PLUGIN_JAR PLATFORM=LIBRARY...
#
# The first form builds (profile `dist`: release code, stripped) and writes
#   DIR/DenoiseKit_.jar                      (default DIR: dist)
#   DIR/cli/<platform>/denoisekit[.exe]
#   DIR/SHA256SUMS
# for LIST (comma-separated; default every platform below), each built into
# target/<triple>/dist/; the plugin classes come from the host's `cargo build --release
# --workspace`, which it runs first. --all-targets builds the host's tests and benches in
# that run too, as scripts/test.sh does: their dev-dependencies switch on features of
# shared crates, and a build without them would compile most of the workspace again
# before and after the tests. --no-build packs what earlier builds left. The second form only packs: it copies
# PLUGIN_JAR to OUT_JAR and adds each library under natives/PLATFORM/ (the tests use it
# with the library cargo test built).
#
# Needs (scripts/test.sh installs them): rustup targets x86_64-pc-windows-gnu,
# aarch64-unknown-linux-gnu, aarch64-apple-darwin, x86_64-apple-darwin; Debian's
# mingw-w64 for Windows; `pip install ziglang cargo-zigbuild`, which links the Linux
# (against an old glibc) and macOS builds.
# The macOS builds have no GPU backend (wgpu's Metal backend links Apple frameworks that
# do not exist on Linux): they are compiled and link-checked here, not run.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL="linux-x86_64 linux-aarch64 windows-x86_64 macos-aarch64 macos-x86_64"
# The oldest glibc the Linux builds need (CentOS 7, Ubuntu 14.04 and later).
GLIBC=2.17
# The oldest macOS the macOS builds load on.
MACOS=11.0

triple() {
  case "$1" in
    linux-x86_64) echo x86_64-unknown-linux-gnu ;;
    linux-aarch64) echo aarch64-unknown-linux-gnu ;;
    windows-x86_64) echo x86_64-pc-windows-gnu ;;
    macos-aarch64) echo aarch64-apple-darwin ;;
    macos-x86_64) echo x86_64-apple-darwin ;;
    *) echo "package.sh: unknown platform $1 (known: $ALL)" >&2; exit 2 ;;
  esac
}

libname() {
  case "$1" in
    windows-*) echo denoisekit.dll ;;
    macos-*) echo libdenoisekit.dylib ;;
    *) echo libdenoisekit.so ;;
  esac
}

exename() {
  case "$1" in windows-*) echo denoisekit.exe ;; *) echo denoisekit ;; esac
}

# Copies PLUGIN_JAR to OUT_JAR with each PLATFORM=LIBRARY under natives/PLATFORM/.
# Runs in a subshell, so that its clean-up trap covers every way out of it.
assemble() (
  out_jar="$1" plugin_jar="$2"
  shift 2
  command -v jar >/dev/null || { echo "package.sh: needs a JDK's jar tool" >&2; exit 1; }
  [ -f "$plugin_jar" ] || { echo "package.sh: $plugin_jar is missing: run cargo build --release (with a JDK and ImageJ installed)" >&2; exit 1; }
  stage="$(mktemp -d)"
  trap 'rm -rf "$stage" "$out_jar.part"' EXIT
  for pair in "$@"; do
    platform="${pair%%=*}" lib="${pair#*=}"
    triple "$platform" >/dev/null
    [ -f "$lib" ] || { echo "package.sh: $lib is missing" >&2; exit 1; }
    mkdir -p "$stage/natives/$platform"
    dest="$stage/natives/$platform/$(libname "$platform")"
    cp "$lib" "$dest"
    # Debug line tables are for developers' backtraces; users get the stripped library
    # (the `dist` builds are stripped already).
    # (Only a Linux x86_64 library can be stripped here; any other is packed as it is.)
    if [ "$platform" = linux-x86_64 ] && command -v strip >/dev/null 2>&1; then
      strip --strip-debug "$dest" 2>/dev/null || true
    fi
  done
  mkdir -p "$(dirname "$out_jar")"
  cp "$plugin_jar" "$out_jar.part"
  jar uf "$out_jar.part" -C "$stage" natives
  mv "$out_jar.part" "$out_jar"
)

if [ "${1:-}" = --assemble ]; then
  shift
  [ $# -ge 3 ] || { echo "usage: package.sh --assemble OUT_JAR PLUGIN_JAR PLATFORM=LIBRARY..." >&2; exit 2; }
  assemble "$@"
  echo "$1"
  exit 0
fi

out=dist
platforms="$ALL"
build=1
all_targets=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out|--platforms) [ $# -ge 2 ] || { echo "package.sh: $1 needs a value (see the header of $0)" >&2; exit 2; } ;;
  esac
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --platforms) platforms="${2//,/ }"; shift 2 ;;
    --no-build) build=0; shift ;;
    --all-targets) all_targets=--all-targets; shift ;;
    *) echo "package.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

pairs=()
# Only what this run packs: no CLI of an earlier run with other platforms.
rm -rf "$out/cli" "$out/SHA256SUMS" "$out/DenoiseKit_.jar"
mkdir -p "$out"
# The plugin classes: always rebuilt when building (a no-op when up to date), so that new
# Java sources never ship beside old natives. The whole workspace: `-p denoisekit-jni`
# alone unifies features differently and rebuilt most crates (1m52s in CI).
[ $build = 1 ] && cargo build --release --locked --workspace $all_targets
for platform in $platforms; do
  t="$(triple "$platform")"
  dir="target/$t/dist"
  if [ $build = 1 ]; then
    case "$platform" in
      linux-*|macos-*)
        command -v cargo-zigbuild >/dev/null || { echo "package.sh: $platform needs cargo-zigbuild (pip install ziglang cargo-zigbuild)" >&2; exit 1; }
        case "$platform" in
          # Linked against glibc 2.17's symbols (zig brings the stubs), so that the library
          # loads on every distribution Fiji runs on, not only on ones as new as this.
          linux-*) cargo zigbuild --profile dist --locked --target "$t.$GLIBC" -p denoisekit-jni -p denoisekit-cli ;;
          # No Metal to link against here: the CPU-only build. (rustc warns that xcrun is
          # missing; zig supplies the macOS system library stubs instead.)
          # zig's own default is the newest macOS it knows, which older Macs refuse to load.
          macos-*) MACOSX_DEPLOYMENT_TARGET=$MACOS cargo zigbuild --profile dist --locked --target "$t" \
                     -p denoisekit-jni -p denoisekit-cli --no-default-features ;;
        esac ;;
      *)
        cargo build --profile dist --locked --target "$t" -p denoisekit-jni -p denoisekit-cli ;;
    esac
  fi
  pairs+=("$platform=$dir/$(libname "$platform")")
  mkdir -p "$out/cli/$platform"
  cp "$dir/$(exename "$platform")" "$out/cli/$platform/"
done
assemble "$out/DenoiseKit_.jar" target/release/DenoiseKit_.jar "${pairs[@]}"
(cd "$out" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum > SHA256SUMS)
echo "$out/DenoiseKit_.jar: $(du -k "$out/DenoiseKit_.jar" | cut -f1) KiB, natives for: $platforms"
