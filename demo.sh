#!/usr/bin/env bash
# The main job on a fresh machine, in one command: `./demo.sh` (or `bash demo.sh`).
#
# Builds Ferry, creates a v1 sample repository (a SQLite file, N datasets), shows its
# status, upgrades it to the heads of ./scripts and ./plugins/*, shows the status again
# and the history. Options: N=20000 (datasets), DB=sqlite:sample.sqlite.
set -euo pipefail
cd "$(dirname "$0")"

N=${N:-20000}
DB=${DB:-sqlite:sample.sqlite}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
ferry="$CARGO_TARGET_DIR/release/ferry"
sample="$CARGO_TARGET_DIR/release/ferry-sample"

step() { printf '\n==> %s\n' "$*"; }

step "building (cargo build --release)"
cargo build --release --bins

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
step "done: $DB is at the heads"
