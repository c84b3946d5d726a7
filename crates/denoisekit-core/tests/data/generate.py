#!/usr/bin/env python3
"""Reference outputs of established tools for tests/reference.rs.

Run once with the peer virtualenv of ../shared/bench/README.md:
    /tmp/peers-venv/bin/python crates/denoisekit-core/tests/data/generate.py
The files are inputs and outputs of scikit-image, never of DenoiseKit; the Rust tests
only read them. README.md in this folder records versions and the exact calls.
"""
import os
import sys

import numpy as np
import scipy
import scipy.ndimage as ndi
import skimage
import tifffile
from skimage.filters import gaussian
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet

HERE = os.path.dirname(os.path.abspath(__file__))


def scene(shape, seed):
    """Smooth blobs and a step edge in [0, 1] (clean), and a copy with Gaussian noise sigma 0.1."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    img = np.where(grids[-1] > shape[-1] / 2, 0.6, 0.2)
    for _ in range(6):
        c = [rng.uniform(0, n) for n in shape]
        r2 = sum((g - ci) ** 2 for g, ci in zip(grids, c))
        img += 0.4 * np.exp(-r2 / (2 * rng.uniform(2, 6) ** 2))
    noisy = img + rng.normal(0.0, 0.1, shape)
    return img.astype(np.float32), noisy.astype(np.float32)


def fourier_lowpass(x, cutoff, softness, cutoff_z=0.0):
    """The mask of DenoiseKit's fourier_filter, written independently with numpy's FFT."""
    if x.ndim == 3 and cutoff_z == 0.0:
        return np.stack([fourier_lowpass(p, cutoff, softness) for p in x])
    ext = np.pad(x.astype(np.float64), [(0, n) for n in x.shape], mode="symmetric")
    spec = np.fft.rfftn(ext)
    grids = [np.fft.fftfreq(n) for n in ext.shape[:-1]] + [np.fft.rfftfreq(ext.shape[-1])]
    f = np.meshgrid(*grids, indexing="ij")
    rho2 = (f[-1] ** 2 + f[-2] ** 2) / cutoff ** 2
    if x.ndim == 3:
        rho2 = rho2 + f[0] ** 2 / cutoff_z ** 2
    rho = np.sqrt(rho2)
    s = softness
    m = np.where(rho <= 1 - s, 1.0, np.where(rho >= 1 + s, 0.0,
                 0.5 * (1 + np.cos(np.pi * (rho - 1 + s) / (2 * s)))))
    out = np.fft.irfftn(spec * m, s=ext.shape, axes=tuple(range(ext.ndim)))
    return out[tuple(slice(0, n) for n in x.shape)]


def tikhonov(x, lam, regulariser="gradient", psf_sigma=0.0, z_weight=0.0):
    """u = K f / (K^2 + lam |L|^2) on the mirror extension, written with numpy's FFT."""
    if x.ndim == 3 and z_weight == 0.0:
        return np.stack([tikhonov(p, lam, regulariser, psf_sigma) for p in x])
    ext = np.pad(x.astype(np.float64), [(0, n) for n in x.shape], mode="symmetric")
    spec = np.fft.rfftn(ext)
    grids = [np.fft.fftfreq(n) for n in ext.shape[:-1]] + [np.fft.rfftfreq(ext.shape[-1])]
    f = np.meshgrid(*grids, indexing="ij")
    d2 = lambda v: 4 * np.sin(np.pi * v) ** 2
    grad = d2(f[-1]) + d2(f[-2]) + (z_weight ** 2 * d2(f[0]) if x.ndim == 3 else 0)
    reg = grad ** 2 if regulariser == "laplacian" else grad
    k = np.exp(-2 * np.pi ** 2 * psf_sigma ** 2 * (f[-1] ** 2 + f[-2] ** 2))
    out = np.fft.irfftn(spec * np.minimum(k / (k * k + lam * reg), 1e6), s=ext.shape, axes=tuple(range(ext.ndim)))
    return out[tuple(slice(0, n) for n in x.shape)]


def gaussian_taps(sigma):
    """DenoiseKit's sampled Gaussian: 2*ceil(4 sigma)+1 taps, normalised to sum 1."""
    r = int(np.ceil(4.0 * sigma))
    k = np.exp(-np.arange(-r, r + 1) ** 2 / (2.0 * sigma ** 2))
    return k / k.sum()


def blurred_observation(clean, sigmas, seed):
    """`clean` through a separable Gaussian PSF (zero outside, as scipy's 'same'), plus
    Gaussian noise 0.01, clipped at 0 and scaled to mean exactly 0.5 (scikit-image starts
    Richardson-Lucy from a flat 0.5, DenoiseKit's start=mean from a flat mean)."""
    import scipy.signal
    psf = gaussian_taps(sigmas[0])
    for s in sigmas[1:]:
        psf = np.multiply.outer(psf, gaussian_taps(s))
    seen = scipy.signal.convolve(clean.astype(np.float64), psf, mode="same")
    seen = np.clip(seen + np.random.default_rng(seed).normal(0.0, 0.01, seen.shape), 0.0, None)
    seen = (seen * (0.5 / seen.mean())).astype(np.float32)
    return seen, psf


def save(name, arr):
    tifffile.imwrite(os.path.join(HERE, name), np.asarray(arr, dtype=np.float32))


def main():
    c2, x2 = scene((64, 72), seed=7)
    _, x3 = scene((8, 32, 36), seed=8)
    save("clean_2d_64x72.tif", c2)
    save("input_2d_64x72.tif", x2)
    save("input_3d_8x32x36.tif", x3)
    f2 = x2.astype(np.float64)
    f3 = x3.astype(np.float64)
    # A tight tolerance: at the default eps=2e-4 scikit-image stops these small images
    # after fewer than 10 iterations, which DenoiseKit's stopping rule no longer allows.
    save("skimage_tv_chambolle_w0.1_eps1e-6_2d.tif",
         denoise_tv_chambolle(f2, weight=0.1, eps=1e-6, max_num_iter=2000))
    save("skimage_tv_chambolle_w0.1_eps1e-6_3d.tif",
         denoise_tv_chambolle(f3, weight=0.1, eps=1e-6, max_num_iter=2000))
    save("skimage_gaussian_s1.5_nearest_2d.tif", gaussian(f2, sigma=1.5, truncate=4.0, mode="nearest"))
    save("skimage_nl_means_fast_p5_d6_h0.08_s0.1_2d.tif",
         denoise_nl_means(f2, patch_size=5, patch_distance=6, h=0.08, sigma=0.1, fast_mode=True))
    save("scipy_median_size3_reflect_2d.tif", ndi.median_filter(x2, size=3, mode="reflect"))
    save("scipy_median_size5_reflect_2d.tif", ndi.median_filter(x2, size=5, mode="reflect"))
    save("scipy_median_size3_reflect_3d.tif", ndi.median_filter(x3, size=3, mode="reflect"))
    save("numpy_fourier_lowpass_c0.25_s0.2_2d.tif", fourier_lowpass(x2, 0.25, 0.2))
    save("numpy_fourier_lowpass_c0.15_s0.3_cz0.2_3d.tif", fourier_lowpass(x3, 0.15, 0.3, 0.2))
    save("numpy_tikhonov_l2_gradient_2d.tif", tikhonov(x2, 2.0))
    save("numpy_tikhonov_l3_laplacian_2d.tif", tikhonov(x2, 3.0, "laplacian"))
    save("numpy_tikhonov_l0.01_psf1.5_2d.tif", tikhonov(x2, 0.01, psf_sigma=1.5))
    save("numpy_tikhonov_l2_gradient_z1_3d.tif", tikhonov(x3, 2.0, z_weight=1.0))
    save("skimage_wavelet_sym4_bayes_soft_s0.1_2d.tif",
         denoise_wavelet(f2, sigma=0.1, wavelet="sym4", method="BayesShrink", mode="soft"))
    save("skimage_wavelet_db1_visu_hard_s0.1_l3_2d.tif",
         denoise_wavelet(f2, sigma=0.1, wavelet="db1", method="VisuShrink", mode="hard", wavelet_levels=3))
    save("skimage_wavelet_coif2_bayes_soft_s0.1_l2_2d.tif",
         denoise_wavelet(f2, sigma=0.1, wavelet="coif2", method="BayesShrink", mode="soft", wavelet_levels=2))
    save("skimage_wavelet_db2_bayes_soft_s0.1_3d.tif",
         denoise_wavelet(f3, sigma=0.1, wavelet="db2", method="BayesShrink", mode="soft"))
    from skimage.restoration import richardson_lucy
    rl2, psf2 = blurred_observation(c2, (1.5, 1.5), seed=9)
    save("rl_input_2d_64x72.tif", rl2)
    save("skimage_richardson_lucy_n10_s1.5_2d.tif",
         richardson_lucy(rl2.astype(np.float64), psf2, num_iter=10, clip=False))
    c3, _ = scene((8, 32, 36), seed=8)
    rl3, psf3 = blurred_observation(c3, (1.0, 1.5, 1.5), seed=10)
    save("rl_input_3d_8x32x36.tif", rl3)
    save("skimage_richardson_lucy_n10_s1.5_z1_3d.tif",
         richardson_lucy(rl3.astype(np.float64), psf3, num_iter=10, clip=False))
    import bm3d
    c2b, x2b = scene((128, 120), seed=11)
    save("clean_2d_128x120.tif", c2b)
    save("input_2d_128x120.tif", x2b)
    save("bm3d_s0.1_2d_128x120.tif", bm3d.bm3d(x2b.astype(np.float64), sigma_psd=0.1))
    # The benchmark's synthetic fluorescence scene (../shared/bench/synth_fluo.py), 160x144.
    sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "..", "..", "shared", "bench"))
    import synth_fluo
    fl = synth_fluo.make_scene((160, 144), seed=3)["clean"].astype(np.float32)
    fl_noisy = synth_fluo.add_gaussian(fl, sigma=0.1, seed=4).astype(np.float32)
    save("fluo_clean_2d_160x144.tif", fl)
    save("fluo_input_2d_160x144.tif", fl_noisy)
    save("bm3d_s0.1_fluo_2d_160x144.tif", bm3d.bm3d(fl_noisy.astype(np.float64), sigma_psd=0.1))
    from skimage.morphology import ball, black_tophat, disk, white_tophat
    save("skimage_white_tophat_disk5_2d.tif", white_tophat(x2, disk(5)))
    save("skimage_black_tophat_disk7_2d.tif", black_tophat(x2, disk(7)))
    save("skimage_white_tophat_ball2_3d.tif", white_tophat(x3, ball(2)))
    from medpy.filter.smoothing import anisotropic_diffusion
    save("medpy_anisotropic_diffusion_n10_k0.2_g0.15_opt1_2d.tif",
         anisotropic_diffusion(x2, niter=10, kappa=0.2, gamma=0.15, option=1))
    save("medpy_anisotropic_diffusion_n10_k0.2_g0.15_opt2_2d.tif",
         anisotropic_diffusion(x2, niter=10, kappa=0.2, gamma=0.15, option=2))
    save("medpy_anisotropic_diffusion_n5_k0.2_g0.1_opt1_3d.tif",
         anisotropic_diffusion(x3, niter=5, kappa=0.2, gamma=0.1, option=1))
    print("scikit-image", skimage.__version__, "scipy", scipy.__version__, "numpy", np.__version__)


if __name__ == "__main__":
    main()
