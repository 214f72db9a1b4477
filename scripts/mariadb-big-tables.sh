#!/usr/bin/env bash
# scripts/mariadb-big-tables.sh — encrypted Aria tables of a real size, written
# by a private MariaDB server (Debian 12 package; run as root; installs what it
# needs), for scripts/scaling.sh (FROM=OUT_DIR).
#
#   bash scripts/mariadb-big-tables.sh OUT_DIR [TABLES] [ROWS]
#
# Makes OUT_DIR/t0 .. t(TABLES-1) (default 8), each a transactional Aria
# table of ROWS rows (default 250000: a 50 MB .MAD and a 6 MB .MAI) with a
# primary key and a secondary index, encrypted with key 1 of
# tests/fixtures/cbc_trans_256/keys.txt (copied to OUT_DIR/keys.txt).
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,11p "$0" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$1
tables=${2:-8}
rows=${3:-250000}
keys=$ROOT/tests/fixtures/cbc_trans_256/keys.txt
# shellcheck source-path=SCRIPTDIR source=lib/mariadb.sh
. "$ROOT/scripts/lib/mariadb.sh"
mdb_cleanup_install_trap
[ "$(id -u)" = 0 ] || mdb_die "must run as root (mariadb-install-db/mariadbd --user=root)"
mdb_ensure_packages
mdb_workdir
mdb_instance big
mdb_install_db >/dev/null
mdb_start --plugin-load-add=file_key_management \
    --file-key-management-filename="$keys" --aria-encrypt-tables=ON
mdb_sql "CREATE DATABASE d"
for ((i = 0; i < tables; i++)); do
    mdb_sql "CREATE TABLE t$i (id INT PRIMARY KEY, pad VARCHAR(200), v BIGINT, KEY (v))
             ENGINE=Aria TRANSACTIONAL=1" -D d
    mdb_sql "INSERT INTO t$i SELECT seq, REPEAT(MD5(seq), 5), seq * 7 FROM seq_1_to_$rows" -D d
done
mdb_stop
mkdir -p "$out"
cp "$keys" "$out/keys.txt"
for ((i = 0; i < tables; i++)); do
    cp "$MDB_DATADIR/d/t$i.MAI" "$MDB_DATADIR/d/t$i.MAD" "$out/"
done
du -sh "$out"
