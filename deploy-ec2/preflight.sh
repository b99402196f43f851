#!/usr/bin/env bash
# K3s-DaaS parent-host preflight for AWS Nitro Enclaves.
#
# Checks that this EC2 instance can host the K3s-DaaS control-plane enclave: enough vCPUs,
# the Nitro CLI and driver, an allocator configuration that leaves the parent enough CPU and
# memory, the huge pages and CPU pool that configuration reserves, and no enclave running in
# debug mode. Every check is read-only and works without root (listing enclaves may need
# membership of the `ne` group).
#
# Usage: deploy-ec2/preflight.sh [--allocator FILE] [--strict]
# Exit status: 0 all checks passed (warnings allowed unless --strict), 1 a check failed,
# 64 bad usage.

set -euo pipefail

readonly MIN_HOST_VCPUS=4          # AWS: enclave parents need >= 4 vCPUs (x86)
readonly MIN_PARENT_VCPUS=2        # the core of CPU 0 stays with the parent
readonly MIN_ENCLAVE_MEMORY_MIB=4096   # floor for a K3s server enclave
readonly MIN_PARENT_MEMORY_MIB=2048    # OS, etcd, vsock bridge on the parent
readonly DEFAULT_ALLOCATOR=/etc/nitro_enclaves/allocator.yaml
readonly NE_DEVICE=/dev/nitro_enclaves
readonly NE_CPU_POOL=/sys/module/nitro_enclaves/parameters/ne_cpus
readonly HUGEPAGES_DIR=/sys/kernel/mm/hugepages

allocator="$DEFAULT_ALLOCATOR"
strict=false

usage() {
    cat <<'EOF'
Usage: preflight.sh [--allocator FILE] [--strict]

Checks that this EC2 instance can host the K3s-DaaS control-plane Nitro Enclave.

  --allocator FILE  allocator configuration to check
                    (default: /etc/nitro_enclaves/allocator.yaml)
  --strict          treat warnings as failures
  -h, --help        show this help

Exit status: 0 passed, 1 a check failed, 64 bad usage.
EOF
}

while (($# > 0)); do
    case "$1" in
        --allocator)
            if (($# < 2)) || [[ -z "$2" ]]; then
                echo "preflight: --allocator needs a file argument" >&2
                usage >&2
                exit 64
            fi
            allocator="$2"
            shift 2
            ;;
        --allocator=*)
            allocator="${1#--allocator=}"
            shift
            ;;
        --strict)
            strict=true
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "preflight: unknown argument: $1" >&2
            usage >&2
            exit 64
            ;;
    esac
done

passed=0
failed=0
warned=0
skipped=0

# report STATUS NAME MESSAGE [HINT]
report() {
    local status="$1" name="$2" message="$3" hint="${4:-}"
    printf '%-4s  %-18s %s\n' "$status" "$name" "$message"
    if [[ -n "$hint" ]]; then
        printf '      %-18s hint: %s\n' "" "$hint"
    fi
    case "$status" in
        PASS) passed=$((passed + 1)) ;;
        FAIL) failed=$((failed + 1)) ;;
        WARN) warned=$((warned + 1)) ;;
        SKIP) skipped=$((skipped + 1)) ;;
    esac
}

is_uint() {
    [[ "$1" =~ ^[0-9]+$ ]]
}

# Prints the number of CPUs in a Linux CPU list such as "1,3,6-9"; fails on bad syntax.
count_cpu_list() {
    local list="$1" total=0 group lo hi
    [[ "$list" =~ ^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$ ]] || return 1
    IFS=',' read -r -a groups <<<"$list"
    for group in "${groups[@]}"; do
        lo="${group%-*}"
        hi="${group#*-}"
        ((10#$hi >= 10#$lo)) || return 1
        total=$((total + 10#$hi - 10#$lo + 1))
    done
    echo "$total"
}

# Prints 0 if CPU $2 is in the CPU list $1, 1 otherwise.
cpu_in_list() {
    local list="$1" cpu="$2" group lo hi
    IFS=',' read -r -a groups <<<"$list"
    for group in "${groups[@]}"; do
        lo="${group%-*}"
        hi="${group#*-}"
        if ((10#$cpu >= 10#$lo && 10#$cpu <= 10#$hi)); then
            return 0
        fi
    done
    return 1
}

echo "K3s-DaaS parent-host preflight"
echo "allocator configuration: $allocator"
echo

# --- host vCPUs ----------------------------------------------------------------------------
# nproc --all counts installed CPUs, including those the allocator has taken offline.
host_vcpus="$(nproc --all 2>/dev/null || getconf _NPROCESSORS_CONF)"
threads_per_core=1
if [[ -r /sys/devices/system/cpu/cpu0/topology/thread_siblings_list ]]; then
    siblings="$(cat /sys/devices/system/cpu/cpu0/topology/thread_siblings_list)"
    if n="$(count_cpu_list "$siblings")"; then
        threads_per_core="$n"
    fi
fi
if ((host_vcpus >= MIN_HOST_VCPUS)); then
    report PASS host-vcpus "$host_vcpus vCPUs, $threads_per_core thread(s) per core (need >= $MIN_HOST_VCPUS)"
else
    report FAIL host-vcpus "$host_vcpus vCPUs, $threads_per_core thread(s) per core (need >= $MIN_HOST_VCPUS)" \
        "enclaves take whole cores and the parent keeps CPU 0's core; use e.g. m6i.xlarge (4 vCPUs) or c6i.2xlarge (8 vCPUs)"
fi

# --- Nitro CLI -------------------------------------------------------------------------------
have_nitro_cli=false
if command -v nitro-cli >/dev/null 2>&1; then
    have_nitro_cli=true
    version="$(nitro-cli --version 2>/dev/null | head -n 1 || true)"
    report PASS nitro-cli "${version:-found} ($(command -v nitro-cli))"
else
    report FAIL nitro-cli "nitro-cli is not on PATH" \
        "Amazon Linux 2023: sudo dnf install -y aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel && sudo usermod -aG ne \"\$USER\""
fi

# --- Nitro Enclaves device -------------------------------------------------------------------
if [[ -c "$NE_DEVICE" ]]; then
    if [[ -r "$NE_DEVICE" && -w "$NE_DEVICE" ]]; then
        report PASS nitro-device "$NE_DEVICE present and usable by $(id -un)"
    else
        report WARN nitro-device "$NE_DEVICE present but not read/writable by $(id -un)" \
            "add the operator to the ne group: sudo usermod -aG ne $(id -un) (then log in again)"
    fi
else
    report FAIL nitro-device "$NE_DEVICE not found: Nitro Enclaves is not enabled or its driver is not loaded" \
        "launch the instance with --enclave-options Enabled=true on a supported type, and install aws-nitro-enclaves-cli (it loads the nitro_enclaves driver)"
fi

# --- allocator configuration -----------------------------------------------------------------
# Parsed with the rules of the allocator service's own line parser: a "---" line starts the
# document; after it only whole-line comments and "key: value" lines (optionally starting a
# list item with "- "). Sums over list items (one per enclave).
alloc_ok=false
alloc_memory=0
alloc_cpus=0
alloc_entries=0
alloc_error=""
alloc_cpu0=false
if [[ ! -e "$allocator" ]]; then
    report FAIL allocator-file "$allocator does not exist" \
        "copy deploy-ec2/nitro/allocator.yaml to /etc/nitro_enclaves/allocator.yaml, or pass --allocator FILE"
elif [[ ! -r "$allocator" ]]; then
    report FAIL allocator-file "$allocator is not readable by $(id -un)"
else
    started=false
    lineno=0
    entry_memory=""
    entry_count=""
    entry_pool=""

    # Validates and adds the current entry; sets alloc_error on a problem.
    close_entry() {
        local n
        [[ -z "$entry_memory$entry_count$entry_pool" ]] && return 0
        if [[ -z "$entry_memory" ]]; then
            alloc_error="entry $((alloc_entries + 1)): missing memory_mib"
            return 1
        fi
        if ! is_uint "$entry_memory" || ((10#$entry_memory == 0)); then
            alloc_error="entry $((alloc_entries + 1)): memory_mib '$entry_memory' is not a positive integer"
            return 1
        fi
        if [[ -n "$entry_count" && -n "$entry_pool" ]]; then
            alloc_error="entry $((alloc_entries + 1)): cpu_count and cpu_pool conflict; use exactly one"
            return 1
        fi
        if [[ -n "$entry_count" ]]; then
            if ! is_uint "$entry_count" || ((10#$entry_count == 0)); then
                alloc_error="entry $((alloc_entries + 1)): cpu_count '$entry_count' is not a positive integer"
                return 1
            fi
            if ((10#$entry_count % threads_per_core != 0)); then
                alloc_error="entry $((alloc_entries + 1)): cpu_count $entry_count is not a multiple of $threads_per_core (threads per core): enclaves take whole cores"
                return 1
            fi
            n=$((10#$entry_count))
        elif [[ -n "$entry_pool" ]]; then
            if ! n="$(count_cpu_list "$entry_pool")"; then
                alloc_error="entry $((alloc_entries + 1)): cpu_pool '$entry_pool' is not a CPU list like 2,3,6-9"
                return 1
            fi
            if cpu_in_list "$entry_pool" 0; then
                alloc_cpu0=true
            fi
        else
            alloc_error="entry $((alloc_entries + 1)): missing cpu_count (or cpu_pool)"
            return 1
        fi
        alloc_memory=$((alloc_memory + 10#$entry_memory))
        alloc_cpus=$((alloc_cpus + n))
        alloc_entries=$((alloc_entries + 1))
        entry_memory=""
        entry_count=""
        entry_pool=""
    }

    while IFS= read -r line || [[ -n "$line" ]]; do
        lineno=$((lineno + 1))
        if [[ "$line" == *$'\r'* ]]; then
            alloc_error="line $lineno: Windows (CRLF) line ending; the allocator service's parser needs LF"
            break
        fi
        [[ "$line" =~ ^[[:space:]]*# ]] && continue
        if [[ "$started" == false ]]; then
            [[ "$line" == "---" ]] && started=true
            continue
        fi
        if [[ -z "${line//[[:space:]]/}" ]]; then
            alloc_error="line $lineno: blank line after ---; the allocator service's line parser rejects it"
            break
        fi
        if [[ "$line" =~ ^(-[[:space:]]+)?[[:space:]]*([a-z_]+):[[:space:]]*\"?([^\"]*)\"?[[:space:]]*$ ]]; then
            item="${BASH_REMATCH[1]}"
            key="${BASH_REMATCH[2]}"
            value="${BASH_REMATCH[3]}"
        else
            alloc_error="line $lineno: not a 'key: value' line: $line"
            break
        fi
        if [[ "$value" == *"#"* ]]; then
            alloc_error="line $lineno: comment after a value; put comments on their own line (the allocator's line parser reads it as part of the value)"
            break
        fi
        value="${value%"${value##*[![:space:]]}"}"
        if [[ -n "$item" ]]; then
            close_entry || break
        fi
        case "$key" in
            memory_mib) target=entry_memory ;;
            cpu_count) target=entry_count ;;
            cpu_pool) target=entry_pool ;;
            *)
                alloc_error="line $lineno: unexpected key '$key' (allowed: memory_mib, cpu_count, cpu_pool)"
                break
                ;;
        esac
        if [[ -n "${!target}" ]]; then
            alloc_error="line $lineno: $key given twice for one enclave"
            break
        fi
        if [[ -z "$value" ]]; then
            alloc_error="line $lineno: missing value for $key"
            break
        fi
        printf -v "$target" '%s' "$value"
    done <"$allocator"

    if [[ -z "$alloc_error" ]]; then
        if [[ "$started" == false ]]; then
            alloc_error="no '---' line: the allocator service ignores everything before it"
        else
            close_entry || true
        fi
    fi
    if [[ -z "$alloc_error" ]] && ((alloc_entries == 0)); then
        alloc_error="no memory_mib / cpu_count entry found"
    fi

    if [[ -n "$alloc_error" ]]; then
        report FAIL allocator-file "$alloc_error" \
            "start from deploy-ec2/nitro/allocator.yaml"
    else
        alloc_ok=true
        report PASS allocator-file "$alloc_entries enclave reservation(s): $alloc_cpus vCPU(s), $alloc_memory MiB"
    fi
fi

# --- CPU split between enclave and parent ----------------------------------------------------
if [[ "$alloc_ok" == true ]]; then
    parent_vcpus=$((host_vcpus - alloc_cpus))
    if [[ "$alloc_cpu0" == true ]]; then
        report FAIL allocator-cpus "cpu_pool includes CPU 0, which must stay with the parent" \
            "use cpu_count, or a cpu_pool without CPU 0 and its sibling"
    elif ((parent_vcpus < 0)); then
        report FAIL allocator-cpus "enclaves ask for $alloc_cpus vCPUs but the host has only $host_vcpus" \
            "lower cpu_count or use a larger instance"
    elif ((parent_vcpus < MIN_PARENT_VCPUS)); then
        report FAIL allocator-cpus "enclaves take $alloc_cpus of $host_vcpus vCPUs, leaving $parent_vcpus to the parent (need >= $MIN_PARENT_VCPUS)" \
            "lower cpu_count or use a larger instance"
    elif ((alloc_cpus < 2)); then
        report FAIL allocator-cpus "$alloc_cpus vCPU reserved; a K3s server enclave needs >= 2"
    else
        report PASS allocator-cpus "enclave $alloc_cpus vCPUs, parent keeps $parent_vcpus (need >= $MIN_PARENT_VCPUS)"
    fi
else
    report SKIP allocator-cpus "allocator configuration not usable"
fi

# --- memory split ----------------------------------------------------------------------------
mem_total_mib=""
if [[ -r /proc/meminfo ]]; then
    mem_total_kib="$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
    if is_uint "${mem_total_kib:-}"; then
        mem_total_mib=$((mem_total_kib / 1024))
    fi
fi
if [[ "$alloc_ok" != true ]]; then
    report SKIP allocator-memory "allocator configuration not usable"
elif ((alloc_memory < MIN_ENCLAVE_MEMORY_MIB)); then
    report FAIL allocator-memory "memory_mib $alloc_memory is below $MIN_ENCLAVE_MEMORY_MIB MiB, too small for a K3s server enclave" \
        "set memory_mib: 6144 (see deploy-ec2/nitro/allocator.yaml)"
elif [[ -z "$mem_total_mib" ]]; then
    report WARN allocator-memory "cannot read MemTotal from /proc/meminfo; enclave memory $alloc_memory MiB not compared with the host"
elif ((alloc_memory >= mem_total_mib)); then
    report FAIL allocator-memory "enclaves ask for $alloc_memory MiB but the host has only $mem_total_mib MiB" \
        "lower memory_mib or use an instance with more memory"
elif ((mem_total_mib - alloc_memory < MIN_PARENT_MEMORY_MIB)); then
    report FAIL allocator-memory "host has $mem_total_mib MiB; reserving $alloc_memory MiB leaves $((mem_total_mib - alloc_memory)) MiB to the parent (need >= $MIN_PARENT_MEMORY_MIB)" \
        "lower memory_mib or use an instance with more memory"
else
    report PASS allocator-memory "enclave $alloc_memory MiB, parent keeps $((mem_total_mib - alloc_memory)) of $mem_total_mib MiB"
fi

# --- what the allocator service actually reserved --------------------------------------------
if [[ -e "$NE_CPU_POOL" ]]; then
    if [[ -r "$NE_CPU_POOL" ]]; then
        pool="$(tr -d '[:space:]' <"$NE_CPU_POOL")"
        if [[ -z "$pool" ]]; then
            report FAIL cpu-pool "no CPUs are reserved for enclaves" \
                "sudo systemctl enable --now nitro-enclaves-allocator.service (journalctl -u nitro-enclaves-allocator shows its errors)"
        elif ! pool_cpus="$(count_cpu_list "$pool")"; then
            report WARN cpu-pool "cannot parse the CPU pool '$pool'"
        elif [[ "$alloc_ok" == true ]] && ((pool_cpus != alloc_cpus)); then
            report WARN cpu-pool "reserved CPUs $pool ($pool_cpus) differ from the configuration ($alloc_cpus)" \
                "restart nitro-enclaves-allocator.service after editing the configuration (stop enclaves first)"
        else
            report PASS cpu-pool "CPUs $pool reserved for enclaves"
        fi
    else
        report SKIP cpu-pool "$NE_CPU_POOL is not readable by $(id -un)"
    fi
else
    report FAIL cpu-pool "$NE_CPU_POOL not found: the nitro_enclaves driver is not loaded"
fi

huge_mib=0
huge_seen=false
if [[ -d "$HUGEPAGES_DIR" ]]; then
    for dir in "$HUGEPAGES_DIR"/hugepages-*kB; do
        [[ -r "$dir/nr_hugepages" ]] || continue
        huge_seen=true
        size_kib="${dir##*/hugepages-}"
        size_kib="${size_kib%kB}"
        pages="$(cat "$dir/nr_hugepages")"
        if is_uint "$size_kib" && is_uint "$pages"; then
            huge_mib=$((huge_mib + pages * size_kib / 1024))
        fi
    done
fi
if [[ "$huge_seen" != true ]]; then
    report SKIP hugepages "$HUGEPAGES_DIR is not readable"
elif [[ "$alloc_ok" != true ]]; then
    if ((huge_mib > 0)); then
        report WARN hugepages "$huge_mib MiB of huge pages reserved; cannot compare with an unusable configuration"
    else
        report FAIL hugepages "no huge pages reserved" \
            "fix the allocator configuration, then sudo systemctl restart nitro-enclaves-allocator.service"
    fi
elif ((huge_mib >= alloc_memory)); then
    report PASS hugepages "$huge_mib MiB of huge pages reserved (configuration asks for $alloc_memory MiB)"
elif ((huge_mib == 0)); then
    report FAIL hugepages "no huge pages reserved (configuration asks for $alloc_memory MiB)" \
        "sudo systemctl enable --now nitro-enclaves-allocator.service"
else
    report FAIL hugepages "$huge_mib MiB of huge pages reserved, configuration asks for $alloc_memory MiB" \
        "restart nitro-enclaves-allocator.service (stop enclaves first); check free memory on the enclave CPUs' NUMA node"
fi

# --- running enclaves: never debug mode in production ----------------------------------------
if [[ "$have_nitro_cli" != true ]]; then
    report SKIP debug-mode "nitro-cli not installed, cannot list enclaves"
else
    describe_err="$(mktemp)"
    trap 'rm -f "$describe_err"' EXIT
    if enclaves="$(timeout 30 nitro-cli describe-enclaves 2>"$describe_err")"; then
        # grep -o, not -c: the JSON may be on a single line.
        count="$({ grep -o '"EnclaveID"' <<<"$enclaves" || true; } | wc -l)"
        debug="$({ grep -oE '"Flags"[[:space:]]*:[[:space:]]*"[^"]*DEBUG_MODE' <<<"$enclaves" || true; } | wc -l)"
        count=$((count))
        debug=$((debug))
        if ((debug > 0)); then
            ids=""
            if command -v jq >/dev/null 2>&1; then
                ids="$(jq -r '[.[] | select((.Flags // "") | test("DEBUG_MODE")) | .EnclaveID] | join(", ")' <<<"$enclaves" 2>/dev/null || true)"
            fi
            report WARN debug-mode "$debug of $count running enclave(s) in DEBUG_MODE${ids:+: $ids}; their PCRs are all zero and the parent can read their console" \
                "terminate them (nitro-cli terminate-enclave --enclave-id ID) and run production enclaves without --debug-mode"
        else
            report PASS debug-mode "$count enclave(s) running, none in debug mode"
        fi
    else
        reason="$(head -n 1 "$describe_err" | cut -c1-160)"
        report WARN debug-mode "nitro-cli describe-enclaves failed${reason:+: $reason}" \
            "run as a member of the ne group, or with sudo"
    fi
fi

echo
echo "summary: $passed passed, $failed failed, $warned warning(s), $skipped skipped"
if ((failed > 0)); then
    echo "result: FAIL"
    exit 1
fi
if ((warned > 0)) && [[ "$strict" == true ]]; then
    echo "result: FAIL (--strict: warnings count as failures)"
    exit 1
fi
echo "result: PASS"
