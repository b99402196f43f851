#!/usr/bin/env bash
# Prints an EIF's measurements as the PCR file `staker-agent admin set-pcrs --pcrs` reads, or
# compares two PCR files (yours and a published one, or yours and the chain's).
#
#   deploy-ec2/enclave/pcrs.sh EIF                 # {"PCR0": …, "PCR1": …, "PCR2": …} on stdout
#   deploy-ec2/enclave/pcrs.sh --compare A.json B.json
#
# PCR0 measures the whole image, PCR1 the kernel and nitro-cli's bootstrap ramdisk (it changes
# with the nitro-cli blobs), PCR2 the application ramdisk (our root file system). `nitro-cli` is
# taken from $NITRO_CLI or PATH.
set -euo pipefail

usage() {
    echo "usage: $0 EIF | --compare A.json B.json" >&2
    exit 64
}
die() {
    echo "pcrs: $*" >&2
    exit 1
}

# Reads PCR0..2 from a PCR file or from nitro-cli's JSON ({"Measurements": {...}}), lower-cases
# them and checks each is 96 hex digits and not all zero (a debug-mode enclave's PCRs).
normalise() {
    python3 - "$1" <<'PY'
import json, re, sys
path = sys.argv[1]
try:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
except (OSError, ValueError) as e:
    sys.exit(f"pcrs: {path}: not a readable JSON file ({e})")
if isinstance(doc, dict) and isinstance(doc.get("Measurements"), dict):
    doc = doc["Measurements"]
if not isinstance(doc, dict):
    sys.exit(f"pcrs: {path}: expected a JSON object with PCR0, PCR1 and PCR2")
out = {}
for name in ("PCR0", "PCR1", "PCR2"):
    value = doc.get(name)
    if not isinstance(value, str):
        sys.exit(f"pcrs: {path}: no {name}")
    value = value.lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{96}", value):
        sys.exit(f"pcrs: {path}: {name} is not 96 hex digits (SHA-384)")
    if set(value) == {"0"}:
        sys.exit(f"pcrs: {path}: {name} is all zero: a debug-mode measurement, never valid for a cluster")
    out[name] = value
print(json.dumps(out, indent=2))
PY
}

case "${1:-}" in
    --compare)
        [[ $# -eq 3 ]] || usage
        a=$(normalise "$2") || exit 1
        b=$(normalise "$3") || exit 1
        if [[ "$a" == "$b" ]]; then
            echo "pcrs: $2 and $3 are equal"
            exit 0
        fi
        echo "pcrs: $2 and $3 DIFFER" >&2
        diff <(echo "$a") <(echo "$b") >&2 || true
        exit 1
        ;;
    "" | -h | --help) usage ;;
esac
[[ $# -eq 1 ]] || usage
eif=$1
[[ -f "$eif" ]] || die "$eif: no such file"
nitro_cli=${NITRO_CLI:-nitro-cli}
command -v "$nitro_cli" >/dev/null 2>&1 ||
    die "nitro-cli not found (install aws-nitro-enclaves-cli, or set NITRO_CLI)"
described=$(mktemp)
trap 'rm -f "$described"' EXIT
"$nitro_cli" describe-eif --eif-path "$eif" >"$described" || die "nitro-cli describe-eif failed for $eif"
normalise "$described"
cat >&2 <<HINT
pcrs: to approve this image for the cluster (the AdminCap holder; clears the registered enclave):
  staker-agent --keystore ADMIN.keystore admin set-pcrs --pcrs pcrs.json --chain-config client.json
HINT
