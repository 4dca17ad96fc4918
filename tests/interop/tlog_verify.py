#!/usr/bin/env python3
"""An independent verifier of guidang's transparency log, written from RFC 9162 §2.1 and the C2SP
signed-note, tlog-checkpoint and tlog-proof specifications (not from the Rust code).

  tlog_verify.py inclusion PROOF_FILE ENTRY_FILE VKEY
  tlog_verify.py consistency OLD_CHECKPOINT NEW_CHECKPOINT PROOF_FILE VKEY

Exit 0 when the proof holds, 1 when it does not, 2 on bad input.
"""
import base64, hashlib, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.exceptions import InvalidSignature

def sha256(b):
    return hashlib.sha256(b).digest()

def leaf_hash(entry):
    return sha256(b"\x00" + entry)

def node_hash(l, r):
    return sha256(b"\x01" + l + r)

def parse_vkey(vkey):
    name, keyhash, key = vkey.split("+", 2)
    raw = base64.b64decode(key)
    if raw[0] != 1 or len(raw) != 33:
        raise ValueError("not an Ed25519 verifier key")
    if sha256(name.encode() + b"\n" + raw)[:4].hex() != keyhash:
        raise ValueError("verifier key hash mismatch")
    return name, raw[1:]

def verify_note(note, vkey):
    """Returns the note text if a signature line of the vkey's name verifies."""
    name, pub = parse_vkey(vkey)
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        raise ValueError("no signature block")
    text += "\n"
    kh = sha256(name.encode() + b"\n\x01" + pub)[:4]
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            continue
        n, _, b64 = line[2:].rpartition(" ")
        blob = base64.b64decode(b64)
        if n != name or blob[:4] != kh or len(blob) != 68:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(pub).verify(blob[4:], text.encode())
            return text
        except InvalidSignature:
            return None
    return None

def parse_checkpoint(text):
    lines = text.split("\n")
    return lines[0], int(lines[1]), base64.b64decode(lines[2])

def verify_inclusion(leaf, index, size, path, root):
    # RFC 9162 §2.1.3.2
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root

def verify_consistency(n1, n2, root1, root2, path):
    # RFC 9162 §2.1.4.2
    if n1 == n2:
        return not path and root1 == root2
    if n1 == 0 or n1 > n2 or not path:
        return False
    if n1 & (n1 - 1) == 0:
        path = [root1] + path
    fn, sn = n1 - 1, n2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2

def parse_proof(text):
    lines = text.split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1":
        raise ValueError("not a tlog-proof@v1")
    i, index, hashes = 1, None, []
    while lines[i] != "":
        if lines[i].startswith("index "):
            index = int(lines[i][6:])
        elif not lines[i].startswith("extra "):
            hashes.append(base64.b64decode(lines[i]))
        i += 1
    return index, hashes, "\n".join(lines[i + 1:])

def main(argv):
    try:
        if argv[1] == "inclusion":
            index, hashes, note = parse_proof(open(argv[2]).read())
            entry = open(argv[3], "rb").read()
            text = verify_note(note, open(argv[4]).read().strip())
            if text is None:
                print("checkpoint signature does not verify"); return 1
            _, size, root = parse_checkpoint(text)
            ok = verify_inclusion(leaf_hash(entry), index, size, hashes, root)
        elif argv[1] == "consistency":
            vkey = open(argv[5]).read().strip()
            t1 = verify_note(open(argv[2]).read(), vkey)
            t2 = verify_note(open(argv[3]).read(), vkey)
            if t1 is None or t2 is None:
                print("checkpoint signature does not verify"); return 1
            o1, n1, r1 = parse_checkpoint(t1)
            o2, n2, r2 = parse_checkpoint(t2)
            path = [base64.b64decode(l) for l in open(argv[4]).read().split("\n") if l.strip()]
            ok = o1 == o2 and verify_consistency(n1, n2, r1, r2, path)
        else:
            print(__doc__); return 2
    except (ValueError, IndexError, OSError) as e:
        print("bad input:", e); return 2
    print("OK" if ok else "FAIL")
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main(sys.argv))
