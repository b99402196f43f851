#!/usr/bin/env bash
# Assembles the enclave's root file system from its inputs, byte for byte reproducibly: the same
# inputs give the same rootfs.tar (and so the same image layer and the same PCR2).
#
#   deploy-ec2/enclave/build-rootfs.sh --nautilus-master FILE --k3s FILE --k3s-sha256 HEX \
#       --cluster-config DIR --out DIR
#
# Inputs:
#   --nautilus-master  the static enclave build (deploy-ec2/enclave/build-master.sh)
#   --k3s              the pinned K3s release binary; --k3s-sha256 is its published SHA-256 and
#                      is checked here (the Dockerfile takes it from the release's sha256sum file)
#   --cluster-config   the cluster's public configuration: serve.toml and the public files it
#                      names under /etc/k3s-daas/ (etcd CA, ...). It is part of the measurement:
#                      publish it with the PCRs. Private keys are refused. A file `hosts`
#                      becomes /etc/hosts (names mapped to the bridge's egress forwarders).
# Output in --out: rootfs/ (the tree), rootfs.tar (sorted, owner 0:0, every mtime
# $SOURCE_DATE_EPOCH, default 0), rootfs.sha256 and manifest.txt (SHA-256 of every file).
set -euo pipefail
export LC_ALL=C

usage() {
    echo "usage: $0 --nautilus-master FILE --k3s FILE --k3s-sha256 HEX --cluster-config DIR --out DIR" >&2
    exit 64
}
die() {
    echo "build-rootfs: $*" >&2
    exit 1
}

master="" k3s="" k3s_sha="" config="" out=""
while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || usage
    case "$1" in
        --nautilus-master) master=$2 ;;
        --k3s) k3s=$2 ;;
        --k3s-sha256) k3s_sha=$2 ;;
        --cluster-config) config=$2 ;;
        --out) out=$2 ;;
        *) echo "build-rootfs: unknown argument: $1" >&2; usage ;;
    esac
    shift 2
done
[[ -n "$master" && -n "$k3s" && -n "$k3s_sha" && -n "$config" && -n "$out" ]] || usage

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
epoch=${SOURCE_DATE_EPOCH:-0}
[[ "$epoch" =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH must be a number of seconds, got '$epoch'"

# --- check the inputs before writing anything ---------------------------------------------------
[[ -f "$master" ]] || die "--nautilus-master $master: no such file"
[[ -f "$k3s" ]] || die "--k3s $k3s: no such file"
[[ -d "$config" ]] || die "--cluster-config $config: no such directory"
[[ -f "$config/serve.toml" ]] || die "--cluster-config $config has no serve.toml"

static_elf() {
    local file=$1
    [[ "$(head -c 4 "$file" | od -An -tx1 | tr -d ' \n')" == 7f454c46 ]] || return 1
    # A dynamically linked program has a PT_INTERP header naming its loader; the enclave's
    # root file system has no loader and no shared libraries.
    ! LC_ALL=C readelf -lW "$file" 2>/dev/null | grep -q 'INTERP'
}
static_elf "$master" || die "$master is not a statically linked ELF program (the enclave has no shared libraries; build it with build-master.sh)"

k3s_sha=${k3s_sha,,}
[[ "$k3s_sha" =~ ^[0-9a-f]{64}$ ]] || die "--k3s-sha256 must be 64 hex digits"
actual=$(sha256sum "$k3s" | cut -d' ' -f1)
[[ "$actual" == "$k3s_sha" ]] || die "k3s SHA-256 is $actual, expected $k3s_sha: not the pinned release"

config_files=()
while IFS= read -r -d '' f; do
    rel=${f#"$config"/}
    [[ -f "$f" && ! -L "$f" ]] || die "cluster config: $rel is not a regular file (symlinks and special files are refused)"
    [[ "$rel" =~ ^[A-Za-z0-9._/-]+$ ]] || die "cluster config: file name '$rel' has characters outside [A-Za-z0-9._/-]"
    if grep -q -- '-----BEGIN [A-Z ]*PRIVATE KEY-----' "$f"; then
        die "cluster config: $rel holds a private key; the image is public (everything in it can be read from the EIF)"
    fi
    config_files+=("$rel")
done < <(find "$config" -mindepth 1 \( -type f -o -type l -o -type p -o -type s -o -type b -o -type c \) -print0 | sort -z)

# Every /etc/k3s-daas/ path that serve.toml names must be in the cluster config.
while IFS= read -r path; do
    [[ -n "$path" ]] || continue
    [[ -f "$config/${path#/etc/k3s-daas/}" ]] ||
        die "serve.toml names $path, which is not in the cluster config directory"
done < <(grep -oE '"/etc/k3s-daas/[^"]+"' "$config/serve.toml" | tr -d '"' | sort -u)

# --- assemble ------------------------------------------------------------------------------------
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
root="$out/rootfs"
rm -rf "$root" "$out/rootfs.tar" "$out/rootfs.sha256" "$out/manifest.txt"
umask 022
for dir in etc etc/k3s-daas etc/ssl usr usr/local usr/local/bin run tmp var var/lib root; do
    mkdir -p "$root/$dir"
done
install -m 0755 "$master" "$root/usr/local/bin/nautilus-master"
install -m 0755 "$k3s" "$root/usr/local/bin/k3s"
install -m 0644 "$here/kms-roots.pem" "$root/etc/ssl/kms-roots.pem"
for rel in "${config_files[@]}"; do
    if [[ "$rel" == hosts ]]; then
        install -m 0644 "$config/hosts" "$root/etc/hosts"
        continue
    fi
    mkdir -p "$root/etc/k3s-daas/$(dirname "$rel")"
    install -m 0644 "$config/$rel" "$root/etc/k3s-daas/$rel"
done
# Go programs (k3s) look users up in /etc/passwd; the enclave runs everything as root.
printf 'root:x:0:0:root:/root:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"

# Fixed modes for every directory, whatever the umask or the filesystem did.
find "$root" -type d -exec chmod 0755 {} +
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
# Fixed mtimes in the tree too: the Dockerfile copies the tree (not the tar) into the image.
find "$root" -exec touch -h -d "@$epoch" {} +

tar --sort=name --format=gnu --numeric-owner --owner=0 --group=0 \
    --mtime="@$epoch" -C "$root" -cf "$out/rootfs.tar" .
(cd "$root" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$out/manifest.txt"
sha256sum "$out/rootfs.tar" | sed 's|  .*|  rootfs.tar|' >"$out/rootfs.sha256"
cat "$out/rootfs.sha256"
