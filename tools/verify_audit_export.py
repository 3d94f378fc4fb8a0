"""Verify a coldchain audit export offline: python verify_audit_export.py audit.jsonl [cp.json]"""

import hashlib
import json
import sys

FIELDS = "seq at actor action entity entity_id old_values new_values reason request_id prev_hash"


def canon(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


cp = json.load(open(sys.argv[2])) if len(sys.argv) > 2 else None
prev, seq, at_cp = "0" * 64, 0, None
for line in open(sys.argv[1], encoding="utf-8"):
    e, seq = json.loads(line), seq + 1
    if e["seq"] != seq or e["prev_hash"] != prev:
        sys.exit(f"BROKEN at event {seq}: missing, reordered or unlinked")
    if hashlib.sha256(canon({k: e[k] for k in FIELDS.split()})).hexdigest() != e["hash"]:
        sys.exit(f"BROKEN at event {seq}: content altered")
    prev, at_cp = e["hash"], (e["hash"] if cp and seq == cp["seq"] else at_cp)
if cp:  # the checkpoint: signed by the key the auditor was given, and still in the chain
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(cp["public_key"]))
    key.verify(bytes.fromhex(cp["signature"]), canon({k: cp[k] for k in ("seq", "hash", "at")}))
    if seq < cp["seq"] or at_cp != cp["hash"]:
        sys.exit(f"BROKEN: event {cp['seq']} is cut off or rewritten since the checkpoint")
    print(f"checkpoint of event {cp['seq']} holds; signed by key {cp['public_key']}")
print(f"intact: {seq} events, head {prev}")
