#!/usr/bin/env bash
# The Python package's tests: builds the abi3 wheel with maturin (reusing the release
# build of the workspace), installs it into a fresh virtual environment with the test
# tools (pinned), and runs pytest on tests/python: the API against the CLI and the
# registry, Dask chunking bit for bit, OME-Zarr with resume, and a real
# distributed.LocalCluster with a killed worker and a memory-limited one.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=target/tools
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || { echo "test_python.sh: needs python3-venv" >&2; exit 1; }
if [ ! -x "$tools/pybuild/bin/maturin" ]; then
  python3 -m venv "$tools/pybuild"
  "$tools/pybuild/bin/python3" -m pip install -q maturin==1.16.0
fi
rm -rf target/wheels
# The release profile: the workspace's release build is reused (the wheel users get is
# built with `maturin build`, whose profile is `dist`: stripped).
"$tools/pybuild/bin/maturin" build --locked --profile release -q \
  -m crates/denoisekit-py/Cargo.toml -o target/wheels
venv="$tools/pytest-venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python3" -m pip install -q target/wheels/denoisekit-*.whl \
  pytest==9.2.0 "dask[array]==2026.8.0" distributed==2026.8.0 zarr==3.1.6 \
  ome-zarr==0.18.0 tifffile==2025.10.16
cd tests/python
"../../$venv/bin/python3" -m pytest -q -p no:cacheprovider "$@"
