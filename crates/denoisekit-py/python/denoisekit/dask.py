"""Volumes larger than memory: DenoiseKit on Dask arrays and OME-Zarr stores.

The result equals a whole-volume run with the same (resolved) parameters, bit for bit:

- parameters are resolved once, on the client, from a sample of the volume (noise-derived
  defaults and ``noise_model=auto`` pinned), so every chunk uses the same numbers; with a
  channel axis each channel is resolved on its own, as its noise differs;
- each chunk is read with a halo of the method's support along every spatial axis (what
  :func:`denoisekit.support` states, and the core's tests check: a region grown by it
  gives exactly the whole result inside it); non-spatial axes (t, c) get none;
- at the volume's true edges nothing is padded: the method applies its own border mode
  there, as in a whole run (``border=periodic`` wraps the halo around instead);
- a method whose support is the whole axis (a Fourier transform, wavelet sub-band
  statistics, the energy-based stop of total variation) is run with that axis whole (a
  plane-wise method chunked in z only), or refused with the reason when a chunk would
  then exceed ``max_chunk_bytes``: never approximated.

Inside a task the core runs single-threaded by default (Dask runs one task per worker
thread: more would oversubscribe the cores), and within a budget of half the worker's
memory limit divided among its threads, so an oversized chunk raises
:class:`denoisekit.TooLargeError` instead of being killed by the nanny.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Optional, Sequence

import numpy as np

import denoisekit as _dk

try:
    import dask
    import dask.array as da
    import dask.system
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError(
        "denoisekit.dask needs dask: pip install 'denoisekit[dask]'"
    ) from e

__all__ = ["denoise", "denoise_ome_zarr", "plan", "resolve_params"]

#: Largest chunk (bytes, float32) accepted when a global axis forces an axis whole.
MAX_CHUNK_BYTES = 2 << 30

SPATIAL = "zyx"


def _check_per_channel(params_per_channel) -> None:
    if params_per_channel is not None and (
            isinstance(params_per_channel, (Mapping, str))
            or not all(isinstance(p, Mapping) for p in params_per_channel)):
        raise ValueError(
            "params_per_channel is a list of dicts, one per channel (what "
            f"denoisekit_params holds), not {params_per_channel!r}")


def _axes_for(ndim: int, axes: Optional[str], shape: Sequence[int] = ()) -> str:
    if axes is None:
        # As denoisekit.denoise judges a NumPy image, with this driver's way forward.
        if _dk._looks_like_colour(shape):
            raise ValueError(
                f"shape {tuple(shape)} looks like an RGB(A) image (y, x, channel); pass "
                "axes='yxc' to denoise each channel, or convert to grey first"
            )
        if ndim == 2:
            return "yx"
        if ndim == 3:
            return "zyx"
        raise ValueError(
            f"a {ndim}D array needs axes=, e.g. axes='tczyx', 'czyx' or 'tyx'"
        )
    if not isinstance(axes, str):
        raise ValueError(f"axes={axes!r} must be a string naming the axes, e.g. 'zyx'")
    axes = axes.lower()
    if len(axes) != ndim or len(set(axes)) != ndim or not set(axes) <= set("tczyx"):
        raise ValueError(
            f"axes={axes!r} must name each of the {ndim} axes once, from t, c, z, y, x"
        )
    if "y" not in axes or "x" not in axes:
        raise ValueError(f"axes={axes!r} must include y and x")
    return axes


def _sample_ranges(shape, axes: str) -> dict:
    """The central block the core measures the noise on (``denoisekit_core::noise_sample``,
    as the command line's streamed runs do), as ``(start, stop)`` per spatial axis."""
    size = {a: n for a, n in zip(axes, shape)}
    ranges = _dk._native.noise_sample(size.get("z", 1), size["y"], size["x"])
    return dict(zip(SPATIAL, ranges))


def _sample(arr, axes: str, index: dict) -> np.ndarray:
    """The central block (``_sample_ranges``) at the given non-spatial index: what the
    noise is measured on. Reading it touches only the chunks it overlaps."""
    ranges = _sample_ranges(arr.shape, axes)
    sl = [slice(*ranges[a]) if a in SPATIAL else index.get(a, 0) for a in axes]
    block = np.asarray(arr[tuple(sl)])
    # The core reads (z, y, x): put the spatial axes in that order whatever the layout.
    spatial = [a for a in axes if a in SPATIAL]
    return np.transpose(block, sorted(range(len(spatial)), key=lambda i: SPATIAL.index(spatial[i])))


def resolve_params(arr, method: str, axes: Optional[str] = None,
                   params_per_channel: Optional[Sequence[dict]] = None,
                   **params: Any) -> list[dict]:
    """The parameters every chunk will use, one dict per channel (one in all without a
    channel axis): defaults filled in, noise-derived values measured on a central sample
    (at t = 0) unless given. ``params_per_channel`` gives each channel its own
    parameters instead of the keywords (a run's ``denoisekit_params``, to replay it)."""
    axes = _axes_for(arr.ndim, axes, arr.shape)
    _dk._check_dtype(arr.dtype)
    channels = arr.shape[axes.index("c")] if "c" in axes else 1
    _check_per_channel(params_per_channel)
    if params_per_channel is not None:
        if params:
            raise ValueError(
                f"parameters given both per channel (params_per_channel=) and for all "
                f"({', '.join(params)}): give them in one place")
        if len(params_per_channel) != channels:
            raise ValueError(
                f"params_per_channel has {len(params_per_channel)} entries for "
                f"{channels} channel(s) (axes={axes!r}, shape {tuple(arr.shape)})")
    out = []
    for c in range(channels):
        index = {"c": c, "t": 0}
        sample = _sample(arr, axes, index)
        sample = sample if sample.ndim == 3 else sample[np.newaxis]
        with np.errstate(over="ignore"):
            vol = sample.astype(np.float32, copy=False)
        # Judged on the sample: a pass over the whole array would read it all once more.
        _dk._keeps_detail(sample, vol)
        given = params if params_per_channel is None else params_per_channel[c]
        try:
            out.append(_dk._resolve(method, vol, given))
        except ValueError as e:
            ranges = _sample_ranges(arr.shape, axes)
            origin = [ranges[a][0] if a in SPATIAL else index.get(a, 0) for a in axes]
            raise ValueError(_pixel_in_image(str(e), axes, origin, arr.shape)) from None
    return out


def _pixel_in_image(msg: str, axes: str, origin, shape, lead=None) -> str:
    """The core's message about a pixel of one (z, y, x) volume cut from the image, with
    the pixel's position in the image: ``origin`` is where the cut starts along each axis
    (before 0 or past the end where a periodic halo wrapped), ``lead`` the position of the
    volume along the non-spatial axes within the cut."""
    m = re.search(r"pixel \(([^)]*)\)", msg)
    if m is None:
        return msg
    at = {k: int(v) for k, v in re.findall(r"(\w)=(\d+)", m.group(1))}
    lead = lead or {}
    pos = [(o + at.get(a, 0)) % n if a in SPATIAL else o + lead.get(a, 0)
           for a, o, n in zip(axes, origin, shape)]
    where = ", ".join(f"{a}={p}" for a, p in reversed(list(zip(axes, pos))))
    return f"{msg[:m.start()]}pixel ({where}) of the image{msg[m.end():]}"


def _wraps(method: str, per_channel: Sequence[dict]) -> bool:
    """Whether the halos wrap around the image (a periodic border), which the channels
    must agree on: one overlap serves them all."""
    wrap, images = set(), _dk._image_keys(method)
    for p in per_channel:
        pairs, _ = _dk._split(method, {k: v for k, v in p.items() if k not in images})
        wrap.add(_dk._native.wraps(method, pairs))
    if len(wrap) > 1:
        raise ValueError(
            f"{method}: some channels' border wraps around the image (periodic) and "
            f"others' does not; one run reads one kind of halo: denoise the two groups "
            f"of channels in separate runs")
    return wrap == {True}


def plan(shape: Sequence[int], chunks, axes: str, method: str, params: dict,
         max_chunk_bytes: int = MAX_CHUNK_BYTES):
    """``(depth per axis, chunks to run with)`` for one method on one array: a global axis
    (or a halo as long as the axis) is taken whole; refused when that makes a chunk too
    large."""
    reach = dict(zip(SPATIAL, _dk.support(method, **params)))
    if "z" not in axes:
        reach.pop("z")
    depth, new_chunks = {}, list(chunks)
    for i, a in enumerate(axes):
        if a not in SPATIAL:
            depth[i] = 0
            continue
        r = reach[a]
        if r is None or r >= shape[i]:
            new_chunks[i] = (shape[i],)
            depth[i] = 0
        else:
            depth[i] = r
    biggest = 4
    for i, c in enumerate(new_chunks):
        biggest *= max(c) + 2 * depth.get(i, 0) if len(c) > 1 else max(c)
    if biggest > max_chunk_bytes:
        whole = [a for i, a in enumerate(axes) if a in SPATIAL and len(new_chunks[i]) == 1
                 and len(chunks[i]) > 1]
        why = (
            f"{method} couples every voxel along {', '.join(whole)} with these parameters"
            if whole else f"the halo of {method} makes chunks large"
        )
        raise ValueError(
            f"{why}: a chunk would hold {biggest / 2**30:.2f} GiB (over max_chunk_bytes = "
            f"{max_chunk_bytes / 2**30:.2f} GiB). Use smaller chunks along the other axes, "
            f"raise max_chunk_bytes, or choose parameters with a finite support "
            f"(denoisekit.support('{method}', ...))"
        )
    _refuse_split_regions(method, params, axes, new_chunks)
    return depth, tuple(tuple(c) for c in new_chunks)


def _plan_channels(shape, chunks, axes: str, method: str, per_channel: Sequence[dict],
                   max_chunk_bytes: int):
    """:func:`plan` for every channel's parameters: the deepest halo along each axis, and
    an axis whole where any channel needs it whole."""
    depth, run_chunks = {}, None
    for p in per_channel:
        d, ch = plan(shape, chunks, axes, method, p, max_chunk_bytes)
        depth = {i: max(depth.get(i, 0), v) for i, v in d.items()}
        run_chunks = ch if run_chunks is None else tuple(
            a if len(a) < len(b) else b for a, b in zip(run_chunks, ch))
    return depth, run_chunks


def _task_budget(memory_limit, threads):
    """Threads and memory for one task: single-threaded, and half the worker's memory
    limit shared among its threads, inside a distributed worker; as given otherwise."""
    try:
        from distributed import get_worker

        w = get_worker()
    except (ImportError, ValueError):
        if memory_limit is None:
            # Dask's local schedulers run a task per core at once: each gets its share of
            # the budget a single call would have (DENOISEKIT_MEMORY_LIMIT, else 80% of
            # the memory available).
            sched = dask.config.get("scheduler", None)
            n = 1 if sched in ("sync", "synchronous", "single-threaded") else (
                dask.config.get("num_workers", None) or dask.system.CPU_COUNT or 1)
            budget = _dk._native.memory_budget()
            memory_limit = None if budget is None else budget // n
        return memory_limit, threads if threads is not None else 1
    if memory_limit is None:
        limit = getattr(getattr(w, "memory_manager", None), "memory_limit", None)
        if limit:
            memory_limit = int(limit // (2 * max(1, w.state.nthreads)))
    return memory_limit, threads if threads is not None else 1


def _run_block(block: np.ndarray, axes: str, method: str, per_channel: list[dict],
               channel0: int, backend: str, threads, memory_limit,
               origin=None, shape=None) -> np.ndarray:
    """Denoises every (z, y, x) or (y, x) volume of one block; a pixel an error names is
    named in the image when the block's ``origin`` there (and the image's ``shape``) is
    given."""
    memory_limit, threads = _task_budget(memory_limit, threads)
    out = np.empty(block.shape, np.float32)
    lead = [i for i, a in enumerate(axes) if a not in SPATIAL]
    ci = axes.index("c") if "c" in axes else None
    # The core reads (z, y, x): views with the spatial axes last, in that order, whatever
    # the array's layout (OME-Zarr's is already so).
    spatial = sorted((i for i, a in enumerate(axes) if a in SPATIAL),
                     key=lambda i: SPATIAL.index(axes[i]))
    b = np.moveaxis(block, spatial, list(range(len(lead), block.ndim)))
    o = np.moveaxis(out, spatial, list(range(len(lead), block.ndim)))
    for idx in np.ndindex(*b.shape[: len(lead)]):
        c = channel0 + idx[lead.index(ci)] if ci is not None else 0
        params = per_channel[c if len(per_channel) > 1 else 0]
        vol = b[idx].astype(np.float32, copy=False)
        try:
            res = _dk._run(vol if vol.ndim == 3 else vol[np.newaxis], method, params,
                           backend, threads, memory_limit, part=True)
        except ValueError as e:
            if origin is None:
                raise
            at = {axes[i]: j for i, j in zip(lead, idx)}
            raise ValueError(_pixel_in_image(str(e), axes, origin, shape, at)) from None
        o[idx] = res if vol.ndim == 3 else res[0]
    return out


def _refuse_writes(method: str, param_sets: Sequence[dict]) -> None:
    """A parameter that writes a file (the descriptor's ``writes``) would be written by
    every chunk, each with its own content, the last one standing: refused, with the way
    that works."""
    for p in _dk.describe(method)["params"]:
        if p["writes"] and any(str(ps.get(p["key"], "") or "") for ps in param_sets):
            raise ValueError(
                f"`{p['key']}` ({p['label']}) writes a file, which every chunk of a Dask "
                f"array would write again from its own chunk; write it with "
                f"denoisekit.denoise on one whole image, then pass that file to this "
                f"call's other parameters"
            )


def _refuse_split_regions(method: str, params: dict, axes: str, chunks) -> None:
    """A region (x,y,width,height) is in the whole plane's coordinates: it means the same
    in a chunk only when the chunk holds whole planes (the method couples every pixel of a
    plane, as the learned method does, so :func:`plan` keeps y and x whole)."""
    split = [a for a in "yx" if a in axes and len(chunks[axes.index(a)]) > 1]
    if not split:
        return
    for p in _dk.describe(method)["params"]:
        if p["kind"] == "region" and str(params.get(p["key"], "") or ""):
            raise ValueError(
                f"`{p['key']}` ({p['label']}) is a rectangle in the whole plane's "
                f"coordinates, but {method} splits {', '.join(split)} into chunks here, and "
                f"a chunk would read it in its own; use denoisekit.denoise on whole planes"
            )


def denoise(arr, method: str, *, axes: Optional[str] = None, backend: str = "cpu",
            threads: Optional[int] = None, memory_limit: Optional[int] = None,
            max_chunk_bytes: int = MAX_CHUNK_BYTES, params_per_channel: Optional[list] = None,
            **params: Any):
    """A lazy Dask array: ``arr`` denoised chunk by chunk with exact halos (float32,
    ``arr``'s chunks). ``axes`` names the axes (default ``'yx'`` or ``'zyx'``; needed
    for 4D and 5D, e.g. ``'tczyx'``). Parameters are resolved now, on this machine (see
    :func:`resolve_params`); the resolved values are on the result as ``.attrs``-free
    ``result.denoisekit_params``, and ``params_per_channel=`` takes such a list back to
    replay a run (one dict per channel, in place of the keywords). ``backend`` defaults
    to the CPU: a cluster's workers rarely share one GPU well. An image input (a
    measured ``psf_image``) goes to every chunk, which holds the axes it couples whole."""
    _check_per_channel(params_per_channel)
    _refuse_writes(method, [params] + list(params_per_channel or []))
    _dk._check_job_options(backend, threads, memory_limit)
    _dk._chain_sigint()
    if not isinstance(arr, da.Array):
        arr = da.asarray(arr)
    if any(math.isnan(c) for cs in arr.chunks for c in cs):
        raise ValueError(
            "the array's chunk sizes are unknown (as after boolean indexing): call "
            "arr.compute_chunk_sizes() first; halos need them")
    axes = _axes_for(arr.ndim, axes, arr.shape)
    per_channel = resolve_params(arr, method, axes, params_per_channel, **params)
    depth, chunks = _plan_channels(arr.shape, arr.chunks, axes, method, per_channel,
                                   max_chunk_bytes)
    if "c" in axes and len(per_channel) > 1:
        ci = axes.index("c")
        chunks = chunks[:ci] + ((1,) * arr.shape[ci],) + chunks[ci + 1:]
    # Dask would merge a chunk thinner than its halo with a neighbour inside map_overlap;
    # done here, the chunks the blocks come from are known (`starts`).
    chunks = tuple(da.overlap.ensure_minimum_chunksize(depth[i], c) if depth.get(i) else c
                   for i, c in enumerate(chunks))
    src = arr.rechunk(chunks) if chunks != arr.chunks else arr
    starts = [np.cumsum((0,) + c[:-1]).tolist() for c in src.chunks]
    periodic = _wraps(method, per_channel)
    boundary = {
        i: ("periodic" if periodic and axes[i] in SPATIAL else "none") for i in range(arr.ndim)
    }

    def block_fn(block, block_info=None):
        c0, origin = 0, None
        if block_info:
            info = block_info[0]
            if "c" in axes:
                # No halo along c: the block's location there is the image's.
                c0 = info["array-location"][axes.index("c")][0]
            if tuple(info["num-chunks"]) == tuple(map(len, starts)):
                # Where the block starts in the image: its chunk less the halo, which
                # stops at the volume's edges (or wraps around them, periodic).
                origin = [starts[i][k] - depth.get(i, 0) if boundary[i] == "periodic"
                          else max(0, starts[i][k] - depth.get(i, 0))
                          for i, k in enumerate(info["chunk-location"])]
        return _run_block(block, axes, method, per_channel, c0, backend, threads,
                          memory_limit, origin, arr.shape)

    if any(depth.values()):
        res = src.map_overlap(block_fn, depth=depth, boundary=boundary, trim=True,
                              dtype=np.float32, meta=np.empty((0,) * arr.ndim, np.float32))
    else:
        res = src.map_blocks(block_fn, dtype=np.float32,
                             meta=np.empty((0,) * arr.ndim, np.float32))
    if res.chunks != arr.chunks:
        res = res.rechunk(arr.chunks)
    res.denoisekit_params = per_channel
    return res


# --- OME-Zarr ---------------------------------------------------------------------------

PROGRESS = "denoisekit_progress"


def _ome(group) -> tuple[dict, str]:
    """The OME metadata of an image group and its layout: ``"0.5"`` (under ``ome``,
    Zarr v3) or ``"0.4"`` (top level, Zarr v2)."""
    attrs = dict(group.attrs)
    if "ome" in attrs and "multiscales" in attrs["ome"]:
        return attrs["ome"], "0.5"
    if "multiscales" in attrs:
        return {"multiscales": attrs["multiscales"]}, "0.4"
    raise ValueError(
        "not an OME-Zarr image: the group has no 'multiscales' metadata (OME-NGFF 0.4 or 0.5)"
    )


class _Store:
    """What one worker process keeps for one run: the opened arrays (a task per chunk
    would otherwise re-read the metadata every time) and the source chunks it decoded
    last. A unit's halo reaches into up to 26 neighbouring chunks, and a compressed
    chunk is decoded whole even for a thin slab of it: without the cache every chunk
    would be decoded by each of its neighbours (27 times in 3D)."""

    _lock = threading.Lock()
    _current: Optional["_Store"] = None

    def __init__(self, run: str, capacity: int):
        self.run, self.capacity = run, capacity
        self.arrays: dict = {}
        self.chunks: OrderedDict = OrderedDict()
        self.bytes = 0

    @classmethod
    def get(cls, run: str) -> "_Store":
        with cls._lock:
            if cls._current is None or cls._current.run != run:
                cls._current = cls(run, _cache_capacity())
            return cls._current

    def array(self, path: str, name: str, mode: str = "r"):
        import zarr

        key = (path, name, mode)
        with self._lock:
            if key not in self.arrays:
                self.arrays[key] = zarr.open_group(path, mode=mode)[name]
            return self.arrays[key]

    def chunk(self, arr, idx) -> np.ndarray:
        with self._lock:
            if idx in self.chunks:
                self.chunks.move_to_end(idx)
                return self.chunks[idx]
        sl = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in
                   zip(idx, arr.chunks, arr.shape))
        block = np.asarray(arr[sl])
        with self._lock:
            self.chunks[idx] = block
            self.bytes += block.nbytes
            while self.bytes > self.capacity and len(self.chunks) > 1:
                _, old = self.chunks.popitem(last=False)
                self.bytes -= old.nbytes
        return block


def _cache_capacity() -> int:
    """A quarter of the worker's memory limit (or of a call's memory budget)."""
    try:
        from distributed import get_worker

        limit = get_worker().memory_manager.memory_limit
    except (ImportError, ValueError, AttributeError):
        limit = None
    return int((limit or _dk._native.memory_budget() or 4 << 30) // 4)


def _units(shape, chunks, whole):
    """The output regions one task each writes: the chunk grid, with the axes in
    ``whole`` taken in one piece."""
    ranges = []
    for n, c, w in zip(shape, chunks, whole):
        ranges.append([(0, n)] if w else [(s, min(s + c, n)) for s in range(0, n, c)])
    return ranges


def _segments(lo, hi, d, n, periodic):
    """Source intervals ``[(start, stop)]`` that make up ``[lo - d, hi + d)`` along an axis
    of length ``n``: clamped at the edges (the method applies its own border mode there),
    or wrapped around for a periodic border; and where the region starts in the result."""
    if periodic and d:
        segs, x = [], lo - d
        while x < hi + d:
            start = x % n
            stop = min(n, start + (hi + d - x))
            segs.append((start, stop))
            x += stop - start
        return segs, d
    a, b = max(0, lo - d), min(n, hi + d)
    return [(a, b)], lo - a


def _read_halo(store, arr, region, depth, periodic):
    """``region`` grown by ``depth``, assembled from (cached) source chunks; and the
    slices of the result that are ``region`` itself."""
    per_axis, crop = [], []
    for (lo, hi), d, n in zip(region, depth, arr.shape):
        segs, off = _segments(lo, hi, d, n, periodic)
        per_axis.append(segs)
        crop.append(slice(off, off + hi - lo))
    shape = [sum(b - a for a, b in segs) for segs in per_axis]
    out = np.empty(shape, arr.dtype)
    # Every (segment, chunk) piece along each axis: (source lo, hi, chunk index, dest lo).
    pieces = []
    for segs, c in zip(per_axis, arr.chunks):
        ax, dst = [], 0
        for a, b in segs:
            for ci in range(a // c, (b - 1) // c + 1):
                lo, hi = max(a, ci * c), min(b, (ci + 1) * c)
                ax.append((lo - ci * c, hi - ci * c, ci, dst + lo - a))
            dst += b - a
        pieces.append(ax)
    for combo in np.ndindex(*[len(p) for p in pieces]):
        parts = [pieces[i][j] for i, j in enumerate(combo)]
        chunk = store.chunk(arr, tuple(p[2] for p in parts))
        out[tuple(slice(p[3], p[3] + p[1] - p[0]) for p in parts)] = \
            chunk[tuple(slice(p[0], p[1]) for p in parts)]
    return out, tuple(crop)


def _unit_task(run, src, src_name, dst, axes, method, per_channel, region, unit_index,
               depth, periodic, backend, threads, memory_limit):
    """One task: read the region and its halo from the source store, denoise, write the
    region (whole chunks only, so tasks never share a chunk), then mark it done."""
    store = _Store.get(run)
    done = store.array(dst, PROGRESS, "r+")
    if done[unit_index]:
        return 0
    arr = store.array(src, src_name)
    block, crop = _read_halo(store, arr, region, depth, periodic)
    c0 = region[axes.index("c")][0] if "c" in axes else 0
    # The block starts `crop.start` before the region (wrapped for a periodic border).
    origin = [lo - c.start for (lo, _), c in zip(region, crop)]
    res = _run_block(block, axes, method, per_channel, c0, backend, threads, memory_limit,
                     origin, arr.shape)
    out = store.array(dst, "0", "r+")
    out[tuple(slice(lo, hi) for lo, hi in region)] = res[crop]
    # The mark is written after the data: a task killed in between leaves its region
    # unmarked, and resume rewrites it whole.
    done[unit_index] = 1
    return int(np.prod([hi - lo for lo, hi in region]))


def _local(p: str) -> Optional[str]:
    """The local path a store path names (a ``file://`` URL's too), or None for a
    remote URL."""
    if p.startswith("file://"):
        return p[len("file://"):]
    return None if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", p) else p


def _real(p: str) -> str:
    """A store path as one name: a remote URL as given, a local path resolved (links,
    and on Windows the case)."""
    local = _local(p)
    return p.rstrip("/") if local is None else os.path.normcase(os.path.realpath(local))


def _same_store(a: str, b: str) -> bool:
    """Whether two store paths name one store, or one lies inside the other."""
    la, lb = _local(a), _local(b)
    if la is not None and lb is not None and os.path.exists(la) and os.path.exists(lb) \
            and os.path.samefile(la, lb):
        return True
    a, b = _real(a), _real(b)
    sep = os.sep if la is not None else "/"
    return a == b or a.startswith(b + sep) or b.startswith(a + sep)


def _refuse_clash(src: str, dst: str, overwrite: bool, resume: bool) -> None:
    """Refuses an output that would destroy the input or a folder that is not a Zarr
    store, or that exists and was not asked to be replaced or resumed."""
    import zarr

    if _same_store(src, dst):
        raise ValueError(
            f"{dst}: the output would be written over the input {src} (the same store, or "
            "one inside the other), which is read chunk by chunk while the output is "
            "written; choose an output outside it")
    if resume:
        return
    local = _local(dst)
    try:
        zarr.open_group(dst, mode="r")
        is_zarr = True
    except Exception:
        is_zarr = False
    # A remote store is known to exist only as a Zarr store.
    if not (is_zarr or (local is not None and os.path.exists(local))):
        return
    if not is_zarr:
        raise ValueError(
            f"{dst} exists and is not a Zarr store: overwrite=True replaces only a Zarr "
            "store (so that a folder named by mistake is not deleted); remove it yourself "
            "or choose another output")
    if not overwrite:
        raise ValueError(
            f"{dst} exists: overwrite=True (--overwrite) replaces it, resume=True (--resume) "
            "continues an interrupted run into it")


def _compute(tasks) -> int:
    """Runs the unit tasks on the active scheduler. On a distributed cluster each worker
    is given a contiguous run of the grid (still movable to another worker if it dies):
    neighbouring units then share the worker's cache of decoded source chunks, where
    spreading them round-robin made every worker decode most chunks of the volume."""
    if not tasks:
        return 0
    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):
        client = None
    if client is None:
        return sum(dask.compute(*[dask.delayed(_unit_task, pure=False)(*t) for t in tasks]))
    workers = sorted(client.scheduler_info()["workers"]) or [None]
    futures = [
        client.submit(_unit_task, *t, pure=False, allow_other_workers=True,
                      workers=None if workers[0] is None else
                      [workers[k * len(workers) // len(tasks)]])
        for k, t in enumerate(tasks)
    ]
    return sum(client.gather(futures))


def _array_kw(fmt: int, axes: str) -> dict:
    """Zarr v3: named dimensions; v2: '/' chunk keys, the only ones OME-NGFF allows."""
    if fmt == 3:
        return {"dimension_names": list(axes)}
    return {"chunk_key_encoding": {"name": "v2", "separator": "/"}}


def denoise_ome_zarr(src: str, dst: str, method: str, *, resume: bool = False,
                     overwrite: bool = False, backend: str = "cpu",
                     threads: Optional[int] = None, memory_limit: Optional[int] = None,
                     max_chunk_bytes: int = MAX_CHUNK_BYTES, pyramid: Optional[int] = None,
                     **params: Any) -> dict:
    """Denoises the OME-Zarr image at ``src`` (its level 0) into a new OME-Zarr image at
    ``dst``, on the current Dask scheduler (a ``distributed.Client`` when one is active).

    One task per output chunk reads that chunk plus its halo straight from the store and
    writes the chunk; the axes, units and scales are copied; a pyramid of ``pyramid``
    levels (default: as many as ``src`` has) is built from the written level 0 by 2x2
    means in y and x; the resolved parameters and the DenoiseKit version are recorded
    under the ``denoisekit`` attribute. ``resume=True`` continues a run that was
    interrupted (a crash, a killed worker or client): regions already written and marked
    are kept, the others rewritten, with the parameters and pyramid recorded by the first
    run (parameters given again must agree with them). Returns a summary: tasks, voxels,
    seconds, parameters.
    """
    _dk._chain_sigint()
    try:
        import zarr

        major = int(zarr.__version__.split(".")[0])
    except (ImportError, ValueError):
        major = 0
    if major < 3:
        raise ImportError(
            "denoise_ome_zarr needs zarr 3 or later, which needs Python 3.11 or later: "
            "pip install 'zarr>=3' (Dask arrays, denoisekit.dask.denoise, need no zarr)")

    t0 = time.perf_counter()
    # Before the output is created: every chunk's task would refuse them alike.
    _dk._check_job_options(backend, threads, memory_limit)
    _refuse_clash(src, dst, overwrite, resume)
    sg = zarr.open_group(src, mode="r")
    ome, version = _ome(sg)
    ms = ome["multiscales"][0]
    axes = "".join(a["name"].lower() for a in ms["axes"])
    axes = _axes_for(len(axes), axes)
    src_name = ms["datasets"][0]["path"]
    a0 = sg[src_name]
    fmt = a0.metadata.zarr_format
    levels = len(ms["datasets"]) if pyramid is None else max(1, int(pyramid))
    smallest = min(a0.shape[axes.index("y")], a0.shape[axes.index("x")])
    levels = min(levels, 1 + int(math.log2(max(1, smallest))))

    existing = None
    if resume:
        try:
            existing = zarr.open_group(dst, mode="r+")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            existing = None
    if existing is not None:
        info = dict(existing.attrs).get("denoisekit")
        if (info is None or _real(info.get("source", "")) != _real(src)
                or info.get("method") != method):
            raise ValueError(
                f"resume: {dst} was not written by denoise_ome_zarr({src!r}, ..., {method!r})"
            )
        per_channel = info["params"]
        given = _dk._typed(method, _dk._split(method, params)[0])
        differ = {k: (per_channel[0].get(k), v) for k, v in given.items()
                  if any(p.get(k) != v for p in per_channel)}
        if differ:
            raise ValueError(
                "resume: these parameters differ from the first run's (recorded, given): "
                + ", ".join(f"{k}={a} vs {b}" for k, (a, b) in differ.items())
                + "; resume without them, or start again with overwrite=True")
        if info.get("complete"):
            return {"tasks": 0, "voxels": 0, "seconds": time.perf_counter() - t0,
                    "params": per_channel, "resumed": True}
        levels = info.get("levels", levels)
        dg = existing
    else:
        _refuse_writes(method, [params])
        images = [k for k in _dk._image_keys(method) if params.get(k) is not None]
        if images:
            raise ValueError(
                f"{', '.join(images)}: an image input cannot be recorded in the output "
                f"store for resume=; denoise the array with denoisekit.dask.denoise("
                f"da.from_zarr(...), {method!r}, ...) and store the result with to_zarr")
        per_channel = resolve_params(a0, method, axes, **params)

    chunk_tuples = tuple(
        tuple(min(c, n - s) for s in range(0, n, c)) for n, c in zip(a0.shape, a0.chunks))
    # Planned before the output is created: a refusal leaves nothing behind to block the
    # corrected call.
    depth_map, run_chunks = _plan_channels(a0.shape, chunk_tuples, axes, method,
                                           per_channel, max_chunk_bytes)
    if existing is None:
        dg = zarr.open_group(dst, mode="w" if overwrite else "w-", zarr_format=fmt)
        dg.create_array("0", shape=a0.shape, chunks=a0.chunks, dtype="float32",
                        fill_value=0.0, **_array_kw(fmt, axes))
        info = {"version": _dk.__version__, "method": method, "source": _real(src),
                "params": per_channel, "levels": levels, "complete": False}
        _write_ome(dg, ome, version, ms, axes, levels, info)
    whole = [len(c) == 1 and n > a0.chunks[i] for i, (c, n) in
             enumerate(zip(run_chunks, a0.shape))]
    per_axis = _units(a0.shape, a0.chunks, whole)
    grid = tuple(len(r) for r in per_axis)
    if PROGRESS not in dg:
        dg.create_array(PROGRESS, shape=grid, chunks=(1,) * len(grid), dtype="uint8",
                        fill_value=0, **({} if fmt == 3 else _array_kw(fmt, axes)))
    done = np.asarray(dg[PROGRESS][...])
    depth = [depth_map.get(i, 0) for i in range(len(axes))]
    periodic = _wraps(method, per_channel)
    run = uuid.uuid4().hex
    tasks = []
    for idx in np.ndindex(*grid):
        if done[idx]:
            continue
        region = tuple(per_axis[i][j] for i, j in enumerate(idx))
        tasks.append((run, src, src_name, dst, axes, method, per_channel, region, idx, depth,
                      periodic, backend, threads, memory_limit))
    voxels = _compute(tasks)
    _build_pyramid(dst, axes, levels)
    info = dict(dg.attrs)["denoisekit"]
    info["complete"] = True
    dg.attrs["denoisekit"] = info
    del dg[PROGRESS]
    return {"tasks": len(tasks), "voxels": voxels, "seconds": time.perf_counter() - t0,
            "params": per_channel, "resumed": existing is not None}


def _write_ome(dg, ome, version, ms, axes, levels, info):
    """The OME metadata of the result: the source's axes (with units), its level-0
    transformations, and each pyramid level's scale doubled in y and x."""
    base = ms["datasets"][0].get("coordinateTransformations", [])
    scale = next((t["scale"] for t in base if t["type"] == "scale"), [1.0] * len(axes))
    trans = next((t["translation"] for t in base if t["type"] == "translation"), None)
    datasets = []
    for k in range(levels):
        f = [2.0 ** k if a in "yx" else 1.0 for a in axes]
        t = [{"type": "scale", "scale": [s * g for s, g in zip(scale, f)]}]
        if trans is not None or k:
            t0 = trans or [0.0] * len(axes)
            # A 2^k mean moves the first pixel's centre by (2^k - 1)/2 source pixels.
            t.append({"type": "translation",
                      "translation": [o + s * (g - 1) / 2 for o, s, g in zip(t0, scale, f)]})
        datasets.append({"path": str(k), "coordinateTransformations": t})
    m = {k: v for k, v in ms.items() if k not in ("datasets", "metadata", "type")}
    m["datasets"] = datasets
    m["type"] = "mean"
    m["metadata"] = {"method": "denoisekit " + info["method"], "version": info["version"]}
    if version == "0.5":
        dg.attrs["ome"] = {"version": ome.get("version", "0.5"), "multiscales": [m]}
    else:
        m.setdefault("version", "0.4")
        dg.attrs["multiscales"] = [m]
    dg.attrs["denoisekit"] = info


def _build_pyramid(dst, axes, levels):
    """Levels 1.. from the stored level 0, each the 2x2 mean (in y and x) of the one
    before, written chunk-aligned through Dask."""
    import zarr

    dg = zarr.open_group(dst, mode="r+")
    fmt = dg["0"].metadata.zarr_format
    for k in range(1, levels):
        prev = da.from_zarr(dg[str(k - 1)])
        factors = {i: (2 if a in "yx" else 1) for i, a in enumerate(axes)}
        low = da.coarsen(np.mean, prev, factors, trim_excess=True).astype(np.float32)
        chunks = dg["0"].chunks
        arr = dg.create_array(str(k), shape=low.shape, dtype="float32", fill_value=0.0,
                              chunks=tuple(min(c, n) for c, n in zip(chunks, low.shape)),
                              overwrite=True, **_array_kw(fmt, axes))
        da.store(low.rechunk(arr.chunks), arr, lock=False)
