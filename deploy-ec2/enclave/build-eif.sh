#!/usr/bin/env bash
# Builds the enclave image (EIF) of this commit for one cluster, and its PCRs.
#
#   deploy-ec2/enclave/build-eif.sh --cluster-config DIR [--out DIR] [--allow-dirty]
#
# Needs Docker with buildx (BuildKit) and nitro-cli (aws-nitro-enclaves-cli), so it runs on an
# enclave-capable build host or the parent instance itself. Writes to --out (default
# ./eif-out): k3s-daas.eif, pcrs.json (what `staker-agent admin set-pcrs` takes),
# build-enclave.json (nitro-cli's own output) and build-info.txt (commit, nitro-cli version and
# the SHA-256 of its blobs, which PCR1 depends on, and the cluster config's files).
#
# Anyone can re-derive the PCRs: check out the same commit, run this with the same (published)
# cluster config and the same nitro-cli version, then
#   deploy-ec2/enclave/pcrs.sh --compare eif-out/pcrs.json published-pcrs.json
set -euo pipefail
export LC_ALL=C

usage() {
    echo "usage: $0 --cluster-config DIR [--out DIR] [--allow-dirty]" >&2
    exit 64
}
die() {
    echo "build-eif: $*" >&2
    exit 1
}

config="" out=eif-out allow_dirty=false
while [[ $# -gt 0 ]]; do
    case "$1" in
        --cluster-config) [[ $# -ge 2 ]] || usage; config=$2; shift 2 ;;
        --out) [[ $# -ge 2 ]] || usage; out=$2; shift 2 ;;
        --allow-dirty) allow_dirty=true; shift ;;
        *) echo "build-eif: unknown argument: $1" >&2; usage ;;
    esac
done
[[ -n "$config" ]] || usage
[[ -f "$config/serve.toml" ]] || die "--cluster-config $config has no serve.toml"

# Both paths are taken relative to where the command was run, before moving to the repository.
config=$(cd "$config" && pwd -P)
out=$(realpath -m "$out")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
nitro_cli=${NITRO_CLI:-nitro-cli}
command -v docker >/dev/null 2>&1 || die "docker not found (Docker with buildx is needed)"
docker buildx version >/dev/null 2>&1 || die "docker buildx not available"
command -v "$nitro_cli" >/dev/null 2>&1 || die "nitro-cli not found (dnf install aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel)"

cd "$repo"
# Tracked files only: untracked ones (the cluster config, the output directory) are not built.
if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
    [[ "$allow_dirty" == true ]] ||
        die "tracked files have uncommitted changes: the image would not be the commit's (--allow-dirty to build anyway)"
    echo "build-eif: WARNING: building a dirty work tree; its PCRs belong to no commit" >&2
fi
commit=$(git rev-parse HEAD)
epoch=$(git log -1 --format=%ct)
tag="k3s-daas-enclave:${commit:0:12}"
mkdir -p "$out"

echo "build-eif: docker image $tag (SOURCE_DATE_EPOCH=$epoch)" >&2
docker buildx build --platform linux/amd64 --provenance=false --sbom=false \
    --build-arg "SOURCE_DATE_EPOCH=$epoch" --build-context "cluster=$config" \
    --target enclave --output "type=docker,name=$tag,rewrite-timestamp=true" \
    -f deploy-ec2/enclave/Dockerfile .

echo "build-eif: nitro-cli build-enclave" >&2
"$nitro_cli" build-enclave --docker-uri "$tag" --output-file "$out/k3s-daas.eif" >"$out/build-enclave.json"
NITRO_CLI="$nitro_cli" "$here/pcrs.sh" "$out/k3s-daas.eif" >"$out/pcrs.json"

{
    echo "commit $commit"
    echo "source_date_epoch $epoch"
    echo "nitro-cli $("$nitro_cli" --version 2>&1 | head -n 1)"
    for blob in /usr/share/nitro_enclaves/blobs/*; do
        if [[ -f "$blob" ]]; then sha256sum "$blob"; fi
    done
    echo "cluster config:"
    (cd "$config" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
} >"$out/build-info.txt"

cat "$out/pcrs.json"
echo "build-eif: wrote $out/k3s-daas.eif, pcrs.json, build-enclave.json, build-info.txt" >&2
