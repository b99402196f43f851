#!/usr/bin/env bash
# Creates, once per parent host, the TLS material of the loopback etcd
# (deploy-ec2/systemd/k3s-daas-etcd.service): an EC P-256 CA and a server certificate for
# 127.0.0.1 / localhost signed by it, in /etc/k3s-daas/etcd/. Prints the CA certificate's path
# on the last line of stdout: that certificate is public and goes into the enclave's `serve`
# configuration (`[etcd] ca`), which verifies etcd's certificate against it.
#
# Files (directory 0700; keys 0600, certificates 0644; all root-owned when run as root):
#   ca.pem      CA certificate (public; for the enclave image)
#   ca.key      CA key: kept only to renew the server certificate without a new CA (a new CA
#               means a new enclave configuration); move it off the host if you prefer
#   server.crt  server certificate: SANs IP:127.0.0.1, DNS:localhost; serverAuth, clientAuth
#               (clientAuth so the same certificate can serve etcd's peer listener)
#   server.key  server key: root-only; the etcd unit receives it through LoadCredential=, so
#               the etcd user never owns (or can change) the file
#
# Usage: etcd-tls.sh [--out DIR] [--renew-server]
#   --out DIR        write there instead of /etc/k3s-daas/etcd (tests, staging)
#   --renew-server   issue a new server key and certificate under the existing CA
# Existing material is never replaced without --renew-server: a run on a host that already has
# it prints the CA path and changes nothing (safe to repeat from user data).
# Exit status: 0 done (or already there), 1 failure, 64 bad usage.

set -euo pipefail

readonly CA_DAYS=3653        # 10 years: the CA is pinned in the enclave configuration
readonly SERVER_DAYS=1095    # 3 years, renewable with --renew-server under the same CA

out=/etc/k3s-daas/etcd
renew=false

usage() {
    sed -n '/^# Usage:/,/^# Exit status:/p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
    printf 'etcd-tls: %s\n' "$*" >&2
    exit 1
}

while (($# > 0)); do
    case "$1" in
        --out)
            if (($# < 2)) || [[ -z "$2" ]]; then
                printf 'etcd-tls: --out needs a directory\n' >&2
                exit 64
            fi
            out="$2"
            shift 2
            ;;
        --out=*)
            out="${1#--out=}"
            shift
            ;;
        --renew-server)
            renew=true
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            printf 'etcd-tls: unknown argument: %s\n' "$1" >&2
            usage >&2
            exit 64
            ;;
    esac
done

command -v openssl >/dev/null 2>&1 || die "openssl not found (dnf install openssl)"
umask 077

ca_pem="$out/ca.pem"
ca_key="$out/ca.key"
server_crt="$out/server.crt"
server_key="$out/server.key"

have=0
for f in "$ca_pem" "$ca_key" "$server_crt" "$server_key"; do
    [[ -e "$f" ]] && have=$((have + 1))
done
if [[ "$renew" == true ]]; then
    [[ -f "$ca_pem" && -f "$ca_key" ]] || die "--renew-server needs the existing CA ($ca_pem and $ca_key)"
elif ((have == 4)); then
    printf 'etcd-tls: TLS material already in %s; nothing changed (use --renew-server for a new server certificate)\n' "$out" >&2
    printf '%s\n' "$ca_pem"
    exit 0
elif ((have > 0)); then
    die "$out holds only part of the TLS material (need ca.pem, ca.key, server.crt, server.key); move it away and run again"
fi

mkdir -p -- "$out"
chmod 0700 -- "$out"
# Everything is made in a scratch directory beside the final files and moved in only when
# complete, so an interrupted run leaves nothing half-written.
work="$(mktemp -d "$out/.etcd-tls.XXXXXX")"
trap 'rm -rf -- "$work"' EXIT

new_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null ||
        die "openssl could not generate an EC P-256 key"
}

random_serial() {
    # 127 random bits: positive, and unique enough that no two issued certificates collide.
    local hex
    hex="$(openssl rand -hex 16)"
    printf '0x%x%s' "$((16#${hex:0:1} & 7))" "${hex:1}"
}

if [[ "$renew" == false ]]; then
    new_key "$work/ca.key"
    openssl req -x509 -new -key "$work/ca.key" -sha256 -days "$CA_DAYS" \
        -subj "/CN=K3s-DaaS etcd CA" -set_serial "$(random_serial)" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$work/ca.pem" 2>/dev/null || die "openssl could not create the CA certificate"
    signer_pem="$work/ca.pem"
    signer_key="$work/ca.key"
else
    signer_pem="$ca_pem"
    signer_key="$ca_key"
fi

new_key "$work/server.key"
openssl req -new -key "$work/server.key" -subj "/CN=k3s-daas-etcd" -out "$work/server.csr" \
    2>/dev/null || die "openssl could not create the server certificate request"
cat >"$work/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
openssl x509 -req -in "$work/server.csr" -CA "$signer_pem" -CAkey "$signer_key" \
    -set_serial "$(random_serial)" -days "$SERVER_DAYS" -sha256 \
    -extfile "$work/server.ext" -out "$work/server.crt" 2>/dev/null ||
    die "openssl could not sign the server certificate"
openssl verify -CAfile "$signer_pem" "$work/server.crt" >/dev/null ||
    die "the new server certificate does not verify against the CA"

chmod 0600 "$work/server.key"
chmod 0644 "$work/server.crt"
if [[ "$renew" == false ]]; then
    chmod 0600 "$work/ca.key"
    chmod 0644 "$work/ca.pem"
    mv -- "$work/ca.key" "$ca_key"
    mv -- "$work/ca.pem" "$ca_pem"
fi
mv -- "$work/server.key" "$server_key"
mv -- "$work/server.crt" "$server_crt"

if [[ "$renew" == true ]]; then
    printf 'etcd-tls: new server certificate in %s (same CA); restart k3s-daas-etcd.service\n' "$out" >&2
else
    printf 'etcd-tls: CA and server certificate written to %s; put the CA certificate into the enclave configuration ([etcd] ca)\n' "$out" >&2
fi
printf '%s\n' "$ca_pem"
