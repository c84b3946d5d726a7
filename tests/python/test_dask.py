"""Dask arrays: chunked results equal the whole-volume result, bit for bit."""

import warnings

import dask
import dask.array as da
import numpy as np
import pytest

import denoisekit as dk
import denoisekit.dask as dkd


def quick(method):
    """The descriptor's settings that keep a method cheap on small test volumes."""
    return dict(dk.describe(method)["quick"])


def three_d(method):
    """The descriptor's settings that switch on every z neighbourhood of a method."""
    return {p["key"]: p["three_d"] for p in dk.describe(method)["params"]
            if p["three_d"] is not None}


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def whole(img, method, params):
    return dk.denoise(img, method, backend="cpu", **params)


@pytest.mark.parametrize("method", dk.methods())
@pytest.mark.parametrize("chunks", [(32, 40), (9, 7)], ids=["uneven", "smaller-than-halo"])
def test_2d_chunks_equal_the_whole_image(noisy2d, method, chunks):
    arr = da.from_array(noisy2d, chunks=chunks)
    res = dkd.denoise(arr, method, **quick(method))
    (params,) = res.denoisekit_params
    assert res.chunks == arr.chunks
    np.testing.assert_array_equal(res.compute(), whole(noisy2d, method, params), err_msg=method)


@pytest.mark.parametrize("method", dk.methods())
def test_3d_chunks_equal_the_whole_volume(noisy3d, method):
    params = {**quick(method), **three_d(method)}
    arr = da.from_array(noisy3d, chunks=(4, 16, 20))
    res = dkd.denoise(arr, method, **params)
    (resolved,) = res.denoisekit_params
    np.testing.assert_array_equal(res.compute(), whole(noisy3d, method, resolved),
                                  err_msg=method)


# The methods with a border choice and a finite support (Richardson-Lucy's is global).
@pytest.mark.parametrize("method", ["gaussian", "median"])
@pytest.mark.parametrize("border", dk.describe("gaussian")["params"][2]["options"])
def test_every_border_mode(noisy2d, method, border):
    arr = da.from_array(noisy2d, chunks=(25, 31))
    params = {**quick(method), "border": border}
    if method == "median":
        params["radius"] = 4
    res = dkd.denoise(arr, method, **params)
    (resolved,) = res.denoisekit_params
    np.testing.assert_array_equal(res.compute(), whole(noisy2d, method, resolved),
                                  err_msg=f"{method} border={border}")


def test_5d_each_channel_with_its_own_noise(noisy3d):
    rng = np.random.default_rng(1)
    vol = np.stack([np.stack([noisy3d * (1 + c) + rng.normal(0, 5 * (c + 1), noisy3d.shape)
                              for c in range(2)]) for _ in range(2)]).astype(np.float32)
    arr = da.from_array(vol, chunks=(1, 2, 5, 16, 16))
    res = dkd.denoise(arr, "nl_means", axes="tczyx", patch_radius_z=1, search_radius_z=1)
    per_channel = res.denoisekit_params
    assert len(per_channel) == 2 and per_channel[0]["h"] != per_channel[1]["h"]
    out = res.compute()
    for t in range(2):
        for c in range(2):
            np.testing.assert_array_equal(out[t, c], whole(vol[t, c], "nl_means", per_channel[c]))


def test_plane_wise_methods_run_with_the_global_axes_whole(noisy3d):
    # The wavelet on planes is global in y and x, local (0) in z: chunked in z only.
    arr = da.from_array(noisy3d, chunks=(3, 16, 16))
    depth, chunks = dkd.plan(arr.shape, arr.chunks, "zyx", "wavelet",
                             dk.resolve("wavelet", noisy3d))
    assert depth == {0: 0, 1: 0, 2: 0}
    assert chunks == (arr.chunks[0], (noisy3d.shape[1],), (noisy3d.shape[2],))


def test_a_global_method_whose_chunk_would_be_too_large_is_refused(noisy3d):
    arr = da.from_array(noisy3d, chunks=(3, 16, 16))
    with pytest.raises(ValueError, match="couples every voxel along z, y, x"):
        dkd.denoise(arr, "fourier_filter", cutoff_z=0.5, max_chunk_bytes=1 << 10)


def test_bad_axes_are_refused(noisy3d):
    arr = da.from_array(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="needs axes="):
        dkd.denoise(arr, "gaussian")
    with pytest.raises(ValueError, match="name each of the 4 axes once"):
        dkd.denoise(arr, "gaussian", axes="zzyx")
    # Wrong types and shapes of argument are named, not an AttributeError or KeyError.
    with pytest.raises(ValueError, match="must be a string naming the axes"):
        dkd.denoise(arr, "gaussian", axes=["c", "z", "y", "x"])
    with pytest.raises(ValueError, match="params_per_channel is a list of dicts"):
        dkd.denoise(arr, "gaussian", axes="czyx", params_per_channel={"sigma": 2})
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        flat = da.from_array(np.ones((6, 8, 8), np.float32), chunks=2)
        dkd.denoise(flat[flat.mean(axis=(1, 2)) > 0], "gaussian")
    with pytest.raises(ValueError, match="parameter `sigma`: a boolean"):
        dk.denoise(np.ones((8, 8), np.float32), "gaussian", sigma=True)


def test_periodic_border_in_3d(noisy3d):
    arr = da.from_array(noisy3d, chunks=(4, 15, 20))
    res = dkd.denoise(arr, "gaussian", sigma=1.2, sigma_z=1.0, border="periodic")
    (r,) = res.denoisekit_params
    np.testing.assert_array_equal(res.compute(), whole(noisy3d, "gaussian", r))


@pytest.mark.parametrize("axes", ["yxz", "xzy", "zcyx", "yxc"])
def test_any_axis_order(noisy3d, axes):
    """The core reads (z, y, x): other layouts are transposed to it, halos per letter."""
    zyx = noisy3d if "z" in axes else noisy3d[:2]  # for "yxc", two channels
    canon = "zyx" if "z" in axes else "cyx"
    if "c" in axes and "z" in axes:
        zyx = np.stack([noisy3d, noisy3d * 0.7])
        canon = "czyx"
    arr_np = np.transpose(zyx, [canon.index(a) for a in axes]).copy()
    params = {"sigma": 1.2, "sigma_z": 1.0} if "z" in axes else {"sigma": 1.2}
    res = dkd.denoise(da.from_array(arr_np, chunks=7), "gaussian", axes=axes, **params)
    got = np.transpose(res.compute(), [axes.index(a) for a in canon])
    per_channel = res.denoisekit_params
    if "c" in canon:
        want = np.stack([whole(zyx[c], "gaussian", per_channel[c]) for c in range(len(zyx))])
    else:
        want = whole(zyx, "gaussian", per_channel[0])
    np.testing.assert_array_equal(got, want)


def test_edge_chunks_a_few_pixels_wide(noisy3d):
    # x = 47 in chunks of 22 leaves an edge chunk 3 wide: a chunk, not a colour image.
    arr = da.from_array(noisy3d.astype(np.uint8), chunks=(5, 18, 22))
    res = dkd.denoise(arr, "median", radius=1)
    (r,) = res.denoisekit_params
    np.testing.assert_array_equal(res.compute(), whole(noisy3d.astype(np.uint8), "median", r))


def test_a_parameter_that_writes_a_file_is_refused_before_any_chunk_runs(noisy2d, tmp_path,
                                                                        monkeypatch):
    # Every chunk would train and save its own weights over the others'.
    target = tmp_path / "w.json"
    arr = da.from_array(noisy2d, chunks=32)
    with pytest.raises(ValueError, match="`save_weights` .* writes a file"):
        dkd.denoise(arr, "zs_n2n", save_weights=str(target))
    assert not target.exists()
    # None is "not given": no file named None, in Dask's chunks or in one call.
    monkeypatch.chdir(tmp_path)
    quick = dict(steps=3, width=2)
    none = dkd.denoise(arr, "zs_n2n", save_weights=None, weights=None, **quick).compute()
    np.testing.assert_array_equal(none, dkd.denoise(arr, "zs_n2n", **quick).compute())
    dk.denoise(noisy2d, "zs_n2n", save_weights=None, **quick)
    assert list(tmp_path.iterdir()) == []
    # The way forward it names: save from one whole image, apply to the chunks.
    dk.denoise(noisy2d, "zs_n2n", steps=5, save_weights=str(target))
    out = dkd.denoise(arr, "zs_n2n", weights=str(target)).compute()
    assert out.shape == noisy2d.shape
    # A training region is in the whole plane's coordinates; the learned method couples
    # every pixel of a plane, so its chunks hold whole planes and the region means the same
    # there: the chunked result is the whole image's, and differs from training everywhere.
    region = dict(steps=5, width=4, train_region="4,8,32,24")
    whole = dk.denoise(noisy2d, "zs_n2n", **region)
    np.testing.assert_array_equal(dkd.denoise(arr, "zs_n2n", **region).compute(), whole)
    assert not np.array_equal(whole, dk.denoise(noisy2d, "zs_n2n", steps=5, width=4))
    # As a Python tuple too.
    tup = dk.denoise(noisy2d, "zs_n2n", steps=5, width=4, train_region=(4, 8, 32, 24))
    np.testing.assert_array_equal(tup, whole)


def test_a_measured_psf_goes_to_every_chunk(noisy3d):
    g = np.exp(-np.arange(-3, 4) ** 2 / 4.5)
    psf = (g[:, None, None] * g[None, :, None] * g[None, None, :]).astype(np.float32)
    params = dict(psf="image", psf_image=psf, iterations=4)
    arr = da.from_array(np.stack([noisy3d, noisy3d * 2]), chunks=(1, 4, 16, 20))
    res = dkd.denoise(arr, "richardson_lucy", axes="czyx", **params)
    assert all(p["psf_image"] is psf for p in res.denoisekit_params)
    got = res.compute()
    for c in range(2):
        np.testing.assert_array_equal(got[c], whole(np.asarray(arr[c]), "richardson_lucy",
                                                    res.denoisekit_params[c]))


def test_a_nan_is_reported_where_it_lies_in_the_image(noisy3d):
    # Outside the central sample the parameters are resolved on: found by a chunk, whose
    # halo starts before its region.
    for z, y, x in [(10, 38, 45), (0, 1, 2)]:
        vol = noisy3d.copy()
        vol[z, y, x] = np.nan
        for border in ("symmetric", "periodic"):
            arr = da.from_array(vol, chunks=(3, 16, 20))
            res = dkd.denoise(arr, "gaussian", noise_model="gaussian", sigma=1, sigma_z=1,
                              border=border)
            with pytest.raises(ValueError,
                               match=rf"pixel \(x={x}, y={y}, z={z}\) of the image is NaN"):
                res.compute()


def test_replayed_per_channel_parameters_are_checked_and_pinned(noisy3d):
    vol = np.stack([noisy3d, noisy3d * 3])
    arr = da.from_array(vol, chunks=(1, 4, 16, 20))
    first = dkd.denoise(arr, "nl_means", axes="czyx", **quick("nl_means"))
    again = dkd.denoise(arr, "nl_means", axes="czyx",
                        params_per_channel=first.denoisekit_params)
    assert again.denoisekit_params == first.denoisekit_params
    np.testing.assert_array_equal(again.compute(), first.compute())
    # Unpinned entries are resolved once, on the client, as keywords are: never per chunk.
    bare = dkd.denoise(arr, "nl_means", axes="czyx", params_per_channel=[{}, {}])
    assert all(p["noise_model"] != "auto" and p["h"] > 0 for p in bare.denoisekit_params)
    with pytest.raises(ValueError, match="has 1 entries for 2 channel"):
        dkd.denoise(arr, "nl_means", axes="czyx", params_per_channel=[{}])
    with pytest.raises(ValueError, match="in one place"):
        dkd.denoise(arr, "nl_means", axes="czyx", params_per_channel=[{}, {}], h=3)
    # One overlap serves every channel: a periodic border on some only is refused.
    with pytest.raises(ValueError, match="some channels' border wraps"):
        dkd.denoise(arr, "median", axes="czyx", params_per_channel=[
            {"radius": 1, "border": "periodic"}, {"radius": 1, "border": "replicate"}])
    with pytest.raises(ValueError, match="dtype complex64 is not supported"):
        dkd.denoise(arr.astype(np.complex64), "nl_means", axes="czyx",
                    params_per_channel=first.denoisekit_params)


def test_float64_detail_that_float32_would_flatten_is_refused(noisy2d):
    fine = 1e6 + noisy2d.astype(np.float64) * 1e-4
    for f64 in (fine, fine.astype(">f8")):
        with pytest.raises(ValueError, match="Subtract an offset"):
            dkd.denoise(da.from_array(f64, chunks=32), "gaussian")
    # float32 data cast up converts back exactly, at any offset.
    exact = (1e6 + noisy2d.round()).astype(np.float64)
    res = dkd.denoise(da.from_array(exact, chunks=32), "gaussian", sigma=1)
    np.testing.assert_array_equal(
        res.compute(), whole(exact.astype(np.float32), "gaussian", res.denoisekit_params[0]))


def test_a_colour_array_is_told_its_axes(noisy2d):
    rgb = da.from_array(np.stack([noisy2d] * 3, axis=-1), chunks=(32, 32, 3))
    with pytest.raises(ValueError, match="RGB.*axes='yxc'"):
        dkd.denoise(rgb, "gaussian")
    res = dkd.denoise(rgb, "gaussian", axes="yxc", sigma=1)
    np.testing.assert_array_equal(res.compute()[..., 1],
                                  whole(noisy2d, "gaussian", res.denoisekit_params[1]))


def test_local_tasks_share_the_call_budget(monkeypatch):
    # DENOISEKIT_MEMORY_LIMIT, which a TooLargeError names, is what the tasks share.
    monkeypatch.setenv("DENOISEKIT_MEMORY_LIMIT", "6G")
    assert dkd._task_budget(None, None) == (6 << 30, 1)
    with dask.config.set(scheduler="threads", num_workers=3):
        assert dkd._task_budget(None, None) == (2 << 30, 1)
    assert dkd._task_budget(123, 4) == (123, 4)


def test_a_streamed_command_line_run_measures_the_noise_where_dask_does(cli, nuclei, tmp_path):
    """A stack over the command line's memory limit is streamed in windows; its
    noise-derived defaults come from the same central block as Dask's, so the two runs
    give the same pixels (noise that grows along z makes another block measure another h)."""
    import os
    import subprocess

    import tifffile

    rng = np.random.default_rng(5)
    vol = np.stack([nuclei[8 * k: 8 * k + 200, 40: 260] for k in range(24)]).astype(np.float32)
    vol += rng.normal(0, 1, vol.shape).astype(np.float32) * (4 + np.arange(24))[:, None, None]
    src, dst = tmp_path / "stack.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, vol)
    run = subprocess.run([cli, "run", "nl_means", src, dst, "--float", "--backend", "cpu",
                          "search_radius=3"], capture_output=True, text=True,
                         env={**os.environ, "DENOISEKIT_MEMORY_LIMIT": "24M"})
    assert run.returncode == 0, run.stderr
    assert "streaming in windows of" in run.stderr, run.stderr
    res = dkd.denoise(da.from_array(vol, chunks=(5, 100, 110)), "nl_means", backend="cpu",
                      search_radius=3)
    np.testing.assert_array_equal(res.compute(), tifffile.imread(dst))


def test_ctrl_c_stops_jobs_on_dask_worker_threads():
    """Python delivers SIGINT to the main thread; the jobs on Dask's worker threads stop
    too, instead of running their training to the end."""
    import subprocess
    import sys

    code = r"""
import os, signal, threading, time, numpy as np, dask, dask.array as da, denoisekit.dask as dkd
# Importing leaves Python's handler as it was; the driver chains it.
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
img = np.random.default_rng(0).normal(100, 10, (2, 64, 64)).astype(np.float32)
res = dkd.denoise(da.from_array(img, chunks=(1, 64, 64)), "zs_n2n", steps=100000)
threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
t = time.time()
try:
    with dask.config.set(scheduler="threads", num_workers=2):
        res.compute()
    print("finished")
except KeyboardInterrupt:
    busy = time.process_time(); time.sleep(1.0); busy = time.process_time() - busy
    print("interrupted", busy < 0.3)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["interrupted", "True"], out
    # A handler of the user's own is left alone: it decides what Ctrl-C does.
    own = r"""
import signal, numpy as np, dask.array as da, denoisekit.dask as dkd
mine = lambda s, f: None
signal.signal(signal.SIGINT, mine)
dkd.denoise(da.from_array(np.zeros((8, 8), np.float32)), "gaussian", sigma=1)
print(signal.getsignal(signal.SIGINT) is mine)
"""
    out = subprocess.run([sys.executable, "-c", own], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["True"], out


def test_a_dark_chunk_is_not_judged_apart_from_the_image():
    """The noise model is judged once, on the image's sample: a chunk that is mostly
    dark (below the offset) would fail the judgement that the whole image passes."""
    rng = np.random.default_rng(0)
    img = (rng.poisson(100, (128, 128)) + 50).astype(np.float32)
    img[:, :24] = rng.normal(10, 2, (128, 24)).astype(np.float32)
    p = dict(noise_model="poisson_gaussian", gain=1.0, offset=50.0, read_noise=1.0, sigma=1.0)
    res = dkd.denoise(da.from_array(img, chunks=32), "gaussian", **p)
    np.testing.assert_array_equal(res.compute(scheduler="synchronous"),
                                  dk.denoise(img, "gaussian", **p))
    # A model the image itself does not fit is still refused, before any chunk runs.
    with pytest.raises(ValueError, match="offset"):
        dkd.denoise(da.from_array(img, chunks=32), "gaussian", **dict(p, offset=500.0))


def test_a_strength_read_in_stabilised_units_is_said_once_by_the_driver():
    # Photon counts: auto chooses Poisson-Gaussian on the driver's sample and pins it for
    # every chunk, whose runs then cannot tell that h was read in stabilised units.
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:128, 0:128]
    clean = 400 + 300 * np.sin(x / 17.0) * np.cos(y / 23.0)
    img = (rng.poisson(clean / 0.75) * 0.75).astype(np.float32)
    arr = da.from_array(img, chunks=64)
    with pytest.warns(UserWarning, match="h=12 is read in the stabilised image's units") as w:
        dkd.denoise(arr, "nl_means", h=12, search_radius=2).compute()
    said = [m for m in w if "stabilised" in str(m.message)]
    assert len(said) == 1 and said[0].filename == __file__, said
    with pytest.warns(UserWarning, match="h=12 is read in the stabilised image's units"):
        dk.resolve("nl_means", img, h=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dkd.denoise(arr, "nl_means", h=12, search_radius=2, noise_model="gaussian").compute()
