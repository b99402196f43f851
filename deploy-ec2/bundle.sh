#!/usr/bin/env bash
# Builds the artefact bundles that the CloudFormation user-data installs:
#
#   deploy-ec2/bundle.sh worker --staker-agent BIN --k3s BIN --out DIR
#       -> DIR/k3s-daas-worker.tar.gz and DIR/k3s-daas-worker.tar.gz.sha256
#   deploy-ec2/bundle.sh parent --nautilus-master BIN --eif FILE --pcrs FILE --etcd-tls DIR \
#       [--etcd BIN] --out DIR
#     (--etcd-tls: the public half of deploy-ec2/parent/etcd-tls.sh's output, ca.pem and
#     server.crt; the server key travels in Secrets Manager, never in a bundle)
#       -> DIR/k3s-daas-parent.tar.gz and DIR/k3s-daas-parent.tar.gz.sha256
#
# Paths inside a tarball are install paths relative to /. The tarballs hold regular files only
# (no directory entries), so extracting one never changes the mode or owner of /usr or /etc.
# They are deterministic: sorted names, one mtime (SOURCE_DATE_EPOCH, default the commit time
# of HEAD), owner 0:0 numeric, fixed modes, gzip without name or time. The same inputs give the
# same SHA-256, which is what the template's *BundleSha256 parameters pin.
#
# Exit codes: 0 ok, 1 failure (missing or bad input), 64 bad usage.
set -euo pipefail

readonly PROG="deploy-ec2/bundle.sh"
DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly DEPLOY_DIR

usage() {
    cat <<EOF
usage: $PROG worker --staker-agent BIN --k3s BIN --out DIR
       $PROG parent --nautilus-master BIN --eif FILE --pcrs FILE --etcd-tls DIR [--etcd BIN] --out DIR

Writes DIR/k3s-daas-<kind>.tar.gz and its .sha256 and prints the SHA-256 (the value of the
template's WorkerBundleSha256 / ParentBundleSha256 parameter).
SOURCE_DATE_EPOCH sets the files' mtime (default: the commit time of HEAD).
EOF
}

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

usage_error() {
    echo "$PROG: $*" >&2
    usage >&2
    exit 64
}

# A required input file: present, regular, not empty.
need_file() {
    local what="$1" path="$2"
    [[ -n "$path" ]] || usage_error "missing $what"
    [[ -f "$path" ]] || die "missing file: $what '$path' does not exist or is not a regular file"
    [[ -s "$path" ]] || die "empty file: $what '$path'"
}

# A file that must be in the repository next to this script (written by the parent-units work).
need_repo_file() {
    local rel="$1"
    [[ -f "$DEPLOY_DIR/$rel" ]] || die "missing file: deploy-ec2/$rel (the parent host units and runner must be in the repository)"
}

# pcrs.json must carry the three measurements the KMS key policy and the chain use. A zero PCR0
# is what a --debug-mode enclave reports: such an image must never be deployed.
check_pcrs() {
    local file="$1" n
    for n in 0 1 2; do
        grep -Eq "\"PCR$n\"[[:space:]]*:[[:space:]]*\"[0-9a-fA-F]{96}\"" "$file" \
            || die "bad pcrs file '$file': no \"PCR$n\" with 96 hex digits (expected {\"PCR0\": hex, \"PCR1\": hex, \"PCR2\": hex})"
    done
    if grep -Eq '"PCR0"[[:space:]]*:[[:space:]]*"0{96}"' "$file"; then
        die "bad pcrs file '$file': PCR0 is all zeros (a debug-mode measurement)"
    fi
}

source_date_epoch() {
    if [[ -n "${SOURCE_DATE_EPOCH:-}" ]]; then
        [[ "$SOURCE_DATE_EPOCH" =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH must be seconds since the epoch, got '$SOURCE_DATE_EPOCH'"
        printf '%s\n' "$SOURCE_DATE_EPOCH"
        return
    fi
    git -C "$DEPLOY_DIR" log -1 --format=%ct 2>/dev/null \
        || die "SOURCE_DATE_EPOCH is not set and the commit time of HEAD cannot be read (not a git checkout?)"
}

# stage SRC MODE PATH: copy SRC into the staging tree at PATH (relative to /) with MODE.
stage() {
    local src="$1" mode="$2" rel="$3"
    install -D -m "$mode" "$src" "$STAGING/$rel"
    printf '%s\n' "$rel" >>"$STAGING.list"
}

# pack NAME: write $OUT/NAME.tar.gz and NAME.tar.gz.sha256 from the staged files.
pack() {
    local name="$1" epoch tarball
    epoch="$(source_date_epoch)"
    tarball="$OUT/$name.tar.gz"
    LC_ALL=C sort -o "$STAGING.list" "$STAGING.list"
    # --no-recursion + an explicit sorted list: files only, in byte order. --format=gnu writes
    # no pax headers (which would carry atime/ctime and break determinism).
    tar --create --format=gnu --no-recursion --directory="$STAGING" \
        --files-from="$STAGING.list" --mtime="@$epoch" \
        --owner=0 --group=0 --numeric-owner \
        | gzip -n -9 >"$tarball.tmp"
    mv -f "$tarball.tmp" "$tarball"
    (cd "$OUT" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256.tmp" && mv -f "$name.tar.gz.sha256.tmp" "$name.tar.gz.sha256")
    cut -d' ' -f1 "$tarball.sha256"
    echo "$PROG: wrote $tarball ($(wc -l <"$STAGING.list") files, mtime @$epoch)" >&2
}

main() {
    [[ $# -ge 1 ]] || usage_error "missing bundle kind (worker or parent)"
    local kind="$1"
    shift
    local staker_agent="" k3s="" nautilus_master="" eif="" pcrs="" etcd="" etcd_tls="" out=""
    case "$kind" in
        worker | parent) ;;
        -h | --help) usage; exit 0 ;;
        *) usage_error "unknown bundle kind '$kind' (worker or parent)" ;;
    esac
    while [[ $# -gt 0 ]]; do
        [[ $# -ge 2 ]] || usage_error "option $1 needs a value"
        case "$kind:$1" in
            worker:--staker-agent) staker_agent="$2" ;;
            worker:--k3s) k3s="$2" ;;
            parent:--nautilus-master) nautilus_master="$2" ;;
            parent:--eif) eif="$2" ;;
            parent:--pcrs) pcrs="$2" ;;
            parent:--etcd) etcd="$2" ;;
            parent:--etcd-tls) etcd_tls="$2" ;;
            *:--out) out="$2" ;;
            *) usage_error "unknown option for $kind: $1" ;;
        esac
        shift 2
    done
    [[ -n "$out" ]] || usage_error "missing --out DIR"

    # Check every input before writing anything.
    if [[ "$kind" == worker ]]; then
        need_file "--staker-agent" "$staker_agent"
        need_file "--k3s" "$k3s"
        [[ -f "$DEPLOY_DIR/systemd/staker-agent.service" ]] || die "missing file: deploy-ec2/systemd/staker-agent.service"
    else
        need_file "--nautilus-master" "$nautilus_master"
        need_file "--eif" "$eif"
        need_file "--pcrs" "$pcrs"
        check_pcrs "$pcrs"
        [[ -z "$etcd" ]] || need_file "--etcd" "$etcd"
        [[ -n "$etcd_tls" ]] || usage_error "missing --etcd-tls DIR (deploy-ec2/parent/etcd-tls.sh --out DIR)"
        need_file "--etcd-tls ca.pem" "$etcd_tls/ca.pem"
        need_file "--etcd-tls server.crt" "$etcd_tls/server.crt"
        if grep -q -- 'PRIVATE KEY' "$etcd_tls/ca.pem" "$etcd_tls/server.crt"; then
            die "--etcd-tls: ca.pem or server.crt holds a private key; the bundle carries certificates only"
        fi
        local rel
        for rel in systemd/k3s-daas-enclave.service systemd/k3s-daas-bridge.service \
            systemd/k3s-daas-etcd.service systemd/nitro-enclaves-allocator.service.d/10-k3s-daas.conf \
            parent/k3s-daas-enclave preflight.sh nitro/allocator.yaml; do
            need_repo_file "$rel"
        done
    fi

    mkdir -p "$out" || die "cannot create output directory '$out'"
    OUT="$(cd "$out" && pwd)"
    STAGING="$(mktemp -d "${TMPDIR:-/tmp}/k3s-daas-bundle.XXXXXX")"
    trap 'rm -rf -- "$STAGING" "$STAGING.list"' EXIT
    : >"$STAGING.list"

    if [[ "$kind" == worker ]]; then
        stage "$staker_agent" 0755 usr/local/bin/staker-agent
        stage "$k3s" 0755 usr/local/bin/k3s
        stage "$DEPLOY_DIR/systemd/staker-agent.service" 0644 etc/systemd/system/staker-agent.service
        pack k3s-daas-worker
    else
        stage "$nautilus_master" 0755 usr/local/bin/nautilus-master
        stage "$eif" 0644 opt/k3s-daas/k3s-daas.eif
        stage "$pcrs" 0644 opt/k3s-daas/pcrs.json
        stage "$DEPLOY_DIR/systemd/k3s-daas-enclave.service" 0644 etc/systemd/system/k3s-daas-enclave.service
        stage "$DEPLOY_DIR/systemd/k3s-daas-bridge.service" 0644 etc/systemd/system/k3s-daas-bridge.service
        stage "$DEPLOY_DIR/systemd/k3s-daas-etcd.service" 0644 etc/systemd/system/k3s-daas-etcd.service
        stage "$DEPLOY_DIR/systemd/nitro-enclaves-allocator.service.d/10-k3s-daas.conf" 0644 \
            etc/systemd/system/nitro-enclaves-allocator.service.d/10-k3s-daas.conf
        stage "$DEPLOY_DIR/parent/k3s-daas-enclave" 0755 usr/local/bin/k3s-daas-enclave
        stage "$DEPLOY_DIR/preflight.sh" 0755 usr/local/bin/k3s-daas-preflight
        stage "$DEPLOY_DIR/nitro/allocator.yaml" 0644 etc/nitro_enclaves/allocator.yaml
        # etcd is pinned the same way as everything else: the caller passes the binary from the
        # SHA-256-checked release tarball, and the bundle's own SHA-256 pins it from then on.
        [[ -z "$etcd" ]] || stage "$etcd" 0755 usr/local/bin/etcd
        stage "$etcd_tls/ca.pem" 0644 etc/k3s-daas/etcd/ca.pem
        stage "$etcd_tls/server.crt" 0644 etc/k3s-daas/etcd/server.crt
        pack k3s-daas-parent
    fi
}

main "$@"
