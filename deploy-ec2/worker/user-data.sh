#!/usr/bin/env bash
# K3s-DaaS worker bootstrap (EC2 user-data, runs once as root at first boot on Amazon Linux 2023).
# deploy-ec2/cloudformation/k3s-daas.yaml embeds this file byte for byte after a header that sets:
#   DAAS_ARTEFACT_BUCKET       S3 bucket holding the bundle and client.json
#   DAAS_WORKER_BUNDLE_KEY     key of k3s-daas-worker.tar.gz (deploy-ec2/bundle.sh worker)
#   DAAS_WORKER_BUNDLE_SHA256  its SHA-256; nothing is installed unless the download matches
#   DAAS_CHAIN_CONFIG_KEY      key of client.json (public chain deployment file)
#   DAAS_STAKE_ID              the worker stake record (0x + 64 hex): one record = one node
#   DAAS_KEYSTORE_SECRET_ARN   Secrets Manager secret: SecretString = the staker's sui.keystore
#   DAAS_REGION                optional; read from IMDSv2 when empty
# It installs staker-agent, k3s and the staker-agent unit, the chain config, the keystore (0600,
# never printed) and /etc/default/staker-agent, then starts staker-agent.service, which joins the
# node (after checking the master's attestation) and runs k3s agent. No K3s token exists here:
# staker-agent fetches per-node join material from the master at every start.
# Re-running it replaces every file atomically (write beside, then rename).
# Tests: every path is under ${DAAS_ROOT:-}; aws, systemctl, curl, modprobe come from PATH.
set -euo pipefail
umask 077

ROOT="${DAAS_ROOT:-}"
readonly ROOT
readonly BUNDLE_FILES="etc/systemd/system/staker-agent.service
usr/local/bin/k3s
usr/local/bin/staker-agent"

log() { echo "k3s-daas worker bootstrap: $*" >&2; }
die() {
    echo "k3s-daas worker bootstrap: error: $*; nothing more was installed" >&2
    exit 1
}

# Every input is checked before anything is downloaded.
check_inputs() {
    local name
    for name in DAAS_ARTEFACT_BUCKET DAAS_WORKER_BUNDLE_KEY DAAS_WORKER_BUNDLE_SHA256 \
        DAAS_CHAIN_CONFIG_KEY DAAS_STAKE_ID DAAS_KEYSTORE_SECRET_ARN; do
        [[ -n "${!name:-}" ]] || die "$name is not set (the template's parameters set it)"
    done
    [[ "$DAAS_STAKE_ID" =~ ^0x[0-9a-fA-F]{64}$ ]] \
        || die "DAAS_STAKE_ID must be 0x followed by 64 hex digits, got '$DAAS_STAKE_ID'"
    [[ "$DAAS_WORKER_BUNDLE_SHA256" =~ ^[0-9a-fA-F]{64}$ ]] \
        || die "DAAS_WORKER_BUNDLE_SHA256 must be 64 hex digits"
    local arn_re='^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$'
    [[ "$DAAS_KEYSTORE_SECRET_ARN" =~ $arn_re ]] \
        || die "DAAS_KEYSTORE_SECRET_ARN is not a Secrets Manager secret ARN"
    for name in aws systemctl sha256sum tar install; do
        command -v "$name" >/dev/null || die "required command '$name' not found on PATH"
    done
}

# The region from IMDSv2 (a session token first: the instance allows no IMDSv1).
imds_region() {
    local token
    command -v curl >/dev/null || die "DAAS_REGION is empty and curl is not on PATH to ask IMDS"
    token="$(curl -sSf --retry 3 --max-time 5 -X PUT \
        -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)" \
        || die "cannot get an IMDSv2 token"
    curl -sSf --retry 3 --max-time 5 -H "X-aws-ec2-metadata-token: $token" \
        http://169.254.169.254/latest/meta-data/placement/region \
        || die "cannot read the region from IMDS"
}

# put SRC MODE DEST: install SRC as DEST with MODE, atomically (a reader sees the old file or
# the new one, and a running binary is not written into).
put() {
    local src="$1" mode="$2" dest="$3" tmp
    tmp="$(dirname "$dest")/.$(basename "$dest").k3s-daas-new"
    install -m "$mode" "$src" "$tmp"
    mv -f "$tmp" "$dest"
}

# fetch_keystore DEST: the staker's key from Secrets Manager into DEST (0600). The secret is
# only ever on stdout of aws, redirected to the file: never in argv, a variable or the log.
fetch_keystore() {
    local dest="$1" xtrace="" ok=1
    case "$-" in *x*) xtrace=1 ;; esac
    { set +x; } 2>/dev/null
    if aws secretsmanager get-secret-value --secret-id "$DAAS_KEYSTORE_SECRET_ARN" \
        --region "$REGION" --query SecretString --output text >"$dest"; then
        # A binary secret has no SecretString: the CLI prints the word None.
        if [[ ! -s "$dest" ]] || [[ "$(head -c 5 "$dest")" == "None" ]]; then
            ok=0
        fi
    else
        ok=2
    fi
    [[ -z "$xtrace" ]] || set -x
    case "$ok" in
        0) die "secret $DAAS_KEYSTORE_SECRET_ARN has no SecretString (a text secret is needed)" ;;
        2) die "cannot read secret $DAAS_KEYSTORE_SECRET_ARN (instance role, policy or region?)" ;;
    esac
    chmod 0600 "$dest"
}

main() {
    check_inputs
    REGION="${DAAS_REGION:-}"
    [[ -n "$REGION" ]] || REGION="$(imds_region)"
    [[ "$REGION" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "unexpected region '$REGION'"

    mkdir -p "$ROOT/var/tmp"
    STAGE="$(mktemp -d "$ROOT/var/tmp/k3s-daas-bootstrap.XXXXXX")"
    trap 'rm -rf -- "$STAGE"' EXIT

    # 1. Download and verify everything; nothing is installed before all of it checks out.
    log "downloading s3://$DAAS_ARTEFACT_BUCKET/$DAAS_WORKER_BUNDLE_KEY"
    aws s3 cp --only-show-errors --region "$REGION" \
        "s3://$DAAS_ARTEFACT_BUCKET/$DAAS_WORKER_BUNDLE_KEY" "$STAGE/bundle.tar.gz" \
        || die "cannot download the worker bundle"
    local got want
    got="$(sha256sum "$STAGE/bundle.tar.gz" | cut -d' ' -f1)"
    want="$(tr 'A-F' 'a-f' <<<"$DAAS_WORKER_BUNDLE_SHA256")"
    [[ "$got" == "$want" ]] || die "worker bundle SHA-256 mismatch: expected $want, downloaded $got"
    [[ "$(tar -tzf "$STAGE/bundle.tar.gz" | LC_ALL=C sort)" == "$BUNDLE_FILES" ]] \
        || die "the worker bundle does not hold exactly: $(tr '\n' ' ' <<<"$BUNDLE_FILES")"
    mkdir "$STAGE/root"
    tar -xzf "$STAGE/bundle.tar.gz" -C "$STAGE/root" --no-same-owner
    local f
    while read -r f; do
        [[ -f "$STAGE/root/$f" && ! -L "$STAGE/root/$f" ]] || die "bundle entry $f is not a file"
    done <<<"$BUNDLE_FILES"
    log "worker bundle verified (sha256 $got)"

    aws s3 cp --only-show-errors --region "$REGION" \
        "s3://$DAAS_ARTEFACT_BUCKET/$DAAS_CHAIN_CONFIG_KEY" "$STAGE/client.json" \
        || die "cannot download the chain config s3://$DAAS_ARTEFACT_BUCKET/$DAAS_CHAIN_CONFIG_KEY"
    [[ -s "$STAGE/client.json" ]] || die "the chain config is empty"
    fetch_keystore "$STAGE/sui.keystore"
    log "chain config and keystore fetched"

    # 2. Install. The env file goes last: once it is there, everything it names is.
    install -d -m 0755 "$ROOT/usr/local/bin" "$ROOT/etc/systemd/system" "$ROOT/etc/default"
    install -d -m 0700 "$ROOT/etc/k3s-daas"
    chmod 0700 "$ROOT/etc/k3s-daas"
    put "$STAGE/root/usr/local/bin/staker-agent" 0755 "$ROOT/usr/local/bin/staker-agent"
    put "$STAGE/root/usr/local/bin/k3s" 0755 "$ROOT/usr/local/bin/k3s"
    put "$STAGE/root/etc/systemd/system/staker-agent.service" 0644 \
        "$ROOT/etc/systemd/system/staker-agent.service"
    put "$STAGE/client.json" 0644 "$ROOT/etc/k3s-daas/client.json"
    put "$STAGE/sui.keystore" 0600 "$ROOT/etc/k3s-daas/sui.keystore"
    {
        echo "DAAS_CHAIN_CONFIG=/etc/k3s-daas/client.json"
        echo "DAAS_KEYSTORE=/etc/k3s-daas/sui.keystore"
        echo "DAAS_STAKE=$DAAS_STAKE_ID"
    } >"$STAGE/staker-agent.env"
    put "$STAGE/staker-agent.env" 0600 "$ROOT/etc/default/staker-agent"
    log "installed staker-agent, k3s, the unit, /etc/k3s-daas and /etc/default/staker-agent"

    # 3. Kernel modules k3s agent needs (flannel and containerd); k3s loads them itself too, so
    # a failure here is only reported.
    local module
    for module in br_netfilter overlay; do
        if command -v modprobe >/dev/null && modprobe "$module"; then
            log "module $module loaded"
        else
            log "warning: could not load kernel module $module (k3s agent will try again)"
        fi
    done

    # 4. Start. --no-block: the unit is Type=notify with no start timeout (the join waits for the
    # chain and the master), so a blocking start could hold cloud-init forever.
    systemctl daemon-reload
    systemctl enable --now --no-block staker-agent.service
    log "staker-agent.service enabled and starting for stake $DAAS_STAKE_ID"
    log "follow it with: journalctl -u staker-agent -f"
}

main "$@"
