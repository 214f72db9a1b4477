#!/usr/bin/env bash
# scripts/mariadb-fixtures.sh — regenerate tests/fixtures/ with real MariaDB
# servers (Debian 12 package, 10.11). Run as root; installs what it needs.
#
#   bash scripts/mariadb-fixtures.sh            # rebuild every case
#   MDB_KEEP_WORKDIR=1 bash scripts/mariadb-fixtures.sh   # keep the servers' dirs
#
# Everything is built in a private work directory first; tests/fixtures/ is
# only replaced (completely) when every case succeeded. Private servers only
# (see scripts/lib/mariadb.sh): no system service is started or touched.
#
# Deterministic: table contents, key files (keys.enc uses a fixed salt, see
# make_enc_keyfile) and file names. Server-chosen values (crypt block
# space/scheme_iv, LSNs, random LSNs of non-transactional pages) differ per run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FIX=$ROOT/tests/fixtures
# shellcheck source-path=SCRIPTDIR source=lib/mariadb.sh
. "$ROOT/scripts/lib/mariadb.sh"
mdb_cleanup_install_trap

T_START=$SECONDS
log() { printf '\n=== %s\n' "$*" >&2; }
die() { printf 'FATAL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (mariadb-install-db/mariadbd --user=root)"
mdb_ensure_packages
if ! command -v openssl >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y openssl >&2 ||
        { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y openssl >&2; }
fi
for c in openssl od dd cmp; do command -v "$c" >/dev/null || die "missing $c"; done

mdb_workdir
WORK=$MDB_WORKDIR
STAGE=$WORK/fixtures
mkdir -p "$STAGE"
SERVER_VERSION=

# ---------------------------------------------------------------------------
# Fixed, test-only key material (never use these anywhere real).
K1_256=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
K2_256=a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
K7_128=f5502320f8429037b8daef761b189d12
K1_128=f5502320f8429037b8daef761b189d12
K1_192=8899aabbccddeeff0011223344556677c0c1c2c3c4c5c6c7
FILEKEY_SECRET=aria-fixture-filekey-secret

# keys 1 (256-bit), 2 (256-bit), 7 (128-bit, written in upper case with a
# trailing comment) with comments and a blank line: all accepted by the server.
write_keys_127() {
    cat >"$1" <<EOF
# test-only key file for mariadb-aria-crypt fixtures (file_key_management)
# format: <key id>;<hex key>

1;$K1_256
2;$K2_256
   # indented comment
7;${K7_128^^} # 128-bit key, upper-case hex, trailing comment
EOF
}
write_keys_1only() { # $1 file, $2 hex key 1
    printf '# test-only key file: key id 1 only (%d-bit)\n1;%s\n' $((${#2} * 4)) "$2" >"$1"
}

# make_enc_keyfile PLAIN OUT SECRET SALTHEX
# Writes exactly what `openssl enc -aes-256-cbc -md sha1 -k SECRET -in PLAIN`
# writes (a "Salted__" header, the 8-byte salt, AES-256-CBC/PKCS#7 with
# EVP_BytesToKey(SHA-1, 1 round)), but with a fixed salt so the committed file
# is reproducible. (`-S` cannot be used directly: OpenSSL 3 then omits the
# "Salted__" header, which the server rejects.) Checked by decrypting it back
# with plain `openssl enc -d -aes-256-cbc -md sha1 -k SECRET`.
make_enc_keyfile() {
    local plain=$1 out=$2 secret=$3 salt=$4 kv key iv
    kv=$(openssl enc -aes-256-cbc -md sha1 -k "$secret" -S "$salt" -P 2>/dev/null)
    key=$(printf '%s\n' "$kv" | sed -n 's/^key *= *//p')
    iv=$(printf '%s\n' "$kv" | sed -n 's/^iv *= *//p')
    if [ ${#key} != 64 ] || [ ${#iv} != 32 ]; then die "openssl -P gave no key/iv"; fi
    {
        printf 'Salted__'
        # shellcheck disable=SC2059
        printf "$(printf '%s' "$salt" | sed 's/../\\x&/g')"
        openssl enc -aes-256-cbc -K "$key" -iv "$iv" -in "$plain"
    } >"$out"
    openssl enc -d -aes-256-cbc -md sha1 -k "$secret" -in "$out" 2>/dev/null | cmp -s - "$plain" ||
        die "$out does not decrypt back with openssl enc -d -md sha1 -k <secret>"
}

# ---------------------------------------------------------------------------
# Server helpers.

# new_server NAME [--aria-block-size=N] OPTS... : fresh instance + install-db
# (with the block size, if given first) + start with all OPTS
new_server() {
    local name=$1 idb=()
    shift
    case ${1:-} in --aria-block-size=*) idb=("$1") ;; esac
    log "server $name: $*"
    mdb_instance "$name"
    mdb_install_db "${idb[@]}"
    mdb_start "$@"
    SERVER_VERSION=$(mdb_server_version)
}

# fkm_opts KEYFILE ALG [FILEKEY] : file_key_management + aria_encrypt_tables options
fkm_opts() {
    FKM=(--plugin-load-add=file_key_management
        "--file-key-management-filename=$1"
        "--file-key-management-encryption-algorithm=$2"
        --aria-encrypt-tables=ON)
    if [ $# -ge 3 ]; then FKM+=("--file-key-management-filekey=$3"); fi
}

# Stop the server, throw away the Aria log + control file (the data files of
# all Aria tables stay) so that the next start begins a fresh, small log.
reset_aria_log() {
    mdb_stop
    rm -f "$MDB_DATADIR"/aria_log.* "$MDB_DATADIR"/aria_log_control
}

# Convert every Aria system table (mysql.*, sys.*) to InnoDB, so that the
# server can later run with a different aria_block_size (Aria refuses tables
# of another block size, and mariadb-install-db cannot create the system
# tables with aria_block_size=4096: "Specified key was too long").
system_tables_to_innodb() {
    local t
    for t in $(mdb_sql "SELECT CONCAT(table_schema,'.',table_name) FROM information_schema.tables
                        WHERE table_schema IN ('mysql','sys') AND engine='Aria' AND table_type='BASE TABLE'"); do
        mdb_sql "ALTER TABLE ${t%%.*}.\`${t#*.}\` ENGINE=InnoDB"
    done
    [ "$(mdb_sql "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema IN ('mysql','sys') AND engine='Aria'")" = 0 ] ||
        die "Aria system tables left"
}

# ---------------------------------------------------------------------------
# Table contents. Every row carries a marker ARIA-MARKER-<case>-<table>-NNNNNN.

# Expressions over `seq` (sequence engine) for the standard table.
std_select() { # CASE TABLE
    printf "seq, CONCAT('name_', LPAD(seq,6,'0')), CONCAT('ARIA-MARKER-%s-%s-', LPAD(seq,6,'0')), MD5(CONCAT('%s/%s/', seq)), RPAD(CONCAT('note-', seq, '-'), 60, 'abcdefghij')" \
        "$1" "$2" "$1" "$2"
}

std_ddl() { # [TEMPORARY] TABLE TRANS [ROW_FORMAT]
    local tmp=
    if [ "$1" = TEMPORARY ]; then tmp="TEMPORARY "; shift; fi
    printf "CREATE %sTABLE %s (
  id INT NOT NULL,
  name VARCHAR(32) NOT NULL,
  marker VARCHAR(80) NOT NULL,
  h CHAR(32) NOT NULL,
  note VARCHAR(100) NOT NULL,
  PRIMARY KEY (id),
  KEY k_h (h)
) ENGINE=Aria ROW_FORMAT=%s TRANSACTIONAL=%s DEFAULT CHARSET=latin1;\n" "$tmp" "$1" "${3:-PAGE}" "$2"
}

# std_fill_sql CASE TABLE N: ids 1..N/2 in one bulk INSERT..SELECT into the
# empty table (not logged: on transactional tables these pages keep LSN 0),
# ids N/2+1..N in 50-row statements, both in pseudo-random id order (random h
# order -> index page splits with varied page_used); then, among ids > N/2
# only (so that the bulk-loaded pages stay untouched), a same-length UPDATE of
# ids with id%10=3 and a DELETE of ids with id%50=7.
std_fill_sql() {
    local c=$1 t=$2 n=$3 half=$(($3 / 2)) a b sel
    sel=$(std_select "$c" "$t")
    printf 'INSERT INTO %s SELECT %s FROM seq_1_to_%d ORDER BY MD5(seq);\n' "$t" "$sel" "$half"
    for ((a = half + 1; a <= n; a += 50)); do
        b=$((a + 49 > n ? n : a + 49))
        printf 'INSERT INTO %s SELECT %s FROM seq_%d_to_%d ORDER BY MD5(seq);\n' "$t" "$sel" "$a" "$b"
    done
    printf "UPDATE %s SET note = RPAD(CONCAT('upd-', id, '-'), 60, 'klmnopqrst') WHERE id > %d AND id %% 10 = 3;\n" "$t" "$half"
    printf 'DELETE FROM %s WHERE id > %d AND id %% 50 = 7;\n' "$t" "$half"
}
# markers that std_fill_sql leaves in the table
std_rows() { # CASE TABLE N
    local i
    for ((i = 1; i <= $3; i++)); do
        ((i > $3 / 2 && i % 50 == 7)) || printf 'ARIA-MARKER-%s-%s-%06d\n' "$1" "$2" "$i"
    done
}

# make_std_table DB CASE TABLE N TRANS [ROW_FORMAT]
make_std_table() {
    local db=$1 c=$2 t=$3 n=$4 trans=$5 rf=${6:-PAGE}
    mdb_sql "CREATE DATABASE IF NOT EXISTS $db"
    { std_ddl "$t" "$trans" "$rf"; std_fill_sql "$c" "$t" "$n"; } | mdb_client -D "$db"
}

# save_stats DB TABLE DESTPREFIX : <prefix>.checksum / <prefix>.count
save_stats() {
    mdb_sql "CHECKSUM TABLE $1.$2" | awk '{print $2}' >"$3.checksum"
    mdb_sql "SELECT COUNT(*) FROM $1.$2" >"$3.count"
    if [ ! -s "$3.checksum" ] || [ ! -s "$3.count" ]; then die "no checksum/count for $1.$2"; fi
}

# copy_table SRCDIR NAME DESTDIR [NEWNAME]: byte-exact copy of NAME.MAI/.MAD
copy_table() {
    local new=${4:-$2}
    cp --preserve=timestamps "$1/$2.MAI" "$3/$new.MAI"
    cp --preserve=timestamps "$1/$2.MAD" "$3/$new.MAD"
}

# ---------------------------------------------------------------------------
# On-disk checks that need no key: header fields and the key versions stamped
# on every written page (spec §2, §5).

be_int() { # FILE OFFSET LEN -> unsigned big-endian integer
    local v=0 b
    for b in $(od -An -v -tu1 -j "$2" -N "$3" "$1"); do v=$((v * 256 + b)); done
    echo "$v"
}
le_int() { # FILE OFFSET LEN -> unsigned little-endian integer
    local v=0 b m=1
    for b in $(od -An -v -tu1 -j "$2" -N "$3" "$1"); do v=$((v + b * m)); m=$((m * 256)); done
    echo "$v"
}
# mai_info FILE -> sets H_OPTIONS H_KEYSTART H_ENCRYPTED H_BS H_TRANS H_DFT
mai_info() {
    local f=$1 bp
    [ "$(od -An -tx1 -N4 "$f" | tr -d ' ')" = fefe0903 ] || die "$f: bad magic"
    H_OPTIONS=$(be_int "$f" 4 2)
    bp=$(be_int "$f" 12 2)
    H_KEYSTART=$(be_int "$f" $((bp + 16)) 8)
    H_ENCRYPTED=$(($(be_int "$f" $((bp + 90)) 2) & 1))
    H_BS=$(be_int "$f" $((bp + 100)) 2)
    H_TRANS=$(be_int "$f" $((bp + 106)) 1)
    H_DFT=$(be_int "$f" 22 1)
}
page_is_zero() { # FILE PAGE BS
    [ "$(dd if="$1" bs="$3" skip="$2" count=1 2>/dev/null | tr -d '\0' | head -c1 | wc -c)" = 0 ]
}
# table_versions DIR NAME -> sorted unique key versions of all written pages
# of NAME.MAD (non-bitmap) and NAME.MAI (index pages)
table_versions() {
    local mai=$1/$2.MAI mad=$1/$2.MAD bs n pages covered type off kh
    mai_info "$mai"
    bs=$H_BS
    covered=$((((bs - 4) / 6) * 16 + 1))
    {
        pages=$(($(stat -c %s "$mad") / bs))
        for ((n = 0; n < pages; n++)); do
            ((n % covered == 0)) && continue
            page_is_zero "$mad" "$n" "$bs" && continue
            type=$(($(be_int "$mad" $((n * bs + 7)) 1) & 7))
            off=$((type == 3 ? 8 : 12))
            le_int "$mad" $((n * bs + off)) 4
        done
        kh=$((H_TRANS ? 21 : 15))
        pages=$(($(stat -c %s "$mai") / bs))
        for ((n = H_KEYSTART / bs; n < pages; n++)); do
            page_is_zero "$mai" "$n" "$bs" && continue
            le_int "$mai" $((n * bs + kh - 8)) 4
        done
    } | sort -nu | paste -sd, -
}

# check_table DIR NAME BS TRANS TEMP EXPECTED_VERSIONS(csv)
check_table() {
    local d=$1 t=$2 v
    mai_info "$d/$t.MAI"
    [ "$H_ENCRYPTED" = 1 ] || die "$d/$t: not encrypted"
    [ "$H_DFT" = 3 ] || die "$d/$t: not a PAGE (block record) table"
    [ "$H_BS" = "$3" ] || die "$d/$t: block size $H_BS, expected $3"
    [ "$H_TRANS" = "$4" ] || die "$d/$t: born_transactional $H_TRANS, expected $4"
    [ $((H_OPTIONS & 16 ? 1 : 0)) = "$5" ] || die "$d/$t: temporary bit $((H_OPTIONS & 16)), expected $5"
    v=$(table_versions "$d" "$t")
    [ "$v" = "$6" ] || die "$d/$t: pages carry key versions [$v], expected [$6]"
    printf '  %s/%s: encrypted, bs %s, transactional %s, temporary %s, key versions [%s]\n' \
        "$(basename "$d")" "$t" "$H_BS" "$H_TRANS" "$5" "$v" >&2
}

# ---------------------------------------------------------------------------
# case.json

json_str() { # value or null
    if [ "$1" = null ]; then printf 'null'; else printf '"%s"' "$1"; fi
}
# write_case DIR DESC ALG BS TRANS(true/false) TEMP KEYID KEYFILE KEYFILEKEY DEBUG VERSIONS(csv) TABLES(space-separated)
write_case() {
    local d=$1 tables='' t
    for t in ${12}; do tables="$tables${tables:+, }\"$t\""; done
    cat >"$d/case.json" <<EOF
{
  "description": "$2",
  "algorithm": "$3",
  "block_size": $4,
  "transactional": $5,
  "temporary": $6,
  "key_id": $7,
  "key_file": $(json_str "$8"),
  "key_file_key": $(json_str "$9"),
  "debug_key_management": ${10},
  "expected_key_versions": [${11//,/, }],
  "tables": [$tables],
  "server": "$SERVER_VERSION"
}
EOF
}

# ---------------------------------------------------------------------------
# Generic case: one server, standard table(s), stopped before copying.
#
# std_case CASE DESC ALG TRANS N KEYFILE_SRC KEY_FILE_NAME KEY_FILE_KEY [SERVER-OPTS...]
# (the server must already run; this creates DB CASE, table t1, stats)
std_case_create() { # CASE TRANS N
    make_std_table "$1" "$1" t1 "$3" "$2"
    mkdir -p "$STAGE/$1"
    save_stats "$1" t1 "$STAGE/$1/t1"
    std_rows "$1" t1 "$3" >"$STAGE/$1/t1.rows"
}
std_case_collect() { # CASE -- after the server stopped
    copy_table "$MDB_DATADIR/$1" t1 "$STAGE/$1"
}

BS=8192

# ---- server A: CBC, keys 1/2/7 (256-bit key 1): cbc_trans_256, cbc_nontrans_256, blob, tmp_key2 is separate
KEYS_127=$WORK/keys_127.txt
write_keys_127 "$KEYS_127"

fkm_opts "$KEYS_127" AES_CBC
new_server cbc "${FKM[@]}"
std_case_create cbc_trans_256 1 600
std_case_create cbc_nontrans_256 0 600

# blob: LONGBLOB values of 20..60 KB; each blob starts with its own marker, so
# the marker sits at the start of the blob's first full (type 3) page.
mkdir -p "$STAGE/blob"
mdb_sql "CREATE DATABASE blob_db"
{
    cat <<'EOF'
CREATE TABLE t1 (
  id INT NOT NULL PRIMARY KEY,
  marker VARCHAR(80) NOT NULL,
  b LONGBLOB NOT NULL,
  t LONGTEXT NOT NULL
) ENGINE=Aria ROW_FORMAT=PAGE TRANSACTIONAL=1 DEFAULT CHARSET=latin1;
EOF
    for i in 1 2 3 4 5; do
        size=$((20000 + (i - 1) * 10000))
        printf "INSERT INTO t1 VALUES (%d, CONCAT('ARIA-MARKER-blob-t1-', LPAD(%d,6,'0')), LEFT(CONCAT('ARIA-MARKER-blob-t1-BLOB-', LPAD(%d,6,'0'), '|', REPEAT(CONCAT('blob-filler-', %d, '-', SHA1(%d), '|'), %d)), %d), CONCAT('ARIA-MARKER-blob-t1-TEXT-', LPAD(%d,6,'0'), ' small text value'));\n" \
            "$i" "$i" "$i" "$i" "$i" $((size / 50 + 2)) "$size" "$i"
    done
} | mdb_client -D blob_db
save_stats blob_db t1 "$STAGE/blob/t1"
for i in 1 2 3 4 5; do
    printf 'ARIA-MARKER-blob-t1-%06d\nARIA-MARKER-blob-t1-BLOB-%06d\nARIA-MARKER-blob-t1-TEXT-%06d\n' "$i" "$i" "$i"
done >"$STAGE/blob/t1.rows"
mdb_stop
std_case_collect cbc_trans_256
std_case_collect cbc_nontrans_256
copy_table "$MDB_DATADIR/blob_db" t1 "$STAGE/blob"
for c in cbc_trans_256 cbc_nontrans_256 blob; do cp "$KEYS_127" "$STAGE/$c/keys.txt"; done
write_case "$STAGE/cbc_trans_256" "AES-CBC, TRANSACTIONAL=1 PAGE table with a primary key and a secondary index (several data and index pages), 256-bit key 1" \
    cbc "$BS" true false 1 keys.txt null null 1 t1
write_case "$STAGE/cbc_nontrans_256" "AES-CBC, TRANSACTIONAL=0 PAGE table (random page LSNs, 15-byte index page header), 256-bit key 1" \
    cbc "$BS" false false 1 keys.txt null null 1 t1
write_case "$STAGE/blob" "AES-CBC, TRANSACTIONAL=1 PAGE table with LONGBLOB values of 20-60 KB (full/blob pages of type 3) and small LONGTEXT values" \
    cbc "$BS" true false 1 keys.txt null null 1 t1
check_table "$STAGE/cbc_trans_256" t1 "$BS" 1 0 1
check_table "$STAGE/cbc_nontrans_256" t1 "$BS" 0 0 1
check_table "$STAGE/blob" t1 "$BS" 1 0 1

# ---- server B: CTR
fkm_opts "$KEYS_127" AES_CTR
new_server ctr "${FKM[@]}"
std_case_create ctr_trans_256 1 600
std_case_create ctr_nontrans_256 0 600
mdb_stop
for c in ctr_trans_256 ctr_nontrans_256; do
    std_case_collect "$c"
    cp "$KEYS_127" "$STAGE/$c/keys.txt"
done
write_case "$STAGE/ctr_trans_256" "AES-CTR (file_key_management_encryption_algorithm=AES_CTR), TRANSACTIONAL=1 PAGE table with a secondary index, 256-bit key 1" \
    ctr "$BS" true false 1 keys.txt null null 1 t1
write_case "$STAGE/ctr_nontrans_256" "AES-CTR, TRANSACTIONAL=0 PAGE table with a secondary index, 256-bit key 1" \
    ctr "$BS" false false 1 keys.txt null null 1 t1
check_table "$STAGE/ctr_trans_256" t1 "$BS" 1 0 1
check_table "$STAGE/ctr_nontrans_256" t1 "$BS" 0 0 1

# ---- servers C/D: 128- and 192-bit key 1
for bits in 128 192; do
    c=cbc_key$bits
    kf=$WORK/keys_$bits.txt
    if [ "$bits" = 128 ]; then write_keys_1only "$kf" "$K1_128"; else write_keys_1only "$kf" "$K1_192"; fi
    fkm_opts "$kf" AES_CBC
    new_server "key$bits" "${FKM[@]}"
    std_case_create "$c" 1 400
    mdb_stop
    std_case_collect "$c"
    cp "$kf" "$STAGE/$c/keys.txt"
    write_case "$STAGE/$c" "AES-CBC, TRANSACTIONAL=1 PAGE table, $bits-bit key 1 (the per-table local key is still AES-128)" \
        cbc "$BS" true false 1 keys.txt null null 1 t1
    check_table "$STAGE/$c" t1 "$BS" 1 0 1
done

# ---- servers E/F: encrypted key file (secret given directly / FILE:)
for c in enc_keyfile_secret enc_keyfile_file; do
    d=$STAGE/$c
    mkdir -p "$d"
    if [ "$c" = enc_keyfile_secret ]; then
        make_enc_keyfile "$KEYS_127" "$d/keys.enc" "$FILEKEY_SECRET" 0102030405060708
        fkk=$FILEKEY_SECRET
        srvkey=$FILEKEY_SECRET
    else
        make_enc_keyfile "$KEYS_127" "$d/keys.enc" "$FILEKEY_SECRET" 1112131415161718
        printf '%s\n' "$FILEKEY_SECRET" >"$d/filekey.txt"
        fkk=FILE:filekey.txt
        cp "$d/filekey.txt" "$WORK/filekey.txt"
        srvkey=FILE:$WORK/filekey.txt
    fi
    cp "$d/keys.enc" "$WORK/$c.keys.enc"
    fkm_opts "$WORK/$c.keys.enc" AES_CBC "$srvkey"
    new_server "$c" "${FKM[@]}"
    std_case_create "$c" 1 400
    mdb_stop
    std_case_collect "$c"
    write_case "$d" "AES-CBC, TRANSACTIONAL=1 PAGE table; keys from an openssl-encrypted key file (aes-256-cbc, -md sha1), file_key_management_filekey=$fkk" \
        cbc "$BS" true false 1 keys.enc "$fkk" null 1 t1
    check_table "$d" t1 "$BS" 1 0 1
done

# ---- servers G/H: block sizes 16384 and 32768
for bs in 16384 32768; do
    c=bs$bs
    fkm_opts "$KEYS_127" AES_CBC
    new_server "$c" --aria-block-size=$bs "${FKM[@]}"
    [ "$(mdb_sql 'SELECT @@aria_block_size')" = "$bs" ] || die "aria_block_size not $bs"
    std_case_create "$c" 1 $((bs == 16384 ? 1000 : 1200))
    mdb_stop
    std_case_collect "$c"
    cp "$KEYS_127" "$STAGE/$c/keys.txt"
    write_case "$STAGE/$c" "AES-CBC, TRANSACTIONAL=1 PAGE table with a secondary index, aria_block_size=$bs, 256-bit key 1" \
        cbc "$bs" true false 1 keys.txt null null 1 t1
    check_table "$STAGE/$c" t1 "$bs" 1 0 1
done

# ---- server I: block size 4096. mariadb-install-db cannot create the Aria
# system tables with 4096-byte blocks, so: install with 8192, move the system
# tables to InnoDB, stop, drop the Aria log + control file (they record the
# block size), restart with aria_block_size=4096.
c=bs4096
log "server $c (install with 8192, system tables -> InnoDB, restart with 4096)"
mdb_instance "$c"
mdb_install_db
mdb_start
system_tables_to_innodb
reset_aria_log
fkm_opts "$KEYS_127" AES_CBC
mdb_start "${FKM[@]}" --aria-block-size=4096
SERVER_VERSION=$(mdb_server_version)
[ "$(mdb_sql 'SELECT @@aria_block_size')" = 4096 ] || die "aria_block_size not 4096"
std_case_create "$c" 1 600
mdb_stop
std_case_collect "$c"
cp "$KEYS_127" "$STAGE/$c/keys.txt"
write_case "$STAGE/$c" "AES-CBC, TRANSACTIONAL=1 PAGE table with a secondary index, aria_block_size=4096 (system tables moved to InnoDB first), 256-bit key 1" \
    cbc 4096 true false 1 keys.txt null null 1 t1
check_table "$STAGE/$c" t1 4096 1 0 1

# ---- servers J/K: user temporary tables (key id 2 when it exists, else 1).
# The table lives in the server's tmpdir only while its session is open, and
# its pages reach the file only when the page cache evicts them. With a
# 128 KiB Aria page cache (at most 16 pages of 8 KiB, shared with everything
# else), rows inserted in increasing id order (data pages filled one after the
# other and never touched again) and 50 rows per statement whose random MD5
# keys touch most pages of the secondary index (which alone outgrows the
# cache), the data pages holding the first TMP_LISTED rows (about 10 of 32 data
# pages) have been evicted, i.e. encrypted and written, long before the copy is
# taken; only those markers go into tmp1.rows (a throw-away decryption of the
# copies found all but the last ~100 rows on disk, so the margin is large). A
# final full table scan also pushes the index pages out (see tmp_case). The
# copy is taken
# while the session is alive and idle (aria_checkpoint_interval=0: no
# background flushing).
TMP_ROWS=1600
TMP_LISTED=500
tmp_case() { # CASE KEYFILE
    local c=$1 kf=$2 d=$STAGE/$1 sel f base a b
    mkdir -p "$d"
    fkm_opts "$kf" AES_CBC
    new_server "$c" "${FKM[@]}" --aria-pagecache-buffer-size=128K --aria-checkpoint-interval=0
    mdb_sql "CREATE DATABASE tmpdb"
    mdb_session_open
    mdb_session_run "USE tmpdb; $(std_ddl TEMPORARY tmp1 0)"
    sel=$(std_select "$c" tmp1)
    for ((a = 1; a <= TMP_ROWS; a += 50)); do
        b=$((a + 49))
        mdb_session_run "INSERT INTO tmp1 SELECT $sel FROM seq_${a}_to_${b} ORDER BY seq" >/dev/null
    done
    # A full scan of the data pages (more than the cache holds) pushes the
    # (untouched) index pages and most data pages out of the cache, so the
    # copy also holds the table's index pages.
    [ "$(mdb_session_run "SELECT COUNT(*) FROM tmp1 WHERE note <> ''")" = "$TMP_ROWS" ] || die "tmp1 row count"
    # exactly one temporary Aria table must exist in the tmpdir
    f=$(find "$MDB_TMPDIR" -maxdepth 1 -name '#sql*.MAI')
    [ "$(printf '%s\n' "$f" | grep -c .)" = 1 ] || die "expected one #sql*.MAI in $MDB_TMPDIR, got: $f"
    base=${f%.MAI}
    cp "$base.MAI" "$d/tmp1.MAI"
    cp "$base.MAD" "$d/tmp1.MAD"
    printf '  copied %s.{MAI,MAD} (%s + %s bytes) while the session was open\n' "$(basename "$base")" \
        "$(stat -c %s "$d/tmp1.MAI")" "$(stat -c %s "$d/tmp1.MAD")" >&2
    mdb_session_close
    mdb_stop
    [ ! -e "$base.MAI" ] || die "temporary table files not removed at session end"
    cp "$kf" "$d/keys.txt"
    for ((a = 1; a <= TMP_LISTED; a++)); do printf 'ARIA-MARKER-%s-tmp1-%06d\n' "$c" "$a"; done >"$d/tmp1.rows"
    check_table "$d" tmp1 "$BS" 0 1 1
}
tmp_case tmp_key2 "$KEYS_127"
write_case "$STAGE/tmp_key2" "CREATE TEMPORARY TABLE ... ENGINE=Aria ROW_FORMAT=PAGE (TRANSACTIONAL=0), AES-CBC, key file with keys 1, 2 and 7: the server uses key id 2; files copied while the session was open, so only pages evicted from the page cache are on disk (tmp1.rows lists rows certainly on disk)" \
    cbc "$BS" false true 2 keys.txt null null 1 tmp1
KEYS_1=$WORK/keys_1.txt
write_keys_1only "$KEYS_1" "$K1_256"
tmp_case tmp_key1 "$KEYS_1"
write_case "$STAGE/tmp_key1" "CREATE TEMPORARY TABLE ... ENGINE=Aria ROW_FORMAT=PAGE (TRANSACTIONAL=0), AES-CBC, key file with key 1 only: the server uses key id 1; files copied while the session was open, so only pages evicted from the page cache are on disk (tmp1.rows lists rows certainly on disk)" \
    cbc "$BS" false true 1 keys.txt null null 1 tmp1

# ---- server L: debug_key_management, pages with key versions 1, 2 and 3.
c=debug_versions
d=$STAGE/$c
mkdir -p "$d"
new_server "$c" --plugin-maturity=experimental --plugin-load-add=debug_key_management \
    --aria-encrypt-tables=ON --debug-key-management-version=1
mdb_sql "CREATE DATABASE $c"
sel=$(std_select "$c" t1)
{
    std_ddl t1 1
    # version 1: ids 1..400, flushed (FLUSH TABLES closes and writes the table)
    for ((a = 1; a <= 400; a += 50)); do
        printf 'INSERT INTO t1 SELECT %s FROM seq_%d_to_%d ORDER BY seq;\n' "$sel" "$a" $((a + 49))
    done
    printf 'FLUSH TABLES;\nSET GLOBAL debug_key_management_version=2;\n'
    # version 2: ids 401..800 (new data pages; the index pages are rewritten)
    for ((a = 401; a <= 800; a += 50)); do
        printf 'INSERT INTO t1 SELECT %s FROM seq_%d_to_%d ORDER BY seq;\n' "$sel" "$a" $((a + 49))
    done
    printf 'FLUSH TABLES;\nSET GLOBAL debug_key_management_version=3;\n'
    # version 3: same-length update of the last rows only
    printf "UPDATE t1 SET note = RPAD(CONCAT('upd-v3-', id, '-'), 60, 'klmnopqrst') WHERE id > 740;\n"
    printf 'FLUSH TABLES;\n'
} | mdb_client -D "$c"
[ "$(mdb_sql 'SELECT @@debug_key_management_version')" = 3 ] || die "debug_key_management_version not 3"
save_stats "$c" t1 "$d/t1"
std_rows_plain() { local i; for ((i = 1; i <= $3; i++)); do printf 'ARIA-MARKER-%s-%s-%06d\n' "$1" "$2" "$i"; done; }
std_rows_plain "$c" t1 800 >"$d/t1.rows"
mdb_stop
copy_table "$MDB_DATADIR/$c" t1 "$d"
write_case "$d" "debug_key_management plugin (key id 1 only, key for version v = BE32(v) + 12 zero bytes, AES-CBC), no key file: rows 1-400 written with key version 1, rows 401-800 with version 2, rows 741-800 then updated with version 3; the table's pages carry versions 1, 2 and 3" \
    cbc "$BS" true false 1 null null 3 1,2,3 t1
check_table "$d" t1 "$BS" 1 0 1,2,3

# ---- server M: a small data-directory-like tree.
c=datadir
d=$STAGE/$c
log "server $c (fresh Aria log, one database)"
mdb_instance "$c"
mdb_install_db
mdb_start
reset_aria_log # keep aria_log.00000001 small: only this case's statements
fkm_opts "$KEYS_127" AES_CBC
mdb_start "${FKM[@]}"
SERVER_VERSION=$(mdb_server_version)
mdb_sql "CREATE DATABASE db1"
make_std_table db1 datadir enc1 200 1 PAGE
make_std_table db1 datadir dyn1 100 0 DYNAMIC
make_std_table db1 datadir fix1 100 0 FIXED
mkdir -p "$d/db1"
for t in enc1 dyn1 fix1; do save_stats db1 "$t" "$d/db1/$t"; done
std_rows datadir enc1 200 >"$d/db1/enc1.rows"
std_rows datadir dyn1 100 >"$d/db1/dyn1.rows"
std_rows datadir fix1 100 >"$d/db1/fix1.rows"
mdb_stop
for t in enc1 dyn1 fix1; do
    copy_table "$MDB_DATADIR/db1" "$t" "$d/db1"
    cp "$MDB_DATADIR/db1/$t.frm" "$d/db1/"
done
cp "$MDB_DATADIR/db1/db.opt" "$d/db1/"
cp "$MDB_DATADIR/aria_log_control" "$d/"
logs=("$MDB_DATADIR"/aria_log.0*)
[ "${#logs[@]}" = 1 ] || die "expected one Aria log file, got ${logs[*]}"
cp "$MDB_DATADIR/aria_log.00000001" "$d/"
cp "$KEYS_127" "$d/keys.txt"
write_case "$d" "data-directory-like tree: db1/enc1 is an encrypted TRANSACTIONAL=1 PAGE table (AES-CBC, key 1); db1/dyn1 (ROW_FORMAT=DYNAMIC) and db1/fix1 (ROW_FORMAT=FIXED) were created while aria_encrypt_tables=ON but are NOT encrypted; aria_log_control and aria_log.00000001 (plaintext row images) copied from the same server after a clean shutdown" \
    cbc "$BS" true false 1 keys.txt null null 1 "db1/enc1 db1/dyn1 db1/fix1"
check_table "$d" db1/enc1 "$BS" 1 0 1
for t in dyn1 fix1; do
    mai_info "$d/db1/$t.MAI"
    [ "$H_ENCRYPTED" = 0 ] || die "db1/$t unexpectedly encrypted"
    grep -qa "ARIA-MARKER-datadir-$t-000001" "$d/db1/$t.MAD" || die "db1/$t: plaintext marker not found"
    printf '  datadir/db1/%s: NOT encrypted (data_file_type %s), markers readable in plaintext\n' "$t" "$H_DFT" >&2
done
grep -qa 'ARIA-MARKER-datadir-enc1-' "$d/aria_log.00000001" &&
    printf '  datadir/aria_log.00000001 contains plaintext markers of db1/enc1\n' >&2

# case_summary CASEDIR -> S_CASE S_ALG S_BS S_SRC S_KID S_VER S_FILES
case_summary() {
    local j=$1/case.json kf kk dk
    S_CASE=$(basename "$1")
    S_ALG=$(sed -n 's/^  "algorithm": "\(.*\)",$/\1/p' "$j")
    S_BS=$(sed -n 's/^  "block_size": \(.*\),$/\1/p' "$j")
    S_KID=$(sed -n 's/^  "key_id": \(.*\),$/\1/p' "$j")
    kf=$(sed -n 's/^  "key_file": \(.*\),$/\1/p' "$j" | tr -d '"')
    kk=$(sed -n 's/^  "key_file_key": \(.*\),$/\1/p' "$j" | tr -d '"')
    dk=$(sed -n 's/^  "debug_key_management": \(.*\),$/\1/p' "$j")
    S_VER=$(sed -n 's/^  "expected_key_versions": \[\(.*\)\],$/\1/p' "$j")
    if [ "$kf" = null ]; then
        S_SRC="debug_key_management (latest $dk)"
    elif [ "$kk" = null ]; then
        S_SRC=$kf
    else
        S_SRC="$kf, filekey $kk"
    fi
    S_FILES=$(cd "$1" && find . \( -name '*.MA[ID]' -o -name 'aria_log*' \) -printf '%P %s\n' | sort |
        awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}')
}

# ---------------------------------------------------------------------------
# README, permissions, swap into tests/fixtures/.
GEN_SECONDS=$((SECONDS - T_START))
{
    cat <<EOF
# Aria encryption fixtures (generated — do not edit by hand)

Generated by \`scripts/mariadb-fixtures.sh\` with real private MariaDB servers
(\`$SERVER_VERSION\`, Debian 12 packages \`mariadb-server\`, \`mariadb-client\`,
\`mariadb-test\`). Re-run the script (as root) to regenerate everything; the
server-chosen values (crypt block \`space\`/\`scheme_iv\`, LSNs, random LSNs of
non-transactional pages) change on every run, the table contents and the key
files do not. The on-disk format is described in the project's Aria
encryption spec (\`aria-encryption.md\`).

## Layout

One directory per case, \`tests/fixtures/<case>/\`:

| file | content |
|---|---|
| \`case.json\` | description, algorithm (\`cbc\`/\`ctr\`), \`block_size\`, \`transactional\`, \`temporary\`, \`key_id\`, \`key_file\`, \`key_file_key\` (\`null\`, the secret itself, or \`FILE:<file>\` relative to the case dir), \`debug_key_management\` (latest version when the server last wrote, or \`null\`), \`expected_key_versions\`, \`tables\`, \`server\` |
| \`<table>.MAI\`, \`<table>.MAD\` | the table's files, byte for byte as the server wrote them |
| \`keys.txt\` / \`keys.enc\` (+ \`filekey.txt\`) | the key file the server used (\`keys.enc\`: \`openssl enc -aes-256-cbc -md sha1\` format with \`Salted__\` header, produced with a fixed salt for reproducibility; \`filekey.txt\` holds the secret plus a newline) |
| \`<table>.rows\` | one marker string per line; each occurs in the decrypted plaintext of \`<table>.MAD\` |
| \`<table>.checksum\`, \`<table>.count\` | \`CHECKSUM TABLE\` and \`SELECT COUNT(*)\` taken before the server stopped (not for temporary tables) |

Key files: \`keys.txt\` of most cases holds key 1 = \`000102…1e1f\` (256 bit),
key 2 = \`a0a1…bebf\` (256 bit) and key 7 = \`f5502320f8429037b8daef761b189d12\`
(128 bit, upper-case hex with a trailing comment), plus comment and blank
lines; \`cbc_key128\`, \`cbc_key192\` and \`tmp_key1\` hold key 1 only. The secret of
\`keys.enc\` is \`$FILEKEY_SECRET\`; it decrypts to the three-key file above.

Table \`t1\` of the standard cases: \`id INT PRIMARY KEY, name VARCHAR(32),
marker VARCHAR(80), h CHAR(32) (MD5, secondary index k_h), note VARCHAR(100)\`,
latin1, \`ROW_FORMAT=PAGE\`. Ids 1..N/2 are inserted with one bulk
\`INSERT ... SELECT\` into the empty table (not logged: on transactional
tables those data pages keep LSN 0), ids N/2+1..N 50 rows per statement, both
in pseudo-random order; then, among ids > N/2 only, rows with \`id % 10 = 3\`
get a same-length UPDATE and rows with \`id % 50 = 7\` are deleted (their
markers are not listed). Each row holds the marker
\`ARIA-MARKER-<case>-<table>-NNNNNN\`.

Special cases:

* \`blob\`: \`t1(id, marker VARCHAR, b LONGBLOB, t LONGTEXT)\` with blobs of
  20000..60000 bytes (5 rows), each starting with \`ARIA-MARKER-blob-t1-BLOB-NNNNNN\`
  (at the start of a full page, type 3).
* \`tmp_key2\`, \`tmp_key1\`: \`CREATE TEMPORARY TABLE tmp1 ... TRANSACTIONAL=0\`,
  $TMP_ROWS rows inserted in id order with a 128 KiB Aria page cache; the
  \`#sql-temptable-*\` files were copied from the server's tmpdir while the
  creating session was still open (so only evicted pages are on disk; pages
  never written are absent or all-zero) and renamed to \`tmp1.*\`. Only the
  markers of the first $TMP_LISTED rows (whose pages were certainly written)
  are listed. The server used key id 2 when the key file had key 2
  (\`tmp_key2\`), key id 1 otherwise (\`tmp_key1\`). No checksum/count files.
* \`debug_versions\`: \`debug_key_management\` plugin instead of a key file
  (\`key_file: null\`); pages carry key versions 1, 2 and 3 (checked on the
  key-version fields of every written page).
* \`bs4096\`: \`mariadb-install-db\` cannot create the Aria system tables with
  4096-byte pages, so the instance was installed with 8192, its Aria system
  tables were converted to InnoDB, the Aria log and control file were deleted
  and the server restarted with \`aria_block_size=4096\`.
* \`datadir\`: a small data-directory-like tree: \`aria_log_control\`,
  \`aria_log.00000001\` (the Aria log was started afresh just before the
  case's statements, so it holds only them; row images are plaintext),
  \`keys.txt\`, \`case.json\` and \`db1/\` with \`db.opt\`, \`*.frm\`, the encrypted
  PAGE table \`enc1\` and the unencrypted \`dyn1\` (DYNAMIC) and \`fix1\` (FIXED),
  each with \`.rows\`, \`.checksum\`, \`.count\` next to it. \`tables\` lists
  \`db1/enc1\`, \`db1/dyn1\`, \`db1/fix1\`; the other case.json fields describe
  \`enc1\`.

## Cases (this generation)

| case | algorithm | block size | key source | key id | versions | files (bytes) |
|---|---|---|---|---|---|---|
EOF
    for cd in "$STAGE"/*/; do
        case_summary "$cd"
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$S_CASE" "$S_ALG" "$S_BS" "$S_SRC" "$S_KID" "$S_VER" "$S_FILES"
    done
    printf '\nTotal size: %s bytes. Generation took about %s s.\n' "$(du -sb "$STAGE" | cut -f1)" "$GEN_SECONDS"
} >"$STAGE/README.md"

find "$STAGE" -type d -exec chmod 755 {} +
find "$STAGE" -type f -exec chmod 644 {} +
mkdir -p "$FIX"
find "$FIX" -mindepth 1 -delete
cp -a "$STAGE/." "$FIX/"

# ---------------------------------------------------------------------------
log "summary"
printf '%-18s %-4s %6s %-36s %-3s %-8s %s\n' case alg bs "key source" kid versions "table files (bytes)"
for cd in "$FIX"/*/; do
    case_summary "$cd"
    printf '%-18s %-4s %6s %-36s %-3s %-8s %s\n' "$S_CASE" "$S_ALG" "$S_BS" "$S_SRC" "$S_KID" "[$S_VER]" "$S_FILES"
done
printf '\nserver: %s\ntotal: %s bytes in %s\ntime: %s s\n' "$SERVER_VERSION" \
    "$(du -sb "$FIX" | cut -f1)" "$FIX" $((SECONDS - T_START))
