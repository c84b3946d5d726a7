#!/usr/bin/env python3
"""Denoisers on real microscope noise: the W2S pairs in ../shared/data/real-pairs (one raw
widefield capture against the average of 400), no synthetic noise.

Writes the "## Real noise: W2S pairs" section of docs/benchmarks.md:

    python3 scripts/bench_real_pairs.py --md docs/benchmarks.md [--pairs N] [--grid K]

For every denoiser with a tuned parameter (the registry's `tunable`), on every pair:
- defaults: `denoisekit run <method>` with nothing set (Gaussian model, noise-derived
  defaults);
- tune (Gaussian): `denoisekit tune <method>` with the default noise model;
- tune (auto): `denoisekit tune <method> noise_model=auto`;
- oracle: the best of K values of the tuned parameter from 1/4 to 4 times each tuned one
  (log-spaced), with that tuning's noise model (Gaussian, or the auto choice): what a user
  with the ground truth could reach with the noise-model menu and that one knob.
Scores are PSNR (peak 255) against gt_matched_f32.tif, the average mapped onto the noisy
image's intensity scale (see the pairs' README). Needs numpy and tifffile.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import tifffile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from md_sections import publish  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "target", "release", "denoisekit")
PAIRS = os.path.join(ROOT, "..", "shared", "data", "real-pairs", "w2s")


def psnr(gt, x):
    return 10 * np.log10(255.0 ** 2 / np.mean((gt.astype(np.float64) - x.astype(np.float64)) ** 2))


def cli(*args):
    return subprocess.run([CLI, *args], capture_output=True, text=True, check=True)


def run(method, noisy, out, options):
    cli("run", method, noisy, out, "--float", "--backend", "cpu", *options)
    return tifffile.imread(out)


def tune(method, noisy, fixed):
    lines = cli("tune", method, noisy, *fixed).stdout.strip().splitlines()
    return lines[-1].split()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--md", help="Markdown file whose section to (re)write")
    ap.add_argument("--pairs", type=int, default=0, help="only the first N pairs (0: all)")
    ap.add_argument("--grid", type=int, default=13, help="oracle values per method and pair")
    ap.add_argument("--methods", default="", help="comma-separated subset of the denoisers")
    a = ap.parse_args()
    registry = json.loads(cli("methods", "--format", "json").stdout)
    methods = [(m["id"], next(p["key"] for p in m["params"] if p["tunable"]))
               for m in registry if m["kind"] == "denoise" and any(p["tunable"] for p in m["params"])]
    if a.methods:
        methods = [m for m in methods if m[0] in a.methods.split(",")]
    pairs = sorted(os.listdir(PAIRS))
    if a.pairs:
        pairs = pairs[:a.pairs]
    # scores[method] = list of (defaults, tune gaussian, tune auto, oracle)
    scores = {m: [] for m, _ in methods}
    chosen_models = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.tif")
        for pair in pairs:
            noisy = os.path.join(PAIRS, pair, "noisy.tif")
            gt = tifffile.imread(os.path.join(PAIRS, pair, "gt_matched_f32.tif"))
            choice = cli("noise", noisy, "--auto").stdout.strip().splitlines()
            chosen_models.append((pair, choice[0]))
            for method, key in methods:
                d = psnr(gt, run(method, noisy, out, []))
                gauss = tune(method, noisy, [])
                tg = psnr(gt, run(method, noisy, out, gauss))
                auto = tune(method, noisy, ["noise_model=auto"])
                ta = psnr(gt, run(method, noisy, out, auto))
                best = max(tg, ta)
                # Around each tuned setting, with its own noise model.
                for tuned in (gauss, auto):
                    value = float(next(o for o in tuned if o.startswith(key + "=")).split("=", 1)[1])
                    for f in np.geomspace(0.25, 4.0, a.grid):
                        opts = [o if not o.startswith(key + "=") else f"{key}={value * f}" for o in tuned]
                        try:
                            best = max(best, psnr(gt, run(method, noisy, out, opts)))
                        except subprocess.CalledProcessError:
                            pass  # outside the parameter's range
                scores[method].append((d, tg, ta, best))
                print(f"{pair} {method:22s} defaults {d:6.2f}  tune {tg:6.2f}  auto {ta:6.2f}  "
                      f"oracle {best:6.2f}", file=sys.stderr)
    rows = []
    for method, _ in methods:
        s = np.array(scores[method])
        gap = s[:, 3:4] - s[:, :3]
        rows.append(f"| {method} | " + " | ".join(
            f"{gap[:, i].mean():.2f} / {gap[:, i].max():.2f}" for i in range(3)) +
            f" | {s[:, 3].mean():.2f} |")
    # The best method by its oracle on each pair, against the best method after auto-tuning.
    per_pair = np.array([[scores[m][i] for m, _ in methods] for i in range(len(pairs))])
    best_oracle = per_pair[:, :, 3].max(axis=1)
    best_auto = per_pair[:, :, 2].max(axis=1)
    models = "\n".join(f"- `{p}`: {c}" for p, c in chosen_models)
    section = (
        "## Real noise: W2S pairs\n\n"
        "Generated by `scripts/bench_real_pairs.py` on "
        f"{len(pairs)} real widefield pairs (one raw 8-bit capture against the average of 400, "
        "mapped onto its scale) from `../shared/data/real-pairs`. Each cell is the gap to the "
        "oracle in dB, mean / worst over the pairs (lower is better); the oracle is the best of "
        f"{a.grid} values of the tuned parameter from 1/4 to 4 times each tuned one, with that "
        "tuning's noise model (Gaussian, or the auto choice).\n\n"
        "| method | defaults (Gaussian) | tune (Gaussian) | tune (noise_model=auto) | oracle PSNR |\n"
        "|---|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
        f"Best method after auto-tuning against the best method's oracle: "
        f"{(best_oracle - best_auto).mean():.2f} dB below on average, "
        f"{(best_oracle - best_auto).max():.2f} dB at worst.\n\n"
        "The noise model `noise_model=auto` chose:\n\n" + models + "\n"
    )
    publish(section, a.md)


if __name__ == "__main__":
    main()
