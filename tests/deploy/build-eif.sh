#!/usr/bin/env bash
# deploy-ec2/enclave/build-eif.sh drives Docker and nitro-cli as documented: a buildx build of the
# `enclave` target with the commit time as SOURCE_DATE_EPOCH, no provenance, rewritten timestamps
# and the cluster config as a named build context; then `nitro-cli build-enclave` on that image,
# the PCR file, and build-info.txt. It refuses a tree with uncommitted changes to tracked files.
#
# Stand-ins: neither a Docker engine nor nitro-cli exists here, so `docker` and `nitro-cli` are
# small scripts that record their arguments and answer like the real ones (`nitro-cli
# describe-eif` prints a Measurements object). What is tested is build-eif.sh's own logic.
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
# shellcheck source=tests/deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
command -v git >/dev/null 2>&1 || skip "git not found"
command -v python3 >/dev/null 2>&1 || skip "python3 not found"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
    echo "build-eif: FAIL: $*" >&2
    exit 1
}
ok() { echo "build-eif: ok: $*"; }

# A repository holding the enclave scripts, committed (build-eif.sh finds the repo from its path).
mkdir -p "$work/repo/deploy-ec2/enclave" "$work/bin"
cp "$repo"/deploy-ec2/enclave/*.sh "$work/repo/deploy-ec2/enclave/"
# The cluster config and the output stay untracked and unignored: they must not count as changes.
printf 'placeholder\n' >"$work/repo/.gitignore"
git -C "$work/repo" init -q
git -C "$work/repo" add -A
GIT_AUTHOR_DATE=@1700000000 GIT_COMMITTER_DATE=@1700000000 \
    git -C "$work/repo" -c user.name=test -c user.email=test@example.invalid commit -qm test
commit=$(git -C "$work/repo" rev-parse HEAD)
mkdir -p "$work/repo/cluster"
echo 'data_dir = "/run/k3s-daas"' >"$work/repo/cluster/serve.toml"

p() { printf "$1%.0s" {1..96}; }
cat >"$work/bin/docker" <<EOF
#!/usr/bin/env bash
# Stand-in for the Docker CLI with buildx: records its arguments.
if [[ "\$1 \$2" == "buildx version" ]]; then echo "github.com/docker/buildx v0.0.0-stand-in"; exit 0; fi
printf '%s\n' "\$@" >"$work/docker.args"
EOF
cat >"$work/bin/nitro-cli" <<EOF
#!/usr/bin/env bash
# Stand-in for nitro-cli: build-enclave writes an EIF, describe-eif prints its measurements.
case "\$1" in
    --version) echo "Nitro CLI 1.5.0 (stand-in)" ;;
    build-enclave)
        printf '%s\n' "\$@" >"$work/nitro.args"
        while [[ \$# -gt 0 ]]; do [[ "\$1" == --output-file ]] && { echo EIF >"\$2"; }; shift; done
        echo '{"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": "$(p a)", "PCR1": "$(p b)", "PCR2": "$(p c)"}}' ;;
    describe-eif)
        echo '{"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": "$(p A)", "PCR1": "$(p B)", "PCR2": "$(p C)"}}' ;;
    *) echo "nitro-cli stand-in: unexpected \$*" >&2; exit 2 ;;
esac
EOF
chmod +x "$work/bin/docker" "$work/bin/nitro-cli"

# Run from outside the repository: relative paths are the caller's.
(cd "$work" && PATH="$work/bin:$PATH" repo/deploy-ec2/enclave/build-eif.sh --cluster-config repo/cluster \
    --out repo/eif-out) >"$work/stdout" 2>"$work/stderr" || fail "build-eif.sh failed: $(cat "$work/stderr")"

args=$(tr '\n' ' ' <"$work/docker.args")
for want in "buildx build" "--platform linux/amd64" "--provenance=false" "--sbom=false" \
    "--build-arg SOURCE_DATE_EPOCH=1700000000" "--build-context cluster=$work/repo/cluster" \
    "--target enclave" "type=docker,name=k3s-daas-enclave:${commit:0:12},rewrite-timestamp=true" \
    "-f deploy-ec2/enclave/Dockerfile ."; do
    [[ "$args" == *"$want"* ]] || fail "docker was not given '$want': $args"
done
ok "docker buildx: the enclave target, commit time as SOURCE_DATE_EPOCH, no provenance, rewritten timestamps, the cluster config by absolute path (untracked files are not changes)"
nitro=$(tr '\n' ' ' <"$work/nitro.args")
[[ "$nitro" == "build-enclave --docker-uri k3s-daas-enclave:${commit:0:12} --output-file $work/repo/eif-out/k3s-daas.eif " ]] ||
    fail "nitro-cli build-enclave arguments: $nitro"
[[ "$nitro" != *debug* ]] || fail "debug mode reached nitro-cli"
ok "nitro-cli build-enclave on that image, into the output directory"
python3 - "$work/repo/eif-out/pcrs.json" "$(p a | tr a A)" <<'PY' || fail "pcrs.json is not describe-eif's measurements"
import json, sys
pcrs = json.load(open(sys.argv[1]))
want = sys.argv[2].lower()
assert pcrs == {"PCR0": want, "PCR1": want.replace("a", "b"), "PCR2": want.replace("a", "c")}, pcrs
PY
ok "pcrs.json holds describe-eif's PCR0..2 (lower-case), the file admin set-pcrs reads"
grep -qx "commit $commit" "$work/repo/eif-out/build-info.txt" || fail "build-info.txt lacks the commit"
grep -q "nitro-cli Nitro CLI 1.5.0" "$work/repo/eif-out/build-info.txt" || fail "build-info.txt lacks the nitro-cli version"
grep -q "  ./serve.toml$" "$work/repo/eif-out/build-info.txt" || fail "build-info.txt lacks the cluster config's hashes"
ok "build-info.txt records the commit, the nitro-cli version and the cluster config"

# Uncommitted changes to tracked files: refused before anything is built.
echo "# local edit" >>"$work/repo/deploy-ec2/enclave/build-rootfs.sh"
rm -f "$work/docker.args"
if (cd "$work/repo" && PATH="$work/bin:$PATH" deploy-ec2/enclave/build-eif.sh --cluster-config cluster) 2>"$work/stderr"; then
    fail "a dirty tree was built"
fi
grep -q "uncommitted changes" "$work/stderr" || fail "unclear refusal: $(cat "$work/stderr")"
[[ ! -e "$work/docker.args" ]] || fail "docker ran for a dirty tree"
ok "a tree with uncommitted changes is refused before docker runs"
echo "build-eif: PASS"
