#!/usr/bin/env bash
# The main job on the bundled input: denoise data/fluo_nuclei_dsb2018_512x512_u16.tif
# (with synthetic noise of known level) with every denoiser at its default or
# noise-derived parameters; writes out/demo/*.tif and out/demo/montage.png and prints a
# table of method / time / PSNR / SSIM.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo run --release --locked -p denoisekit-cli --bin denoisekit -- demo "$@"
