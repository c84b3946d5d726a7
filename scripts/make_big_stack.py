"""Writes a large 16-bit BigTIFF stack page by page, for the streaming memory figure in
docs/benchmarks.md: python3 scripts/make_big_stack.py OUT.tif [--planes 2048 --size 1024].

Each page is a smooth pattern plus Gaussian noise (seeded), written as its own page so
the file is read back page by page like a microscope's stack. Needs numpy and tifffile
(see ../shared/bench/README.md for the virtualenv).
"""
import argparse

import numpy as np
import tifffile

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--planes", type=int, default=2048)
ap.add_argument("--size", type=int, default=1024)
a = ap.parse_args()
rng = np.random.default_rng(0)
y, x = np.mgrid[0 : a.size, 0 : a.size].astype(np.float32)
with tifffile.TiffWriter(a.out, bigtiff=True) as tw:
    for z in range(a.planes):
        clean = 2000 + 1500 * np.sin(x / 37.0 + z / 50.0) * np.cos(y / 23.0)
        page = clean + rng.normal(0, 200, clean.shape).astype(np.float32)
        tw.write(np.clip(page, 0, 65535).astype(np.uint16), contiguous=False)
