#!/usr/bin/env bash
# Ferry against daf_butler_migrate (issue 12, item 6): makes (or reuses) the peer's
# environment, then runs tests/python/bench_vs_migrate.py with the given arguments.
#
#   bash tests/python/bench_vs_migrate.sh --n 200000 --backend both
#   bash tests/python/bench_vs_migrate.sh --n 2000 --step datasets
#
# The peer is GPL and never part of this repository: it is cloned from PEER_SRC (a git
# URL or folder; default https://github.com/lsst-dm/daf_butler_migrate) at PEER_REF
# (default the commit the figures of docs/BENCHMARKS.md were measured with) into
# PEER_DIR/daf_butler_migrate, and installed with pip into PEER_DIR/venv together with
# the tests' pins (requirements.txt, constraints.txt) and peer_requirements.txt.
# PEER_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/ferry/peer. The release binary
# must exist: cargo build --release --bins. PYTHON picks the interpreter (>= 3.11).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${PEER_SRC:-https://github.com/lsst-dm/daf_butler_migrate}
ref=${PEER_REF:-636f3629f4d6f5a3da8677935b75c7fa8c160305}
dir=${PEER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/peer}
python=${PYTHON:-python3}
checkout=$dir/daf_butler_migrate
venv=$dir/venv

mkdir -p "$dir"
if [ ! -d "$checkout/.git" ]; then
    echo "bench_vs_migrate.sh: cloning $src into $checkout" >&2
    git clone --quiet "$src" "$checkout"
fi
if [ "$(git -C "$checkout" rev-parse HEAD)" != "$ref" ]; then
    git -C "$checkout" fetch --quiet origin || true
    git -C "$checkout" checkout --quiet "$ref"
    rm -f "$venv/.complete"
fi
if [ ! -f "$venv/.complete" ]; then
    echo "bench_vs_migrate.sh: installing the peer into $venv (about a minute)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$here/requirements.txt" -r "$here/peer_requirements.txt" -c "$here/constraints.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$checkout" \
        -c "$here/constraints.txt"
    touch "$venv/.complete"
fi
export DAF_BUTLER_MIGRATE_DIR=$checkout
exec "$venv/bin/python" "$here/bench_vs_migrate.py" "$@"
