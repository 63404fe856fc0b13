#!/usr/bin/env python3
"""Independent check of the ok test vectors against FORMAT.md, written from the spec with
Python's `cryptography` and `blake3` packages (not from the Rust code). Optional: needs
`pip install cryptography blake3`.

    python3 sealing/tests/check_vectors.py
"""
import hashlib
import hmac
import pathlib
import struct
import sys

import blake3

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from cryptography.hazmat.primitives import serialization

VECTORS = pathlib.Path(__file__).parent / "vectors"


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, n):
    return HKDFExpand(hashes.SHA256(), n, info).derive(prk)


def parse(path):
    out = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        k, v = line.split(":", 1)
        out[k.strip()] = v.strip()
    return out


def pattern(n):
    return bytes(i % 251 for i in range(n))


def mth(leaves):
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def seal_blob(key, prefix, chunk_size, pt):
    prk = hkdf_extract(b"inft/v1/blob", key)
    key_check = hkdf_expand(prk, b"inft/v1/blob/key-check", 16)
    mac_key = hkdf_expand(prk, b"inft/v1/blob/header-mac", 32)
    payload = hkdf_expand(prk, b"inft/v1/blob/payload", 32)
    head = b"inftblob" + bytes([1, 2, 0, 0]) + struct.pack(">I", chunk_size) + prefix + b"\x00" + key_check
    header = head + hmac.new(mac_key, head, hashlib.sha256).digest()
    chunks = [pt[i:i + chunk_size] for i in range(0, len(pt), chunk_size)] or [b""]
    aes = AESGCM(payload)
    records = []
    for i, c in enumerate(chunks):
        nonce = prefix + struct.pack(">I", i) + bytes([1 if i == len(chunks) - 1 else 0])
        records.append(aes.encrypt(nonce, c, b""))
    leaves = [blake3.blake3(b"\x00" + r).digest() for r in records]
    commitment = hashlib.sha256(b"\x02" + header + struct.pack(">Q", len(records)) + mth(leaves)).digest()
    return header + b"".join(records), commitment


def x25519_pub(secret):
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def seal_key(data_key, recipient_pub, eph_secret, chain_id, contract, token_id, data_hash):
    e = X25519PrivateKey.from_private_bytes(eph_secret)
    epub = x25519_pub(eph_secret)
    shared = e.exchange(X25519PublicKey.from_public_bytes(recipient_pub))
    wrap = HKDF(hashes.SHA256(), 32, epub + recipient_pub, b"inft/v1/sealed-key").derive(shared)
    aad = (b"inft/v1/sealed-key" + b"\x01" + struct.pack(">Q", chain_id) + contract + token_id
           + data_hash + recipient_pub)
    return b"\x01" + epub + AESGCM(wrap).encrypt(bytes(12), data_key, aad)


def main():
    checked = 0
    for path in sorted(VECTORS.glob("*.txt")):
        v = parse(path)
        if v["expect"] != "ok":
            continue
        if v["kind"] == "blob":
            blob, c = seal_blob(bytes.fromhex(v["key"]), bytes.fromhex(v["nonce_prefix"]),
                                int(v["chunk_size"]), pattern(int(v["plaintext_len"])))
            if "blob" in v:
                assert blob.hex() == v["blob"], path.name
            else:
                assert hashlib.sha256(blob).hexdigest() == v["blob_sha256"], path.name
            assert "0x" + c.hex() == v["commitment"], path.name
        elif v["kind"] == "sealed-key":
            rpub = x25519_pub(bytes.fromhex(v["recipient_secret"]))
            assert rpub.hex() == v["recipient_public"], path.name
            sk = seal_key(bytes.fromhex(v["data_key"]), rpub, bytes.fromhex(v["ephemeral_secret"]),
                          int(v["chain_id"]), bytes.fromhex(v["contract"]), bytes.fromhex(v["token_id"]),
                          bytes.fromhex(v["data_hash"]))
            assert sk.hex() == v["sealed_key"], path.name
        elif v["kind"] == "wallet-key":
            sig = bytes.fromhex(v["signature"])
            n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
            r, s = sig[:32], int.from_bytes(sig[32:64], "big")
            s = min(s, n - s)
            secret = HKDF(hashes.SHA256(), 32, b"inft/v1/owner-sealing-key",
                          b"inft/v1/owner-sealing-key/x25519").derive(r + s.to_bytes(32, "big"))
            assert x25519_pub(secret).hex() == v["public_key"], path.name
        else:
            continue
        checked += 1
        print("ok", path.name)
    print(f"{checked} vectors match FORMAT.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
