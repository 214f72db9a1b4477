#!/usr/bin/env bash
# A performance model of the ARMv8 backend's hot loops (no aarch64 hardware
# needed): builds the library for aarch64 in release mode with `--emit asm`,
# extracts the hot loop of CBC decryption, CTR and multi-buffer CBC
# encryption, and of the two that fold a page's CRC beside the cipher (CBC
# decryption folding its output, multi-buffer CBC encryption folding its
# input), and has llvm-mca-22 schedule each one for several cores, beside
# the same tool's figure for a loop of independent AESE+AESMC pairs (the
# modelled AES limit of that core, from `kernel::aes_limit`'s own aarch64
# code) and, for the folding loops, that loop with a PMULL fold of every
# block (`kernel::aes_crc_limit`'s).
#
#   scripts/aarch64-mca.sh            build, extract, model, print the table
#   NO_BUILD=1 scripts/aarch64-mca.sh use the assembly of the last build
#
# Environment: CPUS (default "neoverse-n1 neoverse-v1 apple-a14"),
# ITERATIONS (llvm-mca iterations, default 300), KEEP (a directory to keep
# the extracted loops and llvm-mca's reports in), KEY_BITS (128, the
# default, 192 or 256: the key size whose instances are modelled; cycles
# are per AES-128-equivalent block, 10 AES rounds, as the limits' are), and
# the patterns below.
#
# How loops are found, so that a rewrite of the kernel keeps working: the
# assembly is split into functions by symbol (v0 mangling, demangled with
# llvm-cxxfilt-22); a function belongs to a path when its name matches the
# path's pattern (CBC_DECRYPT, CTR, MULTI, CBC_DECRYPT_CRC, MULTI_CRC:
# extended regular expressions)
# and is kernel code that is not the software backend or the limit
# benchmark. Where some matching functions carry the key size's round
# count as a const generic (`::<10>`, `<.., 10>` for AES-128), only those
# count. A loop is a backward branch to a label of the same function; the
# hot loop is, of the innermost loops with AES round instructions
# (AESE/AESD), the one with the most of them, the shortest of equals.
# Blocks per iteration are its AES round instructions / 10 (AES-128).
# The table names each function and loop size, to be checked by eye.
# Requires the packages of ../shared/notes/aarch64.md (Debian's rustc-web
# with the arm64 standard library, gcc-aarch64-linux-gnu, llvm-22).
set -euo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
CPUS=${CPUS:-"neoverse-n1 neoverse-v1 apple-a14"}
ITERATIONS=${ITERATIONS:-300}
case ${KEY_BITS:-128} in
128) KEY_ROUNDS=10 ;;
192) KEY_ROUNDS=12 ;;
256) KEY_ROUNDS=14 ;;
*) echo "aarch64-mca: KEY_BITS is 128, 192 or 256" >&2; exit 2 ;;
esac
CBC_DECRYPT=${CBC_DECRYPT:-'cbc_decrypt'}
CTR=${CTR:-'(^|[^a-z_])ctr'}
# The lane driver's loop is `run_lanes` since the kernel's modes are
# written once (kernel/backends/modes.rs); `multi` before.
MULTI=${MULTI:-'run_lanes($|[^_])|multi'}
# CBC decryption with its output's CRC folded in: `with_output_crc` with
# CTR false; the lanes that fold their input's CRC: `run_lanes_crc`.
CBC_DECRYPT_CRC=${CBC_DECRYPT_CRC:-'with_output_crc::<[0-9]+, false>'}
MULTI_CRC=${MULTI_CRC:-'run_lanes_crc'}
TARGET=aarch64-unknown-linux-gnu
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/aarch64-mca}

for tool in llvm-mca-22 llvm-cxxfilt-22 python3; do
    command -v "$tool" >/dev/null || {
        echo "aarch64-mca: $tool not found (see ../shared/notes/aarch64.md)" >&2
        exit 2
    }
done

if [[ -z ${NO_BUILD:-} ]]; then
    [[ -x /usr/bin/rustc ]] || {
        echo "aarch64-mca: Debian's /usr/bin/rustc (rustc-web) not found" >&2
        exit 2
    }
    echo "aarch64-mca: building the library for $TARGET (release, --emit asm)" >&2
    # The library only, as engine crates build it; v0 symbol names keep
    # generic arguments (the round count) visible.
    (cd "$ROOT" && RUSTC=/usr/bin/rustc \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        cargo rustc --release --target "$TARGET" --lib --no-default-features \
        -- --emit asm -C symbol-mangling-version=v0) >&2
fi
ASM=$(ls -t "$CARGO_TARGET_DIR/$TARGET"/release/deps/mariadb_aria_crypt-*.s 2>/dev/null | head -1)
[[ -n $ASM ]] || {
    echo "aarch64-mca: no assembly under $CARGO_TARGET_DIR (run without NO_BUILD)" >&2
    exit 2
}

if [[ -n ${KEEP:-} ]]; then
    WORK=$KEEP
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi

python3 - "$ASM" "$WORK" "$ITERATIONS" "$KEY_ROUNDS" "$CBC_DECRYPT" "$CTR" "$MULTI" "$CBC_DECRYPT_CRC" "$MULTI_CRC" $CPUS <<'EOF'
import re
import subprocess
import sys

asm, work, iterations, key_rounds, cbc_decrypt, ctr, multi, cbc_decrypt_crc, multi_crc, *cpus = sys.argv[1:]
ROUNDS = 10  # AES-128: blocks are counted as AES-128-equivalent ones
KEY = {"10": "AES-128", "12": "AES-192", "14": "AES-256"}[key_rounds]
AES = re.compile(r"\s+aes[ed]\s")
INSN = re.compile(r"^\s+[a-z]")
BRANCH = re.compile(r"^\s+(?:b(?:\.\w+)?|cbn?z|tbn?z)\s+(?:.*,\s*)?(\.LBB\w+)\s*$")
LABEL = re.compile(r"^(\.LBB\w+):")

# Functions: (mangled, lines), ended by .Lfunc_end.
functions, current = [], None
for line in open(asm):
    line = line.rstrip("\n")
    m = re.match(r"^(_R\w+|_ZN\S+):\s*$", line)
    if m:
        current = (m.group(1), [])
        functions.append(current)
    elif current is not None:
        if line.startswith(".Lfunc_end"):
            current = None
        else:
            current[1].append(line)
demangled = subprocess.run(
    ["llvm-cxxfilt-22"], input="\n".join(f[0] for f in functions),
    capture_output=True, text=True, check=True,
).stdout.splitlines()


def loops(lines):
    """(instructions, AES round count) of every backward branch's loop that
    has no such loop with AES instructions inside it: llvm-mca runs a body
    as straight-line code, so an outer loop (CTR's stretches between
    counter wraps, with the group loop and the tail inside) would be
    modelled as if its inner loops ran once."""
    labels = {}
    for i, line in enumerate(lines):
        m = LABEL.match(line)
        if m:
            labels[m.group(1)] = i
    spans = []
    for i, line in enumerate(lines):
        m = BRANCH.match(line)
        if m and labels.get(m.group(1), i) < i:
            body = [
                l.split("//")[0].rstrip()
                for l in lines[labels[m.group(1)] : i + 1]
                if INSN.match(l)
            ]
            spans.append((labels[m.group(1)], i, body, sum(1 for l in body if AES.match(l))))
    for start, end, body, aes in spans:
        if not any(
            aes2 and start <= s2 and e2 <= end and (s2, e2) != (start, end)
            for s2, e2, _, aes2 in spans
        ):
            yield body, aes


def hot_loop(pattern, eor3):
    """The hot loop of the kernel functions whose demangled name matches,
    of the backend's entries with EOR3 (module `eor3`) or of those without."""
    named = [
        (name, lines)
        for name, (_, lines) in zip(demangled, functions)
        if re.search(pattern, name)
        and name.startswith("mariadb_aria_crypt::kernel")
        and not re.search(r"soft|Soft|limit", name)
        and ("::eor3::" in name) == eor3
    ]
    of_key = [f for f in named if re.search(rf"[<, ]{key_rounds}(usize)?[>,]", f[0])]
    best = None
    for name, lines in of_key or named:
        for body, aes in loops(lines):
            key = (aes, -len(body))
            if aes and (best is None or key > best[0]):
                best = (key, name, body, aes)
    return best


def limit_loops(crc):
    """The limit benchmark's chains (N > 1) where the compiler unrolled a
    whole block's rounds into one loop: N × 10 AESE; with `crc`, those that
    also fold every block into a CRC accumulator."""
    kind = ", true, true>" if crc else ", true, false>"
    for name, (_, lines) in zip(demangled, functions):
        m = re.search(r"limit_aarch64::neon::<(\d+)" + kind, name)
        if m and int(m.group(1)) > 1:
            for body, aes in loops(lines):
                if aes == int(m.group(1)) * ROUNDS:
                    yield name, body, aes
                    break


def mca(cpu, body, tag):
    path = f"{work}/{tag}.s"
    with open(path, "w") as f:
        f.write("\n".join(body) + "\n")
    out = subprocess.run(
        ["llvm-mca-22", "-mtriple=aarch64-linux-gnu", f"-mcpu={cpu}",
         f"-iterations={iterations}", path],
        capture_output=True, text=True, check=True,
    ).stdout
    with open(f"{work}/{tag}.{cpu}.mca.txt", "w") as f:
        f.write(out)
    cycles = int(re.search(r"Total Cycles:\s+(\d+)", out).group(1))
    return cycles / int(iterations)


# The entries with EOR3 (CPUs with the SHA-3 extension; they run there)
# and those without. The last field: whether the loop folds a CRC, so that
# its bound is the limit with CRC folds.
paths = [
    ("CBC decrypt", cbc_decrypt, False, False),
    ("CBC decrypt, EOR3", cbc_decrypt, True, False),
    ("CTR", ctr, False, False),
    ("CTR, EOR3", ctr, True, False),
    ("multi-buffer CBC encrypt", multi, False, False),
    ("multi-buffer, EOR3", multi, True, False),
    ("CBC decrypt + CRC", cbc_decrypt_crc, False, True),
    ("CBC decrypt + CRC, EOR3", cbc_decrypt_crc, True, True),
    ("multi-buffer + CRC", multi_crc, False, True),
    ("multi-buffer + CRC, EOR3", multi_crc, True, True),
]
found = []
for label, pattern, eor3, crc in paths:
    hot = hot_loop(pattern, eor3)
    if hot is None:
        print(f"aarch64-mca: no loop with AES instructions in functions matching /{pattern}/", file=sys.stderr)
        continue
    _, name, body, aes = hot
    found.append((label, name, body, aes, crc))
limits = {crc: list(limit_loops(crc)) for crc in (False, True)}
if not all(limits.values()):
    sys.exit("aarch64-mca: the limit benchmark's loops (limit_aarch64::neon) are missing")

print(f"Hot loops ({KEY}), from", asm.split("/")[-1])
for label, name, body, aes, crc in found:
    print(f"  {label:<26} {name}: {len(body)} instructions, {aes} AES rounds = {aes / ROUNDS:g} AES-128-equivalent blocks per iteration")
for crc, loops_ in limits.items():
    print(f"  {'limit with CRC' if crc else 'limit':<26} limit_aarch64::neon::<N, true, {str(crc).lower()}>:"
          f" N independent chains of 9 AESE+AESMC, AESE, EOR{' and a PMULL fold' if crc else ''};"
          f" N = {', '.join(str(a // ROUNDS) for _, _, a in loops_)} (fully unrolled ones), the best per core")


def limit_of(cpu, crc):
    """The modelled limit of `cpu`: (cycles per block, chains)."""
    return min(
        (mca(cpu, body, re.sub(r"\W+", "_", name)) / (aes / ROUNDS), aes // ROUNDS)
        for name, body, aes in limits[crc]
    )


# One row per loop, one column per core: cycles per block and the share of
# the loop's bound (the limit, or for a loop that folds a CRC the limit with
# CRC folds).
bounds = {cpu: {crc: limit_of(cpu, crc) for crc in (False, True)} for cpu in cpus}
print(f"\nllvm-mca-22 cycles per AES-128-equivalent block (10 AES rounds; {KEY} loops); in brackets the chains (limits)"
      f" or the share of the loop's bound (the limit; with CRC folds for the loops that fold)")
print(f"{'loop':<26}" + "".join(f" {cpu:>22}" for cpu in cpus))
for crc in (False, True):
    name = "limit with CRC folds" if crc else "limit"
    print(f"{name:<26}" + "".join(
        f" {f'{bounds[cpu][crc][0]:.3f} ({bounds[cpu][crc][1]})':>22}" for cpu in cpus))


def has_sha3(cpu):
    """Whether llvm-mca's model of `cpu` has the SHA-3 extension (EOR3): the
    kernel runs its EOR3 entries only there."""
    path = f"{work}/eor3-probe.s"
    with open(path, "w") as f:
        f.write("eor3 v0.16b, v1.16b, v2.16b, v3.16b\n")
    probe = subprocess.run(
        ["llvm-mca-22", "-mtriple=aarch64-linux-gnu", f"-mcpu={cpu}", path],
        capture_output=True, text=True,
    )
    return probe.returncode == 0


sha3 = {cpu: has_sha3(cpu) for cpu in cpus}
for label, name, body, aes, crc in found:
    row = f"{label:<26}"
    for cpu in cpus:
        # An entry with EOR3 does not run on a core without SHA-3 (even
        # where LLVM used no EOR3 in this loop).
        if "EOR3" in label and not sha3[cpu]:
            row += f" {'(no SHA-3)':>22}"
            continue
        cpb = mca(cpu, body, re.sub(r"\W+", "_", label)) / (aes / ROUNDS)
        row += f" {f'{cpb:.3f} ({bounds[cpu][crc][0] / cpb:.0%})':>22}"
    print(row)
EOF
