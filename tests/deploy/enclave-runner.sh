#!/usr/bin/env bash
# Drives deploy-ec2/parent/k3s-daas-enclave with a stand-in nitro-cli (nitro-cli needs Nitro
# hardware; the stand-in records its argv and answers with the JSON shapes nitro-cli prints:
# run-enclave -> EnclaveName, EnclaveID, ProcessID, EnclaveCID, NumberOfCPUs, CPUIDs,
# MemoryMiB; describe-enclaves -> a list with State and Flags) and a stand-in systemd-notify.
# Checks the exact run-enclave argv from a test allocator.yaml, debug-mode refusals, the E26
# memory rule, stale-enclave cleanup, supervision exits, SIGTERM handling, allocator parse
# errors; then deploy-ec2/parent/etcd-tls.sh's certificates with openssl.
#
# Needs jq and openssl. Without them: SKIPPED, or a failure when DAAS_REQUIRE_PEERS=1.

set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
runner="$repo/deploy-ec2/parent/k3s-daas-enclave"
etcd_tls="$repo/deploy-ec2/parent/etcd-tls.sh"

# shellcheck source=tests/deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
command -v jq >/dev/null 2>&1 || skip "jq not installed (the runner reads nitro-cli's JSON with it)"
command -v openssl >/dev/null 2>&1 || skip "openssl not installed"

failures=0
pass() { echo "ok    $*"; }
fail() {
    echo "FAIL  $*" >&2
    failures=$((failures + 1))
}

tmp="$(mktemp -d)"
runner_pid=""
cleanup() {
    if [[ -n "$runner_pid" ]]; then
        kill "$runner_pid" 2>/dev/null || true
        wait "$runner_pid" 2>/dev/null || true
    fi
    rm -rf -- "$tmp"
}
trap cleanup EXIT

bin="$tmp/bin"
mkdir -p "$bin"

# --- stand-ins -------------------------------------------------------------------------------
cat >"$bin/nitro-cli" <<'EOF'
#!/usr/bin/env bash
# Stand-in for nitro-cli: state in $STANDIN_STATE (enclaves.json, argv.log, switches).
set -euo pipefail
state="${STANDIN_STATE:?}"
printf '%s\n' "$*" >>"$state/argv.log"
list="$state/enclaves.json"
[[ -f "$list" ]] || echo '[]' >"$list"
cmd="${1:-}"
shift || true
case "$cmd" in
    describe-enclaves)
        if [[ -f "$state/describe-fails" ]]; then
            echo "[ E00 ] stand-in: describe-enclaves failed" >&2
            exit 1
        fi
        cat "$list"
        ;;
    run-enclave)
        eif="" cpus="" mem="" cid="" name=""
        while (($# > 0)); do
            case "$1" in
                --eif-path) eif="$2"; shift 2 ;;
                --cpu-count) cpus="$2"; shift 2 ;;
                --memory) mem="$2"; shift 2 ;;
                --enclave-cid) cid="$2"; shift 2 ;;
                --enclave-name) name="$2"; shift 2 ;;
                *) echo "stand-in nitro-cli: unexpected run-enclave argument $1" >&2; exit 2 ;;
            esac
        done
        [[ -f "$eif" ]] || { echo "[ E00 ] stand-in: no EIF at $eif" >&2; exit 1; }
        if [[ -f "$state/run-delay" ]]; then
            sleep "$(cat "$state/run-delay")"
        fi
        id="i-0a1b2c3d4e5f60718-enc$(printf '%016x' "$((RANDOM * 32768 + RANDOM))")"
        cpu_ids="$(seq -s, 2 $((cpus + 1)))"
        jq --arg id "$id" --arg n "$name" --argjson cid "$cid" --argjson cpus "$cpus" \
            --argjson mem "$mem" --argjson ids "[$cpu_ids]" \
            '. + [{EnclaveName: $n, EnclaveID: $id, ProcessID: 4242, EnclaveCID: $cid,
                   NumberOfCPUs: $cpus, CPUIDs: $ids, MemoryMiB: $mem, State: "RUNNING",
                   Flags: "NONE"}]' "$list" >"$list.new"
        mv "$list.new" "$list"
        jq --arg id "$id" '.[] | select(.EnclaveID == $id) | del(.State, .Flags)' "$list"
        ;;
    terminate-enclave)
        [[ "${1:-}" == --enclave-id && -n "${2:-}" ]] || { echo "stand-in: terminate needs --enclave-id ID" >&2; exit 2; }
        if ! jq -e --arg id "$2" 'any(.[]; .EnclaveID == $id)' "$list" >/dev/null; then
            echo "[ E00 ] stand-in: no enclave $2" >&2
            exit 1
        fi
        jq --arg id "$2" '[.[] | select(.EnclaveID != $id)]' "$list" >"$list.new"
        mv "$list.new" "$list"
        jq -n --arg id "$2" '{EnclaveID: $id, Terminated: true}'
        ;;
    *)
        echo "stand-in nitro-cli: unexpected command $cmd" >&2
        exit 2
        ;;
esac
EOF
cat >"$bin/systemd-notify" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
printf '%s\n' "$*" >>"${STANDIN_STATE:?}/notify.log"
EOF
chmod 0755 "$bin/nitro-cli" "$bin/systemd-notify"

eif="$tmp/k3s-daas.eif"
head -c 1048576 /dev/zero >"$eif"
allocator="$tmp/allocator.yaml"
state=""

# Fresh stand-in state and a good allocator file for each case.
new_case() {
    state="$(mktemp -d "$tmp/state.XXXXXX")"
    echo '[]' >"$state/enclaves.json"
    : >"$state/argv.log"
    printf -- '---\n# test reservation\nmemory_mib: 6144\ncpu_count: 2\n' >"$allocator"
}

runner_env=()
set_env() {
    runner_env=(
        "PATH=$bin:$PATH"
        "STANDIN_STATE=$state"
        "K3S_DAAS_ALLOCATOR=$allocator"
        "K3S_DAAS_EIF=$eif"
        "NITRO_CLI=$bin/nitro-cli"
        "K3S_DAAS_POLL_SECONDS=1"
        "NOTIFY_SOCKET=$tmp/notify.sock"
        "$@"
    )
}

# Runs the runner to completion; sets rc and err.
rc=0
err=""
run_fg() {
    set_env "$@"
    rc=0
    env -i "${runner_env[@]}" "$runner" "${runner_args[@]}" >"$state/out" 2>"$state/err" || rc=$?
    err="$(cat "$state/err")"
}
runner_args=()

start_bg() {
    set_env "$@"
    # A non-interactive shell starts background jobs with SIGINT ignored, and bash cannot trap
    # a signal ignored at entry; systemd starts the runner with default dispositions.
    env --default-signal=INT -i "${runner_env[@]}" "$runner" >"$state/out" 2>"$state/err" &
    runner_pid=$!
}

# wait_for SECONDS COMMAND...: polls every 0.1 s.
wait_for() {
    local n=$(($1 * 10))
    shift
    while ((n > 0)); do
        "$@" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

ready() { [[ -s "$state/notify.log" ]]; }

# Waits for the background runner to exit; sets rc and err.
wait_bg() {
    local waited=0
    while kill -0 "$runner_pid" 2>/dev/null && ((waited < 150)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    rc=0
    if kill -0 "$runner_pid" 2>/dev/null; then
        kill -KILL "$runner_pid" 2>/dev/null || true
        rc=255
    fi
    if ((rc == 0)); then
        wait "$runner_pid" || rc=$?
    else
        wait "$runner_pid" 2>/dev/null || true
    fi
    runner_pid=""
    err="$(cat "$state/err")"
}

run_line() { grep -m1 '^run-enclave ' "$state/argv.log" || true; }
started_id() { jq -r '.[0].EnclaveID // empty' "$state/enclaves.json"; }

# --- 1. start, exact argv, readiness, SIGTERM --------------------------------------------------
new_case
start_bg
if wait_for 10 ready; then
    id="$(started_id)"
    want="run-enclave --eif-path $eif --cpu-count 2 --memory 6144 --enclave-cid 16 --enclave-name k3s-daas"
    if [[ "$(run_line)" == "$want" ]]; then
        pass "run-enclave argv exactly: $want"
    else
        fail "run-enclave argv: got '$(run_line)', want '$want'"
    fi
    if grep -q -- 'debug' "$state/argv.log"; then
        fail "nitro-cli saw a debug option: $(cat "$state/argv.log")"
    else
        pass "no --debug-mode in any nitro-cli call"
    fi
    if grep -q -- "--ready --status=enclave $id running (CID 16, 2 vCPUs, 6144 MiB)" "$state/notify.log"; then
        pass "systemd-notify --ready with the EnclaveID from run-enclave's JSON"
    else
        fail "notify: $(cat "$state/notify.log")"
    fi
    kill -TERM "$runner_pid"
    wait_bg
    if ((rc == 0)) && [[ "$(tail -n 1 "$state/argv.log")" == "terminate-enclave --enclave-id $id" ]] &&
        [[ "$(jq length "$state/enclaves.json")" == 0 ]]; then
        pass "SIGTERM: terminate-enclave --enclave-id $id, exit 0"
    else
        fail "SIGTERM: rc=$rc, last call '$(tail -n 1 "$state/argv.log")': $err"
    fi
else
    fail "runner never became ready: $(cat "$state/err")"
    kill "$runner_pid" 2>/dev/null || true
    wait_bg
fi

# --- 2. the enclave disappears -------------------------------------------------------------
new_case
start_bg
if wait_for 10 ready; then
    echo '[]' >"$state/enclaves.json"
    wait_bg
    if ((rc != 0 && rc != 255)) && [[ "$err" == *"is gone"* ]]; then
        pass "enclave gone: runner exits $rc (systemd restarts it)"
    else
        fail "enclave gone: rc=$rc: $err"
    fi
else
    fail "case 2: runner never became ready: $(cat "$state/err")"
    wait_bg
fi

# --- 3. the enclave leaves RUNNING ---------------------------------------------------------
new_case
start_bg
if wait_for 10 ready; then
    jq '.[0].State = "TERMINATING"' "$state/enclaves.json" >"$state/e" && mv "$state/e" "$state/enclaves.json"
    wait_bg
    if ((rc == 1)) && [[ "$err" == *"TERMINATING, not RUNNING"* ]]; then
        pass "enclave not RUNNING: runner exits 1"
    else
        fail "enclave TERMINATING: rc=$rc: $err"
    fi
else
    fail "case 3: runner never became ready"
    wait_bg
fi

# --- 4. describe-enclaves keeps failing ----------------------------------------------------
new_case
start_bg
if wait_for 10 ready; then
    touch "$state/describe-fails"
    wait_bg
    if ((rc == 1)) && [[ "$err" == *"3 of 3 in a row"* ]]; then
        pass "describe-enclaves failing 3 times in a row: runner exits 1"
    else
        fail "describe failures: rc=$rc: $err"
    fi
else
    fail "case 4: runner never became ready"
    wait_bg
fi

# --- 5. SIGTERM while run-enclave is still starting the enclave ----------------------------
new_case
echo 2 >"$state/run-delay"
start_bg
if wait_for 10 grep -q '^run-enclave ' "$state/argv.log"; then
    kill -TERM "$runner_pid"
    wait_bg
    id="$(jq -r '.[0].EnclaveID // empty' "$state/enclaves.json")"
    if ((rc == 0)) && [[ -z "$id" ]] && [[ "$(tail -n 1 "$state/argv.log")" == "terminate-enclave --enclave-id "* ]] &&
        [[ ! -s "$state/notify.log" ]]; then
        pass "SIGTERM during run-enclave: the new enclave is terminated once it exists, exit 0, never READY"
    else
        fail "SIGTERM during run-enclave: rc=$rc, left '$id', calls: $(tr '\n' ';' <"$state/argv.log")"
    fi
else
    fail "case 5: run-enclave never called"
    wait_bg
fi

# --- 6. a stale (non-debug) enclave of the same name is replaced -------------------------------
new_case
echo '[{"EnclaveName":"k3s-daas","EnclaveID":"i-stale-enc0000000000000001","ProcessID":1,"EnclaveCID":16,
        "NumberOfCPUs":2,"CPUIDs":[2,3],"MemoryMiB":6144,"State":"RUNNING","Flags":"NONE"}]' >"$state/enclaves.json"
start_bg
if wait_for 10 ready; then
    calls="$(tr '\n' ';' <"$state/argv.log")"
    if [[ "$calls" == "describe-enclaves;terminate-enclave --enclave-id i-stale-enc0000000000000001;run-enclave "* ]]; then
        pass "stale enclave of the same name terminated before run-enclave"
    else
        fail "stale enclave: calls $calls"
    fi
    kill -TERM "$runner_pid"
    wait_bg
else
    fail "case 6: runner never became ready: $(cat "$state/err")"
    wait_bg
fi

# Refusals: exit 78, and nitro-cli never asked to run or terminate anything.
expect_refusal() {
    local what="$1" want_rc="$2" needle="$3"
    if ((rc == want_rc)) && [[ "$err" == *"$needle"* ]] &&
        ! grep -qE '^(run|terminate)-enclave' "$state/argv.log"; then
        pass "$what: exit $rc, '$needle'"
    else
        fail "$what: rc=$rc (want $want_rc), calls: $(tr '\n' ';' <"$state/argv.log"), stderr: $err"
    fi
}

# --- 7. an enclave of that name in DEBUG_MODE is refused, and left alone ----------------------
new_case
echo '[{"EnclaveName":"k3s-daas","EnclaveID":"i-debug-enc000000000000002","ProcessID":1,"EnclaveCID":16,
        "NumberOfCPUs":2,"CPUIDs":[2,3],"MemoryMiB":6144,"State":"RUNNING","Flags":"DEBUG_MODE"}]' >"$state/enclaves.json"
run_fg
expect_refusal "DEBUG_MODE enclave named k3s-daas" 78 "runs in DEBUG_MODE (i-debug-enc000000000000002)"

# --- 8. debug mode cannot be asked for --------------------------------------------------------
new_case
runner_args=(--debug-mode)
run_fg
expect_refusal "--debug-mode argument" 64 "never runs in debug mode"
runner_args=()
new_case
run_fg "K3S_DAAS_DEBUG_MODE=0"
expect_refusal "K3S_DAAS_DEBUG_MODE in the environment" 78 "K3S_DAAS_DEBUG_MODE is set"

# --- 9. E26: the EIF is too big for the reserved memory --------------------------------------
new_case
big="$tmp/big.eif"
truncate -s 2G "$big"
run_fg "K3S_DAAS_EIF=$big"
expect_refusal "EIF of 2 GiB with 6144 MiB" 78 "E26: enclave memory 6144 MiB is less than 4 x the EIF size"
if [[ "$err" == *"set memory_mib to at least 8192"* ]]; then
    pass "E26 message names the memory needed (8192 MiB)"
else
    fail "E26 message: $err"
fi
rm -f "$big"

# --- 10. another enclave holds the CID ------------------------------------------------------
new_case
echo '[{"EnclaveName":"other","EnclaveID":"i-other-enc000000000000003","ProcessID":1,"EnclaveCID":16,
        "NumberOfCPUs":2,"CPUIDs":[2,3],"MemoryMiB":512,"State":"RUNNING","Flags":"NONE"}]' >"$state/enclaves.json"
run_fg
expect_refusal "CID 16 held by another enclave" 78 "CID 16 is taken by another enclave: other"

# --- 11. allocator files --------------------------------------------------------------------
check_allocator() {
    local what="$1" content="$2" needle="$3"
    new_case
    printf '%b' "$content" >"$allocator"
    run_fg
    expect_refusal "allocator: $what" 78 "$needle"
}
check_allocator "cpu_count and cpu_pool" '---\nmemory_mib: 6144\ncpu_count: 2\ncpu_pool: 2,3\n' "cpu_count and cpu_pool conflict"
check_allocator "no --- line" 'memory_mib: 6144\ncpu_count: 2\n' "no '---' line"
check_allocator "blank line" '---\nmemory_mib: 6144\n\ncpu_count: 2\n' "blank line after ---"
check_allocator "comment after a value" '---\nmemory_mib: 6144 # six GiB\ncpu_count: 2\n' "comment after a value"
check_allocator "a list of reservations" '---\n- memory_mib: 6144\n  cpu_count: 2\n' "a list of reservations"
check_allocator "memory not a number" '---\nmemory_mib: lots\ncpu_count: 2\n' "memory_mib 'lots' is not a positive integer"
check_allocator "memory missing" '---\ncpu_count: 2\n' "memory_mib is missing"
check_allocator "cpu missing" '---\nmemory_mib: 6144\n' "cpu_count (or cpu_pool) is missing"
check_allocator "bad cpu_pool" '---\nmemory_mib: 6144\ncpu_pool: 3-2\n' "cpu_pool '3-2' is not a CPU list"
check_allocator "unknown key" '---\nmemory_mib: 6144\ncpu_count: 2\nmemory: 12\n' "unexpected key 'memory'"
check_allocator "CRLF" '---\r\nmemory_mib: 6144\r\ncpu_count: 2\r\n' "CRLF"
new_case
rm -f "$allocator"
run_fg
expect_refusal "allocator: missing file" 78 "does not exist"

# --- 12. cpu_pool and CID override ----------------------------------------------------------
new_case
printf -- '---\nmemory_mib: 4096\ncpu_pool: 2,3,6-7\n' >"$allocator"
start_bg "K3S_DAAS_ENCLAVE_CID=20"
if wait_for 10 ready; then
    want="run-enclave --eif-path $eif --cpu-count 4 --memory 4096 --enclave-cid 20 --enclave-name k3s-daas"
    if [[ "$(run_line)" == "$want" ]]; then
        pass "cpu_pool 2,3,6-7 -> --cpu-count 4; K3S_DAAS_ENCLAVE_CID=20 -> --enclave-cid 20"
    else
        fail "cpu_pool/CID: got '$(run_line)', want '$want'"
    fi
    kill -INT "$runner_pid"
    wait_bg
    if ((rc == 0)) && [[ "$(tail -n 1 "$state/argv.log")" == "terminate-enclave --enclave-id "* ]]; then
        pass "SIGINT: enclave terminated, exit 0"
    else
        fail "SIGINT: rc=$rc: $err"
    fi
else
    fail "case 12: runner never became ready: $(cat "$state/err")"
    wait_bg
fi

# --- 13. etcd-tls.sh ------------------------------------------------------------------------
out="$tmp/etcd"
if ca="$("$etcd_tls" --out "$out" 2>"$tmp/tls.err" | tail -n 1)" && [[ "$ca" == "$out/ca.pem" ]]; then
    pass "etcd-tls.sh prints the CA path ($ca)"
else
    fail "etcd-tls.sh failed or printed '$ca': $(cat "$tmp/tls.err")"
fi
if openssl verify -CAfile "$out/ca.pem" "$out/server.crt" >/dev/null 2>&1; then
    pass "openssl verify: server.crt chains to ca.pem"
else
    fail "openssl verify failed: $(openssl verify -CAfile "$out/ca.pem" "$out/server.crt" 2>&1)"
fi
sans="$(openssl x509 -in "$out/server.crt" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' ')"
if [[ "$sans" == "IPAddress:127.0.0.1,DNS:localhost" ]]; then
    pass "server SANs exactly IP:127.0.0.1, DNS:localhost"
else
    fail "server SANs: '$sans'"
fi
eku="$(openssl x509 -in "$out/server.crt" -noout -ext extendedKeyUsage 2>/dev/null | tail -n +2)"
basic="$(openssl x509 -in "$out/ca.pem" -noout -ext basicConstraints 2>/dev/null | tail -n +2)"
if [[ "$eku" == *"TLS Web Server Authentication"* && "$basic" == *"CA:TRUE"* ]]; then
    pass "server certificate for serverAuth; CA certificate has CA:TRUE"
else
    fail "extensions: EKU '$eku', CA basicConstraints '$basic'"
fi
curves_ok=true
for key in "$out/ca.key" "$out/server.key"; do
    openssl pkey -in "$key" -noout -text 2>/dev/null | grep -q 'NIST CURVE: P-256' || curves_ok=false
done
modes="$(stat -c '%n %a' "$out" "$out/ca.key" "$out/server.key" "$out/ca.pem" "$out/server.crt" | sed "s|$out|.|")"
if [[ "$curves_ok" == true && "$modes" == $'. 700\n./ca.key 600\n./server.key 600\n./ca.pem 644\n./server.crt 644' ]]; then
    pass "EC P-256 keys; directory 0700, keys 0600, certificates 0644"
else
    fail "keys/modes: P-256 $curves_ok; $modes"
fi
not_after="$(openssl x509 -in "$out/server.crt" -noout -enddate | cut -d= -f2)"
if openssl x509 -in "$out/server.crt" -noout -checkend $((2 * 365 * 86400)) >/dev/null &&
    ! openssl x509 -in "$out/server.crt" -noout -checkend $((5 * 365 * 86400)) >/dev/null; then
    pass "server certificate valid for a few years (until $not_after)"
else
    fail "server certificate validity: until $not_after"
fi
before="$(sha256sum "$out"/* | sha256sum)"
"$etcd_tls" --out "$out" >/dev/null 2>&1
if [[ "$(sha256sum "$out"/* | sha256sum)" == "$before" ]]; then
    pass "a second run changes nothing"
else
    fail "a second run replaced existing TLS material"
fi
ca_before="$(sha256sum <"$out/ca.pem")"
crt_before="$(sha256sum <"$out/server.crt")"
if "$etcd_tls" --out "$out" --renew-server >/dev/null 2>&1 &&
    [[ "$(sha256sum <"$out/ca.pem")" == "$ca_before" && "$(sha256sum <"$out/server.crt")" != "$crt_before" ]] &&
    openssl verify -CAfile "$out/ca.pem" "$out/server.crt" >/dev/null 2>&1; then
    pass "--renew-server: new server certificate under the same CA"
else
    fail "--renew-server did not renew under the same CA"
fi
rm -f "$out/server.key"
if "$etcd_tls" --out "$out" >/dev/null 2>"$tmp/tls.err"; then
    fail "partial TLS material was accepted"
elif grep -q "only part of the TLS material" "$tmp/tls.err"; then
    pass "partial TLS material: refused with a clear message"
else
    fail "partial TLS material: $(cat "$tmp/tls.err")"
fi

if ((failures > 0)); then
    echo "enclave-runner: $failures check(s) failed" >&2
    exit 1
fi
echo "enclave-runner: all checks passed"
