"""Shared fixtures: the bundled real image, noisy test volumes, the release CLI."""

import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def nuclei() -> np.ndarray:
    """The bundled real fluorescence image (uint16), with its own camera noise."""
    import tifffile

    return tifffile.imread(ROOT / "data" / "fluo_nuclei_dsb2018_512x512_u16.tif")


@pytest.fixture(scope="session")
def noisy2d(nuclei) -> np.ndarray:
    """A crop of the real image with added Gaussian noise: uneven sizes on purpose."""
    rng = np.random.default_rng(7)
    crop = nuclei[100:170, 150:243].astype(np.float32)
    return (crop + rng.normal(0, 12, crop.shape)).astype(np.float32)


@pytest.fixture(scope="session")
def noisy3d(nuclei) -> np.ndarray:
    """Eleven shifted crops of the real image as a stack, with noise."""
    rng = np.random.default_rng(8)
    planes = [nuclei[90 + 3 * k: 130 + 3 * k, 200 + 2 * k: 247 + 2 * k] for k in range(11)]
    stack = np.stack(planes).astype(np.float32)
    return (stack + rng.normal(0, 12, stack.shape)).astype(np.float32)


@pytest.fixture(scope="session")
def cli() -> pathlib.Path:
    """The release command line built by scripts/test.sh, for cross-front-end checks."""
    path = pathlib.Path(os.environ.get("DENOISEKIT_CLI", ROOT / "target" / "release" / "denoisekit"))
    if not path.exists():
        pytest.fail(f"{path} is missing: run cargo build --release first")
    return path
