#!/usr/bin/env python3
"""What holds the learned denoiser below BM3D on real noise: zs_n2n's network and training
rebuilt in PyTorch, then changed one thing at a time, on the W2S pairs in
../shared/data/real-pairs, in one run on the same cores.

Writes the "## Learned denoiser: what limits it (PyTorch prototype)" section of
docs/benchmarks.md:

    TORCH_PYTHON scripts/bench_learned_limits.py --md docs/benchmarks.md [--pairs N] \
        [--variants control,r2r,dilated,large] [--threads T]
    python3 scripts/bench_learned_limits.py --md docs/benchmarks.md --from-log run.log  # re-render

(a run prints its options and per-pair lines first; re-rendering takes both from there).

TORCH_PYTHON is a Python with PyTorch, numpy and tifffile (the CAREamics venv of
bench_learned_peers.py will do). A prototype, not DenoiseKit's code: each variant is cheap
to try here, and only one that wins would be worth writing in Rust and WGSL.

Every variant starts from the same pipeline: the noise model `denoisekit noise --auto`
fits (gain, offset, read noise), the generalised Anscombe transform with it, the image
normalised to zero mean and unit deviation, Adam at 0.002 halved for the second half of
the steps, the mean of that half's weights, and the four mirror images averaged when
applying, and the exact unbiased inverse transform. The control is not DenoiseKit's
zs_n2n (other initial weights, patch positions and sums), so compare the variants with the
control of the same run.

- control: zs_n2n's defaults (four 3x3 convolutions of 24 channels, leaky ReLU, a 1x1
  convolution predicting the noise; chequerboard sub-images of 64x64 patches, symmetric
  Noise2Noise loss; 800 steps).
- r2r: Recorrupted-to-Recorrupted (Pang et al., CVPR 2021) instead of sub-images: each
  step adds Gaussian noise z of the stabilised noise's measured deviation to the patch,
  trains net(y + a·z) towards y − z/a (a = 0.5) at full resolution, with no shift between
  input and target; applied as the mean over 8 such draws. Its pairs are independent only
  where the stabilised noise is Gaussian of that deviation.
- dilated: the control with dilations 1, 2, 2, 1 (13x13 pixels seen instead of 9x9, same
  arithmetic).
- large: six convolutions of 48 channels and 2000 steps (about five times the time).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import tifffile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_real_pairs import CLI, log_row, logged, psnr, real_pairs, run_options  # noqa: E402
from md_sections import publish, side  # noqa: E402

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # re-rendering from a log needs no PyTorch
    torch = None

# What a run measures with: logged before its rows, and read back by --from-log.
OPTIONS = ["variants", "threads", "torch", "defaults"]
# Recorrupted pairs are independent only where the stabilised noise is Gaussian of the
# deviation the model predicts (1): pairs whose measured deviation is within this of it.
GAUSSIAN_SD = 0.03

VARIANTS = {
    "control": dict(mode="cheq"),
    "r2r": dict(mode="r2r"),
    "dilated": dict(mode="cheq", dilations=(1, 2, 2, 1)),
    "large": dict(mode="cheq", steps=2000, width=48, layers=6),
}
ALPHA, DRAWS = 0.5, 8
SETUP = (
    "zs_n2n's network and training rebuilt in PyTorch (a prototype, not DenoiseKit's code), "
    "then changed one thing at a time: `control` is zs_n2n's defaults ({layers} 3x3 "
    "convolutions of {width} channels, chequerboard sub-images of {patch}x{patch} patches, "
    "{steps} averaged steps at a learning rate of {lr}, four mirror images); `r2r` trains by Recorrupted-to-Recorrupted (Pang et al., CVPR 2021: "
    "net(y + z/2) towards y − 2z at full resolution, z Gaussian of the stabilised noise's "
    "measured deviation, applied as the mean over 8 draws), with no shift between input and "
    "target; `dilated` sees 13x13 pixels instead of {seen}x{seen} at the same arithmetic (dilations "
    "1, 2, 2, 1); `large` has six convolutions of 48 channels and trains 2000 steps. All "
    "use the noise model `denoisekit noise --auto` fits and its variance-stabilising "
    "transform with its exact unbiased inverse, as DenoiseKit does; compare the variants "
    "with the control of the same run. Times are each variant's whole denoising of a pair "
    "(training, applying, both transforms)."
)


class Net(nn.Module if torch else object):
    def __init__(self, width=24, layers=4, dilations=None):
        super().__init__()
        dil = dilations or (1,) * layers
        ch = [1] + [width] * layers
        self.convs = nn.ModuleList(
            nn.Conv2d(ch[i], ch[i + 1], 3, padding=dil[i], dilation=dil[i], padding_mode="reflect")
            for i in range(layers)
        )
        self.last = nn.Conv2d(width, 1, 1)

    def forward(self, x):
        h = x
        for c in self.convs:
            h = F.leaky_relu(c(h), 0.2)
        return x - self.last(h)


def noise_model(noisy):
    """(gain, offset, read noise, stabilised noise deviation) as `denoisekit noise` fits them.

    The deviation is the noise level `noise --correlation` prints. The published table was
    made when that line printed the correlation fit's least-squares variance instead (on
    these independent captures the two differ by up to 6%: 0.81 then, 0.76 now on
    w2s_120_0)."""
    out = subprocess.run([CLI, "noise", "--auto", "--correlation", noisy], check=True,
                         capture_output=True, text=True).stdout
    opts = dict(kv.split("=") for kv in out.strip().splitlines()[-1].split())
    if opts.get("noise_model") != "poisson_gaussian":
        sys.exit(f"{noisy}: expected a Poisson-Gaussian fit, got {out}")
    sd = float(out.split("; noise sd ")[1].split()[0])
    return float(opts["gain"]), float(opts["offset"]), float(opts["read_noise"]), sd


def gat(x, g, o, r):
    return (2.0 / g) * np.sqrt(np.maximum(g * (x - o) + 0.375 * g * g + r * r, 0.0))


def gat_inverse(f, g, o, r):
    """The exact unbiased inverse (Makitalo & Foi) for photon counts without read noise:
    the mean count whose expected transform is f, from a table of E[2 sqrt(k + 3/8)] over
    Poisson counts k. The table reaches past the largest f, so the algebraic fallback
    beyond it (biased by about 1/8 count, where DenoiseKit uses the closed-form
    approximation) is never taken."""
    if r > 0:
        sys.exit("gat_inverse: the table assumes no read noise (these pairs fit none)")
    top = float(np.max(f)) ** 2 / 4 + 10
    lam = np.linspace(0, 1, 20001) ** 2 * top
    k = np.arange(0, int(top + 12 * math.sqrt(top) + 40))
    lgk = torch.lgamma(torch.from_numpy(k + 1.0)).numpy()
    logp = k[None, :] * np.log(np.maximum(lam[:, None], 1e-300)) - lam[:, None] - lgk[None, :]
    logp[0, :] = -np.inf
    logp[0, 0] = 0.0
    ef = (np.exp(logp) * 2 * np.sqrt(k + 0.375)[None, :]).sum(1)
    counts = np.interp(f, ef, lam, left=0.0, right=np.nan)
    algebraic = (f / 2.0) ** 2 - 0.375
    counts = np.where(np.isnan(counts), algebraic, counts)
    return o + g * counts


def chequerboard(p):
    """The four half-size sub-images of a (1, 1, H, W) patch, as two (A, B) pairs."""
    h, w = p.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    even = (yy + xx) % 2 == 0
    rows = (p[..., even].reshape(1, 1, h, w // 2), p[..., ~even].reshape(1, 1, h, w // 2))
    pt, et = p.transpose(-1, -2), even.T
    cols = (pt[..., et].reshape(1, 1, w, h // 2), pt[..., ~et].reshape(1, 1, w, h // 2))
    return rows, cols


def zs_n2n_defaults():
    """zs_n2n's training defaults, read from its descriptor (`denoisekit methods`), as
    train()'s keywords: the control is whatever the method's defaults are now."""
    out = subprocess.run([CLI, "methods", "--format", "json"], check=True,
                         capture_output=True, text=True).stdout
    m = next(m for m in json.loads(out) if m["id"] == "zs_n2n")
    d = {p["key"]: p["default"] for p in m["params"]}
    return {"steps": d["steps"], "patch": d["patch"], "lr": d["learning_rate"],
            "width": d["width"], "layers": d["layers"]}


def train(img, sd, mode, steps, patch, lr, width, layers, dilations=None, seed=0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = Net(width, layers, dilations)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    total, n = None, 0
    t = torch.from_numpy(img)
    for s in range(steps):
        if s == steps // 2:
            for group in opt.param_groups:
                group["lr"] = lr / 2
        y0 = rng.integers(0, img.shape[0] - patch + 1)
        x0 = rng.integers(0, img.shape[1] - patch + 1)
        p = t[y0:y0 + patch, x0:x0 + patch][None, None]
        if mode == "cheq":
            loss = sum(F.mse_loss(net(a), b) + F.mse_loss(net(b), a) for a, b in chequerboard(p)) / 4
        else:
            z = torch.from_numpy(rng.standard_normal(p.shape).astype(np.float32)) * sd
            loss = F.mse_loss(net(p + ALPHA * z), p - z / ALPHA)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if s >= steps // 2:
            v = nn.utils.parameters_to_vector(net.parameters()).detach()
            total = v.clone() if total is None else total + v
            n += 1
    nn.utils.vector_to_parameters(total / n, net.parameters())
    return net


def apply(net, img, sd, mode):
    rng = np.random.default_rng(1)
    x = torch.from_numpy(img)[None, None]
    outs = []
    with torch.no_grad():
        for dims in [(), (-1,), (-2,), (-1, -2)]:
            xf = torch.flip(x, dims) if dims else x
            if mode == "r2r":
                y = sum(net(xf + ALPHA * sd * torch.from_numpy(
                    rng.standard_normal(img.shape).astype(np.float32))[None, None])
                    for _ in range(DRAWS)) / DRAWS
            else:
                y = net(xf)
            outs.append(torch.flip(y, dims) if dims else y)
    return torch.stack(outs).mean(0)[0, 0].numpy()


def denoise(noisy, model, variant):
    g, o, r, sd = model
    f = gat(tifffile.imread(noisy).astype(np.float64), g, o, r)
    mu, s = f.mean(), f.std()
    x = ((f - mu) / s).astype(np.float32)
    opts = dict(variant)
    t0 = time.perf_counter()
    net = train(x, sd / s, **opts)
    y = apply(net, x, sd / s, opts["mode"])
    return gat_inverse(y.astype(np.float64) * s + mu, g, o, r), time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=0, help="the first N pairs (default: all)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--md", help="write the section into this Markdown file")
    ap.add_argument("--from-log", help="rebuild the section from the lines a run printed")
    a = ap.parse_args()
    a.torch = torch.__version__ if torch else None
    a.defaults = zs_n2n_defaults()
    if not a.from_log and torch is None:
        sys.exit("measuring needs PyTorch (run with a Python that has it)")
    run_options(a, OPTIONS)
    names = a.variants.split(",")
    if names[0] != "control" or any(v not in VARIANTS for v in names):
        sys.exit(f"--variants: 'control' first, then any of {list(VARIANTS)}")
    rows = logged(a.from_log) if a.from_log else measured(a, names)
    section(rows, names, a)


def measured(a, names):
    torch.set_num_threads(a.threads)
    rows = []
    for pair, noisy, gt in real_pairs(a.pairs):
        model = noise_model(noisy)
        row = {"pair": pair, "sd": model[3]}
        for v in names:
            out, secs = denoise(noisy, model, {**a.defaults, **VARIANTS[v]})
            row[v], row[v + "_s"] = psnr(gt, out), secs
        rows.append(row)
        log_row(row)
    return rows


def section(rows, names, a):
    lines = ["| pair | noise sd (stabilised) | " + " | ".join(names) + " |",
             "|---|---:|" + "---:|" * len(names)]
    for r in rows:
        lines.append(f"| {r['pair']} | {r['sd']:.2f} | " + " | ".join(f"{r[v]:.2f}" for v in names) + " |")
    mean = {v: float(np.mean([r[v] for r in rows])) for v in names}
    secs = {v: float(np.mean([r[v + "_s"] for r in rows])) for v in names}
    lines.append("| **mean** | | " + " | ".join(f"{mean[v]:.2f}" for v in names) + " |")
    lines.append("| seconds per pair | | " + " | ".join(f"{secs[v]:.1f}" for v in names) + " |")

    def against_control(v, subset):
        diffs = [r[v] - r["control"] for r in subset]
        return (f"{side(float(np.mean(diffs)))} the control on average (above it on "
                f"{sum(d > 0 for d in diffs)} of {len(diffs)}; from {min(diffs):+.2f} to "
                f"{max(diffs):+.2f} dB)")

    bullets = []
    for v in names[1:]:
        text = f"- {v}: {against_control(v, rows)}, in {secs[v] / secs['control']:.1f} times its time"
        gaussian = [r for r in rows if abs(r["sd"] - 1) <= GAUSSIAN_SD]
        if v == "r2r" and 0 < len(gaussian) < len(rows):
            text += (f"; on the {len(gaussian)} pairs whose stabilised noise deviation is within "
                     f"{GAUSSIAN_SD:g} of 1 (where the stabilisation holds, a proxy for its pairs' "
                     f"independence), "
                     f"{against_control(v, gaussian)}")
        bullets.append(text + ".")
    section = "\n".join([
        "## Learned denoiser: what limits it (PyTorch prototype)",
        "",
        f"Generated by `scripts/bench_learned_limits.py` on {len(rows)} W2S pairs (512×512, PSNR "
        f"in dB against the 400-frame average mapped onto the noisy scale), PyTorch "
        f"{a.torch} on {a.threads} threads, one run. "
        + SETUP.format(**a.defaults, seen=2 * a.defaults["layers"] + 1),
        "",
        "\n".join(lines),
        "",
        "\n".join(bullets),
        "",
    ])
    publish(section, a.md)


if __name__ == "__main__":
    main()
