#!/usr/bin/env bash
# Live round trip with a real MariaDB server (Debian's mariadb-server 10.11):
# tables the server wrote are re-encrypted offline by `aria-crypt rekey`, put
# back into the stopped server's data directory, and after a restart with the
# matching settings the server's CHECK TABLE passes and CHECKSUM TABLE and the
# rows are unchanged.
#
#   1. debug_key_management: rotation from key version 1 to 2, with a fresh
#      per-table key (new space and scheme_iv) at the same time.
#   2. file_key_management: a move from one key file (AES-CBC) to another,
#      encrypted key file, switching to AES-CTR.
#
# Also checks that rekey refuses to touch a table while the server runs.
# Runs as root on Debian 12; installs what it needs; leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# shellcheck source=scripts/lib/mariadb.sh
. scripts/lib/mariadb.sh
mdb_cleanup_install_trap
mdb_ensure_packages
mdb_workdir

cargo build --release --quiet --bin aria-crypt
tool=$root/target/release/aria-crypt

say() { printf '[roundtrip] %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

tables=(t_trans t_nontrans t_blob)

create_tables() {
    mdb_sql "CREATE DATABASE rt"
    mdb_sql "CREATE TABLE t_trans (id INT PRIMARY KEY, name VARCHAR(40), h CHAR(32), note VARCHAR(200), KEY (h))
             ENGINE=Aria ROW_FORMAT=PAGE TRANSACTIONAL=1" -D rt
    mdb_sql "CREATE TABLE t_nontrans (id INT PRIMARY KEY, name VARCHAR(40), h CHAR(32), KEY (h))
             ENGINE=Aria ROW_FORMAT=PAGE TRANSACTIONAL=0" -D rt
    mdb_sql "CREATE TABLE t_blob (id INT PRIMARY KEY, b LONGBLOB) ENGINE=Aria ROW_FORMAT=PAGE" -D rt
    mdb_sql "INSERT INTO t_trans SELECT seq, CONCAT('roundtrip-', seq), MD5(seq), REPEAT(CHAR(65 + seq % 26), seq % 200)
             FROM seq_1_to_4000" -D rt
    mdb_sql "INSERT INTO t_nontrans SELECT seq, CONCAT('plain-', seq), MD5(seq * 7) FROM seq_1_to_3000" -D rt
    mdb_sql "INSERT INTO t_blob SELECT seq, REPEAT(MD5(seq), 600 + seq * 40) FROM seq_1_to_12" -D rt
    mdb_sql "UPDATE t_trans SET note = 'updated' WHERE id % 10 = 3" -D rt
    mdb_sql "DELETE FROM t_nontrans WHERE id % 50 = 7" -D rt
}

# CHECKSUM TABLE and a digest of every row, one line per table.
snapshot() {
    local t
    for t in "${tables[@]}"; do
        printf '%s %s %s\n' "$t" \
            "$(mdb_sql "CHECKSUM TABLE rt.$t" | awk '{print $2}')" \
            "$(mdb_sql "SELECT * FROM rt.$t ORDER BY id" | md5sum | cut -d' ' -f1)"
    done
}

check_tables() {
    local t out
    for t in "${tables[@]}"; do
        out=$(mdb_sql "CHECK TABLE rt.$t EXTENDED")
        say "CHECK TABLE rt.$t: $(printf '%s' "$out" | tail -n1)"
        printf '%s' "$out" | tail -n1 | grep -q $'\tOK$' || fail "CHECK TABLE rt.$t: $out"
    done
}

table_paths() {
    local t
    for t in "${tables[@]}"; do printf '%s\n' "$MDB_DATADIR/rt/$t"; done
}

files_digest() { (cd "$MDB_DATADIR/rt" && md5sum ./*.MAI ./*.MAD); }

# Checks a verify/rekey JSON report: every table ok, no failed page, and
# optionally every page at key version V and an algorithm containing A.
check_report() { # REPORT [VERSION|-] [ALGORITHM|-]
    printf '%s' "$1" | python3 -c '
import json, sys
want_version, want_alg = sys.argv[1], sys.argv[2]
ok = True
for t in json.load(sys.stdin)["tables"]:
    versions = sorted(t["key_versions"])
    print("[roundtrip]   %s ok=%s algorithm=%s key_id=%s key_versions=%s" % (
        t["table"], t["ok"], t["algorithm"], t["key_id"], json.dumps(t["key_versions"])), file=sys.stderr)
    ok &= t["ok"] and t["pages"]["failed"] == 0
    ok &= want_version == "-" or versions == [want_version]
    ok &= want_alg == "-" or want_alg in str(t["algorithm"])
sys.exit(0 if ok else 1)' "${2:--}" "${3:--}"
}

###############################################################################
say "scenario 1: debug_key_management, rotation 1 -> 2 and a fresh table key"
mdb_instance dbg
mdb_install_db
dbg_opts=(--plugin-maturity=experimental --plugin-load-add=debug_key_management --aria-encrypt-tables=ON)
mdb_start "${dbg_opts[@]}" --debug-key-management-version=1
create_tables
mdb_sql "FLUSH TABLES"
before=$(snapshot)

# While the server runs, rekey must refuse and change nothing.
mapfile -t paths < <(table_paths)
digest=$(files_digest)
if "$tool" rekey --debug-key-management 2 "${paths[@]}" 2>"$MDB_WORKDIR/refuse.err"; then
    fail "rekey ran while the server was running"
fi
say "rekey with the server running refused: $(head -n1 "$MDB_WORKDIR/refuse.err")"
[ "$digest" = "$(files_digest)" ] || fail "rekey changed files while refusing"
mdb_stop

check_report "$("$tool" verify --json --debug-key-management 1 "${paths[@]}")" 1 cbc \
    || fail "the server's tables do not verify at key version 1"
info_before=$("$tool" info --json "${paths[@]}")
"$tool" rekey --json --debug-key-management 2 --new-table-key "${paths[@]}" >"$MDB_WORKDIR/rekey1.json"
say "rekeyed to version 2 with new table keys"
check_report "$("$tool" verify --json --debug-key-management 2 "${paths[@]}")" 2 cbc \
    || fail "the rekeyed tables are not all at key version 2"
info_after=$("$tool" info --json "${paths[@]}")
[ "$info_before" != "$info_after" ] || fail "info shows the same crypt data after --new-table-key"

mdb_start "${dbg_opts[@]}" --debug-key-management-version=2
check_tables
after=$(snapshot)
[ "$before" = "$after" ] || fail "checksums or rows changed:\n$before\n---\n$after"
say "server reads the rekeyed tables: CHECK TABLE OK, CHECKSUM TABLE and rows unchanged"
# The server keeps writing to the rekeyed tables.
mdb_sql "UPDATE rt.t_trans SET note = 'after rekey' WHERE id % 97 = 1"
mdb_sql "FLUSH TABLES"
mdb_stop
"$tool" verify --debug-key-management 2 "${paths[@]}" >/dev/null || fail "verify after the server wrote again"

###############################################################################
say "scenario 2: file_key_management, key file A (CBC) -> encrypted key file B (CTR)"
mdb_instance fkm
keys_a=$MDB_WORKDIR/keys-a.txt
keys_b_plain=$MDB_WORKDIR/keys-b.txt
keys_b=$MDB_WORKDIR/keys-b.enc
secret=roundtrip-secret-b
cat >"$keys_a" <<'KEYS'
# key file A
1;000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
2;a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
KEYS
cat >"$keys_b_plain" <<'KEYS'
# key file B
1;c0ffee00c0ffee01c0ffee02c0ffee03c0ffee04c0ffee05
2;f5502320f8429037b8daef761b189d12
KEYS
openssl enc -aes-256-cbc -md sha1 -k "$secret" -in "$keys_b_plain" -out "$keys_b"
mdb_install_db
mdb_start --plugin-load-add=file_key_management --file-key-management-filename="$keys_a" \
    --file-key-management-encryption-algorithm=AES_CBC --aria-encrypt-tables=ON
create_tables
mdb_sql "FLUSH TABLES"
before=$(snapshot)
mdb_stop
mapfile -t paths < <(table_paths)

"$tool" rekey --json --key-file "$keys_a" --algorithm cbc \
    --to-key-file "$keys_b" --to-key-file-key "$secret" --to-algorithm ctr "${paths[@]}" >"$MDB_WORKDIR/rekey2.json"
check_report "$("$tool" verify --json --key-file "$keys_b" --key-file-key "$secret" "${paths[@]}")" 1 ctr \
    || fail "the moved tables do not verify with key file B as CTR"
if "$tool" verify --key-file "$keys_a" --algorithm cbc "${paths[@]}" >/dev/null 2>&1; then
    fail "the tables still verify with key file A"
fi

mdb_start --plugin-load-add=file_key_management --file-key-management-filename="$keys_b" \
    --file-key-management-filekey="$secret" --file-key-management-encryption-algorithm=AES_CTR \
    --aria-encrypt-tables=ON
check_tables
after=$(snapshot)
[ "$before" = "$after" ] || fail "checksums or rows changed:\n$before\n---\n$after"
say "server with key file B and AES_CTR reads the moved tables: CHECK TABLE OK, CHECKSUM TABLE and rows unchanged"
mdb_stop

say "live round trip passed"
