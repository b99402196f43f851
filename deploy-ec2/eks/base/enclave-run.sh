#!/bin/bash
# The `enclave` container of the k3s-daas-master pod: starts the control-plane enclave from the
# EIF baked into the image, then stays in the foreground for as long as the enclave runs, so that
# Kubernetes restarts the container (and the bridge reconnects) when the enclave is gone.
#
# Shipped to the pod in a ConfigMap (deploy-ec2/eks/base/kustomization.yaml); needs bash, grep,
# tr, sleep and nitro-cli in the image. Settings (from the k3s-daas-enclave ConfigMap):
#   ENCLAVE_CPU_COUNT    vCPUs for the enclave (even with hyper-threading; = the pod's
#                        aws.ec2.nitro/nitro_enclaves_cpus)
#   ENCLAVE_MEMORY_MIB   enclave memory in MiB (= the pod's hugepages-2Mi, >= 4 x the EIF size)
#   ENCLAVE_EIF          default /opt/k3s-daas/k3s-daas.eif
#   ENCLAVE_POLL_SECONDS how often to check the enclave, default 5
# The name (k3s-daas) and CID (16) are fixed: the bridge container dials CID 16, and a
# second enclave of the same cluster must never run (the Deployment is Recreate, replicas 1).
# There is no debug switch: a --debug-mode enclave attests all-zero PCRs and exposes its console
# to the node, so one that shows up anyway is terminated.
set -euo pipefail

readonly name=k3s-daas
readonly cid=16
eif=${ENCLAVE_EIF:-/opt/k3s-daas/k3s-daas.eif}
cpus=${ENCLAVE_CPU_COUNT:-}
memory=${ENCLAVE_MEMORY_MIB:-}
poll=${ENCLAVE_POLL_SECONDS:-5}

log() { echo "enclave-run: $*" >&2; }
die() { log "$*"; exit 64; }

[[ $cpus =~ ^[1-9][0-9]*$ ]] || die "ENCLAVE_CPU_COUNT must be a positive integer (got '${cpus}')"
[[ $memory =~ ^[1-9][0-9]*$ ]] || die "ENCLAVE_MEMORY_MIB must be a positive integer (got '${memory}')"
((memory >= 4096)) || die "ENCLAVE_MEMORY_MIB=${memory}: the control plane needs at least 4096 MiB"
[[ $poll =~ ^[0-9]+([.][0-9]+)?$ ]] || die "ENCLAVE_POLL_SECONDS must be a number of seconds (got '${poll}')"
[[ -r $eif ]] || die "no enclave image at ${eif}: the container image must carry the EIF"
command -v nitro-cli >/dev/null || die "nitro-cli is not on PATH in this image"

# Prints this enclave's entry of `nitro-cli describe-enclaves` on one line (empty if none).
# The output is a JSON array of flat objects; only CPUIDs is a nested array, so the innermost
# `{...}` groups are exactly the enclaves. Whitespace is squeezed so fields compare as text.
describe() {
  local out
  out=$(nitro-cli describe-enclaves) || return 1
  tr -d ' \t\r\n' <<<"$out" | grep -o '{[^{}]*}' | grep -F "\"EnclaveName\":\"${name}\"" || true
}

terminate() {
  log "terminating enclave ${name}"
  nitro-cli terminate-enclave --enclave-name "$name" >&2 || log "terminate-enclave failed (already gone?)"
}

stopping=0
on_signal() {
  stopping=1
  terminate
  exit 0
}
trap on_signal TERM INT

# The emptyDir holding nitro-cli's state outlives a container restart: an enclave of ours that
# is still listed would hold CID 16, and run-enclave would fail.
if [[ -n $(describe) ]]; then
  log "an enclave named ${name} is still listed; terminating it before starting a new one"
  terminate
fi

log "starting ${eif}: ${cpus} vCPUs, ${memory} MiB, CID ${cid}"
nitro-cli run-enclave --eif-path "$eif" --cpu-count "$cpus" --memory "$memory" \
  --enclave-cid "$cid" --enclave-name "$name"

# Failures of describe-enclaves itself are tolerated a few times in a row, so a slow CLI does not
# restart the control plane; a missing or stopped enclave ends the container at once.
failures=0
while ((stopping == 0)); do
  if ! entry=$(describe); then
    failures=$((failures + 1))
    log "describe-enclaves failed (${failures} in a row)"
    if ((failures >= 3)); then
      terminate
      exit 1
    fi
  else
    failures=0
    if [[ -z $entry ]]; then
      log "enclave ${name} is gone; exiting so the container restarts"
      exit 1
    fi
    if [[ $entry == *'"Flags":"DEBUG_MODE"'* ]]; then
      log "enclave ${name} runs in debug mode (all-zero PCRs, console readable by the node): refusing it"
      terminate
      exit 1
    fi
    if [[ $entry != *'"State":"RUNNING"'* ]]; then
      log "enclave ${name} is not RUNNING: ${entry}"
      terminate
      exit 1
    fi
  fi
  # sleep in the background and wait for it, so SIGTERM is handled at once, not after the sleep.
  sleep "$poll" &
  wait $! || true
done
