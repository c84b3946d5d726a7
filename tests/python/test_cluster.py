"""A real distributed cluster: worker processes, a killed worker, a memory limit."""

import os
import signal
import threading
import time

import numpy as np
import pytest
import zarr

import denoisekit as dk
import denoisekit.dask as dkd
from test_ome_zarr import expected, write_source

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, memory_limit="2GiB") as c, \
            distributed.Client(c) as client:
        yield c, client


@pytest.fixture(scope="module")
def big_source(tmp_path_factory):
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:192, 0:160]
    clean = 300 + 200 * np.sin(x / 9.0) * np.cos(y / 13.0)
    vol = np.stack([clean + rng.normal(0, 15, clean.shape) for _ in range(24)])
    vol = np.clip(vol, 0, 65535).astype(np.uint16)
    path = tmp_path_factory.mktemp("cl") / "in.ome.zarr"
    return write_source(path, vol, "zyx", (4, 48, 40)), vol


def test_two_worker_processes_give_the_same_pixels(cluster, big_source, tmp_path):
    src, vol = big_source
    dst = str(tmp_path / "out.ome.zarr")
    s = dkd.denoise_ome_zarr(src, dst, "nl_means", search_radius_z=1, patch_radius_z=1)
    assert s["tasks"] == 6 * 4 * 4
    np.testing.assert_array_equal(zarr.open_group(dst, mode="r")["0"][...],
                                  expected(vol[None], "nl_means", s["params"])[0])


def test_a_killed_worker_loses_nothing(cluster, big_source, tmp_path):
    c, client = cluster
    src, vol = big_source
    dst = str(tmp_path / "killed.ome.zarr")
    params = dict(search_radius=10, patch_radius=3, search_radius_z=2, patch_radius_z=1)
    pids = list(client.run(os.getpid).values())

    def kill_one():
        # Kill a worker once some, but not all, chunks are written.
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                g = zarr.open_group(dst, mode="r")
                if dkd.PROGRESS in g and g[dkd.PROGRESS][...].sum() >= 4:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.set()
                    return
            except Exception:
                pass
            time.sleep(0.02)

    killed = threading.Event()
    killer = threading.Thread(target=kill_one)
    killer.start()
    try:
        s = dkd.denoise_ome_zarr(src, dst, "nl_means", **params)
    except distributed.scheduler.KilledWorker:
        s = dkd.denoise_ome_zarr(src, dst, "nl_means", resume=True)
    killer.join()
    assert killed.is_set(), "the job ended before a worker could be killed"
    np.testing.assert_array_equal(zarr.open_group(dst, mode="r")["0"][...],
                                  expected(vol[None], "nl_means", s["params"])[0])


def test_a_small_worker_gets_too_large_not_a_kill(tmp_path):
    vol = np.random.default_rng(0).normal(100, 5, (256, 256, 256)).astype(np.uint16)
    src = write_source(tmp_path / "big.ome.zarr", vol, "zyx", (256, 256, 256))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None, memory_limit="400MiB") as c, \
            distributed.Client(c):
        # A 3D Fourier filter holds 3.25 float32 copies of the 64 MiB chunk at once (its
        # descriptor): 224 MiB with the fixed allowance, over the task's budget of half
        # the worker's 400 MiB. The chunk itself (32 MiB read, 64 MiB as float32) fits.
        with pytest.raises(dk.TooLargeError, match="memory_limit"):
            dkd.denoise_ome_zarr(src, str(tmp_path / "o.ome.zarr"), "fourier_filter",
                                 cutoff_z=0.5)
