#!/usr/bin/env python3
"""Side-by-side speed and quality of DenoiseKit against the peer tools, same inputs, same run.

Runs ../shared/bench/peers.py (scikit-image, OpenCV) on a seeded synthetic scene with
Gaussian noise (sigma 0.1), then `denoisekit bench` on the exact same noisy TIFF with the
same parameters, scores every output with peers.py's own metric code, and prints a
Markdown table of times, speed ratios and PSNR/SSIM (written to --md if given).

    python3 scripts/bench_peers.py --py /tmp/peers-venv/bin/python --size 1024 --md docs/benchmarks.md

Timing protocol on both sides: one warm-up, median of 5 runs, nothing else running.
"""
import argparse
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(ROOT, "..", "shared", "bench", "peers.py")

# (our method, our parameters, [(peer row name, peer library)]): same algorithm settings.
# How each method is scored follows its kind in the registry (`denoisekit methods
# --format json`): a deconvolution against the object before the blur, a background
# remover (its output is not an estimate of the clean scene) not at all.
PAIRS = [
    ("gaussian", "sigma=1.5 border=replicate", [("gaussian", "skimage"), ("GaussianBlur", "opencv")]),
    ("bilateral", "sigma_spatial=1.5 sigma_range=0.1 radius=5", [("denoise_bilateral", "skimage"),
                                                                  ("bilateralFilter", "opencv")]),
    ("nl_means", "h=0.08 sigma=0.1 patch_radius=2 search_radius=6", [("nl_means fast", "skimage")]),
    ("total_variation", "lambda=0.1", [("denoise_tv_chambolle", "skimage")]),
    ("median", "radius=1 border=symmetric", [("median 3x3", "scipy.ndimage")]),
    # `levels` is set to scikit-image's depth for the image (see skimage_depth); DenoiseKit's
    # automatic depth is deeper.
    ("wavelet", "wavelet=haar rule=bayes_shrink shrinkage=soft levels={haar_depth}",
     [("denoise_wavelet", "skimage")]),
    ("bm3d", "sigma=0.1", [("bm3d", "bm3d")]),
    # Background removal, not a denoiser: timed only (the output equals scikit-image's
    # exactly, see crates/denoisekit-core/tests/reference.rs).
    ("top_hat", "radius=15", [("white_tophat disk(15)", "skimage"), ("white_tophat disk(15) seq", "skimage")]),
    # Deconvolution: the noisy input is the object seen through a Gaussian PSF (sigma 1.5);
    # both sides are scored against the object, not the blurred scene.
    ("richardson_lucy", "iterations=30 psf_sigma=1.5", [("richardson_lucy", "skimage")]),
]


NOTES = """
### Notes

- Same parameters on both sides. DenoiseKit's `radius`, `patch_radius` and `search_radius`
  are half-widths: skimage's `win_size=11`, `patch_size=5`, `patch_distance=6` are radius 5,
  patch radius 2 and search radius 6. OpenCV's `bilateralFilter(d=-1, sigmaSpace=1.5)` uses
  radius 2, a smaller window, hence its speed and its lower PSNR.
- Bilateral PSNR: DenoiseKit evaluates the formula exactly (checked against a direct f64
  evaluation in `crates/denoisekit-core/tests/naive.rs`). scikit-image builds its range
  look-up table on the image maximum before shifting negative images to start at 0, so on
  this noisy image (min -0.43, max 1.16) its effective range sigma is 0.1 x 1.59 / 1.16 =
  0.137, not 0.1. With `sigma_range=0.137` DenoiseKit scores 26.24 dB against
  scikit-image's 26.14 dB (measured once, same input).
- NL-means uses scikit-image's fast-mode weights (box-filtered patch distances minus
  2 sigma^2, uniform patch weights) with a cache-blocked, vectorised kernel, but evaluates
  the exponential exactly; scikit-image's fast mode uses Schraudolph's approximation and
  drops weights below e^-5, which is where its lower PSNR at the same settings comes from.
- NL-means and TV ratios move most between runs on these shared machines: NL-means
  measured 4.8x to 7.5x in runs of the same code. TV measured 4.1x to 6.5x with the
  two-pass iteration and 4.4x to 7.1x with the fused one, whose update of p did not
  vectorise; with that loop vectorising (same arithmetic, bit-identical output) it is
  9.9x in this table. Small times (Gaussian, median) swing by 2x with the machine's load:
  the Gaussian measured 2.0 ms in an earlier run of the same code.
- Wavelet: the same transform and thresholds as scikit-image (outputs equal within 5e-7,
  tested); DenoiseKit's default is sym4, 1.7 dB better than Haar on this scene, and
  `cycle_spins=3` adds 1.2 dB more.
- BM3D: DenoiseKit uses the DCT in both stages and a 29x29 search window where the
  package uses bior1.5 in the first stage and 39x39; see the method's docs.
- Richardson-Lucy is scored against the object before the blur (both sides); scikit-image
  starts from a flat 0.5 and clips to [-1, 1], DenoiseKit starts from the image. Its
  outputs equal scikit-image's within 1.2e-6 when started the same way (tested).
- Top-hat is background removal: its output equals scikit-image's `white_tophat` pixel
  for pixel (tested), so only time is compared; the "seq" row is scikit-image's faster,
  approximate decomposed disk.
- CPU only: the GPU kernels are timed in [GPU](#gpu), on a machine lent with an H100.
  The test suite checks them against the CPU on Mesa's lavapipe, whose speed says nothing
  about a real GPU.
"""


def run(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    done = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if done.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def bench(cli, image, method, params, backend, save):
    """Times `method` with `denoisekit bench` (writing its output into `save`); returns the
    median in ms and the device the CLI reports."""
    out = run([cli, "bench", image, "--method", method, "--backend", backend, "--save", save]
              + params.split())
    cells = next(l for l in out.splitlines() if l.startswith(f"| {method} |")).split("|")
    return float(cells[4]), cells[3].strip()


def skimage_depth(n, filter_len):
    """denoise_wavelet's default number of levels on an n x n image: 3 fewer than
    pywt.dwt_max_level allows, at least 1."""
    return max(int(math.floor(math.log2(n / (filter_len - 1)))) - 3, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--py", default=sys.executable, help="python with the peer packages")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--out", default="/tmp/denoisekit-bench")
    ap.add_argument("--cli", default=os.path.join(ROOT, "target", "release", "denoisekit"))
    ap.add_argument("--md", help="write the table to this Markdown file")
    a = ap.parse_args()
    kinds = {m["id"]: m["kind"] for m in json.loads(run([a.cli, "methods", "--format", "json"]))}
    inputs = os.path.join(a.out, "inputs")
    os.makedirs(inputs, exist_ok=True)
    n = a.size
    only = ",".join([p for _, _, peers in PAIRS for p, _ in peers])
    run([a.py, PEERS, "run", "--shape", str(n), str(n), "--only", only, "--skip", "crop",
         "--inputs-dir", inputs, "--out", os.path.join(a.out, "peers")])
    peers = json.load(open(os.path.join(a.out, "peers.json")))
    env = peers["environment"]
    clean = os.path.join(inputs, f"synth_{n}x{n}_clean.tif")
    noisy = os.path.join(inputs, f"synth_{n}x{n}_noisy_s0.1_seed0.tif")
    rows = []
    for method, params, peer_names in PAIRS:
        params = params.format(haar_depth=skimage_depth(n, 2))
        save = os.path.join(a.out, "ours")
        ms, _ = bench(a.cli, noisy, method, params, "cpu", save)
        score_json = os.path.join(a.out, f"score_{method}.json")
        vs_object = kinds[method] == "deconvolve"
        target = os.path.join(inputs, f"synth_{n}x{n}_object.tif") if vs_object else clean
        extra = []
        if vs_object:
            # peers.py scores its own deconvolution against the object's full range.
            rng = run([a.py, "-c", "import sys, tifffile; o = tifffile.imread(sys.argv[1]); "
                       "print(float(o.max() - o.min()))", target]).strip()
            extra = ["--data-range", rng]
        run([a.py, PEERS, "score", "--clean", target, "--test", os.path.join(save, f"{method}.tif"),
             "--json", score_json] + extra)
        scores = json.load(open(score_json))[0]
        for peer, lib in peer_names:
            r = next(r for r in peers["rows"] if r["method"] == peer and r["lib"] == lib)
            key = "_vs_object" if vs_object else ""
            if kinds[method] == "background":
                rows.append((method, params, ms, None, None, f"{lib} {peer}", r["median_s"] * 1e3,
                             None, None))
                continue
            rows.append((method + (" (vs object)" if vs_object else ""), params, ms, scores["psnr"],
                         scores["ssim"], f"{lib} {peer}", r["median_s"] * 1e3, r["psnr" + key],
                         r["ssim" + key]))
    noisy_row = peers["rows"][0]
    lines = [
        f"Input: seeded synthetic fluorescence scene {n}x{n} float32 with Gaussian noise sigma 0.1 "
        f"(noisy PSNR {noisy_row['psnr']:.2f} dB), from `../shared/bench/peers.py`. CPU only, "
        f"{os.cpu_count()} cores; one warm-up, median of 5. Peer versions: "
        + ", ".join(f"{k} {v}" for k, v in env.get("versions", env).items() if isinstance(v, str)) + ".",
        "",
        "| DenoiseKit | parameters | ms | PSNR | SSIM | peer | ms | PSNR | SSIM | speed-up |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)
    for m, p, ms, ps, ss, peer, pms, pps, pss in rows:
        lines.append(f"| {m} | `{p}` | {ms:.1f} | {num(ps, '.2f')} | {num(ss, '.3f')} | {peer} | {pms:.1f} | "
                     f"{num(pps, '.2f')} | {num(pss, '.3f')} | {pms / ms:.2f}x |")
    table = "\n".join(lines) + "\n"
    print(table)
    if a.md:
        # Later sections belong to scripts/bench_memory.py, bench_median.py and
        # bench_tune.py: keep everything from the first of them.
        kept = ""
        if os.path.exists(a.md):
            text = open(a.md).read()
            owned = ("Memory", "Median, large windows", "Self-supervised tuning, 512x512")
            starts = [text.find(f"\n## {t}\n") for t in owned]
            starts = [i for i in starts if i >= 0]
            if starts:
                kept = text[min(starts):]
        with open(a.md, "w") as f:
            f.write("# Benchmarks\n\nGenerated by `scripts/bench_peers.py`; rerun it to refresh. Speed-up is the "
                    "peer's median time divided by DenoiseKit's, both measured in the same run on the same "
                    "machine. Timings on shared 2-core machines vary by 10-30% between runs.\n\n"
                    f"## 2D, {n}x{n}\n\n" + table + NOTES + kept)


if __name__ == "__main__":
    main()
