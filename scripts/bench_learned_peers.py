#!/usr/bin/env python3
"""The learned denoiser (zs_n2n) against the learned peers a microscopist would otherwise
use, on real microscope noise: the W2S pairs in ../shared/data/real-pairs, on the same
cores in the same run.

Writes the "## Learned denoiser: peers on W2S pairs, SIZE" section of docs/benchmarks.md:

    PEER_PYTHON scripts/bench_learned_peers.py --py PEER_PYTHON --md docs/benchmarks.md \
        [--pairs N] [--crop S] [--peers n2v,n2f] [--n2v-epochs E] [--threads T]

PEER_PYTHON is a Python with CAREamics and PyTorch (`pip install careamics==0.3.5
tifffile`). Per pair, each method trains on the noisy image itself and denoises it:

- zs_n2n: `denoisekit run zs_n2n` at its defaults (training included);
- Noise2Void: CAREamics's N2V (`create_advanced_n2v_config`: 64x64 patches, batch 16,
  E epochs, seed 1), trained on the image with one patch held out for validation
  (CAREamics's default of eight would leave nothing to train on in a small crop);
- Noise2Fast (Lequyer et al., Nat. Mach. Intell. 2022): the published algorithm as written
  in its paper and its authors' script, implemented here in PyTorch (it is not packaged):
  chequerboard downsampling into four half-size images, a network of eight 3x3
  convolutions of 64 channels and a sigmoid output trained with binary cross-entropy and
  Adam (1e-3) on one image pair per step, stopped when the whole image's output has not
  come closer to the noisy image for 100 steps, and the last 100 outputs averaged;
- BM3D after `denoisekit tune` (Auto), the classical reference (tuning excluded from its
  time).

Scores are PSNR (peak 255) against gt_matched_f32.tif, as in scripts/bench_real_pairs.py.
Times are wall-clock seconds end to end, each peer in its own process with T threads
(PyTorch's intra-op threads; DenoiseKit's rayon pool through RAYON_NUM_THREADS).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import tifffile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_real_pairs import psnr, real_pairs, run, tune  # noqa: E402
from md_sections import publish  # noqa: E402

# Runs in the peer's Python: `METHOD NOISY OUT THREADS EPOCHS`; writes OUT, prints the
# seconds the method took (loading and saving excluded) and what it ran.
PEER = r"""
import sys, time, collections, tempfile
import numpy as np, tifffile, torch
method, noisy, out, threads, epochs = sys.argv[1:6]
torch.set_num_threads(int(threads))
torch.manual_seed(0)
img = tifffile.imread(noisy).astype(np.float32)


def noise2fast(img, patience=100, lr=1e-3, max_steps=20000):
    rng = np.random.default_rng(0)
    lo, hi = float(img.min()), float(img.max())
    x = (img - lo) / max(hi - lo, 1e-12)
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    z = x[:h, :w]
    # Chequerboard downsampling: each pair of rows (columns) squeezed into one, keeping
    # the pixels of one colour of the chequerboard; the other colour is its partner.
    r = np.arange(h // 2)[:, None]
    c = np.arange(w)[None, :]
    rows_a, rows_b = z[2 * r + (c + 1) % 2, c], z[2 * r + c % 2, c]
    r = np.arange(h)[:, None]
    c = np.arange(w // 2)[None, :]
    cols_a, cols_b = z[r, 2 * c + (r + 1) % 2], z[r, 2 * c + r % 2]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))[None, None]
    pairs = [(t(rows_b), t(rows_a)), (t(rows_a), t(rows_b)),
             (t(cols_a), t(cols_b)), (t(cols_b), t(cols_a))]
    layers = []
    for k in range(8):
        layers += [torch.nn.Conv2d(1 if k == 0 else 64, 64, 3, padding=1), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.Conv2d(64, 1, 1), torch.nn.Sigmoid())
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = torch.nn.BCELoss()
    full = t(x)
    best, since, steps = np.inf, 0, 0
    recent = collections.deque(maxlen=100)
    while since <= patience and steps < max_steps:
        inp, target = pairs[rng.integers(len(pairs))]
        opt.zero_grad()
        loss_fn(net(inp), target).backward()
        opt.step()
        steps += 1
        with torch.no_grad():
            y = net(full)[0, 0].numpy()
        recent.append(y)
        mse = float(np.mean((x - y) ** 2))
        if mse < best:
            best, since = mse, 0
        else:
            since += 1
    return np.mean(recent, axis=0) * (hi - lo) + lo, f"{steps} steps"


def n2v(img, epochs):
    from careamics import CAREamist
    from careamics.config import create_advanced_n2v_config
    cfg = create_advanced_n2v_config(
        experiment_name="w2s", data_type="array", axes="YX", patch_size=[64, 64],
        batch_size=16, num_epochs=epochs, n_val_patches=1, seed=1)
    with tempfile.TemporaryDirectory() as work:
        model = CAREamist(cfg, work_dir=work, enable_progress_bar=False)
        model.train(train_data=img)
        pred, _ = model.predict(img, data_type="array", axes="YX")
    return np.asarray(pred[0], dtype=np.float32).reshape(img.shape), f"{epochs} epochs"


t0 = time.perf_counter()
if method == "n2f":
    res, what = noise2fast(img)
elif method == "n2f-steps":
    # Only the cost of Noise2Fast's steps on this image: 3 of them after one to warm up,
    # no stopping rule.
    noise2fast(img, max_steps=1)
    t0 = time.perf_counter()
    res, what = noise2fast(img, max_steps=3)
    what = "3 steps"
else:
    res, what = n2v(img, int(epochs))
dt = time.perf_counter() - t0
tifffile.imwrite(out, res.astype(np.float32))
print(f"{dt} {what}")
"""


def peer(py, method, noisy, out, threads, epochs):
    proc = subprocess.run(
        [py, "-c", PEER, method, noisy, out, str(threads), str(epochs)],
        capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)),
    )
    if proc.returncode != 0:
        sys.exit(f"{method} failed on {noisy}:\n{proc.stderr[-3000:]}")
    secs, what = proc.stdout.strip().splitlines()[-1].split(" ", 1)
    return tifffile.imread(out), float(secs), what


LABEL = {"zs_n2n": "zs_n2n", "n2v": "Noise2Void (CAREamics)", "n2f": "Noise2Fast",
         "bm3d": "BM3D (Auto)"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--py", required=True, help="a Python with careamics and torch")
    ap.add_argument("--pairs", type=int, default=0, help="only the first N pairs")
    ap.add_argument("--crop", type=int, default=0, help="the centre S x S of each pair")
    ap.add_argument("--peers", default="n2v,n2f", help="which peers: n2v, n2f or both")
    ap.add_argument("--n2v-epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n2f-step-cost", action="store_true",
                    help="only time Noise2Fast's steps on the first pair at 128², 256², 512²")
    ap.add_argument("--md", help="write the section into this markdown file")
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    if args.n2f_step_cost:
        return step_cost(args)
    peers = [p for p in args.peers.split(",") if p]
    methods = ["zs_n2n", *peers, "bm3d"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.tif")
        for name, noisy, gt in real_pairs(args.pairs):
            if args.crop:
                img = tifffile.imread(noisy)
                y0, x0 = (img.shape[0] - args.crop) // 2, (img.shape[1] - args.crop) // 2
                cut = np.s_[y0:y0 + args.crop, x0:x0 + args.crop]
                noisy = os.path.join(tmp, "noisy.tif")
                tifffile.imwrite(noisy, img[cut])
                gt = gt[cut]
            row = {"pair": name, "noisy": psnr(gt, tifffile.imread(noisy)), "n2f_steps": ""}
            t = time.perf_counter()
            row["zs_n2n"] = psnr(gt, run("zs_n2n", noisy, out, []))
            row["zs_n2n_s"] = time.perf_counter() - t
            bm3d_opts = tune("bm3d", noisy, [])
            t = time.perf_counter()
            row["bm3d"] = psnr(gt, run("bm3d", noisy, out, bm3d_opts))
            row["bm3d_s"] = time.perf_counter() - t
            for m in peers:
                img, secs, what = peer(args.py, m, noisy, out, args.threads, args.n2v_epochs)
                row[m], row[m + "_s"] = psnr(gt, img), secs
                if m == "n2f":
                    row["n2f_steps"] = what.split(" ")[0]
            rows.append(row)
            print(name, "  ".join(f"{m} {row[m]:.2f} ({row[m + '_s']:.1f} s)" for m in methods),
                  row["n2f_steps"], flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]
            if k not in ("pair", "n2f_steps")}
    size = f"{args.crop}×{args.crop}" if args.crop else "512×512"
    what = {
        "zs_n2n": "zs_n2n at its defaults",
        "n2v": f"Noise2Void is CAREamics {peer_version(args.py) if 'n2v' in peers else ''} "
               f"(`create_advanced_n2v_config`: 64² patches, batch 16, {args.n2v_epochs} "
               "epochs, seed 1, one patch held out for validation)",
        "n2f": "Noise2Fast is the published algorithm (paper and authors' script: "
               "chequerboard downsampling, eight 3×3 convolutions of 64 channels, binary "
               "cross-entropy, Adam 1e-3, stopped after 100 steps without improvement, the "
               "last 100 outputs averaged), written in PyTorch for this benchmark as it is "
               "not packaged",
        "bm3d": "BM3D after `denoisekit tune` (Auto)",
    }
    lines = [
        f"Generated by `scripts/bench_learned_peers.py` on {len(rows)} real widefield pairs "
        f"from `../shared/data/real-pairs` ({size}"
        + (" centre crops" if args.crop else "")
        + "; PSNR in dB against the 400-frame average mapped onto the noisy scale), "
        f"{args.threads} threads each, CPU, one after another in one run. Every learned "
        "method trains on the noisy image it denoises. "
        + "; ".join(what[m] for m in methods)
        + ". Times are wall-clock seconds of training and denoising (BM3D's tuning "
        "excluded).",
        "",
        "| pair | noisy | " + " | ".join(LABEL[m] for m in methods) + " | "
        + " | ".join(f"{LABEL[m]} (s)" for m in methods)
        + (" | Noise2Fast steps |" if "n2f" in peers else " |"),
        "|---|" + "---:|" * (1 + 2 * len(methods) + ("n2f" in peers)),
    ]
    for r in rows + [dict(mean, pair="**mean**", n2f_steps="")]:
        lines.append(
            f"| {r['pair']} | {r['noisy']:.2f} | "
            + " | ".join(f"{r[m]:.2f}" for m in methods) + " | "
            + " | ".join(f"{r[m + '_s']:.1f}" for m in methods)
            + (f" | {r['n2f_steps']} |" if "n2f" in peers else " |")
        )
    title = f"## Learned denoiser: peers on W2S pairs, {size}"
    publish(title + "\n\n" + "\n".join(lines), args.md)


def step_cost(args):
    """Seconds per Noise2Fast step (training on one half-size pair, then the whole image's
    output for its stopping rule) at three sizes, from the first pair's centre."""
    noisy = tifffile.imread(next(real_pairs(1))[1])
    with tempfile.TemporaryDirectory() as tmp:
        for size in (128, 256, 512):
            y0, x0 = (noisy.shape[0] - size) // 2, (noisy.shape[1] - size) // 2
            path = os.path.join(tmp, "in.tif")
            tifffile.imwrite(path, noisy[y0:y0 + size, x0:x0 + size])
            _, secs, _ = peer(args.py, "n2f-steps", path, os.path.join(tmp, "out.tif"),
                              args.threads, 0)
            print(f"Noise2Fast at {size}x{size}: {secs / 3:.2f} s per step "
                  f"({args.threads} threads)")


def peer_version(py):
    return subprocess.run(
        [py, "-c", "import careamics; print(careamics.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


if __name__ == "__main__":
    main()
