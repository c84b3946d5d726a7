"""OME-Zarr in, OME-Zarr out: exact chunks, copied metadata, a pyramid, resume."""

import json
import os
import pathlib

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

import denoisekit as dk
import denoisekit.dask as dkd


def write_source(path, vol, axes, chunks, fmt_v04=False):
    """An OME-Zarr image written by ome-zarr-py (a peer), with units and a scale."""
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image

    fmt = None
    if fmt_v04:
        from ome_zarr.format import FormatV04
        fmt = FormatV04()
    store = parse_url(str(path), mode="w", **({"fmt": fmt} if fmt else {})).store
    root = zarr.group(store=store, **({"zarr_format": 2} if fmt_v04 else {}))
    units = {"z": ("space", "micrometer"), "y": ("space", "micrometer"),
             "x": ("space", "micrometer"), "c": ("channel", None), "t": ("time", "second")}
    axes_meta = [{"name": a, "type": units[a][0], **({"unit": units[a][1]} if units[a][1] else {})}
                 for a in axes]
    scale = {a: {"z": 0.5, "y": 0.1, "x": 0.1}.get(a, 1.0) for a in axes}
    kw = {"fmt": fmt} if fmt else {}
    write_image(vol, root, axes=axes_meta, storage_options=dict(chunks=chunks),
                scale_factors=(2,), scale=scale, **kw)
    return str(path)


@pytest.fixture
def source(tmp_path, noisy3d):
    rng = np.random.default_rng(2)
    vol = np.stack([np.clip(noisy3d * (1 + c) + rng.normal(0, 4, noisy3d.shape), 0, 65535)
                    for c in range(2)]).astype(np.uint16)
    return write_source(tmp_path / "in.ome.zarr", vol, "czyx", (1, 4, 16, 20)), vol


def expected(vol, method, per_channel):
    return np.stack([dk.denoise(vol[c], method, backend="cpu", **per_channel[c])
                     for c in range(vol.shape[0])])


def ome(group):
    attrs = dict(group.attrs)
    return attrs["ome"]["multiscales"][0] if "ome" in attrs else attrs["multiscales"][0]


def test_result_metadata_and_pyramid(source, tmp_path):
    src, vol = source
    dst = str(tmp_path / "out.ome.zarr")
    with dask.config.set(scheduler="threads"):
        summary = dkd.denoise_ome_zarr(src, dst, "nl_means", pyramid=3,
                                       patch_radius_z=1, search_radius_z=1)
    # One task per output chunk.
    assert summary["tasks"] == 2 * 3 * 3 * 3
    out = zarr.open_group(dst, mode="r")
    np.testing.assert_array_equal(out["0"][...], expected(vol, "nl_means", summary["params"]))
    m_in, m_out = ome(zarr.open_group(src, mode="r")), ome(out)
    assert m_out["axes"] == m_in["axes"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in m_out["datasets"]]
    assert scales == [[1.0, 0.5, 0.1, 0.1], [1.0, 0.5, 0.2, 0.2], [1.0, 0.5, 0.4, 0.4]], \
        m_in["datasets"]
    info = dict(out.attrs)["denoisekit"]
    assert info["version"] == dk.__version__ and info["complete"] and info["method"] == "nl_means"
    assert info["params"] == summary["params"]
    assert dkd.PROGRESS not in out
    # Each level is the 2x2 mean of the one before, and a peer reader opens the result.
    l0, l1 = out["0"][...], out["1"][...]
    h, w = l1.shape[-2:]
    np.testing.assert_allclose(
        l1, l0[..., :2 * h, :2 * w].reshape(*l0.shape[:2], h, 2, w, 2).mean(axis=(3, 5)),
        rtol=1e-6)
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    node = next(iter(Reader(parse_url(dst))()))
    assert len(node.data) == 3 and node.data[0].shape == vol.shape


def test_zarr_v2_ome_04_is_read_and_written_in_kind(tmp_path, noisy3d):
    vol = np.clip(noisy3d, 0, None).astype(np.uint16)
    src = write_source(tmp_path / "v2.ome.zarr", vol, "zyx", (4, 16, 16), fmt_v04=True)
    dst = str(tmp_path / "v2out.ome.zarr")
    with dask.config.set(scheduler="synchronous"):
        s = dkd.denoise_ome_zarr(src, dst, "median", radius=2, radius_z=1)
    out = zarr.open_group(dst, mode="r")
    assert out["0"].metadata.zarr_format == 2 and "multiscales" in dict(out.attrs)
    # OME-NGFF allows only "/" chunk keys.
    assert (pathlib.Path(dst) / "0" / "0" / "0" / "0").is_file()
    np.testing.assert_array_equal(out["0"][...],
                                  dk.denoise(vol, "median", **s["params"][0]))


def test_resume_rewrites_exactly_the_unfinished_chunks(source, tmp_path, monkeypatch):
    src, vol = source
    dst = str(tmp_path / "crash.ome.zarr")
    calls = {"n": 0}
    real = dkd._unit_task

    def crashing(*args):
        calls["n"] += 1
        if calls["n"] == 20:
            raise RuntimeError("simulated crash")
        return real(*args)

    monkeypatch.setattr(dkd, "_unit_task", crashing)
    with dask.config.set(scheduler="synchronous"), pytest.raises(RuntimeError, match="simulated"):
        dkd.denoise_ome_zarr(src, dst, "gaussian", sigma=1.2, sigma_z=0.8, pyramid=3)
    monkeypatch.setattr(dkd, "_unit_task", real)
    g = zarr.open_group(dst, mode="r+")
    done = g[dkd.PROGRESS][...]
    assert 0 < done.sum() < done.size
    # A torn chunk: an unfinished region holding garbage must be rewritten, not kept.
    idx = tuple(np.argwhere(done == 0)[0])
    region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, g["0"].chunks))
    g["0"][region] = -1.0
    with pytest.raises(ValueError, match="sigma=1.2 vs 2.0"):
        dkd.denoise_ome_zarr(src, dst, "gaussian", resume=True, sigma=2.0)
    with dask.config.set(scheduler="synchronous"):
        s = dkd.denoise_ome_zarr(src, dst, "gaussian", resume=True, sigma=1.2)
    assert s["resumed"] and s["tasks"] == done.size - done.sum()
    # The pyramid the first run announced is the one built.
    out = zarr.open_group(dst, mode="r")
    assert [d["path"] for d in ome(out)["datasets"]] == ["0", "1", "2"] and "2" in out
    np.testing.assert_array_equal(zarr.open_group(dst, mode="r")["0"][...],
                                  expected(vol, "gaussian", s["params"]))
    # Finished: a second resume has nothing to do; a new run refuses to overwrite.
    assert dkd.denoise_ome_zarr(src, dst, "gaussian", resume=True)["tasks"] == 0
    with pytest.raises(ValueError, match="exists: overwrite=True"):
        dkd.denoise_ome_zarr(src, dst, "gaussian")
    # The same store under another spelling resumes too.
    rel = os.path.relpath(src)
    assert dkd.denoise_ome_zarr(rel, dst, "gaussian", resume=True)["tasks"] == 0


def test_an_output_that_would_destroy_the_input_or_a_folder_is_refused(source, tmp_path):
    src, _ = source

    def files(root):
        return {os.path.relpath(os.path.join(d, p), root): open(os.path.join(d, p), "rb").read()
                for d, _, names in os.walk(root) for p in names}

    before = files(src)
    # The input itself, a store inside it, and a folder holding it.
    for dst in (src, src + "/den", str(tmp_path), "file://" + os.path.abspath(src),
                os.path.relpath(src) + "/"):
        with pytest.raises(ValueError, match="written over the input"):
            dkd.denoise_ome_zarr(src, dst, "gaussian", overwrite=True)
    assert files(src) == before
    assert not os.path.exists(src + "/den")
    # overwrite replaces a Zarr store only, never a folder named by mistake.
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a Zarr store"):
        dkd.denoise_ome_zarr(src, str(folder), "gaussian", overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"


def test_resume_reads_the_parameters_as_a_run_does(source, tmp_path):
    src, _ = source
    dst = str(tmp_path / "median.ome.zarr")
    with dask.config.set(scheduler="synchronous"):
        dkd.denoise_ome_zarr(src, dst, "median", radius=2)
        # 2.0 is the whole number a run takes; text is named by its parameter.
        assert dkd.denoise_ome_zarr(src, dst, "median", resume=True, radius=2.0)["tasks"] == 0
        with pytest.raises(ValueError, match="parameter `radius` = 'abc' is not a number"):
            dkd.denoise_ome_zarr(src, dst, "median", resume=True, radius="abc")
        with pytest.raises(ValueError, match="radius=2 vs 3"):
            dkd.denoise_ome_zarr(src, dst, "median", resume=True, radius=3)


@pytest.mark.parametrize("bad", [dict(backend="foo"), dict(threads=-1),
                                 dict(memory_limit="abc")])
def test_a_run_option_every_task_would_refuse_is_refused_before_the_output(source,
                                                                           tmp_path, bad):
    src, _ = source
    dst = str(tmp_path / "out.ome.zarr")
    with pytest.raises(ValueError):
        dkd.denoise_ome_zarr(src, dst, "median", **bad)
    assert not os.path.exists(dst)
    with pytest.raises(ValueError):
        dkd.denoise(da.zeros((16, 16), chunks=8), "median", **bad)


@pytest.mark.parametrize("z, y, x", [(7, 30, 38), (10, 5, 40)])
def test_a_nan_is_reported_where_it_lies_in_the_image(tmp_path, noisy3d, z, y, x):
    # Inside the central planes the parameters are resolved on, and outside them (found
    # by a chunk's task, in its region or its neighbour's halo).
    vol = noisy3d.copy()
    vol[z, y, x] = np.nan
    src = write_source(tmp_path / "nan.ome.zarr", vol, "zyx", (2, 16, 16))
    with dask.config.set(scheduler="synchronous"), \
            pytest.raises(ValueError, match=rf"pixel \(x={x}, y={y}, z={z}\) of the image is NaN"):
        dkd.denoise_ome_zarr(src, str(tmp_path / "o.ome.zarr"), "gaussian",
                             noise_model="gaussian", sigma=1, sigma_z=1)


def test_a_refused_plan_or_image_input_leaves_no_output(source, tmp_path):
    src, _ = source
    dst = str(tmp_path / "o.ome.zarr")
    # A 3D Fourier filter couples every voxel: chunks this small cannot hold it.
    with pytest.raises(ValueError, match="couples every voxel"):
        dkd.denoise_ome_zarr(src, dst, "fourier_filter", cutoff_z=0.5, max_chunk_bytes=1 << 10)
    assert not os.path.exists(dst)
    psf = np.ones((3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="psf_image: an image input cannot be recorded"):
        dkd.denoise_ome_zarr(src, dst, "richardson_lucy", psf="image", psf_image=psf)
    assert not os.path.exists(dst)
    # The corrected call then runs: nothing was left to refuse it.
    with dask.config.set(scheduler="synchronous"):
        dkd.denoise_ome_zarr(src, dst, "fourier_filter", cutoff_z=0.5)
    assert dict(zarr.open_group(dst, mode="r").attrs)["denoisekit"]["complete"]


def test_not_an_ome_zarr_image(tmp_path):
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(ValueError, match="not an OME-Zarr image"):
        dkd.denoise_ome_zarr(str(tmp_path / "plain.zarr"), str(tmp_path / "o.zarr"), "gaussian")


def test_the_command_line_runs_ome_zarr_on_local_workers(cli, source, tmp_path):
    import subprocess
    import sys

    src, vol = source
    dst = str(tmp_path / "cli.ome.zarr")
    env = {**os.environ, "DENOISEKIT_PYTHON": sys.executable}
    run = subprocess.run([cli, "run", "median", src, dst, "--workers", "2", "radius=2"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["tasks"] == 2 * 3 * 3 * 3
    np.testing.assert_array_equal(zarr.open_group(dst, mode="r")["0"][...],
                                  expected(vol, "median", summary["params"]))
    # Again into the same output: refused with the way forward, then replaced; the
    # driver takes parameters after its options too.
    again = subprocess.run([cli, "run", "median", src, dst, "--workers", "1", "radius=2"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode != 0 and "--overwrite" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr, again.stderr
    replaced = subprocess.run([sys.executable, "-m", "denoisekit.zarr_cli", "median", src, dst,
                               "--workers", "1", "--overwrite", "radius=3"],
                              capture_output=True, text=True, env=env, timeout=300)
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout.strip().splitlines()[-1])["params"][0]["radius"] == 3
    # Options that only make sense for a store are refused for a TIFF, and a Python
    # without the package is reported with the way forward.
    bad = subprocess.run([cli, "run", "median", "x.tif", "y.tif", "--workers", "2"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "apply to OME-Zarr input" in bad.stderr
    env["DENOISEKIT_PYTHON"] = "/nonexistent/python"
    missing = subprocess.run([cli, "run", "median", src, dst + "2"], capture_output=True,
                             text=True, env=env)
    assert missing.returncode != 0 and "denoisekit[dask]" in missing.stderr
