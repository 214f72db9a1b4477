#!/usr/bin/env bash
# `aria-crypt` with a real MariaDB server (Debian's mariadb-server 10.11) in
# the layouts operators use (issue 11):
#
#   1. The server runs with --aria-log-dir-path outside the data directory
#      (the data directory's own aria_log_control is a stale one nobody
#      locks): rekey refuses every table of the data directory, naming what
#      it detected once. A server killed with tables not closed cleanly:
#      info/verify/audit name them, rekey refuses them until the server has
#      run its recovery (or --force).
#   2. A database directory moved to another disk and linked back: rekey
#      of the data directory re-keys its tables too, and the server reads
#      every table afterwards.
#   3. A crash between the two renames of a rekey, then the server started
#      first: it finds no table (never half of one) and changes nothing;
#      `rekey --recover` finishes and the server reads the table.
#
# Each scenario ends with the server's CHECK TABLE ... EXTENDED and
# unchanged CHECKSUM TABLE and rows. Runs as root on Debian 12; installs
# what it needs; leaves nothing running.
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

say() { printf '[deployments] %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

mdb_instance dep
arialog=$MDB_WORKDIR/aria-logs
ext=$MDB_WORKDIR/ext-disk
mkdir -p "$arialog" "$ext"
mdb_install_db
dbg=(--plugin-maturity=experimental --plugin-load-add=debug_key_management --aria-encrypt-tables=ON)
start() { # VERSION
    mdb_start "${dbg[@]}" --debug-key-management-version="$1" --aria-log-dir-path="$arialog"
}

tables=(d1.t1 d1.t2 d1.t3 d2.t4 d2.t5)
start 1
mdb_sql "CREATE DATABASE d1; CREATE DATABASE d2"
for t in "${tables[@]}"; do
    mdb_sql "CREATE TABLE $t (id INT PRIMARY KEY, v VARCHAR(100), KEY (v)) ENGINE=Aria ROW_FORMAT=PAGE TRANSACTIONAL=1"
    mdb_sql "INSERT INTO $t SELECT seq, CONCAT('$t-', seq, '-', MD5(seq)) FROM seq_1_to_3000" -D d1
done
mdb_sql "FLUSH TABLES"
[ -e "$arialog/aria_log_control" ] || fail "the server did not put its control file in $arialog"

snapshot() {
    local t
    for t in "${tables[@]}"; do
        printf '%s %s %s\n' "$t" \
            "$(mdb_sql "CHECKSUM TABLE $t" | awk '{print $2}')" \
            "$(mdb_sql "SELECT * FROM $t ORDER BY id" | md5sum | cut -d' ' -f1)"
    done
}
check_tables() {
    local t out
    for t in "${tables[@]}"; do
        out=$(mdb_sql "CHECK TABLE $t EXTENDED")
        printf '%s' "$out" | tail -n1 | grep -q $'\tOK$' || fail "CHECK TABLE $t: $out"
    done
    say "CHECK TABLE EXTENDED: every table OK"
}
files_digest() { (cd "$MDB_DATADIR" && find -L d1 d2 -name '*.MA[ID]' -print0 | sort -z | xargs -0 md5sum); }
before=$(snapshot)

###############################################################################
say "case 1: server running with its Aria log in $arialog"
# A client keeps some tables open; the others are closed.
mdb_sql "SELECT COUNT(*) FROM d1.t1" >/dev/null
digest=$(files_digest)
rc=0
"$tool" rekey --debug-key-management 2 "$MDB_DATADIR/d1" "$MDB_DATADIR/d2" \
    >"$MDB_WORKDIR/c1.out" 2>"$MDB_WORKDIR/c1.err" || rc=$?
cat "$MDB_WORKDIR/c1.err" >&2
((rc == 1)) || fail "rekey with the server running exited $rc, not 1"
[ "$(grep -c 'a MariaDB server is running' "$MDB_WORKDIR/c1.err")" = 1 ] \
    || fail "the refusal is not printed exactly once"
grep -q 'InnoDB' "$MDB_WORKDIR/c1.err" || fail "InnoDB's lock not named"
grep -q "mariadbd (pid $MDB_PID)" "$MDB_WORKDIR/c1.err" || fail "the server process not named"
[ "$(grep -c '^REFUSED' "$MDB_WORKDIR/c1.out")" = "${#tables[@]}" ] \
    || fail "not every table refused: $(cat "$MDB_WORKDIR/c1.out")"
[ "$digest" = "$(files_digest)" ] || fail "rekey changed files while the server ran"
"$tool" rekey --debug-key-management 2 --aria-log-dir "$arialog" "$MDB_DATADIR/d1/t2" 2>"$MDB_WORKDIR/c1b.err" \
    && fail "rekey --aria-log-dir ran while the server was running"
grep -q "holds the lock on the Aria control file $arialog/aria_log_control" "$MDB_WORKDIR/c1b.err" \
    || fail "the Aria log directory's lock not named: $(cat "$MDB_WORKDIR/c1b.err")"
say "refused every table, one message: $(head -c 400 "$MDB_WORKDIR/c1.err")"

say "case 1: a server killed with a table changed and not closed"
mdb_sql "INSERT INTO d1.t3 VALUES (100001, 'written before the crash')"
kill -KILL "$MDB_PID"
mdb_stop_pid "$MDB_PID" 5
MDB_PID=
for cmd in info verify audit; do
    case $cmd in
    info) out=$("$tool" info "$MDB_DATADIR/d1/t3" 2>&1) ;;
    verify) out=$("$tool" verify --debug-key-management 1 "$MDB_DATADIR/d1/t3" 2>&1 || true) ;;
    audit) out=$("$tool" audit "$MDB_DATADIR" 2>&1 || true) ;;
    esac
    printf '%s' "$out" | grep -q 'not closed cleanly' || fail "$cmd does not name d1/t3 as not closed cleanly: $out"
done
digest=$(files_digest)
"$tool" rekey --debug-key-management 2 "$MDB_DATADIR/d1/t3" 2>"$MDB_WORKDIR/c1c.err" \
    && fail "rekey of a table not closed cleanly went ahead"
grep -q 'recovery' "$MDB_WORKDIR/c1c.err" || fail "no word of recovery: $(cat "$MDB_WORKDIR/c1c.err")"
[ "$digest" = "$(files_digest)" ] || fail "the refused rekey changed files"
say "refused: $(cat "$MDB_WORKDIR/c1c.err")"
# The server's recovery closes it cleanly.
start 1
mdb_sql "CHECK TABLE d1.t3" >/dev/null
mdb_sql "DELETE FROM d1.t3 WHERE id = 100001"
mdb_sql "FLUSH TABLES"
before=$(snapshot)
mdb_stop

###############################################################################
say "case 2: database d2 moved to another disk and linked back"
mv "$MDB_DATADIR/d2" "$ext/d2"
ln -s "$ext/d2" "$MDB_DATADIR/d2"
"$tool" rekey --json --debug-key-management 2 "$MDB_DATADIR" >"$MDB_WORKDIR/c2.json"
python3 - "$MDB_WORKDIR/c2.json" <<'PY' || fail "rekey of the data directory missed tables"
import json, sys
doc = json.load(open(sys.argv[1]))
rekeyed = sorted(t["table"].split("/")[-2] + "." + t["table"].split("/")[-1]
                 for t in doc["tables"] if t["action"] == "rekeyed")
print("[deployments]   rekeyed:", rekeyed, file=sys.stderr)
want = ["d1.t1", "d1.t2", "d1.t3", "d2.t4", "d2.t5"]
sys.exit(0 if doc["exit_code"] == 0 and all(w in rekeyed for w in want) else 1)
PY
"$tool" verify --debug-key-management 2 "$ext/d2" >/dev/null || fail "the linked database's tables are not at version 2"
start 2
check_tables
[ "$before" = "$(snapshot)" ] || fail "checksums or rows changed after the rekey through the link"
mdb_stop

###############################################################################
say "case 3: a crash between the renames, then the server starts first"
rc=0
ARIA_CRYPT_FAILPOINT=renamed:1 "$tool" rekey --debug-key-management 3 --new-table-key "$MDB_DATADIR/d1/t1" \
    2>"$MDB_WORKDIR/c3.err" || rc=$?
((rc > 128)) || fail "the rekey did not stop at the failpoint (exit $rc): $(cat "$MDB_WORKDIR/c3.err")"
[ -e "$MDB_DATADIR/d1/t1.aria-crypt-journal" ] || fail "no journal after the crash"
[ ! -e "$MDB_DATADIR/d1/t1.MAI" ] || fail "the index file is in place while the data file was replaced"
start 3
if out=$(mdb_sql "SELECT COUNT(*) FROM d1.t1" 2>&1); then
    fail "the server read a table that is being replaced: $out"
fi
say "the server finds no table meanwhile: $out"
mdb_stop
[ ! -e "$MDB_DATADIR/d1/t1.MAI" ] || fail "the server created an index file"
"$tool" rekey --recover "$MDB_DATADIR/d1/t1" | tee "$MDB_WORKDIR/c3.out" >&2
grep -q 'completed the interrupted rekey' "$MDB_WORKDIR/c3.out" || fail "recover did not complete"
"$tool" verify --debug-key-management 3 "$MDB_DATADIR/d1/t1" >/dev/null || fail "d1.t1 not at version 3"
start 3
check_tables
[ "$before" = "$(snapshot)" ] || fail "checksums or rows changed after the recovery"
mdb_stop
ls "$MDB_DATADIR/d1" | grep -q aria-crypt && fail "leftovers: $(ls "$MDB_DATADIR/d1")"

say "deployments passed"
