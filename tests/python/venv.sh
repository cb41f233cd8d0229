#!/usr/bin/env bash
# Makes (or reuses) the Python virtual environment that Ferry's tests use to create and
# judge real data butler repositories, and prints its python's path on stdout.
#
#   export FERRY_TEST_PYTHON=$(bash tests/python/venv.sh)
#
# The environment lives at ${XDG_CACHE_HOME:-$HOME/.cache}/ferry/venv-<hash>, where
# <hash> is the sha256 of requirements.txt and constraints.txt (first 16 hex digits):
# a change to either makes a new one, an unchanged pair reuses it. It is built in a
# temporary folder next to it and renamed into place only when pip succeeded, so a
# failed or interrupted install never leaves a half-made environment to be reused.
# PYTHON picks the interpreter (default python3; daf_butler needs Python >= 3.11).
# Progress goes to stderr; exit status 1 when the environment cannot be made.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
hash=$(cat "$here/requirements.txt" "$here/constraints.txt" | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/ferry
venv=$cache/venv-$hash

if [ -x "$venv/bin/python" ] && [ -f "$venv/.complete" ]; then
    echo "$venv/bin/python"
    exit 0
fi

if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "venv.sh: $python is older than 3.11, which lsst-daf-butler needs (set PYTHON=)" >&2
    exit 1
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.venv-$hash.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "venv.sh: making $venv (pip install, about a minute)" >&2
"$python" -m venv "$tmp" >&2
"$tmp/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt" -c "$here/constraints.txt" >&2
"$tmp/bin/python" -c 'import lsst.daf.butler, sqlalchemy, psycopg2' >&2
touch "$tmp/.complete"
rm -rf "$venv"
# A venv records its own path in its scripts; rebuilt in place, not moved, would be
# cleaner, but python -m venv at the final path would expose a half-made one. The
# interpreter itself (bin/python) finds its site-packages relative to pyvenv.cfg, which
# is all the tests use.
mv "$tmp" "$venv"
trap - EXIT
echo "$venv/bin/python"
