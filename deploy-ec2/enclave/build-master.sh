#!/usr/bin/env bash
# Builds the enclave's nautilus-master reproducibly: the same commit gives the same bytes, whatever
# the checkout path, the target dir or the machine, as long as the toolchain is the same (the
# Dockerfile pins it by image digest).
#
#   deploy-ec2/enclave/build-master.sh [--target TRIPLE] --out DIR
#
# - `--no-default-features`: the enclave build carries no devnet and no dev TEE paths.
# - `--locked`: exactly the dependency versions of Cargo.lock.
# - static (`crt-static`), and `target-cpu=x86-64` so the code does not depend on the build host's
#   CPU (MystenLabs/nautilus PR #28 found this necessary).
# - every absolute path the compiler could embed (the checkout, cargo's registry, the target dir)
#   is remapped to a fixed prefix; symbols are stripped.
# The target defaults to x86_64-unknown-linux-musl (the Dockerfile); the reproducibility test on a
# machine without the musl target passes the host's x86_64-unknown-linux-gnu.
set -euo pipefail

usage() {
    echo "usage: $0 [--target TRIPLE] --out DIR" >&2
    exit 64
}

target=x86_64-unknown-linux-musl
out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --target) [[ $# -ge 2 ]] || usage; target=$2; shift 2 ;;
        --out) [[ $# -ge 2 ]] || usage; out=$2; shift 2 ;;
        -h | --help) usage ;;
        *) echo "build-master: unknown argument: $1" >&2; usage ;;
    esac
done
[[ -n "$out" ]] || usage

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cargo_home=$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd -P)
target_dir=${CARGO_TARGET_DIR:-$src/target}
mkdir -p "$target_dir" "$out"
target_dir=$(cd "$target_dir" && pwd -P)

# The remaps are listed most specific first: rustc applies the last matching one, so the general
# prefixes come last in the flags below.
rustflags=(
    -C target-feature=+crt-static
    -C target-cpu=x86-64
    -C strip=symbols
    "--remap-path-prefix=$cargo_home=/cargo"
    "--remap-path-prefix=$target_dir=/target"
    "--remap-path-prefix=$src=/k3s-daas"
)
# C code built by build scripts (ring, zstd) gets the same remaps.
cflags="-ffile-prefix-map=$cargo_home=/cargo -ffile-prefix-map=$target_dir=/target -ffile-prefix-map=$src=/k3s-daas"

echo "build-master: $target, source $src -> /k3s-daas" >&2
(
    cd "$src"
    export RUSTFLAGS="${rustflags[*]}"
    export CFLAGS="$cflags"
    export CARGO_INCREMENTAL=0
    export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"
    cargo build --release --locked --target "$target" \
        -p nautilus-master --no-default-features --bin nautilus-master
)
install -m 0755 "$target_dir/$target/release/nautilus-master" "$out/nautilus-master"
sha256sum "$out/nautilus-master" | sed "s|  .*|  nautilus-master|" >"$out/nautilus-master.sha256"
cat "$out/nautilus-master.sha256"
