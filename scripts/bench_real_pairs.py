#!/usr/bin/env python3
"""Denoisers on real microscope noise: the W2S pairs in ../shared/data/real-pairs (one raw
widefield capture against the average of 400), no synthetic noise.

Writes the "## Real noise: W2S pairs" section of docs/benchmarks.md:

    python3 scripts/bench_real_pairs.py --md docs/benchmarks.md [--pairs N] [--grid K]

For every denoiser with a tuned parameter (the registry's `tunable`), on every pair:
- defaults: `denoisekit run <method>` with nothing set (noise_model=auto, noise-derived
  defaults);
- Auto: `denoisekit tune <method>` with nothing set: the one click (noise_model=auto);
- tune (Gaussian): `denoisekit tune <method> noise_model=gaussian`, what users had before;
- oracle: the best of K values of the tuned parameter from 1/4 to 4 times each tuned one
  (log-spaced), with each tuning's noise model (the auto choice, and Gaussian): what a
  user with the ground truth could reach with the noise-model menu and that one knob.
The method suggested is the one whose Auto scored best by its own self-supervised loss
(`denoisekit tune auto`), against the best method's oracle.
Peers, as a user would call them with their noise estimate: scikit-image's
`denoise_nl_means` (fast mode, patch 5, distance 6, h = 0.8·σ̂, σ̂ from `estimate_sigma`,
as in its gallery) and the bm3d package with `sigma_psd = σ̂`; with --peers PYTHON (an
interpreter with scikit-image and bm3d; bm3d is non-commercial, a peer only).
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
# Overridable for a machine where the repository's neighbours are not (a lent GPU's).
CLI = os.environ.get("DENOISEKIT_CLI", os.path.join(ROOT, "target", "release", "denoisekit"))
PAIRS = os.environ.get("DENOISEKIT_PAIRS", os.path.join(ROOT, "..", "shared", "data", "real-pairs", "w2s"))


def real_pairs(limit=0):
    """The W2S pairs in name order (the first `limit`, or all): (name, path of the noisy
    capture, ground truth mapped onto its scale)."""
    for name in sorted(os.listdir(PAIRS))[: limit or None]:
        gt = tifffile.imread(os.path.join(PAIRS, name, "gt_matched_f32.tif"))
        yield name, os.path.join(PAIRS, name, "noisy.tif"), gt


def log_row(row):
    """A result row as one line, `<pair> key=value ...`, that [`logged`] reads back."""
    print(row["pair"], " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in row.items() if k != "pair"), flush=True)


def run_options(args, keys):
    """The options (`args`' attributes `keys`) a section states. A run measuring prints them
    as one line before its rows; a re-render (`args.from_log`) takes the ones its run
    logged in place of the command line's, so that it states what was measured. A log from
    before runs logged their options keeps the command line's, with a warning."""
    if not args.from_log:
        print("options", json.dumps({k: getattr(args, k) for k in keys}), flush=True)
        return
    path = args.from_log
    for line in open(path):
        if line.startswith("options "):
            for k, v in json.loads(line.removeprefix("options ")).items():
                if k in keys:
                    setattr(args, k, v)
            return
    print(f"{path} does not record the run's options ({', '.join(keys)}): the section "
          "states the command line's", file=sys.stderr)


def logged(path):
    """The rows a run printed with [`log_row`]: numbers as floats, keys that are numbers
    (a parameter's value) too."""
    def number(s):
        try:
            return float(s)
        except ValueError:
            return s
    rows = []
    for line in open(path):
        name, *fields = line.split() or [""]
        if name.startswith("w2s_") and fields and all("=" in kv for kv in fields):
            rows.append({"pair": name, **{number(k): number(v)
                                          for k, v in (kv.split("=", 1) for kv in fields)}})
    if not rows:
        sys.exit(f"{path} has no per-pair lines")
    return rows


def psnr(gt, x):
    return 10 * np.log10(255.0 ** 2 / np.mean((gt.astype(np.float64) - x.astype(np.float64)) ** 2))


def cli(*args):
    return subprocess.run([CLI, *args], capture_output=True, text=True, check=True)


def run(method, noisy, out, options, backend="cpu"):
    cli("run", method, noisy, out, "--float", "--backend", backend, *options)
    return tifffile.imread(out)


def param(method, key):
    """Parameter `key` of `method` as its Rust descriptor says (the CLI's method list):
    its default, its range or choices."""
    methods = json.loads(cli("methods", "--format", "json").stdout)
    params = next(m for m in methods if m["id"] == method)["params"]
    return next(p for p in params if p["key"] == key)


def tune(method, noisy, fixed):
    lines = cli("tune", method, noisy, *fixed).stdout.strip().splitlines()
    return lines[-1].split()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--md", help="Markdown file whose section to (re)write")
    ap.add_argument("--pairs", type=int, default=0, help="only the first N pairs (0: all)")
    ap.add_argument("--grid", type=int, default=13, help="oracle values per method and pair")
    ap.add_argument("--methods", default="", help="comma-separated subset of the denoisers")
    ap.add_argument("--peers", default="", help="Python with scikit-image and bm3d")
    a = ap.parse_args()
    registry = json.loads(cli("methods", "--format", "json").stdout)
    # A conditional strength (zs_n2n's PSF under synthetic training) is benchmarked by
    # scripts/bench_synthetic.py.
    strength = [(m, [p["key"] for p in m["params"] if p["tunable"] and p["when"] is None])
                for m in registry if m["kind"] == "denoise"]
    methods = [(m["id"], keys[0]) for m, keys in strength if keys]
    if a.methods:
        methods = [m for m in methods if m[0] in a.methods.split(",")]
    # scores[method] = list of (defaults, Auto, tune gaussian, oracle)
    scores = {m: [] for m, _ in methods}
    chosen_models = []
    suggested = []
    peers = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.tif")
        for pair, noisy, gt in real_pairs(a.pairs):
            choice = cli("noise", noisy, "--auto").stdout.strip().splitlines()
            chosen_models.append((pair, choice[0]))
            for method, key in methods:
                d = psnr(gt, run(method, noisy, out, []))
                auto = tune(method, noisy, [])
                ta = psnr(gt, run(method, noisy, out, auto))
                gauss = tune(method, noisy, ["noise_model=gaussian"])
                tg = psnr(gt, run(method, noisy, out, gauss))
                best = max(tg, ta)
                # Around each tuned setting, with its own noise model.
                for tuned in (auto, gauss):
                    value = float(next(o for o in tuned if o.startswith(key + "=")).split("=", 1)[1])
                    for f in np.geomspace(0.25, 4.0, a.grid):
                        opts = [o if not o.startswith(key + "=") else f"{key}={value * f}" for o in tuned]
                        try:
                            best = max(best, psnr(gt, run(method, noisy, out, opts)))
                        except subprocess.CalledProcessError:
                            pass  # outside the parameter's range
                scores[method].append((d, ta, tg, best))
                print(f"{pair} {method:22s} defaults {d:6.2f}  auto {ta:6.2f}  gauss {tg:6.2f}  "
                      f"oracle {best:6.2f}", file=sys.stderr)
            pick = suggest(noisy, [m for m, _ in methods])
            suggested.append(pick)
            print(f"{pair} suggested {pick}", file=sys.stderr)
            if a.peers:
                peers.append(run_peers(a.peers, noisy, gt, tmp))
                print(f"{pair} peers {peers[-1]}", file=sys.stderr)
    rows = []
    for method, _ in methods:
        sc = np.array(scores[method])
        gap = sc[:, 3:4] - sc[:, :3]
        rows.append(f"| {method} | " + " | ".join(
            f"{gap[:, i].mean():.2f} / {gap[:, i].max():.2f}" for i in range(3)) +
            f" | {sc[:, 3].mean():.2f} |")
    names = [m for m, _ in methods]
    per_pair = np.array([[scores[m][i] for m in names] for i in range(len(chosen_models))])
    best_oracle = per_pair[:, :, 3].max(axis=1)
    best_auto = per_pair[:, :, 1].max(axis=1)
    picked = np.array([per_pair[i, names.index(m), 1] for i, m in enumerate(suggested)])
    models = "\n".join(f"- `{p}`: {c}" for p, c in chosen_models)
    peer_text = ""
    if peers:
        pe = np.array(peers)
        auto = {m: np.array(scores[m])[:, 1] for m in ("nl_means", "bm3d") if m in scores}
        peer_rows = []
        for i, (name, ours) in enumerate([("scikit-image denoise_nl_means, h = 0.8·σ̂", "nl_means"),
                                          ("bm3d package, sigma_psd = σ̂", "bm3d")]):
            line = f"| {name} | {pe[:, i].mean():.2f} | {(best_oracle - pe[:, i]).mean():.2f} |"
            if ours in auto:
                line += f" {(auto[ours] - pe[:, i]).mean():+.2f} / {(auto[ours] - pe[:, i]).min():+.2f} |"
            peer_rows.append(line)
        peer_text = (
            "Peers on the same pairs, called as their documentation shows with their own noise "
            "estimate (scikit-image's `estimate_sigma`):\n\n"
            "| peer | mean PSNR | below the best oracle (dB, mean) | our Auto of the same method, "
            "ahead by (dB, mean / least) |\n|---|---:|---:|---:|\n" + "\n".join(peer_rows) + "\n\n")
    section = (
        "## Real noise: W2S pairs\n\n"
        "Generated by `scripts/bench_real_pairs.py` on "
        f"{len(chosen_models)} real widefield pairs (one raw 8-bit capture against the average of 400, "
        "mapped onto its scale) from `../shared/data/real-pairs`. Each cell is the gap to the "
        "oracle in dB, mean / worst over the pairs (lower is better); the oracle is the best of "
        f"{a.grid} values of the tuned parameter from 1/4 to 4 times each tuned one, with each "
        "tuning's noise model (the auto choice, and Gaussian). *Defaults* is `run` with nothing "
        "set, *Auto* is `tune` with nothing set (the one click: `noise_model=auto`, tuned "
        "self-supervised), *tune (Gaussian)* is `tune` with `noise_model=gaussian`.\n\n"
        "| method | defaults | Auto | tune (Gaussian) | oracle PSNR |\n"
        "|---|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
        "The suggested method (`denoisekit tune auto`: the lowest self-supervised loss after "
        "Auto) against the best method's oracle: "
        f"{(best_oracle - picked).mean():.2f} dB below on average, "
        f"{(best_oracle - picked).max():.2f} dB at worst; the best method after Auto, known "
        f"only with the ground truth: {(best_oracle - best_auto).mean():.2f} dB below on "
        f"average. Suggested: " + ", ".join(f"`{m}`" for m in suggested) + ".\n\n"
        + peer_text +
        "The noise model `noise_model=auto` chose:\n\n" + models + "\n"
    )
    publish(section, a.md)


def suggest(noisy, names):
    """The method `denoisekit tune auto` marks as expected best."""
    lines = cli("tune", "auto", noisy, "--methods", ",".join(names)).stdout.strip().splitlines()
    return lines[-1].split()[0].rstrip(":")


PEERS = r"""
import sys, numpy as np, tifffile, bm3d
from skimage.restoration import denoise_nl_means, estimate_sigma
noisy, gt = (tifffile.imread(p).astype(np.float64) for p in sys.argv[1:3])
sigma = estimate_sigma(noisy)
def psnr(x):
    return 10 * np.log10(255.0 ** 2 / np.mean((gt - x) ** 2))
nlm = denoise_nl_means(noisy, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6)
b = bm3d.bm3d(noisy, sigma_psd=sigma)
print(psnr(nlm), psnr(b))
"""


def run_peers(python, noisy, gt, tmp):
    gt_path = os.path.join(tmp, "gt.tif")
    tifffile.imwrite(gt_path, gt)
    out = subprocess.run([python, "-c", PEERS, noisy, gt_path], capture_output=True, text=True,
                         check=True).stdout.split()
    return [float(v) for v in out]


if __name__ == "__main__":
    main()
