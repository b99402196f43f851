#!/usr/bin/env bash
# tests/deploy/worker-user-data.sh: runs the worker user-data exactly as the CloudFormation
# template delivers it (the template's header with sample parameters + the embedded script) in a
# throwaway root (DAAS_ROOT), against a worker bundle built by deploy-ec2/bundle.sh, with
# stand-ins for aws, systemctl, curl and modprobe first on PATH. It shows that the script installs
# the files it claims with their modes, and that the service systemd would start is the installed
# unit running the installed staker-agent with the installed env file. Negative cases: a wrong
# SHA-256 installs nothing, a missing stake id fails before any download, a bundle with an extra
# entry is refused, the keystore secret never reaches stdout/stderr (even under bash -x), and a
# re-run is idempotent.
#
# Needs python3 with PyYAML (to read the template), tar, gzip, sha256sum. Missing: SKIPPED, exit
# 0, unless DAAS_REQUIRE_PEERS=1 (CI), then a failure.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TEMPLATE="$REPO/deploy-ec2/cloudformation/k3s-daas.yaml"
SCRIPT="$REPO/deploy-ec2/worker/user-data.sh"

# shellcheck source=tests/deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
for tool in python3 tar gzip sha256sum; do
    command -v "$tool" >/dev/null || skip "$tool not on PATH"
done
python3 -c 'import yaml' 2>/dev/null || skip "python3 has no PyYAML (pip install pyyaml)"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
pass() { echo "ok: $*"; }

WORK="$(mktemp -d)"
trap 'rm -rf -- "$WORK"' EXIT
mkdir -p "$WORK/src" "$WORK/bin" "$WORK/s3/k3s-daas-artefacts/chain" "$WORK/s3/k3s-daas-artefacts/bundles"

STAKE="0x$(printf 'ab%.0s' {1..32})"
SECRET_ARN="arn:aws:secretsmanager:eu-west-1:111122223333:secret:k3s-daas/worker-keystore-AbCdEf"
# A recognisable keystore value, so any leak of it can be grepped for.
SECRET="[\"AKEYSTORE-SECRET-$RANDOM$RANDOM-MUST-NOT-LEAK\"]"
printf '%s' "$SECRET" >"$WORK/secret"
printf '{"rpc":"https://fullnode.example:443","chain_id":"test","package":"0x1","cluster":"0x2","cluster_initial_shared_version":1}\n' \
    >"$WORK/s3/k3s-daas-artefacts/chain/client.json"

# ---- stand-ins
# This stands in for the real staker-agent binary (which would join the cluster and supervise
# k3s agent): it records its argv and the DAAS_* environment it was started with, next to the
# root it was installed under, and exits 0.
cat >"$WORK/src/staker-agent" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
root="${0%/usr/local/bin/staker-agent}"
mkdir -p "$root/var/log"
{
    printf 'argv: %s\n' "$*"
    env | grep '^DAAS_' | LC_ALL=C sort
} >"$root/var/log/staker-agent-standin.record"
EOF
# Stands in for the k3s binary (never run by the user-data; staker-agent starts it).
printf '#!/bin/sh\necho "k3s stand-in"\n' >"$WORK/src/k3s"
chmod 0755 "$WORK/src/staker-agent" "$WORK/src/k3s"

# aws: `s3 cp s3://B/K DEST` copies from $STANDIN_S3/B/K; `secretsmanager get-secret-value`
# prints the test keystore as the CLI does with --query SecretString --output text.
cat >"$WORK/bin/aws" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
printf 'aws %s\n' "$*" >>"$STANDIN_LOG"
case "$1 $2" in
    "s3 cp")
        shift 2
        pos=()
        while [[ $# -gt 0 ]]; do
            case "$1" in
                --region) shift 2 ;;
                --*) shift ;;
                *) pos+=("$1"); shift ;;
            esac
        done
        src="${pos[0]#s3://}"
        [[ -f "$STANDIN_S3/$src" ]] || { echo "fatal error: (404) Not Found: s3://$src" >&2; exit 1; }
        cp "$STANDIN_S3/$src" "${pos[1]}"
        ;;
    "secretsmanager get-secret-value")
        [[ " $* " == *" --secret-id $STANDIN_SECRET_ARN "* ]] || { echo "AccessDeniedException" >&2; exit 254; }
        [[ " $* " == *" --query SecretString --output text "* ]] || { echo "unexpected query: $*" >&2; exit 2; }
        printf '%s\n' "$(cat "$STANDIN_SECRET")"
        ;;
    *) echo "aws stand-in: unexpected call: $*" >&2; exit 2 ;;
esac
EOF
# systemctl: records every call; `enable --now [--no-block] UNIT` starts the unit the way systemd
# would: ExecStart of the INSTALLED unit file under DAAS_ROOT, in a clean environment holding only
# the variables of its EnvironmentFile (also read from under DAAS_ROOT).
cat >"$WORK/bin/systemctl" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
printf 'systemctl %s\n' "$*" >>"$STANDIN_LOG"
[[ "$1" == enable && " $* " == *" --now "* ]] || exit 0
unit="${*: -1}"
file="$DAAS_ROOT/etc/systemd/system/$unit"
[[ -f "$file" ]] || { echo "Unit $unit not found." >&2; exit 5; }
exec_start="$(sed -n 's/^ExecStart=//p' "$file")"
env_file="$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$file")"
envs=()
if [[ -f "$DAAS_ROOT$env_file" ]]; then
    while IFS= read -r line; do
        [[ -z "$line" || "$line" == \#* ]] || envs+=("$line")
    done <"$DAAS_ROOT$env_file"
fi
read -ra argv <<<"$exec_start"
env -i PATH=/usr/bin:/bin "${envs[@]}" "$DAAS_ROOT${argv[0]}" "${argv[@]:1}"
EOF
# curl: IMDSv2 only: a PUT for the token, then the region with that token.
cat >"$WORK/bin/curl" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
printf 'curl %s\n' "$*" >>"$STANDIN_LOG"
if [[ " $* " == *" -X PUT "* && "$*" == *"/latest/api/token"* ]]; then
    printf 'STANDIN-IMDS-TOKEN'
elif [[ "$*" == *"X-aws-ec2-metadata-token: STANDIN-IMDS-TOKEN"* && "$*" == *"/placement/region"* ]]; then
    printf 'eu-west-1'
else
    echo "curl: (22) The requested URL returned error: 401" >&2
    exit 22
fi
EOF
# modprobe: records; br_netfilter "fails" to show the script carries on.
cat >"$WORK/bin/modprobe" <<'EOF'
#!/usr/bin/env bash
printf 'modprobe %s\n' "$*" >>"$STANDIN_LOG"
[[ "$1" != br_netfilter ]]
EOF
chmod 0755 "$WORK/bin/"*

# ---- the bundle, built by the real bundle.sh
SOURCE_DATE_EPOCH=1700000000 "$REPO/deploy-ec2/bundle.sh" worker --staker-agent "$WORK/src/staker-agent" \
    --k3s "$WORK/src/k3s" --out "$WORK/s3/k3s-daas-artefacts/bundles" >/dev/null 2>&1
SHA="$(cut -d' ' -f1 "$WORK/s3/k3s-daas-artefacts/bundles/k3s-daas-worker.tar.gz.sha256")"
pass "bundle.sh built the worker bundle (sha256 $SHA)"

# ---- bundle.sh: deterministic, files only, fixed owners/modes/mtime
mkdir -p "$WORK/again"
cp -p "$WORK/src/staker-agent" "$WORK/src/k3s" "$WORK/again/"
touch -d '2001-02-03 04:05:06' "$WORK/again/staker-agent" "$WORK/again/k3s"
(umask 0002 && SOURCE_DATE_EPOCH=1700000000 "$REPO/deploy-ec2/bundle.sh" worker \
    --staker-agent "$WORK/again/staker-agent" --k3s "$WORK/again/k3s" --out "$WORK/again/out" >/dev/null 2>&1)
[[ "$(cut -d' ' -f1 "$WORK/again/out/k3s-daas-worker.tar.gz.sha256")" == "$SHA" ]] \
    || fail "bundle.sh is not deterministic (other input mtimes and umask gave another SHA-256)"
listing="$(TZ=UTC tar -tvzf "$WORK/s3/k3s-daas-artefacts/bundles/k3s-daas-worker.tar.gz" | awk '{print $1, $2, $4, $5, $6}')"
[[ "$listing" == "-rw-r--r-- 0/0 2023-11-14 22:13 etc/systemd/system/staker-agent.service
-rwxr-xr-x 0/0 2023-11-14 22:13 usr/local/bin/k3s
-rwxr-xr-x 0/0 2023-11-14 22:13 usr/local/bin/staker-agent" ]] || fail "worker bundle listing: $listing"
pass "bundle.sh worker: same SHA-256 for other input mtimes and umask; sorted files only, 0/0, fixed modes and mtime"

# The parent bundle from a copy of deploy-ec2/ (placeholders for the parent-host files that are
# not in this tree yet; real ones are used where present).
mkdir -p "$WORK/repo"
cp -r "$REPO/deploy-ec2" "$WORK/repo/"
printf '{"PCR0": "%s", "PCR1": "%s", "PCR2": "%s"}\n' "$(printf 'a%.0s' {1..96})" \
    "$(printf 'b%.0s' {1..96})" "$(printf 'c%.0s' {1..96})" >"$WORK/pcrs.json"
printf 'EIF' >"$WORK/k3s-daas.eif"
mkdir -p "$WORK/etcd-tls"
printf -- '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n' >"$WORK/etcd-tls/ca.pem"
printf -- '-----BEGIN CERTIFICATE-----\nSERVER\n-----END CERTIFICATE-----\n' >"$WORK/etcd-tls/server.crt"
parent_bundle() {
    SOURCE_DATE_EPOCH=1700000000 "$WORK/repo/deploy-ec2/bundle.sh" parent --nautilus-master "$WORK/src/k3s" \
        --eif "$WORK/k3s-daas.eif" --etcd-tls "$WORK/etcd-tls" --out "$WORK/parent-out" "$@"
}
if [[ ! -f "$WORK/repo/deploy-ec2/systemd/k3s-daas-enclave.service" ]]; then
    if parent_bundle --pcrs "$WORK/pcrs.json" >/dev/null 2>"$WORK/parent.err"; then
        fail "bundle.sh parent succeeded without the parent-host files"
    fi
    grep -q 'missing file: deploy-ec2/systemd/k3s-daas-enclave.service' "$WORK/parent.err" \
        || fail "unclear error for a missing parent file: $(cat "$WORK/parent.err")"
    pass "bundle.sh parent without deploy-ec2/systemd/k3s-daas-enclave.service: 'missing file' error"
fi
for f in systemd/k3s-daas-enclave.service systemd/k3s-daas-bridge.service systemd/k3s-daas-etcd.service \
    systemd/nitro-enclaves-allocator.service.d/10-k3s-daas.conf parent/k3s-daas-enclave; do
    [[ -f "$WORK/repo/deploy-ec2/$f" ]] || { mkdir -p "$(dirname "$WORK/repo/deploy-ec2/$f")"; echo "# placeholder" >"$WORK/repo/deploy-ec2/$f"; }
done
printf '{"PCR0": "%s", "PCR1": "%s", "PCR2": "%s"}\n' "$(printf '0%.0s' {1..96})" \
    "$(printf 'b%.0s' {1..96})" "$(printf 'c%.0s' {1..96})" >"$WORK/zero-pcrs.json"
if parent_bundle --pcrs "$WORK/zero-pcrs.json" >/dev/null 2>"$WORK/parent.err"; then
    fail "bundle.sh parent accepted an all-zero PCR0"
fi
grep -q 'PCR0 is all zeros' "$WORK/parent.err" || fail "unclear error for a zero PCR0: $(cat "$WORK/parent.err")"
pass "bundle.sh parent refuses an all-zero (debug-mode) PCR0"
if SOURCE_DATE_EPOCH='' parent_bundle --pcrs "$WORK/pcrs.json" >/dev/null 2>"$WORK/parent.err"; then
    : # the copy may sit inside a git checkout (then HEAD's time is used)
else
    grep -q 'SOURCE_DATE_EPOCH is not set' "$WORK/parent.err" || fail "unclear error: $(cat "$WORK/parent.err")"
fi
cp "$WORK/etcd-tls/server.crt" "$WORK/server.crt.bak"
# Not a key: only the PEM label bundle.sh looks for, with a one-letter body.
printf -- '-----BEGIN EC PRIVATE KEY-----\nK\n-----END EC PRIVATE KEY-----\n' >>"$WORK/etcd-tls/server.crt"
if parent_bundle --pcrs "$WORK/pcrs.json" >/dev/null 2>"$WORK/parent.err"; then
    fail "bundle.sh parent packed a private key from --etcd-tls"
fi
grep -q 'certificates only' "$WORK/parent.err" || fail "unclear error for a key in --etcd-tls: $(cat "$WORK/parent.err")"
cp "$WORK/server.crt.bak" "$WORK/etcd-tls/server.crt"
pass "bundle.sh parent refuses a private key in --etcd-tls"
parent_bundle --pcrs "$WORK/pcrs.json" --etcd "$WORK/src/k3s" >/dev/null 2>&1
listing="$(tar -tvzf "$WORK/parent-out/k3s-daas-parent.tar.gz" | awk '{print $1, $2, $6}')"
[[ "$listing" == "-rw-r--r-- 0/0 etc/k3s-daas/etcd/ca.pem
-rw-r--r-- 0/0 etc/k3s-daas/etcd/server.crt
-rw-r--r-- 0/0 etc/nitro_enclaves/allocator.yaml
-rw-r--r-- 0/0 etc/systemd/system/k3s-daas-bridge.service
-rw-r--r-- 0/0 etc/systemd/system/k3s-daas-enclave.service
-rw-r--r-- 0/0 etc/systemd/system/k3s-daas-etcd.service
-rw-r--r-- 0/0 etc/systemd/system/nitro-enclaves-allocator.service.d/10-k3s-daas.conf
-rw-r--r-- 0/0 opt/k3s-daas/k3s-daas.eif
-rw-r--r-- 0/0 opt/k3s-daas/pcrs.json
-rwxr-xr-x 0/0 usr/local/bin/etcd
-rwxr-xr-x 0/0 usr/local/bin/k3s-daas-enclave
-rwxr-xr-x 0/0 usr/local/bin/k3s-daas-preflight
-rwxr-xr-x 0/0 usr/local/bin/nautilus-master" ]] || fail "parent bundle listing: $listing"
[[ -s "$WORK/parent-out/k3s-daas-parent.tar.gz.sha256" ]] || fail "no parent .sha256"
pass "bundle.sh parent: exactly the install paths of the contract (+ etcd with --etcd), 0/0, fixed modes"

# render OUT KEY=VALUE...: the user-data EC2 receives: the template's worker header with the
# parameters substituted, then the embedded script.
render() {
    local out="$1"
    shift
    python3 - "$TEMPLATE" "$out" "$@" <<'PY'
import re, sys
import yaml

from cfn_yaml import Loader
template, out = sys.argv[1], sys.argv[2]
params = dict(a.split("=", 1) for a in sys.argv[3:])
t = yaml.load(open(template), Loader=Loader)
sep, (header, body) = t["Resources"]["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Join"]
def value(m):
    if m.group(1) not in params:
        sys.exit(f"render: no value for ${{{m.group(1)}}}")
    return params[m.group(1)]
with open(out, "w") as f:
    f.write(re.sub(r"\$\{([A-Za-z0-9:]+)\}", value, header["Fn::Sub"]) + sep + body)
PY
}

PARAMS=(
    "AWS::StackName=test-worker" "AWS::Region=eu-west-1" "ArtefactBucket=k3s-daas-artefacts"
    "WorkerBundleKey=bundles/k3s-daas-worker.tar.gz" "WorkerBundleSha256=$SHA"
    "ChainConfigKey=chain/client.json" "StakeId=$STAKE" "KeystoreSecretArn=$SECRET_ARN"
)

# run_user_data ROOT FILE [bash options]: runs FILE as cloud-init would (bash, root's clean
# environment) with DAAS_ROOT=ROOT; stdout/stderr/calls land in ROOT.out/.err/.log.
run_user_data() {
    local root="$1" file="$2"
    shift 2
    mkdir -p "$root"
    : >"$root.log"
    env -i PATH="$WORK/bin:/usr/bin:/bin" HOME="$WORK" DAAS_ROOT="$root" STANDIN_LOG="$root.log" \
        STANDIN_S3="$WORK/s3" STANDIN_SECRET="$WORK/secret" STANDIN_SECRET_ARN="$SECRET_ARN" \
        bash "$@" "$file" >"$root.out" 2>"$root.err"
}

mode() { stat -c '%a' "$1"; }
expect_mode() {
    [[ "$(mode "$1")" == "$2" ]] || fail "$1 has mode $(mode "$1"), want $2"
}
no_secret_in() {
    local f
    for f in "$@"; do
        ! grep -qF -- "$SECRET" "$f" || fail "the keystore secret appears in $(basename "$f")"
    done
}
snapshot() {
    (cd "$1" && find . -path ./var/tmp -prune -o -printf '%p %y %m\n' | LC_ALL=C sort
        find . -type f -not -path './var/tmp/*' -exec sha256sum {} + | LC_ALL=C sort)
}

# ---- 1. the template's user-data, happy path
render "$WORK/ud.sh" "${PARAMS[@]}"
ROOT="$WORK/root"
run_user_data "$ROOT" "$WORK/ud.sh" || { cat "$ROOT.err" >&2; fail "the user-data exited non-zero"; }
pass "the template's user-data ran to the end"

cmp -s "$ROOT/usr/local/bin/staker-agent" "$WORK/src/staker-agent" || fail "staker-agent not installed from the bundle"
cmp -s "$ROOT/usr/local/bin/k3s" "$WORK/src/k3s" || fail "k3s not installed from the bundle"
expect_mode "$ROOT/usr/local/bin/staker-agent" 755
expect_mode "$ROOT/usr/local/bin/k3s" 755
pass "staker-agent and k3s installed in /usr/local/bin, 0755, identical to the bundled files"
cmp -s "$ROOT/etc/systemd/system/staker-agent.service" "$REPO/deploy-ec2/systemd/staker-agent.service" \
    || fail "the installed unit differs from deploy-ec2/systemd/staker-agent.service"
expect_mode "$ROOT/etc/systemd/system/staker-agent.service" 644
pass "staker-agent.service installed unchanged, 0644"
expect_mode "$ROOT/etc/k3s-daas" 700
cmp -s "$ROOT/etc/k3s-daas/client.json" "$WORK/s3/k3s-daas-artefacts/chain/client.json" || fail "client.json differs"
expect_mode "$ROOT/etc/k3s-daas/client.json" 644
[[ "$(cat "$ROOT/etc/k3s-daas/sui.keystore")" == "$SECRET" ]] || fail "sui.keystore does not hold the secret"
expect_mode "$ROOT/etc/k3s-daas/sui.keystore" 600
pass "/etc/k3s-daas 0700 with client.json (0644) and sui.keystore (0600, the secret's value)"
want_env="DAAS_CHAIN_CONFIG=/etc/k3s-daas/client.json
DAAS_KEYSTORE=/etc/k3s-daas/sui.keystore
DAAS_STAKE=$STAKE"
[[ "$(cat "$ROOT/etc/default/staker-agent")" == "$want_env" ]] || fail "env file content: $(cat "$ROOT/etc/default/staker-agent")"
expect_mode "$ROOT/etc/default/staker-agent" 600
! grep -qi token "$ROOT/etc/default/staker-agent" || fail "the env file mentions a token"
pass "/etc/default/staker-agent 0600 holds exactly DAAS_CHAIN_CONFIG, DAAS_KEYSTORE, DAAS_STAKE"

calls="$(grep -E '^(systemctl|modprobe)' "$ROOT.log")"
[[ "$calls" == "modprobe br_netfilter
modprobe overlay
systemctl daemon-reload
systemctl enable --now --no-block staker-agent.service" ]] || fail "unexpected calls, in order: $calls"
grep -q 'could not load kernel module br_netfilter' "$ROOT.err" || fail "the modprobe failure was not reported"
pass "calls in order: modprobe br_netfilter (failure tolerated), modprobe overlay, daemon-reload, enable --now"
! grep -q '^curl' "$ROOT.log" || fail "IMDS was asked although the template passes the region"
pass "no IMDS call: the template passes the region"

record="$ROOT/var/log/staker-agent-standin.record"
[[ -f "$record" ]] || fail "the stand-in staker-agent never ran"
[[ "$(cat "$record")" == "argv: run
$want_env" ]] || fail "the service ran with: $(cat "$record")"
pass "the started service is the installed unit: installed staker-agent ran 'run' with exactly the env file's DAAS_* variables"

no_secret_in "$ROOT.out" "$ROOT.err" "$ROOT.log"
pass "the keystore secret appears in neither stdout, stderr nor any command line"
[[ -z "$(ls -A "$ROOT/var/tmp")" ]] || fail "staging left behind: $(ls -A "$ROOT/var/tmp")"
[[ -z "$(find "$ROOT" -name '*.k3s-daas-new')" ]] || fail "temporary files left behind"
pass "no staging directory or temporary file is left"

# ---- 2. re-run: same files, same modes, same contents
before="$(snapshot "$ROOT")"
run_user_data "$ROOT" "$WORK/ud.sh" || { cat "$ROOT.err" >&2; fail "the re-run exited non-zero"; }
[[ "$(snapshot "$ROOT")" == "$before" ]] || fail "a re-run changed the installed files"
[[ -z "$(find "$ROOT" -name '*.k3s-daas-new')" ]] || fail "the re-run left temporary files"
pass "a re-run is idempotent (same paths, modes and contents)"

# ---- 3. under bash -x the secret still never shows
run_user_data "$WORK/root-x" "$WORK/ud.sh" -x || { cat "$WORK/root-x.err" >&2; fail "the user-data under bash -x failed"; }
grep -q 'secretsmanager get-secret-value' "$WORK/root-x.log" || fail "the -x run fetched no secret"
no_secret_in "$WORK/root-x.out" "$WORK/root-x.err"
pass "under bash -x (xtrace on stderr) the keystore secret is still not printed"

# ---- 4. the script file itself, region from IMDSv2
run_standalone() {
    local root="$1"
    shift
    mkdir -p "$root"
    : >"$root.log"
    env -i PATH="$WORK/bin:/usr/bin:/bin" HOME="$WORK" DAAS_ROOT="$root" STANDIN_LOG="$root.log" \
        STANDIN_S3="$WORK/s3" STANDIN_SECRET="$WORK/secret" STANDIN_SECRET_ARN="$SECRET_ARN" \
        DAAS_ARTEFACT_BUCKET=k3s-daas-artefacts DAAS_WORKER_BUNDLE_KEY=bundles/k3s-daas-worker.tar.gz \
        DAAS_WORKER_BUNDLE_SHA256="$SHA" DAAS_CHAIN_CONFIG_KEY=chain/client.json DAAS_STAKE_ID="$STAKE" \
        DAAS_KEYSTORE_SECRET_ARN="$SECRET_ARN" "$@" bash "$SCRIPT" >"$root.out" 2>"$root.err"
}
run_standalone "$WORK/root-imds" || { cat "$WORK/root-imds.err" >&2; fail "deploy-ec2/worker/user-data.sh without DAAS_REGION failed"; }
grep -q '^curl .*-X PUT .*api/token' "$WORK/root-imds.log" || fail "no IMDSv2 token PUT"
grep -q '^aws s3 cp .*--region eu-west-1' "$WORK/root-imds.log" || fail "the IMDS region was not used"
pass "without DAAS_REGION the script asks IMDSv2 (token PUT, then region) and uses the answer"

# ---- 5. negative cases
nothing_installed() {
    local root="$1" leftover
    leftover="$(cd "$root" && find . -type f | head -n 5)"
    [[ -z "$leftover" ]] || fail "files were installed: $leftover"
}

render "$WORK/ud-badsha.sh" "${PARAMS[@]/#WorkerBundleSha256=*/WorkerBundleSha256=$(printf '0%.0s' {1..64})}"
if run_user_data "$WORK/root-badsha" "$WORK/ud-badsha.sh"; then fail "a wrong SHA-256 was accepted"; fi
grep -q 'SHA-256 mismatch' "$WORK/root-badsha.err" || fail "no SHA-256 mismatch message: $(cat "$WORK/root-badsha.err")"
nothing_installed "$WORK/root-badsha"
! grep -q secretsmanager "$WORK/root-badsha.log" || fail "the secret was fetched for a rejected bundle"
pass "wrong SHA-256: non-zero exit, 'SHA-256 mismatch', nothing installed, no secret fetched"

render "$WORK/ud-nostake.sh" "${PARAMS[@]/#StakeId=*/StakeId=}"
if run_user_data "$WORK/root-nostake" "$WORK/ud-nostake.sh"; then fail "a missing stake id was accepted"; fi
grep -q 'DAAS_STAKE_ID is not set' "$WORK/root-nostake.err" || fail "unclear error: $(cat "$WORK/root-nostake.err")"
! grep -q '^aws' "$WORK/root-nostake.log" || fail "something was downloaded before the stake id was checked"
nothing_installed "$WORK/root-nostake"
pass "missing stake id: clear error before any download"

render "$WORK/ud-badstake.sh" "${PARAMS[@]/#StakeId=*/StakeId=0x1234}"
if run_user_data "$WORK/root-badstake" "$WORK/ud-badstake.sh"; then fail "a malformed stake id was accepted"; fi
grep -q 'DAAS_STAKE_ID must be 0x followed by 64 hex digits' "$WORK/root-badstake.err" || fail "unclear error"
pass "malformed stake id: refused before any download"

# A bundle with the right SHA-256 but an extra entry (the pinned hash is the operator's; the
# script still refuses to install anything it does not know).
mkdir -p "$WORK/evil/usr/local/bin" "$WORK/evil/etc/systemd/system" "$WORK/evil/etc/cron.d"
cp "$WORK/src/staker-agent" "$WORK/src/k3s" "$WORK/evil/usr/local/bin/"
cp "$REPO/deploy-ec2/systemd/staker-agent.service" "$WORK/evil/etc/systemd/system/"
echo '* * * * * root true' >"$WORK/evil/etc/cron.d/extra"
tar -czf "$WORK/s3/k3s-daas-artefacts/bundles/evil.tar.gz" -C "$WORK/evil" \
    usr/local/bin/staker-agent usr/local/bin/k3s etc/systemd/system/staker-agent.service etc/cron.d/extra
evil_sha="$(sha256sum "$WORK/s3/k3s-daas-artefacts/bundles/evil.tar.gz" | cut -d' ' -f1)"
evil_params=("${PARAMS[@]/#WorkerBundleSha256=*/WorkerBundleSha256=$evil_sha}")
render "$WORK/ud-evil.sh" "${evil_params[@]/#WorkerBundleKey=*/WorkerBundleKey=bundles/evil.tar.gz}"
if run_user_data "$WORK/root-evil" "$WORK/ud-evil.sh"; then fail "a bundle with an extra entry was accepted"; fi
grep -q 'does not hold exactly' "$WORK/root-evil.err" || fail "unclear error: $(cat "$WORK/root-evil.err")"
nothing_installed "$WORK/root-evil"
pass "a bundle with an unexpected entry: refused, nothing installed"

for r in root-badsha root-nostake root-badstake root-evil; do
    no_secret_in "$WORK/$r.out" "$WORK/$r.err"
done
echo "PASS: tests/deploy/worker-user-data.sh"
