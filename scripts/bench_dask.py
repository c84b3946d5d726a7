#!/usr/bin/env python3
"""Benchmark (not a test): an OME-Zarr volume larger than 4 GiB denoised on a
distributed.LocalCluster, DenoiseKit's `denoise_ome_zarr` against dask-image's filters
(scipy.ndimage under `map_overlap`) on the same cluster, in the same run.

    python scripts/bench_dask.py --dir /tmp/bench-dask [--shape 512 2048 2048] [--workers 2]

Needs the denoisekit wheel with the `dask` extra, dask-image and ome-zarr in the Python
that runs it. Prints a Markdown table: wall time, throughput (input MB/s), tasks, and
the peak resident memory of each worker process (fresh cluster per run). Each pair
computes the same filter: a 3D Gaussian (sigma 1.5 in y/x, 1 in z) and a 3x3x3 median
(DenoiseKit with noise_model=gaussian: no variance-stabilising transform, as the peer).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import shutil
import time

import dask
import dask.array as da
import numpy as np
import zarr


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_source(path: pathlib.Path, shape, chunks):
    """A smooth phantom with Poisson-like noise, uint16, written as OME-Zarr 0.5 in
    parallel (never whole in memory)."""
    if (path / "zarr.json").exists():
        return
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    arr = g.create_array("0", shape=shape, chunks=chunks, dtype="uint16",
                         dimension_names=["z", "y", "x"], fill_value=0)
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": axes, "name": "bench",
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 0.2, 0.2]}]}]}]}

    def block(block_id=None, block_info=None):
        loc = block_info[None]["array-location"]
        z, y, x = np.meshgrid(*[np.arange(a, b, dtype=np.float32) for a, b in loc],
                              indexing="ij")
        clean = 400 + 300 * np.sin(x / 23.0) * np.cos(y / 31.0) * np.cos(z / 11.0)
        rng = np.random.default_rng(abs(hash(tuple(a for a, _ in loc))) % 2**32)
        return np.clip(rng.normal(clean, np.sqrt(clean) * 2), 0, 65535).astype(np.uint16)

    lazy = da.map_blocks(block, chunks=da.core.normalize_chunks(chunks, shape),
                         dtype=np.uint16, meta=np.empty((0, 0, 0), np.uint16))
    da.store(lazy, arr, lock=False)


def run_ours(client, src, dst, method, params):
    import denoisekit.dask as dkd

    shutil.rmtree(dst, ignore_errors=True)
    t = time.perf_counter()
    s = dkd.denoise_ome_zarr(str(src), str(dst), method, pyramid=1, **params)
    return time.perf_counter() - t, s["tasks"]


def run_peer(client, src, dst, name):
    from dask_image import ndfilters

    shutil.rmtree(dst, ignore_errors=True)
    arr = da.from_zarr(str(src), component="0").astype(np.float32)
    if name == "gaussian":
        out = ndfilters.gaussian_filter(arr, sigma=(1.0, 1.5, 1.5), mode="nearest",
                                        truncate=4.0)
    else:
        out = ndfilters.median_filter(arr, size=3, mode="nearest")
    lazy = out.to_zarr(str(dst), component="0", compute=False, zarr_format=3)
    tasks = len(dict(lazy.__dask_graph__()))
    t = time.perf_counter()
    dask.compute(lazy)
    return time.perf_counter() - t, tasks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/bench-dask")
    ap.add_argument("--shape", type=int, nargs=3, default=[512, 2048, 2048])
    ap.add_argument("--chunks", type=int, nargs=3, default=[64, 512, 512])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory", default="4GiB", help="memory limit per worker")
    ap.add_argument("--only", default="", help="run only the jobs whose name contains this")
    a = ap.parse_args()
    from distributed import Client, LocalCluster

    root = pathlib.Path(a.dir)
    root.mkdir(parents=True, exist_ok=True)
    src = root / "in.ome.zarr"
    shape, chunks = tuple(a.shape), tuple(a.chunks)
    nbytes = int(np.prod(shape)) * 2
    with LocalCluster(n_workers=a.workers, threads_per_worker=1, dashboard_address=None,
                      memory_limit=a.memory) as c, Client(c):
        make_source(src, shape, chunks)
    rows = []
    jobs = [
        ("DenoiseKit gaussian", lambda cl: run_ours(cl, src, root / "o1.ome.zarr", "gaussian",
                                                    {"sigma": 1.5, "sigma_z": 1.0,
                                                     "noise_model": "gaussian"})),
        ("dask-image gaussian_filter", lambda cl: run_peer(cl, src, root / "p1.zarr", "gaussian")),
        ("DenoiseKit median", lambda cl: run_ours(cl, src, root / "o2.ome.zarr", "median",
                                                  {"radius": 1, "radius_z": 1,
                                                   "noise_model": "gaussian"})),
        ("dask-image median_filter", lambda cl: run_peer(cl, src, root / "p2.zarr", "median")),
    ]
    for name, job in jobs:
        if a.only not in name:
            continue
        with LocalCluster(n_workers=a.workers, threads_per_worker=1, dashboard_address=None,
                          memory_limit=a.memory) as c, Client(c) as cl:
            secs, tasks = job(cl)
            peaks = list(cl.run(peak_rss).values())
        rows.append((name, secs, nbytes / secs / 1e6, tasks, max(peaks) / 2**20))
        print(json.dumps({"job": name, "seconds": secs, "tasks": tasks,
                          "peak_worker_mib": max(peaks) / 2**20}), flush=True)
    print(f"\nInput: {shape} uint16 ({nbytes / 2**30:.2f} GiB), chunks {chunks}, "
          f"{a.workers} single-threaded worker processes, {a.memory} each, "
          f"{os.cpu_count()} cores.\n")
    print("| job | time (s) | throughput (MB/s of input) | tasks | peak memory per worker (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for name, secs, mbs, tasks, peak in rows:
        print(f"| {name} | {secs:.1f} | {mbs:.0f} | {tasks} | {peak:.0f} |")


if __name__ == "__main__":
    main()
