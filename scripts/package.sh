#!/usr/bin/env bash
# Packs the one jar a Fiji user installs: the plugin classes plus the native library for
# this platform under natives/<os>-<arch>/, which NativeBridge extracts and loads once.
#
#   bash scripts/package.sh [PROFILE_DIR] [OUT_DIR] [LIBRARY]
#
# PROFILE_DIR defaults to target/release (run `cargo build --release` first); the jar is
# written to OUT_DIR/DenoiseKit_.jar (default PROFILE_DIR/dist). LIBRARY overrides the
# native library's path (the tests pass the one cargo test built). Builds for other
# platforms add their library under their own natives/<os>-<arch>/ folder the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-target/release}"
out="${2:-$profile/dist}"

case "$(uname -s)" in
  Linux) os=linux; lib=libdenoisekit.so ;;
  Darwin) os=macos; lib=libdenoisekit.dylib ;;
  MINGW*|MSYS*|CYGWIN*) os=windows; lib=denoisekit.dll ;;
  *) echo "package.sh: unsupported OS $(uname -s)" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  *) arch="$(uname -m)" ;;
esac

libpath="${3:-$profile/$lib}"
for f in "$profile/DenoiseKit_.jar" "$libpath"; do
  [ -f "$f" ] || { echo "package.sh: $f is missing: run cargo build --release (with a JDK and ImageJ installed)" >&2; exit 1; }
done
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/natives/$os-$arch" "$out"
cp "$libpath" "$stage/natives/$os-$arch/$lib"
# Debug line tables are for developers' backtraces; users get the stripped library.
if command -v strip >/dev/null 2>&1 && [ "$os" = linux ]; then
  strip --strip-debug "$stage/natives/$os-$arch/$lib"
fi
cp "$profile/DenoiseKit_.jar" "$out/DenoiseKit_.jar"
jar uf "$out/DenoiseKit_.jar" -C "$stage" natives
echo "$out/DenoiseKit_.jar ($os-$arch)"
