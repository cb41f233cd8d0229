#!/usr/bin/env bash
# Runs one fuzz target for a while: `host/ferry/fuzz/run.sh metadata 600` (or `target`).
#
# Seeds the working corpus (corpus/TARGET, not committed) from the repository's own
# scripts (metadata) or seeds/target (target), then runs libFuzzer in one process with
# a 10 s per-input timeout. A crash is written to artifacts/TARGET/; copy it to
# regressions/TARGET/ so `cargo test --test fuzz_regressions` replays it for ever.
# Works on the stable toolchain through RUSTC_BOOTSTRAP=1 (cargo fuzz needs -Z flags).
set -euo pipefail
target=${1:?usage: run.sh metadata|target [SECONDS]}
seconds=${2:-600}
cd "$(dirname "$0")"
repo=$(cd ../../.. && pwd)
mkdir -p "corpus/$target"
case "$target" in
metadata)
    # Every script of the repository, named by its path (many share a file name).
    find "$repo/scripts" "$repo/plugins" "$repo/stdlib" "$repo/tests/fixtures" \
        -name '*.rhai' -print0 | while IFS= read -r -d '' f; do
        cp "$f" "corpus/$target/seed-$(printf '%s' "${f#"$repo"/}" | tr '/' '_')"
    done
    max_len=16384
    ;;
target)
    cp -n seeds/target/* "corpus/$target/"
    max_len=4096
    ;;
*)
    echo "unknown target $target" >&2
    exit 2
    ;;
esac
cp -n regressions/"$target"/* "corpus/$target/" 2>/dev/null || true
export RUSTC_BOOTSTRAP=1
cargo fuzz run -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -print_final_stats=1
