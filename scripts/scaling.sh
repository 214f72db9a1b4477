#!/usr/bin/env bash
# How `verify` and `rekey` scale with worker threads, and what rekey costs
# on a real disk next to copying the same files.
#
#   bash scripts/scaling.sh PATH/TO/aria-crypt [TABLES] [DISK_DIR]
#
# Builds nothing. Makes TABLES (default 32) tables by copying the fixture
# tables of tests/fixtures/cbc_trans_256 (and blob, bs16384) into a fresh
# folder under /dev/shm, then times, for 1, 2, 4, ... threads up to the
# core count (`--jobs N`), `verify` and `rekey --new-table-key` (which
# re-encrypts every page each run) over all of them: the best of REPEAT runs
# (default 5; set REPEAT=...). Then, in DISK_DIR (default: a folder under
# the working directory, so on its disk), rekey with every core against
# `cp` of the same files followed by `sync`. Prints one table per part;
# ratios are against one thread, and rekey against cp + sync.
#
# FROM=DIR takes the tables to copy from DIR instead (every DIR/*.MAI with
# its .MAD, in turn, and DIR/keys.txt): tables of a real size, where the
# data written and not the fsyncs of the replacement protocol dominate
# (scripts/mariadb-big-tables.sh makes them).
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,20p "$0" >&2; exit 2; }
tool=$(realpath "$1")
count=${2:-32}
disk_parent=${3:-$PWD}
repeat=${REPEAT:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
fixtures=$here/tests/fixtures
cores=$(nproc)

# The tables copied, in turn, and their key file: FROM's, or fixtures of
# different shapes that share their test key file.
if [ -n "${FROM:-}" ]; then
	keys=$(realpath "$FROM")/keys.txt
	sources=("$(dirname "$keys")"/*.MAI)
	sources=("${sources[@]%.MAI}")
	[ -e "${sources[0]}.MAI" ] || { echo "scaling: no tables in $FROM" >&2; exit 1; }
else
	keys=$fixtures/cbc_trans_256/keys.txt
	sources=("$fixtures"/cbc_trans_256/t1 "$fixtures"/blob/t1 "$fixtures"/bs16384/t1)
	for src in "${sources[@]}"; do
		cmp -s "$keys" "$(dirname "$src")/keys.txt" ||
			{ echo "scaling: $src has another key file" >&2; exit 1; }
	done
fi

shm=$(mktemp -d /dev/shm/aria-scaling.XXXXXX)
disk=$(mktemp -d "$disk_parent/aria-scaling.XXXXXX")
trap 'rm -rf "$shm" "$disk"' EXIT

# Tables t0..t(N-1), cycling through the sources, and their key file.
make_tables() {
	local dir=$1 i src
	cp "$keys" "$dir/keys.txt"
	mkdir -p "$dir/db"
	for ((i = 0; i < count; i++)); do
		src=${sources[i % ${#sources[@]}]}
		cp "$src.MAI" "$dir/db/t$i.MAI"
		cp "$src.MAD" "$dir/db/t$i.MAD"
	done
}

# Best wall time in seconds of REPEAT runs of a command.
best() {
	local i start end t best=
	for ((i = 0; i < repeat; i++)); do
		start=$(date +%s.%N)
		"$@" >/dev/null 2>&1
		end=$(date +%s.%N)
		t=$(echo "$end - $start" | bc -l)
		if [ -z "$best" ] || (($(echo "$t < $best" | bc -l))); then best=$t; fi
	done
	printf '%.4f' "$best"
}

ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }

make_tables "$shm"
bytes=$(du -sb "$shm/db" | cut -f1)
echo "aria-crypt: $tool"
echo "$count tables, $bytes bytes, $cores cores, best of $repeat"
echo
echo "in-memory filesystem ($shm)"
printf '%-8s %-10s %-8s %-10s %-8s\n' threads verify_s speedup rekey_s speedup
threads=1
verify1= rekey1=
while :; do
	v=$(best "$tool" --jobs "$threads" verify --key-file "$shm/keys.txt" "$shm/db")
	r=$(best "$tool" --jobs "$threads" rekey --key-file "$shm/keys.txt" --new-table-key "$shm/db")
	verify1=${verify1:-$v} rekey1=${rekey1:-$r}
	printf '%-8s %-10s %-8s %-10s %-8s\n' "$threads" "$v" "$(ratio "$verify1" "$v")" "$r" "$(ratio "$rekey1" "$r")"
	[ "$threads" -ge "$cores" ] && break
	threads=$((threads * 2))
	[ "$threads" -gt "$cores" ] && threads=$cores
done
# Every rekey above must have left tables that verify.
"$tool" verify --key-file "$shm/keys.txt" "$shm/db" >/dev/null ||
	{ echo "scaling: the tables do not verify after the rekeys" >&2; exit 1; }

echo
echo "disk ($disk)"
make_tables "$disk"
mkdir -p "$disk/copy"
copy() {
	rm -rf "$disk/copy"
	cp -r "$disk/db" "$disk/copy"
	sync "$disk"/copy/* "$disk/copy"
}
c=$(best copy)
r=$(best "$tool" rekey --key-file "$disk/keys.txt" --new-table-key "$disk/db")
printf '%-16s %-10s\n' what seconds
printf '%-16s %-10s\n' "cp + sync" "$c"
printf '%-16s %-10s %s\n' rekey "$r" "($(ratio "$r" "$c"))x cp + sync, target <= 1.3x"
