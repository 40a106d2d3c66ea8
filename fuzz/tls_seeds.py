#!/usr/bin/env python3
"""Writes the `tls` fuzz target's seeds (corpus/tls/) from the TLS samples.

One seed per (cipher suite, version) of samples/curl-tls.pcapng and
samples/curl-tls-cbc.pcapng: both directions of the connection (TCP payload
as tshark follows it) with the key-log lines of its client random, in the
target's layout: config 0x00, pattern [0x3f], key-log length (u16 BE), key
log, client length (u16 BE), client bytes, server bytes.

Run from the repository root (needs tshark): python3 fuzz/tls_seeds.py
"""
import os
import subprocess

SAMPLES = [
    ("samples/curl-tls.pcapng", "samples/curl-tls.keys", "tls"),
    ("samples/curl-tls-cbc.pcapng", "samples/curl-tls-cbc.keys", "cbc"),
]


def streams(pcap):
    """(client bytes, server bytes) of each TCP stream, in stream order."""
    out = []
    n = 0
    while True:
        text = subprocess.run(
            ["tshark", "-r", pcap, "-q", "-z", f"follow,tcp,raw,{n}"],
            capture_output=True, text=True, check=True,
        ).stdout
        body = [l for l in text.split("\n")
                if l and not l.startswith(("=", "Follow", "Filter", "Node"))]
        if not body:
            return out
        c, s = b"", b""
        for l in body:
            if l.startswith("\t"):
                s += bytes.fromhex(l.strip())
            else:
                c += bytes.fromhex(l.strip())
        out.append((c, s))
        n += 1


def main(outdir="fuzz/corpus/tls"):
    os.makedirs(outdir, exist_ok=True)
    for pcap, keys, tag in SAMPLES:
        lines = open(keys).read().splitlines()
        seen = set()
        for c, s in streams(pcap):
            client_random = c[11:43].hex()
            sid = s[43]
            suite = s[44 + sid:46 + sid].hex()
            hello_end = 5 + int.from_bytes(s[3:5], "big")
            tls13 = b"\x00\x2b\x00\x02\x03\x04" in s[:hello_end]
            version = "13" if tls13 else s[9:11].hex()
            if (suite, version) in seen:
                continue
            seen.add((suite, version))
            log = "".join(l + "\n" for l in lines if client_random in l.lower()).encode()
            data = (bytes([0x00, 0x3F]) + len(log).to_bytes(2, "big") + log
                    + len(c).to_bytes(2, "big") + c + s)
            with open(os.path.join(outdir, f"{tag}-{version}-{suite}"), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
