#!/usr/bin/env python3
"""Noise-derived defaults on correlated noise: the noise estimate with and without the
correction for the noise's spatial correlation.

Writes the "## Defaults on correlated noise" section of docs/benchmarks.md:

    python3 scripts/bench_correlated.py --md docs/benchmarks.md [--pairs N]

On the W2S ground truths (gt_matched_f32.tif in ../shared/data/real-pairs) with Gaussian
noise of standard deviation 10 made correlated by a small kernel (independent noise as
the control), every denoiser with a noise-derived default is run with nothing set but
`noise_model=gaussian` (the defaults: the corrected estimate), and with each
noise-derived default set to its multiple (from the descriptor) of the uncorrected
wavelet estimate, scikit-image's `estimate_sigma` (the same db2 median estimate). Scores
are PSNR (peak 255) against the ground truth. Also the estimate before and now on the
real images in ../shared/data/real. Needs the denoisekit wheel, scikit-image with
PyWavelets, scipy and tifffile.
"""
import argparse
import os
import sys
import warnings

import numpy as np
import tifffile
from scipy.ndimage import convolve
from skimage.restoration import estimate_sigma as wavelet_sigma

import denoisekit as dk

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from md_sections import publish  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = os.path.join(ROOT, "..", "shared", "data", "real-pairs", "w2s")
REAL = os.path.join(ROOT, "..", "shared", "data", "real")
SD = 10.0
# Noise kernels: what binning (a 2x2 box) and an interpolating or scanning detector (a
# 3x3 bell; a short smear along x) do to white noise.
KERNELS = {
    "independent": np.ones((1, 1)),
    "2x2 box": np.ones((2, 2)),
    "3x3 bell": np.array([[0.3, 0.6, 0.3], [0.6, 1.0, 0.6], [0.3, 0.6, 0.3]]),
    "x smear": np.array([[0.5, 1.0, 0.7, 0.3]]),
}


def psnr(a, g):
    return 10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - g) ** 2))


def noise_scaled(method):
    """The method's parameters whose defaults are multiples of the noise: key -> multiple."""
    return {
        p["key"]: p["default_times_noise"]
        for p in dk.describe(method)["params"]
        if p.get("default_times_noise") is not None
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--md")
    ap.add_argument("--pairs", type=int, default=4)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    methods = [m for m in dk.methods() if noise_scaled(m)]
    pairs = sorted(os.listdir(PAIRS))[:: max(1, 12 // args.pairs)][: args.pairs]
    rng = np.random.default_rng(7)
    rows = []
    for name, k in KERNELS.items():
        before = {m: [] for m in methods}
        after = {m: [] for m in methods}
        noisy_db, est_old, est_new = [], [], []
        for pair in pairs:
            g = tifffile.imread(os.path.join(PAIRS, pair, "gt_matched_f32.tif")).astype(np.float64)
            n = convolve(rng.standard_normal(g.shape), k / np.sqrt((k**2).sum()), mode="wrap")
            y = (g + SD * n / n.std()).astype(np.float32)
            noisy_db.append(psnr(y, g))
            old = float(wavelet_sigma(y))
            est_old.append(old)
            est_new.append(dk.estimate_noise(y).sigma)
            for m in methods:
                after[m].append(psnr(dk.denoise(y, m, noise_model="gaussian"), g))
                fixed = {key: k_ * old for key, k_ in noise_scaled(m).items()}
                before[m].append(psnr(dk.denoise(y, m, noise_model="gaussian", **fixed), g))
            print(name, pair, f"old {old:.2f} new {est_new[-1]:.2f}", flush=True)
        rows.append((name, np.mean(noisy_db), np.mean(est_old), np.mean(est_new),
                     {m: (np.mean(before[m]), np.mean(after[m])) for m in methods}))
    head = "| noise | noisy | σ̂ before → now | " + " | ".join(methods) + " |"
    lines = [
        "## Defaults on correlated noise",
        "",
        f"`python3 scripts/bench_correlated.py --md docs/benchmarks.md` — {len(pairs)} W2S "
        f"ground truths ({', '.join(pairs)}) with Gaussian noise of standard deviation {SD:g} "
        "made correlated by each kernel (independent: the control). Each cell is the mean "
        "PSNR (dB) of the defaults with `noise_model=gaussian`: before, each noise-derived "
        "default from the finest wavelet details' estimate as it was (scikit-image's "
        "`estimate_sigma`, the same db2 median estimate up to border handling); now, from "
        "the estimate corrected for the "
        "measured correlation. The σ̂ column is the mean estimate, against the true "
        f"{SD:g}.",
        "",
        head,
        "|" + "---|" * (3 + len(methods)),
    ]
    for name, nz, eo, en, per in rows:
        cells = " | ".join(f"{b:.2f} → {a:.2f}" for b, a in per.values())
        lines.append(f"| {name} | {nz:.2f} | {eo:.2f} → {en:.2f} | {cells} |")
    lines += [
        "",
        "On the real images in ../shared/data/real (a stack's middle plane): scikit-image's "
        "`estimate_sigma` (uncorrected; it differs a little from ours on independent noise, "
        "as it reads flat and border supports too), the estimate now, and the correlation "
        "measured:",
        "",
        "| image | scikit-image | now | noise |",
        "|---|---|---|---|",
    ]
    for f in sorted(os.listdir(REAL)):
        if not f.endswith(".tif") or f.startswith("psf"):
            continue
        img = tifffile.imread(os.path.join(REAL, f)).astype(np.float32)
        if img.ndim == 3:
            img = img[img.shape[0] // 2]
        e = dk.estimate_noise(img)
        old = float(wavelet_sigma(img))
        lines.append(f"| {f} | {old:.4g} | {e.sigma:.4g} | {e.correlation} |")
    publish("\n".join(lines) + "\n", args.md)


if __name__ == "__main__":
    main()
