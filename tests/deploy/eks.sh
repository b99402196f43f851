#!/usr/bin/env bash
# The EKS variant (deploy-ec2/eks): renders the example overlay with kustomize, runs the enclave
# container's script against a stand-in nitro-cli, then checks the manifests against a REAL
# kube-apiserver, controller manager and scheduler (../shared/peers/k8s): server-side dry-run of
# every object, and scheduling of the master pod onto a Node whose status advertises what the
# Nitro Enclaves device plugin advertises (and not onto one that lacks enclaves or hugepages).
#
# Needs kubectl (with kustomize), jq and the k8s peer (DAAS_K8S_PEER_DIR, or unpacked from
# ../shared/peers/k8s). Missing: SKIPPED, or a failure with DAAS_REQUIRE_PEERS=1.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
eks=$repo/deploy-ec2/eks
passed=0

say() { echo "eks: $*"; }
fail() {
  echo "eks: FAIL: $*" >&2
  echo "eks: ${passed} passed, 1 failed"
  exit 1
}
ok() {
  passed=$((passed + 1))
  say "ok: $*"
}
skip() {
  if [[ ${DAAS_REQUIRE_PEERS:-0} == 1 ]]; then
    fail "$1 (DAAS_REQUIRE_PEERS=1)"
  fi
  echo "SKIPPED: $1"
  exit 0
}

command -v kubectl >/dev/null || skip "kubectl not on PATH"
command -v jq >/dev/null || skip "jq not on PATH"
peer=${DAAS_K8S_PEER_DIR:-}
if [[ -z $peer ]]; then
  installer=$repo/../shared/peers/k8s/install
  [[ -x $installer ]] || skip "no k8s peer: DAAS_K8S_PEER_DIR unset and ${installer} missing"
  peer=$("$installer" | tail -1)
fi
[[ -x $peer/start-control-plane.sh && -x $peer/etcd-3.6 ]] || skip "k8s peer incomplete in ${peer}"

work=$(mktemp -d)
export K8S_RUN_DIR=$work/k8s
peer_started=0
bg_pid=
cleanup() {
  local rc=$?
  if [[ -n $bg_pid ]]; then kill "$bg_pid" 2>/dev/null || true; fi
  if ((peer_started)); then "$peer/stop-control-plane.sh" --with-etcd >/dev/null 2>&1 || true; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# --- 1. Render -------------------------------------------------------------------------------
rendered=$work/rendered.yaml
kubectl kustomize "$eks/overlays/example" >"$rendered" || fail "kubectl kustomize overlays/example"
ok "rendered overlays/example ($(grep -c '^kind:' "$rendered") objects)"

# The enclave's size has one source (the k3s-daas-enclave ConfigMap); an overlay that changes it
# must change the pod's enclave CPUs and hugepages with it.
cp -r "$eks" "$work/eks-resized"
sed -i 's/ENCLAVE_CPU_COUNT=2/ENCLAVE_CPU_COUNT=4/; s/ENCLAVE_MEMORY_MIB=6144/ENCLAVE_MEMORY_MIB=8192/' \
  "$work/eks-resized/overlays/example/kustomization.yaml"
resized=$(kubectl kustomize "$work/eks-resized/overlays/example")
[[ $(grep -c 'aws.ec2.nitro/nitro_enclaves_cpus: "4"' <<<"$resized") == 2 &&
  $(grep -c 'hugepages-2Mi: 8192Mi' <<<"$resized") == 2 ]] ||
  fail "an overlay's ENCLAVE_CPU_COUNT/ENCLAVE_MEMORY_MIB did not reach the pod's resources"
ok "an overlay's enclave size (4 vCPUs, 8192 MiB) reaches nitro_enclaves_cpus and hugepages-2Mi"

# No --debug-mode outside comments (the enclave script's comments explain why there is none).
if grep -v '^[[:space:]]*#' "$rendered" | grep -q -- '--debug-mode'; then
  fail "--debug-mode appears in the rendered manifests"
fi
ok "no --debug-mode in the rendered manifests"

# --- 2. The enclave container's script, against a stand-in nitro-cli ---------------------------
# The stand-in records its argv and keeps one enclave's state in files, printing
# describe-enclaves output in nitro-cli's JSON shape (pretty-printed, as nitro-cli does).
stub=$work/stub
mkdir -p "$stub/bin"
cat >"$stub/bin/nitro-cli" <<'EOF'
#!/bin/bash
# Stand-in for nitro-cli (tests only).
set -euo pipefail
d=$STUB_DIR
echo "$*" >>"$d/calls"
case $1 in
  run-enclave) echo RUNNING >"$d/state" ;;
  terminate-enclave) rm -f "$d/state" ;;
  describe-enclaves)
    if [[ -s $d/state ]]; then
      printf '[\n  {\n    "EnclaveName": "k3s-daas",\n    "EnclaveID": "i-0123-enc0123",\n'
      printf '    "ProcessID": 4242,\n    "EnclaveCID": 16,\n    "NumberOfCPUs": 2,\n'
      printf '    "CPUIDs": [\n      1,\n      3\n    ],\n    "MemoryMiB": 6144,\n'
      printf '    "State": "%s",\n    "Flags": "%s"\n  }\n]\n' "$(cat "$d/state")" "$(cat "$d/flags" 2>/dev/null || echo NONE)"
    else
      echo '[]'
    fi
    ;;
  *) exit 2 ;;
esac
EOF
chmod +x "$stub/bin/nitro-cli"
: >"$work/k3s-daas.eif"
script=$eks/base/enclave-run.sh

# Starts the script in the background with a fresh stand-in state (extra env as arguments).
start_script() {
  rm -f "$stub/calls" "$stub/state" "$stub/flags" "$work/script.log"
  env PATH="$stub/bin:$PATH" STUB_DIR="$stub" ENCLAVE_EIF="$work/k3s-daas.eif" \
    ENCLAVE_CPU_COUNT=2 ENCLAVE_MEMORY_MIB=6144 ENCLAVE_POLL_SECONDS=0.1 "$@" \
    bash "$script" 2>"$work/script.log" &
  bg_pid=$!
}
# Waits for the background script to exit; its exit code in $rc.
wait_script() {
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$bg_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$bg_pid" 2>/dev/null; then fail "enclave-run.sh did not exit: $(cat "$work/script.log")"; fi
  rc=0
  wait "$bg_pid" || rc=$?
  bg_pid=
}
wait_running() {
  local i
  for ((i = 0; i < 100; i++)); do
    if [[ -s $stub/state ]] && [[ $(grep -c '^describe-enclaves' "$stub/calls" 2>/dev/null) -ge 2 ]]; then return 0; fi
    sleep 0.1
  done
  fail "enclave-run.sh did not start and watch the enclave: $(cat "$work/script.log")"
}

start_script
wait_running
want="run-enclave --eif-path $work/k3s-daas.eif --cpu-count 2 --memory 6144 --enclave-cid 16 --enclave-name k3s-daas"
[[ $(grep '^run-enclave' "$stub/calls") == "$want" ]] ||
  fail "run-enclave argv: got '$(grep '^run-enclave' "$stub/calls")', want '$want'"
ok "enclave-run.sh: nitro-cli $want"
rm -f "$stub/state" # the enclave dies
wait_script
if ! [[ $rc == 1 ]] || ! grep -q 'is gone' "$work/script.log"; then
  fail "enclave gone: exit ${rc}, log: $(cat "$work/script.log")"
fi
ok "enclave-run.sh exits 1 when the enclave is gone (the container restarts)"

start_script
wait_running
kill -TERM "$bg_pid"
wait_script
if ! [[ $rc == 0 && ! -e $stub/state ]] || ! grep -qx 'terminate-enclave --enclave-name k3s-daas' "$stub/calls"; then
  fail "SIGTERM: exit ${rc}, calls: $(tr '\n' ';' <"$stub/calls")"
fi
ok "enclave-run.sh terminates the enclave on SIGTERM and exits 0"

start_script
wait_running
echo DEBUG_MODE >"$stub/flags"
wait_script
if ! [[ $rc == 1 && ! -e $stub/state ]] || ! grep -q 'debug mode' "$work/script.log"; then
  fail "debug-mode enclave: exit ${rc}, log: $(cat "$work/script.log")"
fi
ok "enclave-run.sh terminates an enclave that reports DEBUG_MODE"

start_script ENCLAVE_MEMORY_MIB=1024
wait_script
[[ $rc == 64 && ! -e $stub/calls ]] || fail "1024 MiB: exit ${rc}, calls: $(cat "$stub/calls" 2>/dev/null)"
ok "enclave-run.sh refuses ENCLAVE_MEMORY_MIB=1024 (exit 64) before calling nitro-cli"

# A leftover enclave (container restart within the pod) is terminated before run-enclave.
rm -f "$stub/calls" "$stub/flags" "$work/script.log"
echo RUNNING >"$stub/state"
env PATH="$stub/bin:$PATH" STUB_DIR="$stub" ENCLAVE_EIF="$work/k3s-daas.eif" ENCLAVE_CPU_COUNT=2 \
  ENCLAVE_MEMORY_MIB=6144 ENCLAVE_POLL_SECONDS=0.1 bash "$script" 2>"$work/script.log" &
bg_pid=$!
wait_running
kill -TERM "$bg_pid"
wait_script
order=$(grep -E '^(run|terminate)-enclave' "$stub/calls" | cut -d' ' -f1 | tr '\n' ' ')
[[ $order == "terminate-enclave run-enclave terminate-enclave " ]] || fail "leftover enclave: calls ${order}"
ok "enclave-run.sh terminates a leftover enclave before run-enclave"

# --- 3. The real control plane --------------------------------------------------------------
# Ports of our own, so this runs beside other tests. The node lifecycle controller is off: no
# kubelet heartbeats the stand-in Node, and that controller would taint it unreachable.
mkdir -p "$K8S_RUN_DIR"
peer_started=1
etcd_url=$(K8S_ETCD_BIN=$peer/etcd-3.6 K8S_ETCD_CLIENT_PORT=22379 K8S_ETCD_PEER_PORT=22380 \
  "$peer/start-etcd.sh" 2>"$work/etcd.log" | tail -1) || fail "start-etcd.sh: $(tail -5 "$work/etcd.log")"
KUBECONFIG=$(K8S_PORT=26443 K8S_KCM_PORT=20257 K8S_SCHEDULER_PORT=20259 \
  K8S_CONTROLLER_MANAGER_EXTRA_ARGS='--controllers=*,-node-lifecycle-controller' \
  "$peer/start-control-plane.sh" "$etcd_url" 2>"$work/cp.log" | tail -1) ||
  fail "start-control-plane.sh: $(tail -5 "$work/cp.log")"
export KUBECONFIG
say "control plane up (kube-apiserver $(kubectl version -o json | jq -r .serverVersion.gitVersion))"

kubectl apply -f "$eks/testdata/securitygrouppolicy-crd.yaml" >/dev/null
kubectl wait --for condition=established --timeout=30s crd/securitygrouppolicies.vpcresources.k8s.aws >/dev/null
ok "SecurityGroupPolicy CRD (test stand-in) established"

# --- 4. Server-side dry-run of every object ---------------------------------------------------
# A dry-run creates nothing, so the namespace is created for real first (its objects would be
# refused in a namespace that does not exist); then every object goes through the API server's
# defaulting, validation (schemas, resource names, hugepages rules, CRD schema) and admission
# (Pod Security "baseline" of the namespace, checked on the Deployment's pod template).
awk -v dir="$work" '/^---$/ { n++; next } { print > sprintf("%s/doc-%03d.yaml", dir, n) }' "$rendered"
ns_doc=$(grep -l '^kind: Namespace$' "$work"/doc-*.yaml)
kubectl apply -f "$ns_doc" >/dev/null
objects=$(grep -c '^kind:' "$rendered")
dry=$(kubectl apply --dry-run=server -f "$rendered" 2>"$work/dry.err") || fail "server dry-run: $(cat "$work/dry.err")"
[[ $(grep -c '(server dry run)$' <<<"$dry") == "$objects" ]] ||
  fail "server dry-run accepted $(grep -c '(server dry run)$' <<<"$dry") of ${objects} objects: ${dry}"
ok "kubectl apply --dry-run=server accepted all ${objects} objects"

# --- 5./6. The stand-in Node and scheduling ------------------------------------------------------
# Node nitro-1 stands in for an enclave-enabled EKS node: its status (written through the status
# subresource, as a kubelet does) carries what the device plugin advertises
# (aws.ec2.nitro/nitro_enclaves, and nitro_enclaves_cpus with ENCLAVE_CPU_ADVERTISEMENT=true)
# and the hugepages the allocator reserved; no kubelet runs, so the pod stays Pending once bound.
kubectl create -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: nitro-1
  labels:
    aws-nitro-enclaves-k8s-dp: enabled
    kubernetes.io/hostname: nitro-1
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
EOF
node_status() { # ENCLAVES HUGEPAGES
  local now
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  jq -n --arg e "$1" --arg h "$2" --arg now "$now" '
    {"aws.ec2.nitro/nitro_enclaves": $e, "aws.ec2.nitro/nitro_enclaves_cpus": "2",
     "hugepages-2Mi": $h, "hugepages-1Gi": "0", "cpu": "4", "memory": "16Gi", "pods": "110",
     "ephemeral-storage": "80Gi"} as $r
    | {status: {capacity: $r, allocatable: $r,
        conditions: [{type: "Ready", status: "True", reason: "KubeletReady",
                      message: "stand-in for a kubelet (tests/deploy/eks.sh)",
                      lastHeartbeatTime: $now, lastTransitionTime: $now}]}}'
}
set_node() {
  kubectl patch node nitro-1 --subresource=status --type=merge -p "$(node_status "$1" "$2")" >/dev/null
}
set_node 0 6Gi
# The API server's TaintNodesByCondition admission taints every new Node not-ready; the node
# lifecycle controller (off here) lifts it once the Ready condition is True.
kubectl taint node nitro-1 node.kubernetes.io/not-ready:NoSchedule- >/dev/null
# etcd's claim: a PersistentVolume pre-bound to it stands in for the EBS CSI driver's volume
# (WaitForFirstConsumer would otherwise hold the pod until a provisioner answered).
kubectl create -f - >/dev/null <<'EOF'
apiVersion: v1
kind: PersistentVolume
metadata:
  name: k3s-daas-etcd-standin
spec:
  capacity:
    storage: 20Gi
  accessModes: ["ReadWriteOnce"]
  storageClassName: k3s-daas-etcd-gp3
  persistentVolumeReclaimPolicy: Retain
  claimRef:
    namespace: k3s-daas
    name: k3s-daas-etcd
  csi:
    driver: ebs.csi.aws.com
    volumeHandle: vol-0standin0000000
EOF

master_pod() {
  kubectl -n k3s-daas get pods -l app.kubernetes.io/component=master -o jsonpath='{.items[0].metadata.name}' 2>/dev/null
}
# Waits for a FailedScheduling event of the master pod whose message contains $1.
wait_failed_scheduling() {
  local i pod msgs
  for ((i = 0; i < 120; i++)); do
    pod=$(master_pod || true)
    if [[ -n $pod ]]; then
      msgs=$(kubectl -n k3s-daas get events --field-selector "involvedObject.name=${pod},reason=FailedScheduling" \
        -o jsonpath='{range .items[*]}{.message}{"\n"}{end}')
      if grep -qF "$1" <<<"$msgs"; then
        grep -F "$1" <<<"$msgs" | tail -1
        return 0
      fi
    fi
    sleep 0.5
  done
  fail "no FailedScheduling event naming '$1' for the master pod"
}
node_name() { kubectl -n k3s-daas get pod "$1" -o jsonpath='{.spec.nodeName}'; }

# Negative first: the device plugin advertises no enclave on this node (set above).
kubectl apply -f "$rendered" >/dev/null
msg=$(wait_failed_scheduling 'Insufficient aws.ec2.nitro/nitro_enclaves')
pod=$(master_pod)
[[ -z $(node_name "$pod") ]] || fail "pod bound although the node advertises 0 enclaves"
ok "no enclave on the node: pod unscheduled, FailedScheduling: ${msg}"

# Enclaves now, but the allocator reserved too few hugepages for the enclave's memory. The
# scheduler does not retry a pod for a node change that still leaves it unfit (its queueing hint
# skips it), so the pod is replaced: the ReplicaSet's new pod gets a fresh attempt.
set_node 4 2Gi
kubectl -n k3s-daas delete pod "$pod" --wait=true >/dev/null
for ((i = 0; i < 60; i++)); do
  new=$(master_pod || true)
  [[ -n $new && $new != "$pod" ]] && break
  sleep 0.5
done
[[ -n $new && $new != "$pod" ]] || fail "the ReplicaSet did not replace the deleted pod"
pod=$new
msg=$(wait_failed_scheduling 'Insufficient hugepages-2Mi')
[[ -z $(node_name "$pod") ]] || fail "pod bound although the node has 2Gi of hugepages for 6144Mi"
ok "2Gi hugepages for a 6144 MiB enclave: pod unscheduled, FailedScheduling: ${msg}"

set_node 4 6Gi
for ((i = 0; i < 120; i++)); do
  [[ -n $(node_name "$pod") ]] && break
  sleep 0.5
done
[[ $(node_name "$pod") == nitro-1 ]] || fail "pod not bound to nitro-1 once the node advertises enough"
ok "the scheduler binds ${pod} to nitro-1 (4 enclaves, 6Gi hugepages advertised)"
[[ $(kubectl -n k3s-daas get pvc k3s-daas-etcd -o jsonpath='{.status.phase}') == Bound ]] ||
  fail "etcd's claim is not Bound"

# --- 5. The pod spec, as stored: what it requests and how it runs ------------------------------
pod_json=$(kubectl -n k3s-daas get pod "$pod" -o json)
node_json=$(kubectl get node nitro-1 -o json)
cm_json=$(kubectl -n k3s-daas get configmap -o json | jq '.items[] | select(.metadata.name | startswith("k3s-daas-enclave-")) | select(.data.ENCLAVE_MEMORY_MIB)')
mem_mib=$(jq -r .data.ENCLAVE_MEMORY_MIB <<<"$cm_json")
cpus=$(jq -r .data.ENCLAVE_CPU_COUNT <<<"$cm_json")

# Every resource name a container requests or limits is advertised by the node.
missing=$(jq -r --argjson node "$node_json" '
  [.spec.containers[].resources | (.requests // {}), (.limits // {}) | keys[]] | unique[]
  | select(. as $k | $node.status.allocatable | has($k) | not)' <<<"$pod_json")
[[ -z $missing ]] || fail "resources the node does not advertise: ${missing}"
ok "every requested resource name is advertised by the node: $(jq -r '[.spec.containers[].resources.requests | keys[]] | unique | join(", ")' <<<"$pod_json")"

enc=$(jq '.spec.containers[] | select(.name == "enclave")' <<<"$pod_json")
for r in aws.ec2.nitro/nitro_enclaves aws.ec2.nitro/nitro_enclaves_cpus hugepages-2Mi; do
  req=$(jq -r --arg r "$r" '.resources.requests[$r]' <<<"$enc")
  lim=$(jq -r --arg r "$r" '.resources.limits[$r]' <<<"$enc")
  [[ $req == "$lim" && $req != null ]] || fail "${r}: request ${req} != limit ${lim}"
done
# The API server stores quantities in canonical form (6144Mi reads back as 6Gi).
to_mib() {
  case $1 in
    *Gi) echo $((${1%Gi} * 1024)) ;;
    *Mi) echo "${1%Mi}" ;;
    *) fail "unexpected hugepages quantity '$1'" ;;
  esac
}
hp=$(jq -r '.resources.requests["hugepages-2Mi"]' <<<"$enc")
[[ $(to_mib "$hp") == "$mem_mib" ]] || fail "hugepages-2Mi ${hp} != enclave memory ${mem_mib} MiB"
[[ $(jq -r '.resources.requests["aws.ec2.nitro/nitro_enclaves_cpus"]' <<<"$enc") == "$cpus" ]] ||
  fail "nitro_enclaves_cpus != ENCLAVE_CPU_COUNT ${cpus}"
[[ $(jq -r '.resources.requests["aws.ec2.nitro/nitro_enclaves"]' <<<"$enc") == 1 ]] || fail "not exactly 1 enclave"
jq -e '.spec.volumes[] | select(.emptyDir.medium == "HugePages-2Mi")' <<<"$pod_json" >/dev/null ||
  fail "no HugePages-2Mi emptyDir"
ok "enclave: 1 enclave, ${cpus} enclave CPUs, hugepages-2Mi request == limit == ${mem_mib}Mi, HugePages-2Mi emptyDir"

bad_images=$(jq -r '.spec.containers[].image | select(test("@sha256:[0-9a-f]{64}$") | not)' <<<"$pod_json")
[[ -z $bad_images ]] || fail "images not referenced by digest: ${bad_images}"
ok "all images by digest: $(jq -r '[.spec.containers[].image | sub("^[^/]*/"; "")] | join(", ")' <<<"$pod_json")"

[[ $(jq -c '.lifecycle.preStop.exec.command' <<<"$enc") == '["nitro-cli","terminate-enclave","--enclave-name","k3s-daas"]' ]] ||
  fail "preStop: $(jq -c .lifecycle.preStop <<<"$enc")"
(($(jq .spec.terminationGracePeriodSeconds <<<"$pod_json") >= 30)) || fail "terminationGracePeriodSeconds too short"
ok "preStop nitro-cli terminate-enclave --enclave-name k3s-daas, grace $(jq .spec.terminationGracePeriodSeconds <<<"$pod_json") s"

if jq -r '.spec.containers[] | (.command // []) + (.args // []) | .[]' <<<"$pod_json" | grep -q -- '--debug-mode'; then
  fail "--debug-mode in a container's command"
fi
jq -e 'all(.spec.containers[].securityContext; .privileged != true and .allowPrivilegeEscalation == false
  and .capabilities.drop == ["ALL"] and (.capabilities.add // []) == [] and .readOnlyRootFilesystem == true)' \
  <<<"$pod_json" >/dev/null || fail "a container is privileged, keeps capabilities or writes its root fs"
jq -e '[.spec.containers[] | select(.name != "enclave") | .securityContext.runAsNonRoot] | all' <<<"$pod_json" >/dev/null ||
  fail "bridge/etcd not runAsNonRoot"
jq -e '.spec.hostNetwork != true and .spec.hostPID != true and ([.spec.volumes[] | select(.hostPath)] | length == 0)' \
  <<<"$pod_json" >/dev/null || fail "host namespaces or hostPath in the pod"
ok "no container privileged, all drop ALL capabilities, no escalation, read-only root fs; no host namespaces or hostPath"

bridge_cmd=$(jq -r '.spec.containers[] | select(.name == "bridge") | .command | join(" ")' <<<"$pod_json")
want_bridge="/usr/local/bin/nautilus-master bridge --enclave-cid 16 --ingress 0.0.0.0:8080=8080 --ingress 0.0.0.0:6443=6443 --egress-port 8000 --allow-file /etc/k3s-daas/egress.allow --credentials-port 8001 --credentials-source web-identity"
[[ $bridge_cmd == "$want_bridge" ]] || fail "bridge command: ${bridge_cmd}"
ok "bridge: ${want_bridge#/usr/local/bin/}"

deploy=$(kubectl -n k3s-daas get deployment k3s-daas-master -o json)
[[ $(jq -r '"\(.spec.replicas) \(.spec.strategy.type)"' <<<"$deploy") == "1 Recreate" ]] ||
  fail "Deployment is not replicas 1 / Recreate"
svc=$(kubectl -n k3s-daas get service k3s-daas-master -o json)
[[ $(jq -c '[.spec.ports[].port]' <<<"$svc") == "[8080,6443]" && $(jq -r .spec.type <<<"$svc") == LoadBalancer ]] ||
  fail "Service ports/type: $(jq -c '[.spec.type, .spec.ports]' <<<"$svc")"
jq -e '.spec.loadBalancerSourceRanges | length > 0 and all(. != "0.0.0.0/0")' <<<"$svc" >/dev/null ||
  fail "Service source ranges empty or world-open"
sgp=$(kubectl -n k3s-daas get securitygrouppolicy k3s-daas-master -o json)
jq -e --argjson pod "$pod_json" '.spec.securityGroups.groupIds == ["sg-0123456789abcdef0"]
  and (.spec.podSelector.matchLabels | to_entries | all(. as $e | $pod.metadata.labels[$e.key] == $e.value))' \
  <<<"$sgp" >/dev/null || fail "SecurityGroupPolicy: $(jq -c .spec <<<"$sgp")"
ok "Deployment replicas 1 Recreate; LoadBalancer :8080 :6443 from $(jq -r '.spec.loadBalancerSourceRanges | join(",")' <<<"$svc"); SecurityGroupPolicy selects the pod"

echo "eks: ${passed} passed, 0 failed"
