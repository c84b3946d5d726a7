"""DenoiseKit: classical image denoisers for microscopy, 2D and 3D, CPU and GPU.

In the idiom of scikit-image: functions on NumPy arrays, parameters as keyword
arguments. Every method, parameter, range and default comes from the library's registry
(the same descriptors that build the Fiji dialog and the command line), so
``denoisekit.describe("nl_means")`` is the reference and nothing here lists methods by
hand.

    >>> import numpy as np, denoisekit
    >>> noisy = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    >>> out = denoisekit.denoise(noisy, "nl_means")          # noise-derived defaults
    >>> denoisekit.resolve("nl_means", noisy)["h"] > 0        # ... and what they were
    True

Images are 2D ``(y, x)`` or 3D ``(z, y, x)`` arrays of uint8, uint16, int16, float32 or
float64, in their own grey levels (never rescaled); results are float32. For (t, c, z,
y, x) data, and volumes larger than memory, see :mod:`denoisekit.dask`.

Every call releases the GIL for the whole computation; Ctrl-C cancels it. Errors are
``ValueError`` (a parameter outside its range, with the range; a NaN pixel; a wrong
shape), :class:`TooLargeError` (a ``MemoryError``: the job does not fit its memory budget,
refused before allocating) and :class:`BackendUnavailableError` (``backend="gpu"``
without a usable GPU).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from . import _native
from ._native import BackendUnavailableError, TooLargeError

__all__ = [
    "BackendUnavailableError",
    "cancel_all",
    "NoiseEstimate",
    "TooLargeError",
    "Tuned",
    "denoise",
    "describe",
    "estimate_noise",
    "get_num_threads",
    "methods",
    "rank",
    "residual_check",
    "resolve",
    "set_num_threads",
    "support",
    "tune",
]

__version__: str = _native.version()

log = logging.getLogger("denoisekit")

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _warn_user(message: str) -> None:
    """A UserWarning located at the user's call: the first frame outside this package,
    however deep the package's own calls (``denoise``, Dask's and OME-Zarr's drivers)."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE + os.sep):
        frame = frame.f_back
        level += 1
    warnings.warn(message, UserWarning, stacklevel=level)

#: Input dtypes, converted to float32 in their own units (never rescaled). The wider
#: ones (32- and 64-bit integers, float64) only where float32 keeps their detail
#: (:func:`_keeps_detail`), as the TIFF reader takes 32-bit integers.
DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.float16, np.float32,
          np.uint32, np.int32, np.uint64, np.int64, np.float64)


@lru_cache(maxsize=1)
def _registry() -> dict[str, dict]:
    return {m["id"]: m for m in json.loads(_native.registry_json())}


def methods(kind: Optional[str] = None) -> list[str]:
    """The method ids, in registry order; ``kind`` filters by ``"denoise"``,
    ``"deconvolve"`` or ``"background"``."""
    kinds = {d["kind"] for d in _registry().values()}
    if kind is not None and kind not in kinds:
        raise ValueError(f"unknown kind `{kind}`; one of {', '.join(sorted(kinds))}")
    return [m for m, d in _registry().items() if kind is None or d["kind"] == kind]


def describe(method: str) -> dict:
    """The method's descriptor: name, summary, references, and each parameter's key,
    kind, range, default (or multiple of the noise), unit, scale and help."""
    try:
        return json.loads(json.dumps(_registry()[method]))
    except KeyError:
        raise ValueError(
            f"unknown method `{method}`; available methods: {', '.join(methods())}"
        ) from None


def set_num_threads(n: int) -> None:
    """Threads for every later call that does not pass ``threads=`` (0: every core)."""
    _native.set_num_threads(_count(n, "set_num_threads: n"))


def _threads(n: Any) -> Optional[int]:
    return None if n is None else _count(n, "threads")


def _count(n: Any, what: str) -> int:
    """``n`` as a thread count: a whole number (2.0 is 2; 2.7 is refused, not cut to 2),
    within what the native side takes (it names the allowed range)."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, float, np.integer,
                                                                np.floating)):
        raise ValueError(f"{what} = {n!r} is not a whole number")
    if not math.isfinite(n) or n != int(n):
        raise ValueError(f"{what} = {n} is not a whole number")
    if abs(n) > 2**31:
        raise ValueError(f"{what} = {n} is not a thread count (0 for every core)")
    return int(n)


def get_num_threads() -> int:
    """The threads a call without ``threads=`` uses."""
    return _native.get_num_threads()


def _format(value: Any, key: str = "") -> str:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"parameter `{key}`: a boolean ({value}) is not a parameter value")
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        # repr: the shortest text that reads back as the same float.
        return repr(float(value)) if math.isfinite(value) else str(float(value))
    return str(value)


def _image_keys(method: str) -> set[str]:
    """The keys of the method's image inputs (a measured PSF, a training target)."""
    return {i["key"] for i in describe(method)["images"]}


def _split(method: str, params: Mapping[str, Any]):
    """Scalar parameters as ``key=value`` strings; image inputs (a measured PSF) as
    float32 volumes; a parameter given as None is left out (its default applies)."""
    image_keys = _image_keys(method)
    known = image_keys | {p["key"] for p in describe(method)["params"]}
    pairs, images = [], []
    for k, v in params.items():
        # None is "not given", as in the OME-Zarr driver: never the text "None" (a
        # `save_weights=None` wrote a file of that name). A key the method does not have
        # goes on, to be refused by name.
        if v is None and k in known:
            continue
        if k in image_keys:
            images.append((k, _volume(v, what=k)[0]))
        else:
            pairs.append((k, _format(v, k)))
    return pairs, images


def _typed(method: str, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    kinds = {p["key"]: p["kind"] for p in describe(method)["params"]}
    out: dict[str, Any] = {}
    for k, v in pairs:
        kind = kinds.get(k)
        if kind in ("int", "float"):
            try:
                x = float(v)
            except ValueError:
                raise ValueError(f"parameter `{k}` = {v!r} is not a number") from None
            if kind == "int":
                # 2.0 is 2, as a run reads it; 2.5 is no whole number.
                if not math.isfinite(x) or x != int(x):
                    raise ValueError(f"parameter `{k}` = {v} is not a whole number")
                x = int(x)
            out[k] = x
        else:
            out[k] = v
    return out


def _check_dtype(dtype: Any, what: str = "image") -> None:
    """Refuses a dtype that a conversion to float32 would change (complex, 64-bit
    integers) or that is no image (bool, objects, strings)."""
    if np.dtype(dtype).type not in DTYPES:
        raise ValueError(
            f"{what}: dtype {np.dtype(dtype)} is not supported; use one of "
            f"{', '.join(np.dtype(d).name for d in DTYPES)}"
        )


def _keeps_detail(a: np.ndarray, f32: np.ndarray, what: str = "image") -> None:
    """Refuses values ``a`` wider than float32 (float64, 32- and 64-bit integers) that
    their float32 conversion ``f32`` (what the library computes in) flattens (fine detail
    on a large offset), judged over all of ``a``; values float32 holds exactly pass. The
    message says to subtract the offset."""
    # By kind and size: a big-endian float64 ('>f8', from FITS or a big-endian TIFF) is
    # not == np.float64.
    if a.dtype.kind in "fiu" and a.dtype.itemsize >= 4 and a.dtype != np.float32 and a.size:
        # In blocks of about a million values: whole-array float64 copies took several
        # times the image before the memory budget could refuse the job.
        lo, hi, most = math.inf, -math.inf, 0.0
        planes = a if a.ndim == 3 else a[np.newaxis]
        f32s = f32 if f32.ndim == 3 else f32[np.newaxis]
        h, w = planes.shape[1:]
        # Whole planes where they are small (a stack of many small planes would otherwise
        # take a Python iteration each), rows of one plane where they are large.
        per = max(1, (1 << 20) // max(1, h * w))
        rows = h if per > 1 else max(1, (1 << 20) // max(1, w))
        for z in range(0, planes.shape[0], per):
            for r0 in range(0, h, rows):
                part = (slice(z, z + per), slice(r0, r0 + rows))
                block = planes[part].astype(np.float64)
                lo = min(lo, float(np.fmin.reduce(block, axis=None)))
                hi = max(hi, float(np.fmax.reduce(block, axis=None)))
                moved = np.abs(block - f32s[part])
                most = max(most, float(np.fmax.reduce(moved, axis=None)))
        top = float(np.finfo(np.float32).max)
        if max(abs(lo), abs(hi)) > top and math.isfinite(lo) and math.isfinite(hi):
            raise ValueError(
                f"{what}: its values reach {max(abs(lo), abs(hi)):.3e}, beyond 32-bit floats "
                f"(at most {top:.3e}), which DenoiseKit computes in: scale the image down "
                f"first (NumPy: image / 1e30)")
        why = _native.float32_precision_loss(lo, hi, most)
        if why:
            raise ValueError(f"{what}: {why}")


def _whole_pixel_strides(a: np.ndarray) -> bool:
    """Whether every stride of ``a`` is a whole number of its pixels, as the native
    code's views need (a float32 field of a record array steps by the record)."""
    return a.flags.aligned and all(s % a.itemsize == 0 for s in a.strides)


def _looks_like_colour(shape: Sequence[int]) -> bool:
    """A colour image as tifffile or imageio read it: (y, x, 3|4), of any sample type. A
    stack 3 or 4 pixels wide is not an image to denoise."""
    return len(shape) == 3 and shape[-1] in (3, 4) and min(shape[:2]) > 4


def _volume(image: Any, what: str = "image") -> tuple[np.ndarray, bool]:
    """A (z, y, x) float32 view or copy, and whether the input was 2D."""
    a = np.asarray(image)
    _check_dtype(a.dtype, what)
    if _looks_like_colour(a.shape):
        raise ValueError(
            f"{what}: shape {a.shape} looks like an RGB(A) image (y, x, channel); "
            "denoise each channel with channel_axis=-1, or convert to grey first"
        )
    if a.ndim not in (2, 3):
        raise ValueError(
            f"{what}: expected a 2D (y, x) or 3D (z, y, x) image, got shape {a.shape}; "
            "for channels pass channel_axis=, for (t, c, z, y, x) use denoisekit.dask"
        )
    two_d = a.ndim == 2
    v = a[np.newaxis] if two_d else a
    # float32 in any strides of whole pixels is read in place; other dtypes, and a field
    # of a record array (strides between pixels), are converted once.
    # Values beyond float32's range turn infinite here; _keeps_detail names them.
    with np.errstate(over="ignore"):
        f32 = v.astype(np.float32, copy=False)
    if not _whole_pixel_strides(f32):
        f32 = np.ascontiguousarray(f32)
    _keeps_detail(v, f32, what)
    return f32, two_d


def denoise(
    image: Any,
    method: str,
    *,
    out: Optional[np.ndarray] = None,
    backend: str = "auto",
    threads: Optional[int] = None,
    memory_limit: Optional[int | str] = None,
    channel_axis: Optional[int] = None,
    **params: Any,
) -> np.ndarray:
    """Denoises ``image`` with ``method``; returns a float32 array of the same shape.

    ``params`` are the method's parameters (``describe(method)``); unset ones take their
    defaults, noise-derived ones measured on this image. ``backend`` is ``"auto"`` (a
    hardware GPU where the method gains from it, else the CPU), ``"cpu"`` or ``"gpu"``.
    ``threads`` and ``memory_limit`` (bytes, or a size such as ``"8G"``) apply to this
    call only; a stack over the memory budget is processed in windows of planes with
    exactly the same result, or refused with :class:`TooLargeError` when the method
    couples the whole stack.
    ``channel_axis`` denoises each channel on its own (each with its own noise).
    """
    if out is not None and (not isinstance(out, np.ndarray) or out.dtype != np.float32
                            or out.shape != np.shape(image)):
        raise ValueError(
            f"out must be float32 of shape {np.shape(image)}, got "
            f"{getattr(out, 'dtype', type(out))} {getattr(out, 'shape', '')}"
        )
    if channel_axis is not None:
        if np.ndim(image) not in (3, 4):
            raise ValueError(
                f"channel_axis={channel_axis}: expected a 3D (y, x, channel) or 4D (z, y, x, "
                f"channel) array, in any axis order, got shape {np.shape(image)}"
            )
        a = np.moveaxis(np.asarray(image), channel_axis, -1)
        res = np.stack(
            [
                denoise(a[..., c], method, backend=backend, threads=threads,
                        memory_limit=memory_limit, **params)
                for c in range(a.shape[-1])
            ],
            axis=-1,
        )
        res = np.moveaxis(res, -1, channel_axis)
        if out is not None:
            np.copyto(out, res)
            return out
        return res
    vol, two_d = _volume(image)
    target = None
    if out is not None:
        if np.shares_memory(out, vol) or not _whole_pixel_strides(out):
            # In place: the input is read while the result is formed. An `out` whose
            # strides are not whole pixels (a record array's field) is filled by copy.
            np.copyto(out, denoise(image, method, backend=backend, threads=threads,
                                   memory_limit=memory_limit, **params))
            return out
        target = out[np.newaxis] if two_d else out
    res = _run(vol, method, params, backend, threads, memory_limit, target)
    if out is not None:
        return out
    return res[0] if two_d else res


def _limit_text(memory_limit) -> Optional[str]:
    """As text: the core reads it as it reads DENOISEKIT_MEMORY_LIMIT (bytes, or "8G")."""
    return None if memory_limit is None else str(memory_limit)


def _check_job_options(backend, threads, memory_limit) -> None:
    """Refuses what every job would refuse (the backend's name, the thread count, the
    memory limit), as :func:`denoise` does."""
    _native.check_job_options(backend, _threads(threads), _limit_text(memory_limit))


def _run(vol, method, params, backend, threads, memory_limit, target=None, part=False):
    """One (z, y, x) float32 volume through the core, no shape heuristics (the Dask
    driver's chunks come here: an edge chunk 3 pixels wide is not a colour image).
    ``part``: a chunk of an image whose noise model :func:`_resolve` judged on its sample
    (a chunk mostly of background would fail that judgement alone)."""
    pairs, images = _split(method, params)
    res, device, _, units = _native.denoise(
        vol, method, pairs, images, backend, _threads(threads), _limit_text(memory_limit),
        target, part
    )
    log.info("%s ran on %s", method, device)
    if str(backend).lower() == "gpu" and device.startswith("CPU"):
        # Asked for by name: said where it is seen, not only in the log.
        _warn_user(f"backend='gpu': {method} ran on the {device}")
    if units is not None:
        # Dask's chunks are given the pinned model: their driver's resolve says it.
        _warn_user(units)
    return res


def resolve(method: str, image: Any = None, **params: Any) -> dict[str, Any]:
    """Every parameter's value as ``denoise`` would use it: defaults filled in,
    ``noise_model=auto`` and noise-derived values measured on ``image`` and pinned, and
    the image inputs given (a measured PSF) as they were. Passing the result back
    (``denoise(other, method, **resolved)``) replays exactly."""
    return _resolve(method, None if image is None else _volume(image)[0], params)


def _resolve(method: str, vol: Optional[np.ndarray], params: Mapping[str, Any]) -> dict:
    """:func:`resolve` on a (z, y, x) float32 volume, no shape heuristics (the Dask
    driver's sample of an array whose axes were named)."""
    pairs, images = _split(method, params)
    got, units = _native.resolve(method, pairs, images, vol)
    if units is not None:
        # The Dask and OME-Zarr drivers pin the model chosen here for every chunk: their
        # runs say it here.
        _warn_user(units)
    resolved = _typed(method, got)
    image_keys = _image_keys(method)
    resolved.update((k, v) for k, v in params.items() if k in image_keys)
    return resolved


def support(method: str, **params: Any) -> tuple[Optional[int], Optional[int], Optional[int]]:
    """How far, ``(z, y, x)``, an output pixel reaches into the input for these
    parameters (``None``: the whole axis). A region grown by this halo gives exactly the
    whole image's result inside it. Noise-derived parameters must be given (see
    :func:`resolve`)."""
    pairs, _ = _split(method, params)
    z, y, x = _native.support(method, pairs)
    return z, y, x


@dataclass
class Tuned:
    """What :func:`tune` found."""

    #: Every parameter, the tuned ones at their chosen values: pass to ``denoise``.
    params: dict[str, Any]
    #: The tuned parameters alone.
    tuned: dict[str, float]
    #: Self-supervised loss at the defaults and at the tuned values.
    loss_default: float
    loss_tuned: float
    #: Method runs spent.
    evaluations: int


def tune(image: Any, method: str, *, threads: Optional[int] = None, **params: Any) -> Tuned:
    """Chooses the method's strength from the image alone (Noise2Self masked loss, or
    Monte-Carlo SURE for BM3D); the given parameters stay fixed."""
    vol, _ = _volume(image)
    pairs, images = _split(method, params)
    values, tuned, l0, l1, n = _native.tune(vol, method, pairs, images, _threads(threads))
    return Tuned(_typed(method, values), dict(tuned), l0, l1, n)


def rank(image: Any, methods: Sequence[str] = (), *, threads: Optional[int] = None):
    """Tunes each denoiser (when ``methods`` is empty, every one whose strength is tunable
    whatever its other settings) and ranks them
    by one self-supervised loss: ``[(method, loss, params)]``, the expected best first."""
    if isinstance(methods, str):
        # A single id would be read letter by letter.
        methods = [methods]
    vol, _ = _volume(image)
    return [
        (m, loss, _typed(m, values))
        for m, loss, values in _native.rank(vol, list(methods), _threads(threads))
    ]


@dataclass
class NoiseEstimate:
    """The image's noise, as ``noise_model=auto`` sees it."""

    #: The noise's standard deviation, grey levels: the finest wavelet details' median
    #: estimate, corrected for the noise's spatial correlation. Under the Gaussian model
    #: noise-derived defaults are multiples of it (under the Poisson-Gaussian model, of
    #: the same estimate on the variance-stabilised image).
    sigma: float
    #: ``"gaussian"`` or ``"poisson_gaussian"``.
    model: str
    #: The noise-model parameters that make a run use this model exactly.
    params: dict[str, Any] = field(default_factory=dict)
    #: Why this model, with the numbers.
    reason: str = ""
    #: The noise's spatial correlation in a few words (``"not measured: ..."`` on an image
    #: with too few smooth pixels), and how far it reaches (pixels; 0 when independent or
    #: not measured).
    correlation: str = ""
    correlation_radius: int = 0


def estimate_noise(image: Any) -> NoiseEstimate:
    """The noise level, the noise model ``auto`` chooses (with the camera's gain, offset
    and read noise for photon noise) and the noise's spatial correlation."""
    vol, _ = _volume(image)
    sigma, opts, reason, corr, radius = _native.estimate_noise(vol)
    typed = {k: (v if k == "noise_model" else float(v)) for k, v in opts}
    return NoiseEstimate(sigma, typed["noise_model"], typed, reason, corr, radius)


def residual_check(noisy: Any, denoised: Any) -> Optional[str]:
    """"Imager beware": a warning when ``noisy - denoised`` holds image structure (the
    denoiser removed signal, not only noise), else ``None``."""
    a, _ = _volume(noisy, "noisy")
    b, _ = _volume(denoised, "denoised")
    return _native.residual_check(a, b)


def cancel_all() -> None:
    """Stops every denoisekit job running in this process, on any thread, at its next
    checkpoint (each raises ``KeyboardInterrupt``); jobs started afterwards run. Ctrl-C
    calls it: Python delivers the signal to the main thread only, so a job on a Dask
    worker thread would otherwise run to its end."""
    _native.cancel_all()


def _chain_sigint() -> None:
    """Ctrl-C also stops the jobs on other threads (:func:`cancel_all`). The Dask drivers
    call this before they build a graph: their jobs run on worker threads, where Python
    never delivers the signal. Only from the main thread and only over Python's default
    handler (a handler of the user's own, or asyncio's, is left alone); once installed,
    it raises KeyboardInterrupt as the default does."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return

    def handler(signum, frame):
        _native.cancel_all()
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, handler)
