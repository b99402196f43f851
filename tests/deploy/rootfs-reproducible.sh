#!/usr/bin/env bash
# The enclave's root file system is reproducible: built twice, from two checkouts at different
# paths with separate cargo target directories, it has the same SHA-256, and so does the
# nautilus-master inside it. This runs everything the Dockerfile runs up to `nitro-cli
# build-enclave`, which needs the Nitro CLI and a Docker engine (neither exists here): the same
# build-master.sh and build-rootfs.sh, on this machine's toolchain and target
# (x86_64-unknown-linux-gnu, static; the Dockerfile uses musl with its pinned toolchain, so the
# digests differ from an image's, but the procedure is the one under test).
#
# Also: the build refuses a k3s whose SHA-256 is not the pinned one, a private key in the
# cluster config, a dynamically linked program, and a serve.toml naming a file it lacks.
#
# Stand-in: no K3s release binary can be downloaded here, so a small file takes its place (its
# own SHA-256 is passed as the pinned one); the check that refuses a different hash is tested.
#
# Env: DAAS_REPRO_DIR (default ~/.cache/k3s-daas/enclave-repro) keeps the two target dirs
# between runs (the first run compiles everything twice: about 8 minutes per tree on 2 cores).
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cache=${DAAS_REPRO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/k3s-daas/enclave-repro}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
    echo "rootfs-reproducible: FAIL: $*" >&2
    exit 1
}
for tool in cargo tar sha256sum readelf openssl; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool not found"
done
target=$(rustc -vV | sed -n 's/^host: //p')

# Two checkouts of the same files (tracked and new, as git sees them) at different paths.
# Their locations are fixed so the target dirs can keep compiled dependencies between runs.
tree_a="$cache/a/k3s-daas"
tree_b="$cache/b/somewhere/else/checkout"
for tree in "$tree_a" "$tree_b"; do
    rm -rf "$tree"
    mkdir -p "$tree"
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done |
        tar --null -T - -cf -) | tar -xf - -C "$tree"
done

# The cluster configuration: the committed example plus a throwaway etcd CA certificate.
config="$work/cluster"
cp -r "$repo/deploy-ec2/enclave/cluster.example" "$config"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=etcd-ca -keyout "$work/etcd-ca.key" -out "$config/etcd-ca.pem" 2>/dev/null

# Stand-in for the K3s release binary (see the header).
printf '#!/bin/sh\necho "stand-in for the K3s release binary (the real one is not obtainable here)"\n' >"$work/k3s"
k3s_sha=$(sha256sum "$work/k3s" | cut -d' ' -f1)

build() {
    local name=$1 tree=$2
    echo "rootfs-reproducible: building tree $name at $tree" >&2
    CARGO_TARGET_DIR="$cache/$name/target" SOURCE_DATE_EPOCH=1700000000 \
        "$tree/deploy-ec2/enclave/build-master.sh" --target "$target" --out "$work/$name/bin" >&2
    SOURCE_DATE_EPOCH=1700000000 "$tree/deploy-ec2/enclave/build-rootfs.sh" \
        --nautilus-master "$work/$name/bin/nautilus-master" --k3s "$work/k3s" --k3s-sha256 "$k3s_sha" \
        --cluster-config "$config" --out "$work/$name/image" >&2
}
build a "$tree_a"
build b "$tree_b"

bin_a=$(cut -d' ' -f1 "$work/a/bin/nautilus-master.sha256")
bin_b=$(cut -d' ' -f1 "$work/b/bin/nautilus-master.sha256")
fs_a=$(cut -d' ' -f1 "$work/a/image/rootfs.sha256")
fs_b=$(cut -d' ' -f1 "$work/b/image/rootfs.sha256")
echo "nautilus-master  a: $bin_a"
echo "nautilus-master  b: $bin_b"
echo "rootfs.tar       a: $fs_a"
echo "rootfs.tar       b: $fs_b"
[[ "$bin_a" == "$bin_b" ]] || fail "the two nautilus-master builds differ"
[[ "$fs_a" == "$fs_b" ]] || {
    diff "$work/a/image/manifest.txt" "$work/b/image/manifest.txt" >&2 || true
    fail "the two root file systems differ"
}
# The archive is what it claims: no path from either checkout, the expected tree.
if grep -a -q -e "$tree_a" -e "$tree_b" -e "$cache" "$work/a/bin/nautilus-master"; then
    fail "the binary embeds a build path"
fi
listing=$(tar -tvf "$work/a/image/rootfs.tar")
for want in ./usr/local/bin/nautilus-master ./usr/local/bin/k3s ./etc/k3s-daas/serve.toml \
    ./etc/k3s-daas/etcd-ca.pem ./etc/hosts ./etc/ssl/kms-roots.pem ./tmp/; do
    grep -q " $want\$" <<<"$listing" || fail "rootfs.tar lacks $want"
done
if grep -v ' root/root \| 0/0 ' <<<"$listing" | grep -q .; then
    fail "rootfs.tar has entries not owned by 0:0"
fi
echo "rootfs-reproducible: two builds, one digest ($fs_a)"

# The build's own refusals, each with nothing written.
refuse() {
    local what=$1 pattern=$2
    shift 2
    local out="$work/refused" err
    if err=$(SOURCE_DATE_EPOCH=1700000000 "$repo/deploy-ec2/enclave/build-rootfs.sh" "$@" --out "$out" 2>&1); then
        fail "$what: the build succeeded"
    fi
    grep -q -- "$pattern" <<<"$err" || fail "$what: unexpected error: $err"
    [[ ! -e "$out/rootfs.tar" ]] || fail "$what: a rootfs.tar was written"
    echo "rootfs-reproducible: refused $what: $(tail -n 1 <<<"$err")"
}
good=(--nautilus-master "$work/a/bin/nautilus-master" --k3s "$work/k3s")
refuse "a k3s that is not the pinned release" "not the pinned release" \
    "${good[@]}" --k3s-sha256 "$(printf '0%.0s' {1..64})" --cluster-config "$config"
cp -r "$config" "$work/leaky"
cp "$work/etcd-ca.key" "$work/leaky/etcd-ca.key"
refuse "a private key in the cluster config" "holds a private key" \
    "${good[@]}" --k3s-sha256 "$k3s_sha" --cluster-config "$work/leaky"
refuse "a dynamically linked program" "not a statically linked" \
    --nautilus-master "$(command -v tar)" --k3s "$work/k3s" --k3s-sha256 "$k3s_sha" --cluster-config "$config"
cp -r "$config" "$work/incomplete"
rm "$work/incomplete/etcd-ca.pem"
refuse "a serve.toml naming a missing file" "etcd-ca.pem, which is not in the cluster config" \
    "${good[@]}" --k3s-sha256 "$k3s_sha" --cluster-config "$work/incomplete"
echo "rootfs-reproducible: PASS"
