#!/usr/bin/env bash
# scripts/test-aarch64.sh — cross-build for aarch64 with Debian's rustc and run
# the whole test suite under QEMU user-mode emulation, twice: with the ARMv8
# backend (the default there) on an emulated CPU with the SHA-3 extension,
# and with the software backend selected (ARIA_CRYPT_BACKEND=soft) on one
# without it, so that both kinds of ARMv8 entries (with and without EOR3)
# run. Also checks that the benchmarks build and that the aarch64 code
# passes clippy. Run as root on Debian 12; installs what it
# needs (a second run skips that and reuses the build).
#
#   bash scripts/test-aarch64.sh
#   ARIA_AARCH64_PROPTEST_CASES=256 bash scripts/test-aarch64.sh   # more cases
#
# Knobs (all optional):
#   ARIA_AARCH64_PROPTEST_CASES  PROPTEST_CASES for the emulated runs only
#                                (default 128; the native default stays 256)
#   ARIA_AARCH64_TARGET_DIR      build directory (default target/aarch64-debian,
#                                so the native target/ is never touched)
#   ARIA_AARCH64_BENCH_PROFILE   profile of the benchmark build check (default
#                                `test`: reuses the test build's dependencies;
#                                `bench` is the real thin-LTO, one-codegen-unit
#                                profile and costs about 4 CPU-minutes more)
#   ARIA_AARCH64_CLIPPY=0        skip the clippy step
#   ARIA_AARCH64_SUITE_TIMEOUT   seconds one emulated test run may take before
#                                it counts as hung and runs once more (900)
#   ARIA_AARCH64_BINFMT=0        do not mount binfmt_misc or register a handler
#                                (one already registered is still used)
#
# Emulation details that matter:
# - The test binaries run as plain `qemu-aarch64` with no `-L` sysroot, so the
#   loader is the multiarch /lib/ld-linux-aarch64.so.1 of libc6:arm64 (which
#   libstd-rust-web-dev:arm64 pulls in anyway). `-L /usr/aarch64-linux-gnu`
#   would pair the cross toolchain's ld.so (2.36-8cross1) with the multiarch
#   libc.so.6 that /etc/ld.so.cache points at (2.36-9+deb12uN): the mismatch
#   makes pthread_create spin forever, so every libtest run hangs.
# - Tests that spawn another aarch64 binary (env!("CARGO_BIN_EXE_aria-crypt"))
#   need the kernel to run aarch64 ELF files itself: QEMU user mode does not
#   follow execve. This script mounts binfmt_misc if needed and registers
#   Debian's qemu-user-binfmt handler. Where that is impossible (an
#   unprivileged container), it exports ARIA_CRYPT_TEST_RUNNER="qemu-aarch64"
#   instead: tests that spawn binaries must then run
#   `$ARIA_CRYPT_TEST_RUNNER <binary> <args>` (split on whitespace) rather
#   than `<binary> <args>`. Without either, such a spawn does not fail
#   cleanly: the child exits with status 127. The handler stays registered
#   (until reboot), as installing qemu-user-binfmt does on a systemd machine.
# - Doc tests run as well: cargo (1.89 and later) runs them for a cross target
#   through the runner, compiled by Debian's rustdoc.
# - Every test binary runs (--no-fail-fast), so the counts cover the suite.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

TARGET=aarch64-unknown-linux-gnu
TARGET_DIR=${ARIA_AARCH64_TARGET_DIR:-$ROOT/target/aarch64-debian}
CASES=${ARIA_AARCH64_PROPTEST_CASES:-128}
MSRV=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml)
QEMU=qemu-aarch64
BINFMT_DIR=/proc/sys/fs/binfmt_misc
BINFMT_CONF=/usr/lib/binfmt.d/qemu-aarch64.conf

T_START=$SECONDS
log() { printf '\n=== %s (%ds)\n' "$*" "$((SECONDS - T_START))" >&2; }
die() { printf 'FATAL: %s\n' "$*" >&2; exit 1; }

# --- 1. packages -------------------------------------------------------------

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

ensure_packages() {
    local pkgs=(rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu
        libc6-dev-arm64-cross libc6:arm64 qemu-user qemu-user-binfmt)
    [ "${ARIA_AARCH64_CLIPPY:-1}" = 0 ] || pkgs+=(rust-web-clippy)
    # A machine without rustup gets Debian's cargo as well.
    command -v cargo >/dev/null || pkgs+=(cargo-web)
    local missing=() p
    dpkg --print-foreign-architectures | grep -qx arm64 || missing+=(arm64-architecture)
    for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
    if [ ${#missing[@]} -eq 0 ]; then
        log "packages already installed"
        return
    fi
    [ "$(id -u)" = 0 ] || die "missing ${missing[*]}; run as root to install them"
    log "installing ${missing[*]}"
    dpkg --add-architecture arm64
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${pkgs[@]}"
}

ensure_packages

RUSTC_VERSION=$(/usr/bin/rustc --version | awk '{print $2}')
STD_VERSION=$(dpkg-query -W -f='${Version}' libstd-rust-web-dev:arm64)
COMPILER_VERSION=$(dpkg-query -W -f='${Version}' rustc-web)
[ "$STD_VERSION" = "$COMPILER_VERSION" ] ||
    die "rustc-web $COMPILER_VERSION and libstd-rust-web-dev:arm64 $STD_VERSION differ; apt-get install both again"
if [ "$(printf '%s\n%s\n' "$MSRV" "$RUSTC_VERSION" | sort -V | head -1)" != "$MSRV" ]; then
    die "Debian's rustc is $RUSTC_VERSION, older than the crate's rust-version $MSRV (is bookworm-security in the apt sources?)"
fi

# --- 2. environment for this build only ----------------------------------------

export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_DIR=$TARGET_DIR
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=$QEMU
export PROPTEST_CASES=$CASES
unset QEMU_LD_PREFIX ARIA_CRYPT_BACKEND ARIA_CRYPT_TEST_RUNNER RUSTFLAGS RUSTDOCFLAGS
CARGO=$(command -v cargo)

# --- 3. can an emulated test spawn another aarch64 binary? --------------------------

binfmt_register() {
    [ "${ARIA_AARCH64_BINFMT:-1}" != 0 ] || return 0
    if [ ! -e "$BINFMT_DIR/register" ]; then
        mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" 2>/dev/null || return 0
    fi
    if [ -e "$BINFMT_DIR/qemu-aarch64" ]; then
        # Registered but switched off: switch it on.
        head -1 "$BINFMT_DIR/qemu-aarch64" | grep -qx enabled ||
            echo 1 >"$BINFMT_DIR/qemu-aarch64" 2>/dev/null || true
    elif [ -r "$BINFMT_CONF" ]; then
        cat "$BINFMT_CONF" >"$BINFMT_DIR/register" 2>/dev/null || true
    fi
}

log "building the tests for $TARGET with Debian's rustc $RUSTC_VERSION ($CARGO)"
"$CARGO" test --target "$TARGET" --no-run || die "the aarch64 test build failed"

binfmt_register
# The real question: does the kernel run an aarch64 binary directly?
probe=$(find "$TARGET_DIR/$TARGET/debug/deps" -maxdepth 1 -type f -executable \
    -name '*-*' ! -name '*.*' | head -1)
[ -n "$probe" ] || die "no aarch64 test binary found to probe with"
if "$probe" --list >/dev/null 2>&1; then
    SPAWN="binfmt_misc runs aarch64 binaries directly; child processes need no prefix"
else
    export ARIA_CRYPT_TEST_RUNNER=$QEMU
    SPAWN="no binfmt_misc handler; exported ARIA_CRYPT_TEST_RUNNER=$QEMU for tests that spawn binaries"
fi
log "spawning: $SPAWN"

# --- 4. the test suite, twice ----------------------------------------------------

declare -A PASSED FAILED IGNORED SUITES STATUS
run_suite() {
    local name=$1 log_file=$TARGET_DIR/test-$1.log
    shift
    log "cargo test --target $TARGET: $name (PROPTEST_CASES=$PROPTEST_CASES)"
    local rc=0 try
    # One test thread: QEMU user mode can deadlock a child forked while
    # other guest threads hold its locks (seen: a `Command` child stuck in
    # a futex before exec, the test waiting on it forever), and fewer guest
    # threads make that rarer. A run that still hangs is stopped by the
    # timeout and run once more; a second hang fails the step.
    for try in 1 2; do
        rc=0
        timeout --kill-after=10 "$SUITE_TIMEOUT" env "$@" RUST_TEST_THREADS=1 \
            "$CARGO" test --target "$TARGET" --no-fail-fast 2>&1 | tee "$log_file" || rc=$?
        [ "$rc" = 124 ] || [ "$rc" = 137 ] || break
        log "$name: no result after ${SUITE_TIMEOUT}s (try $try): a hung emulated process"
    done
    STATUS[$name]=$rc
    read -r p f i s < <(awk '
        /^test result:/ { s++; for (n = 1; n <= NF; n++) {
            if ($(n) ~ /^passed;?$/) p += $(n - 1)
            if ($(n) ~ /^failed;?$/) f += $(n - 1)
            if ($(n) ~ /^ignored;?$/) i += $(n - 1) } }
        END { print p + 0, f + 0, i + 0, s + 0 }' "$log_file")
    PASSED[$name]=$p FAILED[$name]=$f IGNORED[$name]=$i SUITES[$name]=$s
    if grep -q '^ *Doc-tests' "$log_file"; then DOCTESTS=ran; fi
}

DOCTESTS="not run"
SUITE_TIMEOUT=${ARIA_AARCH64_SUITE_TIMEOUT:-900}
# Two emulated CPUs, so that both kinds of ARMv8 entries run (the suites
# test every supported backend whichever is selected): QEMU's `max` has the
# SHA-3 extension (the entries with EOR3), its Neoverse N1 does not.
run_suite armv8 QEMU_CPU=max ARIA_CRYPT_TEST_EXPECT_EOR3=yes ARIA_CRYPT_TEST_EXPECT_BACKEND=armv8
run_suite soft QEMU_CPU=neoverse-n1 ARIA_CRYPT_TEST_EXPECT_EOR3=no \
    ARIA_CRYPT_BACKEND=soft ARIA_CRYPT_TEST_EXPECT_BACKEND=soft

# --- 5. benchmarks build; lints ----------------------------------------------------

BENCH_PROFILE=${ARIA_AARCH64_BENCH_PROFILE:-test}
log "cargo bench --no-run --target $TARGET --profile $BENCH_PROFILE"
BENCH=ok
"$CARGO" bench --no-run --target "$TARGET" --profile "$BENCH_PROFILE" || BENCH=FAILED

CLIPPY=skipped
if [ "${ARIA_AARCH64_CLIPPY:-1}" != 0 ]; then
    log "clippy for $TARGET (Debian's clippy)"
    # Debian's cargo-clippy, so that its clippy-driver (the same compiler as
    # /usr/bin/rustc, with the arm64 standard library) does the checking.
    if CARGO=$CARGO /usr/bin/cargo-clippy clippy --target "$TARGET" --all-targets -- -D warnings; then
        CLIPPY=ok
    else
        CLIPPY=FAILED
    fi
fi

# --- 6. summary ------------------------------------------------------------------

total_passed=0 total_failed=0 failed_any=0
printf '\n=== summary: aarch64 under %s, rustc %s, PROPTEST_CASES=%s, %ds\n' \
    "$($QEMU --version | head -1)" "$RUSTC_VERSION" "$PROPTEST_CASES" "$((SECONDS - T_START))"
for name in armv8 soft; do
    printf '%-6s %4d passed, %d failed, %d ignored in %d suites (cargo test exit %d)\n' \
        "$name" "${PASSED[$name]}" "${FAILED[$name]}" "${IGNORED[$name]}" "${SUITES[$name]}" "${STATUS[$name]}"
    total_passed=$((total_passed + PASSED[$name]))
    total_failed=$((total_failed + FAILED[$name]))
    if [ "${STATUS[$name]}" != 0 ] || [ "${FAILED[$name]}" != 0 ] || [ "${PASSED[$name]}" = 0 ]; then
        failed_any=1
    fi
done
printf 'doc tests: %s\n' "$DOCTESTS"
printf 'spawning:  %s\n' "$SPAWN"
printf 'bench build (profile %s): %s, clippy: %s\n' "$BENCH_PROFILE" "$BENCH" "$CLIPPY"
[ "$BENCH" = ok ] || failed_any=1
[ "$CLIPPY" != FAILED ] || failed_any=1
[ "$failed_any" = 0 ] || total_failed=$((total_failed > 0 ? total_failed : 1))
printf 'aarch64: %d passed, %d failed\n' "$total_passed" "$total_failed"
exit "$failed_any"
