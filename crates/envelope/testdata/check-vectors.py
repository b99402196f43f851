#!/usr/bin/env python3
"""Independent check of the envelope golden vectors with Python `cryptography`.

    python3 crates/envelope/testdata/check-vectors.py

Recomputes every envelope in vectors.json (v1) and vectors-v2.json (v2) from its key, etcd key,
plaintext, sequence number and salt, following the format in crates/envelope/src/lib.rs, and
compares the bytes. Exits non-zero on any difference.
"""
import hashlib, json, os, struct, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
import hmac

HERE = os.path.dirname(os.path.abspath(__file__))


def envelope(v, version):
    key = bytes.fromhex(v["key_hex"])
    etcd_key = bytes.fromhex(v["etcd_key_hex"])
    plaintext = bytes.fromhex(v["plaintext_hex"])
    salt = bytes.fromhex(v["salt_hex"])
    key_id = hashlib.sha256(b"k3s-daas/key-id/v1" + key).digest()[:4]
    assert key_id.hex() == v["key_id"], v["name"]
    prk = hmac.new(b"k3s-daas/etcd-value/v1", key, hashlib.sha256).digest()  # HKDF-Extract
    okm = HKDFExpand(hashes.SHA256(), 44, salt).derive(prk)
    header = b"k3e" + bytes([version]) + key_id
    if version == 2:
        header += struct.pack(">Q", v["sequence"])
    aad = header + struct.pack(">I", len(etcd_key)) + etcd_key
    return header + salt + AESGCM(okm[:32]).encrypt(okm[32:], plaintext, aad)


failed = 0
for name, version in [("vectors.json", 1), ("vectors-v2.json", 2)]:
    for v in json.load(open(os.path.join(HERE, name))):
        ok = envelope(v, version).hex() == v["envelope_hex"]
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} v{version} {v['name']}")
sys.exit(1 if failed else 0)
