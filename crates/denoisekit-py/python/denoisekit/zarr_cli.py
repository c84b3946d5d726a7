"""``denoisekit-zarr`` (and ``denoisekit run`` on ``.zarr`` paths): an OME-Zarr image
denoised on a Dask cluster.

    denoisekit-zarr nl_means in.ome.zarr out.ome.zarr --workers 4 h=12
    denoisekit-zarr nl_means in.ome.zarr out.ome.zarr --scheduler tcp://head:8786
    denoisekit-zarr nl_means in.ome.zarr out.ome.zarr --resume

Parameters are ``key=value`` as on the command line and in macros. Prints one JSON line:
the tasks run, voxels written, seconds and the resolved parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from denoisekit._native import BACKENDS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="denoisekit-zarr", description=__doc__.split("\n\n")[0])
    ap.add_argument("method")
    ap.add_argument("input", help="OME-Zarr image (its level 0 is read)")
    ap.add_argument("output", help="new OME-Zarr image")
    ap.add_argument("params", nargs="*", help="key=value")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="start a local cluster of N single-threaded worker processes "
                            "(default: one per core)")
    where.add_argument("--scheduler", default=None,
                       help="address of a running Dask scheduler (tcp://host:8786)")
    ap.add_argument("--memory-per-worker", default="auto",
                    help="local workers' memory limit (Dask syntax, e.g. 4GiB)")
    ap.add_argument("--resume", action="store_true",
                    help="continue an interrupted run into the same output")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output")
    ap.add_argument("--backend", default="cpu", choices=BACKENDS)
    # Parameters may follow the options, as in the examples above.
    a = ap.parse_intermixed_args(argv)
    params = {}
    for p in a.params:
        k, sep, v = p.partition("=")
        if not sep:
            ap.error(f"parameter {p!r} is not key=value")
        params[k] = v
    try:
        import distributed

        import denoisekit.dask as dkd
    except ImportError as e:
        print(f"denoisekit-zarr: {e}; install with: pip install 'denoisekit[dask]'",
              file=sys.stderr)
        return 2
    if a.scheduler:
        client = distributed.Client(a.scheduler)
        cluster = None
    else:
        cluster = distributed.LocalCluster(
            n_workers=a.workers or os.cpu_count() or 1, threads_per_worker=1,
            processes=True, dashboard_address=None, memory_limit=a.memory_per_worker)
        client = distributed.Client(cluster)
    # Workers on other machines (or in other folders) resolve paths themselves.
    src, dst = (p if "://" in p else os.path.abspath(p) for p in (a.input, a.output))
    try:
        summary = dkd.denoise_ome_zarr(src, dst, a.method, resume=a.resume,
                                       overwrite=a.overwrite, backend=a.backend, **params)
    except (ValueError, MemoryError) as e:
        print(f"denoisekit-zarr: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
