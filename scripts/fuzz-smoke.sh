#!/usr/bin/env bash
# Fuzz smoke run: installs cargo-fuzz if missing, seeds the corpora from the
# MariaDB fixtures, builds every target of fuzz/ and runs each for a short,
# fixed time. Any crash, leak, timeout or out-of-memory fails the run (after
# all targets have had their turn); the crashing input is left in
# fuzz/artifacts/<target>/ and printed in base64.
#
#   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]      (default 30)
#   FUZZ_TARGETS="page_decrypt key_file" scripts/fuzz-smoke.sh 10
#
# Needs the nightly toolchain (`cargo +nightly`). Installing cargo-fuzz
# (`cargo install --locked cargo-fuzz`) takes about 70 s on a 2-core machine;
# building the targets (AddressSanitizer, libFuzzer) about 70 s more.
set -uo pipefail

seconds="${1:-30}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf '== fuzz-smoke: %s\n' "$*"; }

if ! cargo +nightly --version >/dev/null 2>&1; then
    say "the nightly toolchain is missing (rustup toolchain install nightly)"
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz"
    start=$SECONDS
    cargo install --locked cargo-fuzz || exit 1
    say "cargo-fuzz installed in $((SECONDS - start)) s"
fi

say "seeding corpora"
bash fuzz/seed.sh || exit 1

say "building targets"
start=$SECONDS
cargo +nightly fuzz build --fuzz-dir fuzz || exit 1
say "built in $((SECONDS - start)) s"

targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list --fuzz-dir fuzz)}"
logs="$root/fuzz/target/smoke-logs"
mkdir -p "$logs"
failed=()
for target in $targets; do
    say "running $target for $seconds s"
    log="$logs/$target.log"
    # -timeout: one input may not take 60 s; -rss_limit_mb: nor 2 GiB.
    cargo +nightly fuzz run --fuzz-dir fuzz "$target" -- \
        -max_total_time="$seconds" -timeout=60 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1
    status=$?
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" |
        sed "s/^/   $target /"
    if ((status != 0)); then
        failed+=("$target")
        say "$target FAILED (exit $status), from $log:"
        grep -E -A2 'panicked at|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY:|Test unit written|^Base64:' "$log" | head -n 40
    fi
done

# The table_walker target's scratch directories of finished runs.
for d in /dev/shm/aria-fuzz-walker-* "${TMPDIR:-/tmp}"/aria-fuzz-walker-*; do
    [[ -d $d ]] && ! kill -0 "${d##*-}" 2>/dev/null && rm -rf "$d"
done

if ((${#failed[@]})); then
    say "FAILED: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
say "all targets ran $seconds s without a crash"
