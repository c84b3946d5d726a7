#!/usr/bin/env python3
"""zs_n2n's Wiener refinement (BM3D's second stage with the network's output as its pilot):
what each strength buys, on real camera noise and on photon noise simulated on other real
images.

Writes the "## Learned denoiser: Wiener refinement" section of docs/benchmarks.md:

    python3 scripts/bench_refine.py --md docs/benchmarks.md [--pairs N]

Per image the network is trained once at zs_n2n's defaults with `refine=0` and saved
(`save_weights`); every strength then applies those weights (`weights=`), so the columns
differ by the refinement (applying saved weights gives the trained run's pixels), and
`refine=0` from the others also by the network's passes: four mirror images averaged
unrefined, the image alone when refined (zs_n2n's `mirror_images`).
BM3D after `denoisekit tune` (Auto). The strengths swept are the descriptor's default and
values around it.

Two sets: the 12 W2S pairs (PSNR, peak 255, against the 400-frame average mapped onto the
noisy scale, as scripts/bench_real_pairs.py), and three images of ../shared/data/real (a
fluorescence nuclei field, a pollen plane, an ssTEM plane) used as the clean scene of a
simulated camera (Poisson photons at a peak of 5 and of 30 above 0.5 of background, gain 3,
offset 100, Gaussian read noise 2), PSNR with the clean scene's range as the peak. Needs
numpy and tifffile.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import tifffile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_real_pairs import ROOT, param, psnr, real_pairs, run, tune  # noqa: E402
from md_sections import publish, side  # noqa: E402

REAL = os.path.join(ROOT, "..", "shared", "data", "real")


def simulated():
    """(name, noisy array, clean array) for the simulated camera on three real images."""
    planes = [
        ("nuclei", tifffile.imread(os.path.join(REAL, "fluo_nuclei_dsb2018_512x512_u16.tif"))),
        ("pollen", tifffile.imread(os.path.join(REAL, "fluo_pollen_3d_32x256x256_u16.tif"))[16]),
        ("sstem", tifffile.imread(os.path.join(REAL, "em_sstem_drosophila_vnc_30x512x512_u8.tif"))[5]),
    ]
    rng = np.random.default_rng(7)
    for name, img in planes:
        img = img.astype(np.float64)
        img = (img - img.min()) / (img.max() - img.min())
        for peak in (5, 30):
            photons = img * peak + 0.5
            clean = 3.0 * photons + 100.0
            noisy = 3.0 * rng.poisson(photons) + 100.0 + rng.normal(0.0, 2.0, img.shape)
            yield f"{name}, peak {peak}", noisy.astype(np.float32), clean


def measure(name, noisy_path, score, strengths, tmp):
    out = os.path.join(tmp, "out.tif")
    weights = os.path.join(tmp, "w.json")
    row = {"image": name, "noisy": score(tifffile.imread(noisy_path))}
    run("zs_n2n", noisy_path, out, ["refine=0", f"save_weights={weights}"])
    for f in strengths:
        t = time.perf_counter()
        img = run("zs_n2n", noisy_path, out, [f"weights={weights}", f"refine={f}"])
        row[f], row[f"t{f}"] = score(img), time.perf_counter() - t
    row["bm3d"] = score(run("bm3d", noisy_path, out, tune("bm3d", noisy_path, [])))
    print(name, " ".join(f"{k}={v:.2f}" for k, v in row.items() if k != "image"), flush=True)
    return row


def table(rows, strengths, default):
    head = ["image", "noisy"] + [f"refine={f:g}" + (" (default)" if f == default else "") for f in strengths]
    head += ["BM3D (Auto)", "default − BM3D", "apply, refine=0 (s)", f"apply, refine={default:g} (s)"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"}
    for r in rows + [dict(mean, image="**mean**")]:
        cells = [r["image"], f"{r['noisy']:.2f}"] + [f"{r[f]:.2f}" for f in strengths]
        cells += [f"{r['bm3d']:.2f}", f"{r[default] - r['bm3d']:+.2f}", f"{r['t0.0']:.2f}", f"{r[f't{default}']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines, mean


def summary(rows, mean, strengths, default, label):
    best = max(strengths, key=lambda f: mean[f])
    gain = [r[default] - r[0.0] for r in rows]
    above = sum(r[default] > r["bm3d"] for r in rows)
    return (
        f"- {label}: at the default strength ({default:g}) the refined result is {mean[default] - mean[0.0]:+.2f} dB "
        f"from `refine=0` (the network's output alone) on average ({min(gain):+.2f} to {max(gain):+.2f} dB; better on "
        f"{sum(g > 0 for g in gain)} of {len(rows)}), {side(mean[default] - mean['bm3d'])} BM3D (Auto) "
        f"(above it on {above} of {len(rows)}); the best strength swept is {best:g} "
        f"({mean[best]:.2f} dB against {mean[default]:.2f} at the default)."
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=0, help="only the first N W2S pairs")
    ap.add_argument("--md", help="write the section into this markdown file")
    args = ap.parse_args()
    default = float(param("zs_n2n", "refine")["default"])
    strengths = sorted({0.0, 1.0, 1.5, default, 2.0, 2.5})
    w2s, sim = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, noisy, gt in real_pairs(args.pairs):
            w2s.append(measure(name, noisy, lambda x, gt=gt: psnr(gt, x), strengths, tmp))
        for name, noisy, clean in simulated():
            path = os.path.join(tmp, "noisy.tif")
            tifffile.imwrite(path, noisy)
            peak = clean.max() - clean.min()

            def score(x, clean=clean, peak=peak):
                return 10 * np.log10(peak ** 2 / np.mean((x.astype(np.float64) - clean) ** 2))
            sim.append(measure(name, path, score, strengths, tmp))
    w2s_lines, w2s_mean = table(w2s, strengths, default)
    sim_lines, sim_mean = table(sim, strengths, default)
    lines = [
        "Generated by `scripts/bench_refine.py`, 2 cores, CPU. zs_n2n trained once per image at its "
        "defaults with `refine=0` and saved; each column applies those weights with the "
        "refinement's strength `refine` (0: the network's output alone, averaged over the image's "
        "four mirror images; refined, the network runs on the image alone), so columns differ by "
        "the refinement, and `refine=0` from the others also by the network's passes. BM3D with the values `denoisekit tune` chose (Auto). Apply times "
        "are one `denoisekit run` with `weights=`, end to end.",
        "",
        f"**Real camera noise**: {len(w2s)} W2S pairs from `../shared/data/real-pairs` (512×512, "
        "PSNR in dB against the 400-frame average mapped onto the noisy scale).",
        "",
        *w2s_lines,
        "",
        "**Simulated photon noise on other real images** (`../shared/data/real`: nuclei 512×512, "
        "pollen plane 16 of 256×256, ssTEM plane 5 of 512×512 as the clean scene; Poisson photons "
        "at a peak of 5 or 30 above 0.5 of background, gain 3, offset 100, read noise 2; PSNR with "
        "the clean scene's range as the peak).",
        "",
        *sim_lines,
        "",
        summary(w2s, w2s_mean, strengths, default, "W2S"),
        summary(sim, sim_mean, strengths, default, "Simulated"),
    ]
    publish("## Learned denoiser: Wiener refinement\n\n" + "\n".join(lines), args.md)


if __name__ == "__main__":
    main()
