# shellcheck shell=bash
# scripts/lib/mariadb.sh — run private, throw-away MariaDB servers from bash.
#
# Source this file (`. scripts/lib/mariadb.sh`); it defines functions and a few
# global variables and changes no shell options. Everything it creates lives in
# one private work directory (mktemp under ${TMPDIR:-/tmp}); it never reads
# /etc/mysql (every program gets --no-defaults), never uses `service` or
# `systemctl`, never touches /var/lib/mysql or /run/mysqld, and never listens
# on the network (--skip-networking; clients talk over a private socket).
# Must be run as root on Debian 12 (the server is started with --user=root).
#
# Functions (all return non-zero on failure; messages go to stderr):
#   mdb_ensure_packages         install mariadb-server, mariadb-client and
#                               mariadb-test (debug_key_management plugin) with
#                               apt-get if any is missing (apt-get update only
#                               when the first install attempt fails)
#   mdb_workdir                 create (once) the private work dir and set
#                               $MDB_WORKDIR (call it directly, not in $(...),
#                               so that the variable reaches the caller)
#   mdb_cleanup_install_trap    install `trap mdb_cleanup EXIT` plus INT/TERM/HUP
#                               handlers that exit (so EXIT runs the cleanup)
#   mdb_cleanup                 close the session, stop every server this shell
#                               started (by PID, kill -9 after a timeout) and
#                               delete the work dir unless MDB_KEEP_WORKDIR=1;
#                               safe to call several times
#   mdb_instance NAME           select (and create the directories of) instance
#                               NAME: $MDB_WORKDIR/NAME/{data,tmp}; sets
#                               MDB_INST MDB_DATADIR MDB_TMPDIR MDB_SOCKET
#                               MDB_PIDFILE MDB_ERRLOG MDB_PID (empty)
#   mdb_install_db [OPT...]     mariadb-install-db into the current instance's
#                               (empty) data dir; OPTs are passed to the
#                               bootstrap server (e.g. --aria-block-size=16384)
#   mdb_start [OPT...]          start mariadbd --no-defaults on the current
#                               instance with the private socket/pid file/tmpdir,
#                               --skip-networking and the caller's OPTs
#                               (plugins, aria_*, file_key_management_*, ...);
#                               waits until it answers (MDB_START_TIMEOUT, 60 s);
#                               sets MDB_PID
#   mdb_wait_ready              wait until the current server answers a query
#   mdb_sql SQL [CLIENT-OPT...] run SQL on the current server as root, batch
#                               mode without column names (-N -B); prints rows
#   mdb_client [CLIENT-OPT...]  run the mariadb client connected to the current
#                               server (stdin/stdout passed through)
#   mdb_server_version          print VERSION() of the current server
#   mdb_session_open            open one long-lived client session on the
#                               current server (fifo-fed mariadb client), e.g.
#                               to keep temporary tables alive
#   mdb_session_run SQL         send SQL to the session and wait until it has
#                               been executed; prints the output it produced
#   mdb_session_close           end the session (client exits, temp tables dropped)
#   mdb_stop [TIMEOUT]          stop the current server by PID: SIGTERM, wait
#                               for exit, SIGKILL after TIMEOUT s (default
#                               MDB_STOP_TIMEOUT, 60)
#   mdb_stop_pid PID [TIMEOUT]  the same for any server PID started here
#   mdb_log MSG... / mdb_die MSG...   message to stderr / message and return 1
#
# Typical use:
#   . scripts/lib/mariadb.sh
#   mdb_cleanup_install_trap
#   mdb_ensure_packages
#   mdb_instance s1
#   mdb_install_db
#   mdb_start --plugin-load-add=file_key_management \
#             --file-key-management-filename=/path/keys.txt --aria-encrypt-tables=ON
#   mdb_sql "CREATE DATABASE d; CREATE TABLE d.t (a INT) ENGINE=Aria"
#   mdb_stop
#
# Notes (observed with 10.11.19-MariaDB-0+deb12u1):
# * A non-default aria_block_size must be given to mdb_install_db as well as to
#   mdb_start: aria_log_control records the block size and a server started
#   with another one aborts ("Block size in control file (8192) is different
#   than given aria_block_size"). 4096 cannot be installed at all (see
#   scripts/mariadb-fixtures.sh, case bs4096, for the work-around).
# * debug_key_management is an "experimental" plugin: mdb_start needs
#   --plugin-maturity=experimental with --plugin-load-add=debug_key_management.
# * mdb_start always passes --aria-log-dir-path=<datadir> (the compiled-in
#   default is /var/lib/mysql) and --innodb-buffer-pool-size=64M; caller
#   options come last and win.
# * The sequence engine (seq_1_to_N) needs a current database: mdb_sql ... -D db.
# * The session client stops at the first SQL error; mdb_session_run then fails.
# * If MDB_WORKDIR is set by the caller, that directory is used and never deleted.

MDB_WORKDIR=${MDB_WORKDIR:-}
MDB_START_TIMEOUT=${MDB_START_TIMEOUT:-60}
MDB_STOP_TIMEOUT=${MDB_STOP_TIMEOUT:-60}
MDB_KEEP_WORKDIR=${MDB_KEEP_WORKDIR:-0}
MDB_INST=${MDB_INST:-}
MDB_DATADIR=${MDB_DATADIR:-}
MDB_TMPDIR=${MDB_TMPDIR:-}
MDB_SOCKET=${MDB_SOCKET:-}
MDB_PIDFILE=${MDB_PIDFILE:-}
MDB_ERRLOG=${MDB_ERRLOG:-}
MDB_PID=${MDB_PID:-}
MDB_SERVERD=${MDB_SERVERD:-mariadbd}
MDB_CLIENT=${MDB_CLIENT:-mariadb}
MDB_INSTALL_DB=${MDB_INSTALL_DB:-mariadb-install-db}
# PIDs of every server started by this shell that has not been stopped yet.
MDB_RUNNING_PIDS=${MDB_RUNNING_PIDS:-}
# Session state.
MDB_SESSION_PID=
MDB_SESSION_FD=
MDB_SESSION_OUT=
MDB_SESSION_SEQ=0
MDB_WORKDIR_OWNED=0

mdb_log() { printf '[mariadb.sh] %s\n' "$*" >&2; }
mdb_die() { printf '[mariadb.sh] ERROR: %s\n' "$*" >&2; return 1; }

mdb__pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

mdb_ensure_packages() {
    local pkgs=(mariadb-server mariadb-client mariadb-test) missing=() p
    for p in "${pkgs[@]}"; do
        mdb__pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    mdb_log "installing ${missing[*]}"
    # The Debian maintainer scripts may try to start the packaged service; a
    # policy-rc.d that forbids it keeps the system-wide server untouched.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 || rc=$?
    if ((rc != 0)); then
        mdb_log "apt-get install failed (rc $rc); running apt-get update and retrying"
        rc=0
        apt-get update >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 || rc=$?
    fi
    if ((created_policy)); then rm -f "$policy"; fi
    ((rc == 0)) || { mdb_die "could not install ${missing[*]}"; return 1; }
    for p in "${missing[@]}"; do
        mdb__pkg_installed "$p" || { mdb_die "package $p still not installed"; return 1; }
    done
}

mdb_workdir() {
    if [ -z "$MDB_WORKDIR" ]; then
        MDB_WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/mdb.XXXXXX") || return 1
        MDB_WORKDIR_OWNED=1
    fi
    mkdir -p "$MDB_WORKDIR"
}

mdb_instance() {
    local name=${1:?mdb_instance NAME}
    mdb_workdir || return 1
    MDB_INST=$MDB_WORKDIR/$name
    MDB_DATADIR=$MDB_INST/data
    MDB_TMPDIR=$MDB_INST/tmp
    MDB_SOCKET=$MDB_INST/mysqld.sock
    MDB_PIDFILE=$MDB_INST/mysqld.pid
    MDB_ERRLOG=$MDB_INST/error.log
    MDB_PID=
    mkdir -p "$MDB_DATADIR" "$MDB_TMPDIR" || return 1
    if ((${#MDB_SOCKET} > 100)); then
        mdb_die "socket path too long: $MDB_SOCKET"
        return 1
    fi
}

mdb_install_db() {
    [ -n "$MDB_DATADIR" ] || { mdb_die "mdb_install_db: no instance (call mdb_instance)"; return 1; }
    local log=$MDB_INST/install-db.log
    if ! "$MDB_INSTALL_DB" --no-defaults --auth-root-authentication-method=normal \
        --user=root --skip-test-db --datadir="$MDB_DATADIR" \
        --aria-log-dir-path="$MDB_DATADIR" --tmpdir="$MDB_TMPDIR" \
        --skip-networking "$@" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        mdb_die "mariadb-install-db failed (log: $log)"
        return 1
    fi
}

mdb__alive() {
    # true while PID exists and is not a zombie (reads /proc: no procps needed)
    local st
    { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
    st=${st##*) }
    case ${st:0:1} in Z | X | '') return 1 ;; esac
    return 0
}

mdb__forget_pid() {
    local p out=
    for p in $MDB_RUNNING_PIDS; do
        [ "$p" = "$1" ] || out="$out $p"
    done
    MDB_RUNNING_PIDS=${out# }
}

mdb_client() {
    [ -n "$MDB_SOCKET" ] || { mdb_die "mdb_client: no instance"; return 1; }
    "$MDB_CLIENT" --no-defaults --protocol=socket --socket="$MDB_SOCKET" -uroot "$@"
}

mdb_sql() {
    local sql=${1:?mdb_sql SQL}
    shift
    mdb_client -N -B "$@" -e "$sql"
}

mdb_server_version() { mdb_sql "SELECT VERSION()"; }

mdb_wait_ready() {
    local deadline=$((SECONDS + MDB_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if [ -n "$MDB_PID" ] && ! mdb__alive "$MDB_PID"; then
            wait "$MDB_PID" 2>/dev/null || true
            mdb__forget_pid "$MDB_PID"
            tail -n 40 "$MDB_ERRLOG" >&2
            mdb_die "server (pid $MDB_PID) exited during start-up; log: $MDB_ERRLOG"
            MDB_PID=
            return 1
        fi
        if [ -S "$MDB_SOCKET" ] && mdb_sql "SELECT 1" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    tail -n 40 "$MDB_ERRLOG" >&2
    mdb_die "server did not answer within ${MDB_START_TIMEOUT}s; log: $MDB_ERRLOG"
    return 1
}

mdb_start() {
    [ -n "$MDB_DATADIR" ] || { mdb_die "mdb_start: no instance (call mdb_instance)"; return 1; }
    if [ -n "$MDB_PID" ] && mdb__alive "$MDB_PID"; then
        mdb_die "mdb_start: server of instance $MDB_INST already running (pid $MDB_PID)"
        return 1
    fi
    rm -f "$MDB_SOCKET" "$MDB_PIDFILE"
    printf '\n==== mdb_start %s: %s\n' "$(date '+%F %T')" "$*" >>"$MDB_ERRLOG"
    "$MDB_SERVERD" --no-defaults --user=root \
        --datadir="$MDB_DATADIR" --aria-log-dir-path="$MDB_DATADIR" \
        --tmpdir="$MDB_TMPDIR" --socket="$MDB_SOCKET" --pid-file="$MDB_PIDFILE" \
        --log-error="$MDB_ERRLOG" --skip-networking --skip-log-bin \
        --innodb-buffer-pool-size=64M "$@" </dev/null >>"$MDB_ERRLOG" 2>&1 &
    MDB_PID=$!
    MDB_RUNNING_PIDS="$MDB_RUNNING_PIDS $MDB_PID"
    MDB_RUNNING_PIDS=${MDB_RUNNING_PIDS# }
    mdb_wait_ready
}

mdb_stop_pid() {
    local pid=${1:?mdb_stop_pid PID} timeout=${2:-$MDB_STOP_TIMEOUT}
    if mdb__alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + timeout))
        while mdb__alive "$pid" && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if mdb__alive "$pid"; then
            mdb_log "server pid $pid did not stop within ${timeout}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            while mdb__alive "$pid"; do sleep 0.1; done
        fi
    fi
    wait "$pid" 2>/dev/null || true
    mdb__forget_pid "$pid"
    return 0
}

# shellcheck disable=SC2120 # the timeout argument is optional
mdb_stop() {
    [ -n "$MDB_PID" ] || return 0
    mdb_session_close
    mdb_stop_pid "$MDB_PID" "${1:-$MDB_STOP_TIMEOUT}"
    MDB_PID=
}

mdb_session_open() {
    [ -z "$MDB_SESSION_PID" ] || { mdb_die "a session is already open"; return 1; }
    local fifo=$MDB_INST/session.in
    MDB_SESSION_OUT=$MDB_INST/session.out
    rm -f "$fifo"
    mkfifo "$fifo" || return 1
    : >"$MDB_SESSION_OUT"
    mdb_client -N -B --unbuffered <"$fifo" >"$MDB_SESSION_OUT" 2>&1 &
    MDB_SESSION_PID=$!
    exec {MDB_SESSION_FD}>"$fifo"
    MDB_SESSION_SEQ=0
    mdb_session_run "SELECT 1" >/dev/null
}

mdb_session_run() {
    [ -n "$MDB_SESSION_PID" ] || { mdb_die "no session open"; return 1; }
    local sql=$1 start token deadline
    MDB_SESSION_SEQ=$((MDB_SESSION_SEQ + 1))
    token="MDB-SESSION-SYNC-$BASHPID-$MDB_SESSION_SEQ-$RANDOM"
    start=$(($(wc -c <"$MDB_SESSION_OUT") + 1))
    printf '%s\n;\nSELECT '\''%s'\'';\n' "$sql" "$token" >&"$MDB_SESSION_FD" || {
        mdb_die "session: cannot write to client"
        return 1
    }
    deadline=$((SECONDS + ${MDB_SESSION_TIMEOUT:-600}))
    while ! tail -c +"$start" "$MDB_SESSION_OUT" | grep -qx "$token"; do
        if ! mdb__alive "$MDB_SESSION_PID"; then
            tail -c +"$start" "$MDB_SESSION_OUT" >&2
            mdb_die "session client exited (SQL error?)"
            MDB_SESSION_PID=
            exec {MDB_SESSION_FD}>&-
            return 1
        fi
        if ((SECONDS >= deadline)); then
            mdb_die "session: statement did not finish in time"
            return 1
        fi
        sleep 0.05
    done
    tail -c +"$start" "$MDB_SESSION_OUT" | grep -vx "$token" || true
    return 0
}

mdb_session_close() {
    [ -n "$MDB_SESSION_PID" ] || return 0
    exec {MDB_SESSION_FD}>&-
    local deadline=$((SECONDS + 30))
    while mdb__alive "$MDB_SESSION_PID" && ((SECONDS < deadline)); do sleep 0.1; done
    if mdb__alive "$MDB_SESSION_PID"; then kill -KILL "$MDB_SESSION_PID" 2>/dev/null || true; fi
    wait "$MDB_SESSION_PID" 2>/dev/null || true
    MDB_SESSION_PID=
    MDB_SESSION_FD=
    return 0
}

mdb_cleanup() {
    local rc=$? p
    mdb_session_close
    for p in $MDB_RUNNING_PIDS; do
        mdb_stop_pid "$p" "${MDB_CLEANUP_STOP_TIMEOUT:-30}"
    done
    MDB_PID=
    if ((MDB_WORKDIR_OWNED)) && [ -n "$MDB_WORKDIR" ] && [ -d "$MDB_WORKDIR" ]; then
        if [ "$MDB_KEEP_WORKDIR" = 1 ]; then
            mdb_log "keeping work dir $MDB_WORKDIR"
        else
            rm -rf "$MDB_WORKDIR"
        fi
    fi
    return $rc
}

mdb_cleanup_install_trap() {
    trap mdb_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}
