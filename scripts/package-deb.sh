#!/usr/bin/env bash
# Builds berth's Debian package with dpkg-deb, Debian's own tool for .deb
# archives: the binary and its `tpcm` link, the systemd units of packaging/,
# the commented default /etc/berth/berth.toml, shell completions and manual
# pages (both made by the binary itself, `berth generate`), and the maintainer
# scripts of packaging/debian/. Prints the package's path. Run again with
# nothing changed, it builds nothing and prints the path.
#
#   scripts/package-deb.sh [--binary PATH] [--out-dir DIR] [--compression xz|zstd|gzip|none]
#
#   --binary PATH   package this berth binary (default: BERTH_DEB_BINARY, else
#                   `cargo build --release --locked -p berth-cli`); the test
#                   suite packages the debug binary it has already built
#   --out-dir DIR   where the package goes (default: $CARGO_TARGET_DIR/debian)
#   --compression   of the package's data (default: xz, as Debian's archive)
set -euo pipefail
umask 022
here="$(cd "$(dirname "$0")/.." && pwd)"

die() {
    printf 'package-deb: %s\n' "$*" >&2
    exit 1
}

binary="${BERTH_DEB_BINARY:-}"
out_dir=""
compression=xz
while [ $# -gt 0 ]; do
    case "$1" in
    --binary | --out-dir | --compression)
        [ $# -ge 2 ] || die "$1 needs a value"
        case "$1" in
        --binary) binary="$2" ;;
        --out-dir) out_dir="$2" ;;
        --compression) compression="$2" ;;
        esac
        shift 2
        ;;
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$here/scripts/package-deb.sh"
        exit 0
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
# Paths as the caller meant them, before moving to the repository.
[ -z "$binary" ] || binary="$(realpath -- "$binary")"
[ -z "$out_dir" ] || out_dir="$(realpath -m -- "$out_dir")"
cd "$here"
case "$compression" in
xz | zstd | gzip | none) ;;
*) die "--compression: xz, zstd, gzip or none, not '$compression'" ;;
esac
for tool in dpkg dpkg-deb dpkg-shlibdeps strip gzip sha256sum; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool is missing (Debian's dpkg, dpkg-dev, binutils, gzip and coreutils packages)"
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/berth/target}"
if [ -z "$binary" ]; then
    cargo build --release --locked -p berth-cli >&2
    binary="$CARGO_TARGET_DIR/release/berth"
fi
if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
    die "'$binary' is not an executable file"
fi
out_dir="${out_dir:-$CARGO_TARGET_DIR/debian}"
mkdir -p "$out_dir"

version="$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)"
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "no Debian-usable version in Cargo.toml's [workspace.package]: '$version'"
arch="$(dpkg --print-architecture)"
deb="$out_dir/berth_${version}_${arch}.deb"

units=(packaging/berth.service packaging/berth-ready.target packaging/berth.target)
inputs=("$binary" scripts/package-deb.sh packaging/berth.toml "${units[@]}" packaging/debian/*)
# What the package is made of; the same inputs make the same package.
digest="$(
    {
        printf '%s\n' "$version" "$arch" "$compression"
        sha256sum "${inputs[@]}" | cut -d ' ' -f 1
        stat -c '%a' packaging/debian/*
    } | sha256sum | cut -d ' ' -f 1
)"
if [ -f "$deb" ] && [ "$(cat "$deb.inputs" 2>/dev/null || true)" = "$digest" ]; then
    printf '%s\n' "$deb"
    exit 0
fi

# dpkg-shlibdeps expects the tree as debian/<package> beside debian/control.
work="$out_dir/berth_${version}_${arch}.build"
stage="$work/debian/berth"
rm -rf "$work"
trap 'rm -rf "$work" "$deb.tmp"' EXIT
mkdir -p "$stage"

install -D -m 0755 "$binary" "$stage/usr/bin/berth"
# As dh_strip does: symbols and debug information are not for the package
# (a debug build's are hundreds of MiB).
strip --strip-unneeded "$stage/usr/bin/berth"
ln -s berth "$stage/usr/bin/tpcm"
install -d "$stage/lib/systemd/system"
install -m 0644 "${units[@]}" "$stage/lib/systemd/system/"
install -D -m 0644 packaging/berth.toml "$stage/etc/berth/berth.toml"

berth="$stage/usr/bin/berth"
install -d "$stage/usr/share/bash-completion/completions" "$stage/usr/share/zsh/vendor-completions" \
    "$stage/usr/share/fish/vendor_completions.d" "$stage/usr/share/man/man1"
"$berth" generate completions bash >"$stage/usr/share/bash-completion/completions/berth"
"$berth" generate completions zsh >"$stage/usr/share/zsh/vendor-completions/_berth"
"$berth" generate completions fish >"$stage/usr/share/fish/vendor_completions.d/berth.fish"
"$berth" generate man "$stage/usr/share/man/man1"
gzip -9 -n "$stage"/usr/share/man/man1/*.1
install -D -m 0644 packaging/debian/copyright "$stage/usr/share/doc/berth/copyright"

install -d "$stage/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/"
printf 'Source: berth\n\nPackage: berth\nArchitecture: any\n' >"$work/debian/control"
shlibs="$(cd "$work" && dpkg-shlibdeps -O debian/berth/usr/bin/berth)"
shlibs="${shlibs#shlibs:Depends=}"
installed_size="$(du -sk --exclude=DEBIAN "$stage" | cut -f 1)"
control="$(<packaging/debian/control)"
control="${control//@VERSION@/$version}"
control="${control//@ARCH@/$arch}"
control="${control//@SHLIBS@/$shlibs}"
control="${control//@INSTALLED_SIZE@/$installed_size}"
[[ "$control" != *@*@* ]] || die "packaging/debian/control has a placeholder this script does not fill"
printf '%s\n' "$control" >"$stage/DEBIAN/control"
# Checksums of every file but the conffiles (dpkg keeps theirs itself).
(cd "$stage" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum) >"$stage/DEBIAN/md5sums"

dpkg-deb --root-owner-group -Z"$compression" --build "$stage" "$deb.tmp" >&2
mv -f "$deb.tmp" "$deb"
printf '%s\n' "$digest" >"$deb.inputs"
printf '%s\n' "$deb"
