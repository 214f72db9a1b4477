#!/usr/bin/env bash
# A/B benchmark gate: the same benchmarks from two builds, run alternately
# in one session, compared per benchmark id.
#
#   scripts/ab-bench.sh build DIR            build this worktree's bench
#                                            executables + aria-crypt into DIR
#   scripts/ab-bench.sh BASE_DIR NEW_DIR [FILTER]
#
# Each DIR holds criterion bench executables (kernel-*, aria-*, as `cargo
# bench --no-run` builds them) and an `aria-crypt` binary. FILTER is a
# regular expression: criterion gets it as its own filter; `aria-crypt
# bench` runs only when FILTER is empty or mentions "cli", and its rows
# (ids `cli/BACKEND/MODE/tTHREADS/OP`) are kept if they match FILTER.
#
# Rounds alternate the order (A B, then B A, ...) so that drift on a
# shared, noisy machine falls on both sides alike; every round gets a fresh
# criterion directory, so criterion never compares against an earlier run.
# The table gives, per id, the median over rounds of each side's criterion
# median, and new/base as a SPEED ratio (base time / new time for
# criterion, new rate / base rate for `aria-crypt bench`): below 1.00 is
# slower. Beside it, "best": the same ratio of each side's fastest sample
# over all rounds (criterion's sample.json), which interference from other
# processes on the machine disturbs least. An id is flagged "DROP" when
# both ratios are below 1 - THRESHOLD, "drop?" when one is; the script
# exits 1 if any id is flagged DROP (2 for usage or build errors).
#
# Environment (defaults in brackets):
#   ROUNDS [3]        rounds; each runs every executable of both sides once
#   MEASURE [1]       criterion --measurement-time, seconds
#   WARMUP [1]        criterion --warm-up-time, seconds
#   CLI_SECONDS [0.5] `aria-crypt bench --seconds`
#   CLI_PAGES [1024]  `aria-crypt bench --pages`
#   THRESHOLD [0.03]  the drop that is flagged
#   PIN               a CPU list for taskset (e.g. 1), unset: no pinning
#   KEEP              a directory to keep raw results in (else a temp dir)
#   ARIA_CRYPT_BACKEND is passed through (it picks the "active" backend).
set -euo pipefail

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

die() {
    echo "ab-bench: $*" >&2
    exit 2
}

build() {
    local dir=$1
    local root
    root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
    mkdir -p "$dir"
    echo "ab-bench: building benches and aria-crypt of $root into $dir" >&2
    local exes
    exes=$(cd "$root" && cargo bench --no-run --message-format=json-render-diagnostics |
        jq -r 'select(.reason == "compiler-artifact" and (.target.kind | index("bench")) and .executable != null) | .executable')
    [[ -n $exes ]] || die "cargo bench --no-run produced no bench executables"
    local exe
    for exe in $exes; do
        cp -f "$exe" "$dir/"
    done
    local bin
    bin=$(cd "$root" && cargo build --release --bin aria-crypt --message-format=json-render-diagnostics |
        jq -r 'select(.reason == "compiler-artifact" and .target.name == "aria-crypt" and .executable != null) | .executable')
    [[ -n $bin ]] || die "cargo build produced no aria-crypt"
    cp -f "$bin" "$dir/"
    git -C "$root" rev-parse HEAD >"$dir/COMMIT"
    git -C "$root" status --porcelain | grep -q . && echo "dirty" >>"$dir/COMMIT"
    ls -l "$dir" >&2
}

if [[ ${1:-} == build ]]; then
    [[ $# -eq 2 ]] || usage
    build "$2"
    exit 0
fi
[[ $# -ge 2 && $# -le 3 ]] || usage

BASE=$(cd "$1" && pwd) || die "no directory $1"
NEW=$(cd "$2" && pwd) || die "no directory $2"
FILTER=${3:-}
ROUNDS=${ROUNDS:-3}
MEASURE=${MEASURE:-1}
WARMUP=${WARMUP:-1}
CLI_SECONDS=${CLI_SECONDS:-0.5}
CLI_PAGES=${CLI_PAGES:-1024}
THRESHOLD=${THRESHOLD:-0.03}
if [[ -n ${KEEP:-} ]]; then
    WORK=$KEEP
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi
RESULTS=$WORK/results.tsv
: >"$RESULTS"

# The criterion executables of a side: kernel-HASH, aria-HASH (never the
# `aria-crypt` tool, nor cargo's .d files).
benches() {
    local f name
    for f in "$1"/kernel-* "$1"/aria-*; do
        name=$(basename "$f")
        [[ -f $f && -x $f && $name != aria-crypt && $name != *.d ]] || continue
        echo "$f"
    done
}

for side in "$BASE" "$NEW"; do
    [[ -n $(benches "$side") ]] || die "$side holds no kernel-*/aria-* bench executables"
done

run_cli=false
if [[ -z $FILTER || $FILTER == *cli* ]]; then
    run_cli=true
fi

pin=()
[[ -n ${PIN:-} ]] && pin=(taskset -c "$PIN")

# One side, one round: every bench executable, then the tool. Appends
# "side<TAB>round<TAB>id<TAB>kind<TAB>value<TAB>best" lines to $RESULTS,
# kind "ns" (criterion's median and fastest sample per iteration, lower is
# better) or "rate" (pages/s, higher is better; best = value).
run_side() {
    local label=$1 dir=$2 round=$3
    local home=$WORK/criterion-$label-$round
    rm -rf "$home"
    mkdir -p "$home"
    local exe
    for exe in $(benches "$dir"); do
        echo "ab-bench: round $round $label $(basename "$exe")" >&2
        local args=(--bench --measurement-time "$MEASURE" --warm-up-time "$WARMUP" --noplot)
        [[ -n $FILTER ]] && args+=("$FILTER")
        (cd "$WORK" && CRITERION_HOME=$home "${pin[@]}" "$exe" "${args[@]}") \
            >"$WORK/log-$label-$round-$(basename "$exe").txt" 2>&1 ||
            die "$exe failed; see $WORK/log-$label-$round-$(basename "$exe").txt (KEEP=dir keeps it)"
    done
    # criterion's own estimates: <home>/<group>/<id>/new/{benchmark,estimates}.json
    local est
    while IFS= read -r est; do
        local d id ns best
        d=$(dirname "$est")
        id=$(jq -r '.full_id' "$d/benchmark.json")
        ns=$(jq -r '.median.point_estimate' "$est")
        best=$(jq -r '[.iters, .times] | transpose | map(.[1] / .[0]) | min' "$d/sample.json")
        printf '%s\t%s\t%s\tns\t%s\t%s\n' "$label" "$round" "$id" "$ns" "$best" >>"$RESULTS"
    done < <(find "$home" -path '*/new/estimates.json' | sort)

    if $run_cli && [[ -x $dir/aria-crypt ]]; then
        echo "ab-bench: round $round $label aria-crypt bench" >&2
        local json=$WORK/cli-$label-$round.json
        "${pin[@]}" "$dir/aria-crypt" bench --json --seconds "$CLI_SECONDS" --pages "$CLI_PAGES" \
            >"$json" 2>"$WORK/cli-$label-$round.err" ||
            echo "ab-bench: warning: $dir/aria-crypt bench exited $? (rows it printed are kept)" >&2
        jq -r --arg side "$label" --arg round "$round" '
            .results[]? |
            ["encrypt", "decrypt"][] as $op |
            [$side, $round,
             "cli/\(.backend)/\(.mode)/t\(.threads)/\($op)",
             "rate",
             (.[$op + "_pages_per_sec"] | tostring),
             (.[$op + "_pages_per_sec"] | tostring)] | @tsv' "$json" >>"$RESULTS" || true
    fi
}

for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then
        run_side base "$BASE" "$round"
        run_side new "$NEW" "$round"
    else
        run_side new "$NEW" "$round"
        run_side base "$BASE" "$round"
    fi
done

python3 - "$RESULTS" "$THRESHOLD" "$FILTER" "$ROUNDS" <<'EOF'
import re
import statistics
import sys

path, threshold, pattern, rounds = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
medians = {}  # (id, side) -> [median per round]
bests = {}  # (id, side) -> [fastest sample per round]
kinds = {}
order = []
for line in open(path):
    side, _round, ident, kind, value, best = line.rstrip("\n").split("\t")
    if pattern and ident.startswith("cli/") and not re.search(pattern, ident):
        continue
    try:
        v, b = float(value), float(best)
    except ValueError:
        continue
    if ident not in kinds:
        order.append(ident)
    kinds[ident] = kind
    medians.setdefault((ident, side), []).append(v)
    bests.setdefault((ident, side), []).append(b)


def show(kind, v):
    if v is None:
        return "-"
    if kind == "rate":
        return f"{v:,.0f} pg/s"
    return f"{v / 1000:.2f} µs" if v >= 1000 else f"{v:.1f} ns"


def speed(kind, base, new):
    return new / base if kind == "rate" else base / new


drops = doubtful = 0
print(f"\nA/B over {rounds} alternating rounds; ratios are new/base SPEED (above 1: faster)")
print(f"{'id':<44} {'base':>14} {'new':>14} {'new/base':>9} {'best':>7} {'spread':>7}")
for ident in order:
    kind = kinds[ident]
    b, n = medians.get((ident, "base")), medians.get((ident, "new"))
    mb = statistics.median(b) if b else None
    mn = statistics.median(n) if n else None
    ratio = best = flag = spread = ""
    if mb and mn:
        r = speed(kind, mb, mn)
        pick = max if kind == "rate" else min
        rb = speed(kind, pick(bests[(ident, "base")]), pick(bests[(ident, "new")]))
        ratio, best = f"{r:.3f}", f"{rb:.3f}"
        # The noisier side's range over rounds, relative to its median.
        spread = f"{max((max(x) - min(x)) / statistics.median(x) for x in (b, n)) * 100:.0f}%"
        low = [x < 1 - threshold for x in (r, rb)]
        if all(low):
            flag = "  DROP"
            drops += 1
        elif any(low):
            flag = "  drop?"
            doubtful += 1
    print(f"{ident:<44} {show(kind, mb):>14} {show(kind, mn):>14} {ratio:>9} {best:>7} {spread:>7}{flag}")
print(f"\n{drops} id(s) slower by more than {threshold * 100:.0f}% on both median and best,"
      f" {doubtful} on one of them (spread: max-min of the medians over rounds / median,"
      " the noisier side; a spread above the threshold calls for more ROUNDS)")
sys.exit(1 if drops else 0)
EOF
