#!/usr/bin/env bash
# Release packaging checks (issue 15).
#
#   scripts/package.sh [crate|deb|deb-build|all]      (default: all)
#
# crate  `cargo publish --dry-run`: packs the crate as crates.io would get
#        it (the file list is `include` in Cargo.toml) and builds it from
#        the unpacked copy (the verification build). No upload: a dry run
#        only reads the crates.io index. Then `cargo test` from that
#        unpacked copy: the unit and doc tests the package ships must pass
#        without the repository around them (README, "Tests").
# deb    The Debian package with cargo-deb (pinned below, installed with
#        `cargo install --locked` if missing): the release binary, the man
#        pages and completions it generates (`aria-crypt manpages`,
#        `aria-crypt completions`) under target/assets, then `cargo deb
#        --no-build`. Then, as root: `dpkg -i`, `aria-crypt --version`,
#        `man -w` of every page, the bash completion loads, the README's
#        verify command with the installed binary, and `dpkg -r` (also when
#        a check fails). Installs man-db if `man` is missing.
# deb-build  Only build the .deb (no root needed), for `dpkg -i` by hand.
#
# Debian 12; `deb` and `all` as root (dpkg -i). The .deb stays in
# target/debian/.
set -euo pipefail

mode="${1:-all}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cargo_deb_version="3.8.0"
deb_name="aria-crypt"

say() { printf '== package: %s\n' "$*"; }
die() { printf 'package: %s\n' "$*" >&2; exit 1; }

check_crate() {
    local start=$SECONDS
    local version unpacked crate candidate
    version=$(cargo metadata --no-deps --format-version 1 |
        sed -n 's/.*"name":"mariadb-aria-crypt","version":"\([^"]*\)".*/\1/p')
    [[ -n "$version" ]] || die "cannot read the package version"
    unpacked="$root/target/package/mariadb-aria-crypt-$version"
    # `cargo package` leaves the .crate in target/package, a dry-run
    # publish in target/package/tmp-crate: no stale one may be measured.
    rm -f "$root"/target/package/{,tmp-crate/}"mariadb-aria-crypt-$version.crate"
    say "cargo publish --dry-run (pack, then the verification build)"
    # --allow-dirty: this checks what the package holds and that it
    # builds, not whether the work tree is committed.
    cargo publish --dry-run --locked --allow-dirty
    crate=""
    for candidate in "$root"/target/package/{,tmp-crate/}"mariadb-aria-crypt-$version.crate"; do
        if [[ -f "$candidate" ]]; then crate="$candidate"; fi
    done
    [[ -n "$crate" ]] || die "no .crate file after the dry run"
    [[ -f "$unpacked/Cargo.toml" ]] || die "no unpacked package at $unpacked"
    for file in LICENSE-MIT LICENSE-APACHE README.md SECURITY.md; do
        [[ -f "$unpacked/$file" ]] || die "the package lacks $file"
    done
    say "the package: $(find "$unpacked" -type f -not -path "$unpacked/target/*" | wc -l) files," \
        "$(stat -c %s "$crate") bytes compressed ($crate)"

    say "cargo test from the unpacked package"
    # The repository's target directory: the dependencies are built already.
    (cd "$unpacked" && CARGO_TARGET_DIR="$root/target" cargo test --locked)
    say "crate checks took $((SECONDS - start)) s"
}

ensure_cargo_deb() {
    if cargo deb --version 2>/dev/null | grep -qF "$cargo_deb_version"; then
        return
    fi
    say "installing cargo-deb $cargo_deb_version"
    cargo install cargo-deb --version "$cargo_deb_version" --locked
}

build_deb() {
    ensure_cargo_deb
    say "release binary, man pages and completions"
    cargo build --release --locked
    local bin="$root/target/release/aria-crypt"
    local assets="$root/target/assets"
    rm -rf "$assets"
    mkdir -p "$assets/completions"
    "$bin" manpages "$assets/man" >/dev/null
    "$bin" completions bash >"$assets/completions/aria-crypt.bash"
    "$bin" completions zsh >"$assets/completions/_aria-crypt"
    "$bin" completions fish >"$assets/completions/aria-crypt.fish"

    say "cargo deb"
    rm -f "$root"/target/debian/"$deb_name"_*.deb
    cargo deb --no-build --locked
}

remove_deb() {
    if dpkg -s "$deb_name" >/dev/null 2>&1; then
        say "dpkg -r $deb_name"
        dpkg -r "$deb_name" >/dev/null
    fi
}

check_deb() {
    local start=$SECONDS
    [[ $(id -u) -eq 0 ]] || die "the Debian package checks install it: run as root"
    if dpkg -s "$deb_name" >/dev/null 2>&1; then
        die "$deb_name is installed already; remove it first (dpkg -r $deb_name)"
    fi
    build_deb

    local deb
    deb=$(ls "$root"/target/debian/"$deb_name"_*.deb)
    say "$deb"
    dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
    dpkg -c "$deb"

    if ! command -v man >/dev/null; then
        say "installing man-db"
        apt-get install -y --no-install-recommends man-db >/dev/null ||
            { apt-get update -qq && apt-get install -y --no-install-recommends man-db >/dev/null; }
    fi

    trap remove_deb EXIT
    # Debian's slim container images drop /usr/share/man through a
    # `path-exclude` in /etc/dpkg/dpkg.cfg.d/; a later --path-include on the
    # command line wins for this package's files.
    say "dpkg -i"
    dpkg --path-include="/usr/share/man/man1/aria-crypt*" \
        --path-include="/usr/share/doc/$deb_name/*" -i "$deb"

    say "the installed tool"
    [[ $(command -v aria-crypt) == /usr/bin/aria-crypt ]] ||
        die "aria-crypt on PATH is $(command -v aria-crypt), not the package's"
    /usr/bin/aria-crypt --version
    local page
    for page in /usr/share/man/man1/aria-crypt*.1.gz; do
        page=$(basename "$page" .1.gz)
        man -w "$page"
    done
    man -w aria-crypt >/dev/null
    # The page renders, with the tool's own words.
    MANWIDTH=80 man aria-crypt-verify 2>/dev/null | grep -q "check every checksum" ||
        die "man aria-crypt-verify does not render the verify help"
    bash -c 'source /usr/share/bash-completion/completions/aria-crypt && complete -p aria-crypt' ||
        die "the bash completion does not load"
    say "the README's verify command with /usr/bin/aria-crypt"
    /usr/bin/aria-crypt verify --key-file tests/fixtures/cbc_trans_256/keys.txt tests/fixtures/cbc_trans_256/t1

    remove_deb
    trap - EXIT
    [[ ! -e /usr/bin/aria-crypt && ! -e /usr/share/man/man1/aria-crypt.1.gz ]] ||
        die "dpkg -r left files behind"
    say "Debian package checks took $((SECONDS - start)) s"
}

case "$mode" in
    crate) check_crate ;;
    deb) check_deb ;;
    deb-build) build_deb ;;
    all) check_crate && check_deb ;;
    *) die "usage: scripts/package.sh [crate|deb|deb-build|all]" ;;
esac
