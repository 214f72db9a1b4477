#!/usr/bin/env bash
# Undefined-behaviour checks of the kernel under Miri: the x86 SIMD
# backends and the multi-buffer lane scheduler (kernel/multibuffer.rs),
# under Stacked Borrows and under Tree Borrows.
#
#   scripts/miri.sh            (about 5 minutes on 2 cores, the build included)
#
# Stacked Borrows and Tree Borrows run side by side, one core each.
#
# What runs. One build with every x86 feature the kernel uses enabled at
# compile time, so all x86 backends are present; each test loops over
# Backend::supported(), so each runs on:
#   soft     RustCrypto aes, built with --cfg aes_backend="soft": its own
#            AES-NI path would need AESKEYGENASSIST, which Miri lacks.
#   aesni    AES-NI on 128-bit registers.
#   vaes256  VAES on 256-bit registers (AVX2).
#   vaes512  VAES on 512-bit registers (AVX-512), and with PCLMULQDQ and
#            VPCLMULQDQ the CBC batch with the CRC fused into its lanes.
# kernel_x86 asserts (ARIA_CRYPT_EXPECT_BACKENDS) that all four are found,
# so this run cannot silently cover fewer.
#
# Miri interprets the intrinsics (AESENC/AESDEC/AESIMC on 128, 256 and 512
# bits, PSHUFB, PCLMULQDQ/VPCLMULQDQ, the AVX/AVX2/AVX-512 lane moves) but
# has no CPUID/XGETBV, AESKEYGENASSIST or VPTERNLOG. The kernel replaces
# those three under cfg(miri) only (src/kernel/backends/x86_miri.rs;
# detection then reads cfg!(target_feature)); normal builds are unchanged.
# (Unreplaced, Miri stops with "unsupported operation: can't call foreign
# function `llvm.x86.aesni.aeskeygenassist`" or
# "`llvm.x86.avx512.pternlog.q.512`", and CPUID is inline assembly, which
# Miri does not run.)
# The armv8 backend cannot run: interpreting for aarch64-unknown-linux-gnu,
# Miri stops at its first AES round with "unsupported operation: can't
# call foreign function `llvm.aarch64.crypto.aese`" (nightly 2026-05-19);
# a stand-in for every AESE/AESD/AESMC/AESIMC would replace the backend
# under test. qemu (scripts/test-aarch64.sh) covers it.
#
# The tests, chosen small (Miri runs about a million times slower):
#   lib  kernel::tests::fused_crc_runs_where_it_should   (fused CRC path)
#        kernel::backends::x86_miri                      (the S-box stand-in)
#   kernel_lanes   batches of 20 and 35 jobs (more than 16 and 32 lanes),
#                  lanes refilled mid-run, CRC requests, both directions;
#                  and of 2, 5 and 8 jobs (the VAES backends' eight lanes)
#   kernel_known_answers fips197_appendix_c, sp800_38a_f5_ctr
#                  (single blocks, wide ECB, wide CTR on every backend)
#   kernel_x86     detection, and the backends expected
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
host="x86_64-unknown-linux-gnu"
say() { printf '== miri: %s\n' "$*"; }
start=$SECONDS

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    say "installing nightly with miri and rust-src"
    rustup toolchain install nightly --profile minimal
    rustup +nightly component add miri rust-src
fi
cargo +nightly miri setup >/dev/null 2>&1 || cargo +nightly miri setup

features="+aes,+ssse3,+sse4.1,+pclmulqdq,+avx,+avx2,+vaes,+vpclmulqdq,+avx512f,+avx512bw,+avx512vl"
export RUSTFLAGS="--cfg aes_backend=\"soft\" -C target-feature=$features"
export ARIA_CRYPT_EXPECT_BACKENDS="soft,aesni,vaes256,vaes512"
# Miri ignores the test profile's opt-level = 3; not optimising saves
# build time (and silences Miri's warning about it).
export CARGO_PROFILE_TEST_OPT_LEVEL=0
# The library alone: the tool's dependencies are not under test.
miri_test() {
    cargo +nightly miri test -q --target "$host" --no-default-features "$@"
}

say "$(cargo +nightly miri --version); building (target/miri)"
miri_test --no-run --lib --test kernel_lanes --test kernel_known_answers --test kernel_x86

# The two borrow models in parallel (Miri is single-threaded), each in
# its own log, shown when both are done.
run_model() {
    local model=$1 failed=0 t=$SECONDS
    export MIRIFLAGS="-Zmiri-env-forward=ARIA_CRYPT_EXPECT_BACKENDS"
    [[ $model == tree ]] && MIRIFLAGS="$MIRIFLAGS -Zmiri-tree-borrows"
    say "$model borrows (MIRIFLAGS=$MIRIFLAGS)"
    miri_test --lib -- kernel::tests::fused_crc_runs_where_it_should kernel::backends::x86_miri ||
        failed=1
    miri_test --test kernel_lanes || failed=1
    miri_test --test kernel_known_answers -- fips197_appendix_c sp800_38a_f5_ctr || failed=1
    miri_test --test kernel_x86 || failed=1
    say "$model borrows: $([[ $failed == 0 ]] && echo ok || echo FAILED) in $((SECONDS - t)) s"
    return $failed
}
logs="$root/target/miri"
run_model stacked >"$logs/stacked.log" 2>&1 &
stacked=$!
run_model tree >"$logs/tree.log" 2>&1 &
tree=$!
failed=0
wait $stacked || failed=1
wait $tree || failed=1
cat "$logs/stacked.log" "$logs/tree.log"

say "$([[ $failed == 0 ]] && echo ok || echo FAILED) in $((SECONDS - start)) s"
exit $failed
