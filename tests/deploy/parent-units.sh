#!/usr/bin/env bash
# Lints the parent-host and worker systemd units in deploy-ec2/systemd/ with the real
# `systemd-analyze verify`, against a throwaway root that holds this host's stock units, a
# stand-in for the packaged nitro-enclaves-allocator.service, our drop-in, and a stub
# executable for every Exec*= binary (verify checks that they exist; nothing is ignored: any
# line verify prints fails the test). Then checks the hardening directives of the three
# parent units, that no unit passes --debug-mode, the bridge command of the shared contract,
# the example egress allow-list, and prints `systemd-analyze security --offline=yes` scores
# (reported, not asserted).
#
# Needs systemd-analyze (systemd >= 252). Without it: SKIPPED, or a failure when
# DAAS_REQUIRE_PEERS=1.

set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
units_dir="$repo/deploy-ec2/systemd"
parent_dir="$repo/deploy-ec2/parent"

# shellcheck source=tests/deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

failures=0
pass() { echo "ok    $*"; }
fail() {
    echo "FAIL  $*" >&2
    failures=$((failures + 1))
}

command -v systemd-analyze >/dev/null 2>&1 || skip "systemd-analyze not installed"
stock=""
for d in /usr/lib/systemd/system /lib/systemd/system; do
    if [[ -f "$d/sysinit.target" ]]; then
        stock="$d"
        break
    fi
done
[[ -n "$stock" ]] || skip "no stock systemd units (sysinit.target) on this host to verify against"

tmp="$(mktemp -d)"
etcd_pid=""
cleanup() {
    if [[ -n "$etcd_pid" ]]; then
        kill "$etcd_pid" 2>/dev/null || true
        wait "$etcd_pid" 2>/dev/null || true
    fi
    rm -rf -- "$tmp"
}
trap cleanup EXIT
root="$tmp/root"
mkdir -p "$root/usr/lib/systemd/system" "$root/etc/systemd/system"
cp -a "$stock/." "$root/usr/lib/systemd/system/"

# Stand-in for the unit aws-nitro-enclaves-cli installs (bootstrap/nitro-enclaves-allocator.service
# in that repository: Type=oneshot, no RemainAfterExit): what our drop-in extends.
cat >"$root/usr/lib/systemd/system/nitro-enclaves-allocator.service" <<'EOF'
[Unit]
Description=Stand-in for the packaged Nitro Enclaves allocator unit
DefaultDependencies=no
After=sysinit.target

[Service]
Type=oneshot
ExecStart=/usr/bin/nitro-enclaves-allocator
RemainAfterExit=false

[Install]
WantedBy=multi-user.target
EOF

mapfile -t unit_files < <(find "$units_dir" -maxdepth 1 -name '*.service' -type f | sort)
mapfile -t dropin_files < <(find "$units_dir" -mindepth 2 -path '*.service.d/*.conf' -type f | sort)
((${#unit_files[@]} > 0)) || {
    echo "FAIL: no units in $units_dir" >&2
    exit 1
}
units=()
for f in "${unit_files[@]}"; do
    cp "$f" "$root/etc/systemd/system/"
    units+=("$(basename "$f")")
done
for f in "${dropin_files[@]}"; do
    d="$(basename "$(dirname "$f")")"
    mkdir -p "$root/etc/systemd/system/$d"
    cp "$f" "$root/etc/systemd/system/$d/"
    u="${d%.d}"
    [[ " ${units[*]} " == *" $u "* ]] || units+=("$u")
done

# One stub per Exec*= binary (first word after systemd's prefixes -@:+!), in every unit and
# drop-in, including the stand-in allocator's.
stub_paths=()
while IFS= read -r path; do
    [[ " ${stub_paths[*]} " == *" $path "* ]] && continue
    stub_paths+=("$path")
    mkdir -p "$root$(dirname "$path")"
    printf '#!/bin/sh\nexit 0\n' >"$root$path"
    chmod 0755 "$root$path"
done < <(cat "${unit_files[@]}" "${dropin_files[@]}" "$root/usr/lib/systemd/system/nitro-enclaves-allocator.service" |
    sed -nE 's/^Exec(Start|StartPre|StartPost|Condition|Reload|Stop|StopPost)=[-@:+!]*([^[:space:]]+).*/\2/p')
echo "stubs: ${stub_paths[*]}"

verify() {
    systemd-analyze verify --man=no --root="$root" "$@" 2>&1
}

# --- systemd-analyze verify ------------------------------------------------------------------
if out="$(verify "${units[@]}")" && [[ -z "$out" ]]; then
    pass "systemd-analyze verify: ${units[*]} (no warnings)"
else
    fail "systemd-analyze verify ${units[*]}:"
    printf '%s\n' "$out" >&2
fi

# The check must be able to fail: without a stub, verify names the missing binary; the drop-in
# is loaded (its ExecStartPost binary is checked too).
mv "$root/usr/local/bin/k3s-daas-preflight" "$tmp/preflight.stub"
if out="$(verify nitro-enclaves-allocator.service)" || [[ "$out" != *k3s-daas-preflight* ]]; then
    fail "verify did not notice the drop-in's missing ExecStartPost binary: $out"
else
    pass "verify loads the drop-in and checks its binary (negative control)"
fi
mv "$tmp/preflight.stub" "$root/usr/local/bin/k3s-daas-preflight"
printf 'NoSuchDirective=1\n' >>"$root/etc/systemd/system/k3s-daas-bridge.service"
if out="$(verify k3s-daas-bridge.service)" && [[ -z "$out" ]]; then
    fail "an unknown directive went unnoticed"
else
    pass "an unknown directive prints a warning, which fails this test (negative control)"
fi
cp "$units_dir/k3s-daas-bridge.service" "$root/etc/systemd/system/"

# --- hardening directives --------------------------------------------------------------------
# Exact lines (key=value) each new parent unit must carry.
common=(
    "NoNewPrivileges=yes"
    "ProtectSystem=strict"
    "ProtectHome=yes"
    "PrivateTmp=yes"
    "CapabilityBoundingSet="
    "AmbientCapabilities="
    "ProtectKernelTunables=yes"
    "ProtectKernelModules=yes"
    "ProtectKernelLogs=yes"
    "ProtectControlGroups=yes"
    "ProtectClock=yes"
    "ProtectHostname=yes"
    "RestrictNamespaces=yes"
    "RestrictRealtime=yes"
    "RestrictSUIDSGID=yes"
    "LockPersonality=yes"
    "MemoryDenyWriteExecute=yes"
    "SystemCallArchitectures=native"
    "SystemCallFilter=@system-service"
    "Restart=always"
)
declare -A extra=(
    [k3s-daas-enclave.service]="Type=notify|NotifyAccess=all|KillMode=mixed|User=root|DevicePolicy=closed|DeviceAllow=/dev/nitro_enclaves rw|RestrictAddressFamilies=AF_UNIX AF_VSOCK|ReadWritePaths=/run/nitro_enclaves /var/log/nitro_enclaves|Requires=nitro-enclaves-allocator.service|After=nitro-enclaves-allocator.service|ExecStart=/usr/local/bin/k3s-daas-enclave|RestartPreventExitStatus=64 78"
    [k3s-daas-bridge.service]="DynamicUser=yes|PrivateDevices=yes|PrivateUsers=yes|RestrictAddressFamilies=AF_INET AF_INET6 AF_VSOCK AF_UNIX|SystemCallFilter=~@privileged @resources"
    [k3s-daas-etcd.service]="Type=notify|User=etcd|StateDirectory=k3s-daas-etcd|ReadWritePaths=/var/lib/k3s-daas-etcd|RequiresMountsFor=/var/lib/k3s-daas-etcd|PrivateDevices=yes|PrivateUsers=yes|IPAddressDeny=any|IPAddressAllow=localhost|RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX|SystemCallFilter=~@privileged @resources|LoadCredential=server.key:/etc/k3s-daas/etcd/server.key"
)
for unit in k3s-daas-enclave.service k3s-daas-bridge.service k3s-daas-etcd.service; do
    file="$units_dir/$unit"
    if [[ ! -f "$file" ]]; then
        fail "$unit missing"
        continue
    fi
    IFS='|' read -r -a wanted <<<"${extra[$unit]}"
    missing=()
    for line in "${common[@]}" "${wanted[@]}"; do
        grep -qxF -- "$line" "$file" || missing+=("$line")
    done
    if ((${#missing[@]} == 0)); then
        pass "$unit: $((${#common[@]} + ${#wanted[@]})) hardening/behaviour directives present"
    else
        fail "$unit lacks: ${missing[*]}"
    fi
done

# ExecStart with its continuation lines joined, for the command checks below.
exec_start() {
    awk '/^ExecStart=/ { cmd = ""; on = 1 }
         on { line = $0; cont = sub(/\\$/, "", line); cmd = cmd line; if (!cont) { print cmd; on = 0 } }' "$1" |
        sed -E 's/^ExecStart=//; s/[[:space:]]+/ /g; s/ $//'
}

# The bridge command, exactly as the shared contract (docs/bridge.md, "Running it") gives it.
want_bridge="/usr/local/bin/nautilus-master bridge --enclave-cid 16 --ingress 0.0.0.0:8080=8080 --ingress 0.0.0.0:6443=6443 --egress-port 8000 --allow-file /etc/k3s-daas/egress.allow --credentials-port 8001"
got_bridge="$(exec_start "$units_dir/k3s-daas-bridge.service")"
if [[ "$got_bridge" == "$want_bridge" ]]; then
    pass "bridge ExecStart is the contract's command"
else
    fail "bridge ExecStart: got '$got_bridge', want '$want_bridge'"
fi

# etcd: every URL on loopback, TLS for clients and peers; the data directory as agreed.
etcd_cmd="$(exec_start "$units_dir/k3s-daas-etcd.service")"
mapfile -t urls < <(grep -oE '[a-z]+://[^ ,]+' <<<"$etcd_cmd")
bad_urls=()
for u in "${urls[@]}"; do
    case "$u" in
        https://127.0.0.1:2379 | https://127.0.0.1:2380 | http://127.0.0.1:2381) ;;
        k3s-daas=https://127.0.0.1:2380) ;;
        *) bad_urls+=("$u") ;;
    esac
done
if ((${#urls[@]} >= 5 && ${#bad_urls[@]} == 0)) &&
    [[ "$etcd_cmd" == "/usr/local/bin/etcd "* && "$etcd_cmd" == *"--data-dir /var/lib/k3s-daas-etcd "* &&
        "$etcd_cmd" == *"--listen-client-urls https://127.0.0.1:2379 "* &&
        "$etcd_cmd" == *"--cert-file %d/server.crt "* && "$etcd_cmd" == *"--key-file %d/server.key "* &&
        "$etcd_cmd" == *"--auto-compaction-retention "* && "$etcd_cmd" == *"--quota-backend-bytes "* ]]; then
    pass "etcd: ${#urls[@]} URLs, all loopback; TLS key from the credentials directory; compaction and quota set"
else
    fail "etcd ExecStart: non-loopback or missing settings (bad URLs: ${bad_urls[*]:-none}): $etcd_cmd"
fi

# The same command runs a real etcd (Debian's etcd 3.4 in CI) with etcd-tls.sh's certificates,
# moved to free loopback ports and a throwaway directory, and etcdctl reaches it over TLS
# verified against the CA alone: the flags exist, and the certificate fits etcd and a client.
free_ports() {
    python3 -c 'import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'
}
if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
    if [[ "${DAAS_REQUIRE_PEERS:-}" == 1 ]]; then
        fail "etcd, etcdctl or python3 not installed: the etcd unit's command cannot run (DAAS_REQUIRE_PEERS=1)"
    else
        echo "SKIPPED: etcd unit command against a real etcd (etcd, etcdctl or python3 not installed)"
    fi
else
    tls="$tmp/etcd-tls"
    "$parent_dir/etcd-tls.sh" --out "$tls" >/dev/null 2>"$tmp/etcd-tls.err" || {
        fail "etcd-tls.sh failed: $(cat "$tmp/etcd-tls.err")"
    }
    read -r p_client p_peer p_metrics <<<"$(free_ports)"
    run_cmd="${etcd_cmd//%d/$tls}"
    run_cmd="${run_cmd//\/etc\/k3s-daas\/etcd/$tls}"
    run_cmd="${run_cmd//\/var\/lib\/k3s-daas-etcd/$tmp/etcd-data}"
    run_cmd="${run_cmd//127.0.0.1:2379/127.0.0.1:$p_client}"
    run_cmd="${run_cmd//127.0.0.1:2380/127.0.0.1:$p_peer}"
    run_cmd="${run_cmd//127.0.0.1:2381/127.0.0.1:$p_metrics}"
    run_cmd="${run_cmd/#\/usr\/local\/bin\/etcd /$(command -v etcd) }"
    read -r -a etcd_argv <<<"$run_cmd"
    "${etcd_argv[@]}" >"$tmp/etcd.log" 2>&1 &
    etcd_pid=$!
    healthy=false
    for _ in $(seq 1 50); do
        if ETCDCTL_API=3 etcdctl --endpoints "https://127.0.0.1:$p_client" --cacert "$tls/ca.pem" \
            --dial-timeout 1s put k3s-daas-check ok >/dev/null 2>&1; then
            healthy=true
            break
        fi
        kill -0 "$etcd_pid" 2>/dev/null || break
        sleep 0.2
    done
    if [[ "$healthy" == true ]] &&
        [[ "$(ETCDCTL_API=3 etcdctl --endpoints "https://127.0.0.1:$p_client" --cacert "$tls/ca.pem" \
            get --print-value-only k3s-daas-check 2>/dev/null)" == ok ]]; then
        pass "etcd ($(etcd --version | head -n 1)) runs the unit's flags; etcdctl verified its TLS with the etcd-tls.sh CA only"
    else
        fail "etcd with the unit's flags did not serve TLS: $(tail -n 5 "$tmp/etcd.log")"
    fi
    kill "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
    etcd_pid=""
fi

# Drop-in: the preflight after the allocator, which then stays active.
dropin="$units_dir/nitro-enclaves-allocator.service.d/10-k3s-daas.conf"
if grep -qxF "ExecStartPost=/usr/local/bin/k3s-daas-preflight" "$dropin" &&
    grep -qxF "RemainAfterExit=yes" "$dropin"; then
    pass "allocator drop-in: ExecStartPost=/usr/local/bin/k3s-daas-preflight, RemainAfterExit=yes"
else
    fail "allocator drop-in lacks ExecStartPost=/usr/local/bin/k3s-daas-preflight or RemainAfterExit=yes"
fi

# --- never debug mode, never the vsock stand-in ---------------------------------------------
# Directives only (comments may explain why the option is absent), drop-ins included.
if hits="$(find "$units_dir" -type f \( -name '*.service' -o -name '*.conf' \) -exec grep -Hn -v '^[[:space:]]*[#;]' {} + |
    grep -e '--debug-mode' -e '--attach-console' -e '--unix-vsock-dir' -e 'DAAS_UNIX_VSOCK_DIR=')"; then
    fail "a unit passes a debug/test-only option: $hits"
else
    pass "no unit contains --debug-mode, --attach-console or the vsock stand-in"
fi

# --- example egress allow-list ---------------------------------------------------------------
# The bridge's rule (crates/bridge AllowList::parse_text): one exact host:port a line; '#' starts
# a comment; blank lines ignored; no wildcards.
allow="$parent_dir/egress.allow.example"
bad=()
entries=0
while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line%%#*}"
    line="${line//[[:space:]]/}"
    [[ -z "$line" ]] && continue
    entries=$((entries + 1))
    if [[ ! "$line" =~ ^([a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:]+\]):[0-9]{1,5}$ ]]; then
        bad+=("$line")
    fi
done <"$allow"
if ((entries > 0 && ${#bad[@]} == 0)) && grep -qx '127.0.0.1:2379' "$allow"; then
    pass "egress.allow.example: $entries exact host:port targets, etcd 127.0.0.1:2379 among them"
else
    fail "egress.allow.example: bad entries (${bad[*]:-none}) or no 127.0.0.1:2379"
fi

# --- exposure scores (reported only) ---------------------------------------------------------
for unit in "${units[@]}"; do
    [[ "$unit" == nitro-enclaves-allocator.service ]] && continue
    if out="$(systemd-analyze security --offline=yes --no-pager --root="$root" "$unit" 2>&1)"; then
        score="$(grep -oE 'Overall exposure level for [^:]+: .*' <<<"$out" || true)"
        echo "info  ${score:-$unit: no score line}"
    else
        fail "systemd-analyze security --offline=yes $unit failed: $(tail -n 3 <<<"$out")"
    fi
done

if ((failures > 0)); then
    echo "parent-units: $failures check(s) failed" >&2
    exit 1
fi
echo "parent-units: all checks passed"
