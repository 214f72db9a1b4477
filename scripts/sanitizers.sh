#!/usr/bin/env bash
# Memory-error checks of the whole test suite (issue 6).
#
#   scripts/sanitizers.sh [asan|valgrind|all]      (default: asan)
#
# asan      The whole test suite (unit, integration, binary and doc tests)
#           built with AddressSanitizer on the nightly toolchain, in its own
#           target directory (target/asan) so the normal build is untouched.
#           Leak detection is on. Needs `cargo +nightly`.
# valgrind  Every test binary once under valgrind's memcheck
#           (--error-exitcode=1), built in target/valgrind. Valgrind cannot
#           decode VAES (or any AVX-512) instructions, and its virtual CPU
#           does not report them, so under valgrind the kernel's backend
#           detection finds AES-NI (and the software backend) only: the
#           backend loops of the tests cover those two, and the binaries run
#           twice, with ARIA_CRYPT_BACKEND=aesni and ARIA_CRYPT_BACKEND=soft
#           (the default backend of Aes::new and TableCipher). The VAES
#           backends are covered by the asan run. Installs valgrind with
#           apt-get if it is missing.
#
# Extra arguments after the mode go to `cargo test` (asan) or to every
# test binary (valgrind), e.g. `scripts/sanitizers.sh asan -- --skip slow`.
# ARIA_VALGRIND_TARGET_DIR (default target/valgrind) is where valgrind's
# test binaries are built. ARIA_VALGRIND_SKIP, an extended regular expression, skips the test
# binaries whose names match it under valgrind (each skip is printed);
# .ci/run skips the CLI tests, whose tool runs natively anyway.
set -uo pipefail

mode="${1:-asan}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
host="x86_64-unknown-linux-gnu"

say() { printf '== sanitizers: %s\n' "$*"; }

run_asan() {
    say "AddressSanitizer: cargo +nightly test --target $host (target/asan)"
    local start=$SECONDS
    # Doc tests are compiled by rustdoc: they need the flag too, or they
    # link uninstrumented code against the sanitized library.
    CARGO_TARGET_DIR="$root/target/asan" \
        RUSTFLAGS="-Zsanitizer=address" \
        RUSTDOCFLAGS="-Zsanitizer=address" \
        ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1" \
        cargo +nightly test --no-fail-fast --target "$host" "$@"
    local status=$?
    say "asan: exit $status in $((SECONDS - start)) s"
    return $status
}

run_valgrind() {
    if ! command -v valgrind >/dev/null; then
        say "installing valgrind"
        apt-get install -y valgrind >/dev/null || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; } || return 1
    fi
    local start=$SECONDS
    # No special flags: ARIA_VALGRIND_TARGET_DIR=target reuses the test
    # binaries of a plain `cargo test` (.ci/run does).
    export CARGO_TARGET_DIR="$root/${ARIA_VALGRIND_TARGET_DIR:-target/valgrind}"
    say "$(valgrind --version): building the test binaries (${CARGO_TARGET_DIR#"$root/"})"
    local list
    # "Executable unittests src/lib.rs (target/valgrind/debug/deps/...)"
    local build_log="$CARGO_TARGET_DIR/valgrind-build.log"
    mkdir -p "$CARGO_TARGET_DIR"
    cargo test --no-run >"$build_log" 2>&1
    list="$(sed -n 's/^ *Executable .*(\(.*\))$/\1/p' "$build_log" | sort -u)"
    if [[ -z $list ]]; then
        say "no test binaries (build failed?):"
        grep -E -A8 '^error' "$build_log" | head -n 40
        return 1
    fi
    # The CLI tests start the tool binary; it runs natively (valgrind does
    # not follow children here), so they check the test harness only.
    # The backends CI expects (ARIA_CRYPT_EXPECT_BACKENDS, from the host's
    # /proc/cpuinfo) less those valgrind's virtual CPU lacks: AES-NI at most.
    if [[ -n ${ARIA_CRYPT_EXPECT_BACKENDS:-} ]]; then
        case ",$ARIA_CRYPT_EXPECT_BACKENDS," in
            *,aesni,*) ARIA_CRYPT_EXPECT_BACKENDS=soft,aesni ;;
            *) ARIA_CRYPT_EXPECT_BACKENDS=soft ;;
        esac
        say "backends expected under valgrind: $ARIA_CRYPT_EXPECT_BACKENDS"
    fi
    local failed=0 backend bin log
    for backend in aesni soft; do
        for bin in $list; do
            if [[ -n ${ARIA_VALGRIND_SKIP:-} && $(basename "$bin") =~ $ARIA_VALGRIND_SKIP ]]; then
                say "skipped: $(basename "$bin") ($backend) matches ARIA_VALGRIND_SKIP='$ARIA_VALGRIND_SKIP'"
                continue
            fi
            log="$CARGO_TARGET_DIR/valgrind-$(basename "$bin")-$backend.log"
            say "valgrind ($backend) $(basename "$bin")"
            if ! (cd "$root" && ARIA_CRYPT_BACKEND=$backend valgrind --tool=memcheck --error-exitcode=1 \
                --leak-check=full --errors-for-leak-kinds=definite \
                --track-origins=yes --log-file="$log" \
                "$bin" --test-threads=2 "$@" >"$log.out" 2>&1); then
                failed=1
                say "FAILED: $(basename "$bin") with $backend (see $log, $log.out)"
                tail -n 30 "$log"
                tail -n 30 "$log.out"
            fi
            grep -E 'ERROR SUMMARY|definitely lost' "$log" | sed 's/^==[0-9]*== /   /'
            grep -E '^test result' "$log.out" | sed 's/^/   /'
        done
    done
    say "valgrind: $([[ $failed == 0 ]] && echo ok || echo FAILED) in $((SECONDS - start)) s"
    return $failed
}

case "$mode" in
    asan) run_asan "$@" ;;
    valgrind) run_valgrind "$@" ;;
    all)
        run_asan "$@"
        a=$?
        run_valgrind
        v=$?
        exit $((a | v))
        ;;
    *)
        echo "usage: $0 [asan|valgrind|all] [args...]" >&2
        exit 2
        ;;
esac
