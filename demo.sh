#!/usr/bin/env bash
# The main job on a fresh machine, in one command: `./demo.sh` (or `bash demo.sh`).
#
# Builds Ferry, then migrates one repository and says which kind:
# - a REAL data butler repository, when the tests' Python environment with the real
#   lsst-daf-butler exists (FERRY_TEST_PYTHON, or the cached one `tests/python/venv.sh`
#   makes; the demo never installs it): daf_butler creates it at an old dimension
#   universe (UNIVERSE=3, N_REAL=2000 datasets) in demo-butler/, then `ferry adopt` and
#   `ferry upgrade` take it as far as Ferry's real trees go, and daf_butler itself opens
#   the result and reports the universe reached;
# - otherwise the SYNTHETIC WORKLOAD.md v1 registry (a SQLite file, N datasets), upgraded
#   to the heads of ./scripts and ./plugins/*.
# Either way: status before and after, and the history. Options: REAL=0 (or 1) forces
# the kind; N=20000, DB=sqlite:sample.sqlite for the synthetic one.
set -euo pipefail
cd "$(dirname "$0")"

N=${N:-20000}
DB=${DB:-sqlite:sample.sqlite}
UNIVERSE=${UNIVERSE:-3}
N_REAL=${N_REAL:-2000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
ferry="$CARGO_TARGET_DIR/release/ferry"
sample="$CARGO_TARGET_DIR/release/ferry-sample"

step() { printf '\n==> %s\n' "$*"; }

# The Python of the tests' environment, if it exists already (never made here).
python_env() {
    if [[ -n ${FERRY_TEST_PYTHON:-} && -x $FERRY_TEST_PYTHON ]]; then
        echo "$FERRY_TEST_PYTHON"
        return
    fi
    local hash venv
    hash=$(cat tests/python/requirements.txt tests/python/constraints.txt | sha256sum | cut -c1-16)
    venv=${XDG_CACHE_HOME:-$HOME/.cache}/ferry/venv-$hash
    if [[ -x $venv/bin/python && -f $venv/.complete ]]; then
        echo "$venv/bin/python"
    fi
}

python=""
if [[ ${REAL:-} != 0 ]]; then
    python=$(python_env)
    if [[ ${REAL:-} == 1 && -z $python ]]; then
        echo "demo.sh: REAL=1 but the Python environment does not exist: run bash tests/python/venv.sh" >&2
        exit 2
    fi
fi

step "building (cargo build --release)"
cargo build --release --bins

if [[ -n $python ]]; then
    root=demo-butler
    db="sqlite:$root/gen3.sqlite3"
    echo "demo.sh: migrating a REAL daf_butler repository (Python environment: $python)"
    rm -rf "$root"

    step "lsst-daf-butler creates a repository at dimension universe $UNIVERSE: $root/ (N=$N_REAL)"
    "$python" tests/python/butler_tool.py make --universe "$UNIVERSE" --root "$root" --n "$N_REAL"

    step "ferry status (before: no Ferry ledger yet)"
    "$ferry" --db "$db" status

    step "ferry adopt (the probes read butler_attributes and check the tables)"
    "$ferry" --db "$db" adopt

    step "ferry upgrade"
    if ! "$ferry" --db "$db" upgrade --set dimensions_config.has_simulated=0; then
        # A universe step Ferry does not have yet stops the plan before anything runs:
        # go as far as Ferry's real trees go.
        # go as far as Ferry's real trees go (a target whose plan is refused the same
        # way is passed over quietly; any other failure stops the demo).
        for u in 7 6 5 4 3 2 1; do
            ((u > UNIVERSE)) || break
            if out=$("$ferry" --db "$db" upgrade "daf_butler-universe-$u" \
                --set dimensions_config.has_simulated=0 2>&1); then
                step "ferry upgrade daf_butler-universe-$u"
                echo "$out"
                break
            elif [[ $out != *"nothing was run"* ]]; then
                echo "$out" >&2
                exit 1
            fi
        done
    fi

    step "ferry status (after)"
    "$ferry" --db "$db" status

    step "ferry history"
    "$ferry" --db "$db" history

    step "daf_butler opens the result"
    reached=$("$python" tests/python/butler_tool.py judge --root "$root" |
        "$python" -c 'import json, sys; j = json.load(sys.stdin); print(j["universe"], len(j.get("datasets", [])))')
    read -r universe datasets <<<"$reached"
    step "done: a real daf_butler repository ($root/) went from universe $UNIVERSE to universe $universe; daf_butler opens it and lists $datasets datasets"
    exit 0
fi

if [[ ${REAL:-} == 0 ]]; then
    why="REAL=0"
else
    why="no Python environment with lsst-daf-butler; bash tests/python/venv.sh makes one"
fi
echo "demo.sh: migrating the SYNTHETIC WORKLOAD.md registry ($why)"
if [[ $DB == sqlite:* ]]; then
    rm -f "${DB#sqlite:}" "${DB#sqlite:}.ferry-lock"
fi

step "creating a v1 sample repository: $DB with N=$N datasets"
"$sample" --db "$DB" --n "$N"

step "ferry status (before)"
"$ferry" --db "$DB" status

step "ferry upgrade"
"$ferry" --db "$DB" upgrade

step "ferry status (after)"
"$ferry" --db "$DB" status

step "ferry history"
"$ferry" --db "$DB" history

"$ferry" --db "$DB" check
step "done: the synthetic registry $DB is at the heads"
