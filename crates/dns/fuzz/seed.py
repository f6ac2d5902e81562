#!/usr/bin/env python3
"""Writes a small seed corpus for the `packet` target into corpus/packet/: queries of
every shape the server answers, EDNS0, compression, and a few broken packets."""
import os, struct

out = os.path.join(os.path.dirname(__file__), "corpus", "packet")
os.makedirs(out, exist_ok=True)

def name(n):
    b = b""
    for label in n.split(".") if n else []:
        b += bytes([len(label)]) + label.encode()
    return b + b"\0"

def query(qname, qtype, qid=0x1234, flags=0x0100, opt=False):
    ar = 1 if opt else 0
    b = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, ar) + name(qname) + struct.pack(">HH", qtype, 1)
    if opt:
        b += b"\0" + struct.pack(">HHIH", 41, 4096, 0, 0)
    return b

seeds = {
    "a-svc": query("web.default.svc.cluster.local", 1),
    "aaaa-svc": query("web.default.svc.cluster.local", 28),
    "srv-named": query("_http._tcp.web.default.svc.cluster.local", 33),
    "srv-headless": query("_http._tcp.db.default.svc.cluster.local", 33, opt=True),
    "a-endpoint": query("db-0.db.default.svc.cluster.local", 1),
    "a-pod": query("10-42-0-5.default.pod.cluster.local", 1),
    "aaaa-pod": query("fd00--5.default.pod.cluster.local", 28),
    "cname-ext": query("ext.default.svc.cluster.local", 5),
    "ptr": query("7.0.43.10.in-addr.arpa", 12),
    "ptr6": query(".".join("7" + "0" * 31) + ".ip6.arpa", 12),
    "soa": query("cluster.local", 6),
    "ns": query("cluster.local", 2, opt=True),
    "any": query("web.default.svc.cluster.local", 255),
    "nx": query("nope.default.svc.cluster.local", 1),
    "outside": query("example.com", 1, opt=True),
    "notify": query("cluster.local", 6, flags=0x2000),
    "two-questions": struct.pack(">HHHHHH", 1, 0x100, 2, 0, 0, 0) + (name("a.cluster.local") + b"\0\1\0\1") * 2,
    "compressed-answer": bytes.fromhex("000181800001000100000000") + name("a.b") + b"\0\1\0\1"
        + bytes([0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 5, 0, 4, 1, ord("c"), 0xC0, 14]),
    "pointer-loop": bytes.fromhex("000100000001000000000000") + bytes([0xC0, 12, 0, 1, 0, 1]),
    "short": b"\x00\x01\x00",
    "header-only": bytes(12),
    "response": query("web.default.svc.cluster.local", 1, flags=0x8180),
}
for n, b in seeds.items():
    with open(os.path.join(out, n), "wb") as f:
        f.write(b)
print(f"{len(seeds)} seeds in {out}")
