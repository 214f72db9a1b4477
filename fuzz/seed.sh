#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the MariaDB fixtures in tests/fixtures/.
# The corpora are git-ignored; this script rebuilds their seeds the same way
# every time (file names are derived from the content's origin, so running it
# again adds nothing new). Needs only bash and coreutils (od, head, dd).
#
#   fuzz/seed.sh            seed every target
#
# Input formats are documented at the top of each fuzz target.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fixtures="$here/../tests/fixtures"
corpus="$here/corpus"
mkdir -p "$corpus"/{kernel_differential,page_decrypt,header_parse,key_file,table_walker}

# Writes the bytes given as decimal numbers.
bytes() {
    local b out=""
    for b in "$@"; do out+=$(printf '\\x%02x' "$b"); done
    printf "%b" "$out"
}
le32() { bytes $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
be16_at() { # file offset
    local hi lo
    read -r hi lo < <(od -An -tu1 -j"$2" -N2 "$1")
    echo $((hi * 256 + lo))
}
json() { # case.json key -> raw value (strings unquoted)
    sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1" | head -n1
}

seeded=0
for case_dir in "$fixtures"/*/; do
    case_json="$case_dir/case.json"
    [[ -f $case_json ]] || continue
    case_name="$(basename "$case_dir")"
    algorithm="$(json "$case_json" algorithm)"
    bs="$(json "$case_json" block_size)"
    transactional="$(json "$case_json" transactional)"
    debug="$(json "$case_json" debug_key_management)"
    key_id="$(json "$case_json" key_id)"

    # Key files: plain as they are, encrypted with their secret, and a
    # plain one to be encrypted by the target (flag 2).
    for kf in "$case_dir"keys.txt; do
        [[ -f $kf ]] || continue
        { bytes 0 0; cat "$kf"; } >"$corpus/key_file/plain-$case_name"
        { bytes 2 27; printf 'aria-fixture-filekey-secret'; cat "$kf"; } >"$corpus/key_file/enc-$case_name"
    done
    if [[ -f ${case_dir}keys.enc ]]; then
        { bytes 1 27; printf 'aria-fixture-filekey-secret'; cat "${case_dir}keys.enc"; } \
            >"$corpus/key_file/salted-$case_name"
        { bytes 0 0; cat "${case_dir}keys.enc"; } >"$corpus/key_file/salted-nosecret-$case_name"
    fi

    # Tables: every .MAI/.MAD pair under the case directory.
    while IFS= read -r mai; do
        table="${mai%.MAI}"
        rel="${table#"$case_dir"}"
        name="$case_name-${rel//\//-}"
        mad="$table.MAD"
        hl="$(be16_at "$mai" 6)"
        # Header parsing: the header information, and the whole first block.
        head -c "$hl" "$mai" >"$corpus/header_parse/$name-header"
        head -c 8192 "$mai" >"$corpus/header_parse/$name-block0"

        # Only encrypted tables have a crypt block: extra_options bit 0.
        base_pos="$(be16_at "$mai" 12)"
        extra="$(be16_at "$mai" $((base_pos + 90)))"
        ((extra & 1)) || continue
        crypt_at=$((hl - 22))

        flags=0
        [[ $transactional == true ]] && flags=$((flags | 2))
        [[ $algorithm == ctr ]] && flags=$((flags | 4))
        [[ $debug != null && -n $debug ]] && flags=$((flags | 8))
        # Key id selector: 1, 2, 7, 3 (see page_decrypt.rs).
        case "$case_name:$key_id" in
            cbc_key128:*) flags=$((flags | 0x80)) ;; # its key 1 is id 7 there
            cbc_key192:*) flags=$((flags | 0xc0)) ;; # its key 1 is id 3 there
            *:2) flags=$((flags | 0x40)) ;;
        esac
        bs_sel=$(((bs - 4096) / 1024))

        for file in "$mai" "$mad"; do
            [[ -f $file ]] || continue
            size="$(stat -c %s "$file")"
            pages=$((size / bs))
            file_flag=0
            [[ $file == "$mad" ]] && file_flag=1
            for n in 0 1 2 3 $((pages / 2)) $((pages - 1)); do
                ((n >= 0 && n < pages)) || continue
                for construct in 0 32; do
                    out="$corpus/page_decrypt/$name-${file##*.}-p$n-c$construct"
                    [[ -f $out ]] && continue
                    {
                        bytes $((flags | file_flag | construct)) "$bs_sel" 1
                        le32 "$n"
                        dd if="$mai" bs=1 skip=$((crypt_at + 2)) count=20 status=none # space, scheme_iv
                        le32 $((n * 8 * 97 + 13))                      # bit to flip
                        bytes 1                                         # keystart = bs, backend 0
                        dd if="$file" bs="$bs" skip="$n" count=1 status=none
                    } >"$out"
                    seeded=$((seeded + 1))
                done
            done
            # Kernel: page bodies as data (the target reads its own format).
            dd if="$file" bs=600 skip=$((bs / 600 + 1)) count=1 status=none >"$corpus/kernel_differential/$name-${file##*.}"
        done
    done < <(find "$case_dir" -name '*.MAI' | sort)
done

# The table walker: directory images (see fuzz_targets/table_walker.rs:
# records of name selector, LE16 length, bytes; selectors 0-3 are t1.MAI,
# t1.MAD, t2.MAI, t2.MAD).
record() { # selector file [max bytes]
    local len
    len="$(stat -c %s "$2")"
    ((len > ${3:-65535})) && len=${3:-65535}
    bytes "$1" $((len & 255)) $((len >> 8))
    head -c "$len" "$2"
}
db1="$fixtures/datadir/db1"
{ record 0 "$db1/enc1.MAI"; record 1 "$db1/enc1.MAD"; } >"$corpus/table_walker/enc1"
{ record 0 "$db1/enc1.MAI"; record 1 "$db1/enc1.MAD" 20000; } >"$corpus/table_walker/enc1-cut-mad"
{ record 0 "$db1/enc1.MAI" 600; record 1 "$db1/enc1.MAD"; } >"$corpus/table_walker/enc1-cut-mai"
{ record 0 "$db1/enc1.MAI"; record 1 "$db1/dyn1.MAD"; record 2 "$db1/dyn1.MAI"; } >"$corpus/table_walker/mismatched"
{ record 2 "$db1/dyn1.MAI"; record 3 "$db1/dyn1.MAD"; record 0 "$db1/fix1.MAI"; record 1 "$db1/fix1.MAD"; } >"$corpus/table_walker/plain-tables"
{ record 0 "$fixtures/bs4096/t1.MAI" 16384; record 1 "$fixtures/bs4096/t1.MAD" 16384; } >"$corpus/table_walker/bs4096"

for t in "$corpus"/*/; do
    printf '%-22s %4d seeds\n' "$(basename "$t")" "$(find "$t" -type f | wc -l)"
done
