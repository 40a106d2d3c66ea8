#!/usr/bin/env bash
# synscan.sh: the flow table under a SYN scan. Writes a capture of N bare
# SYNs, each from its own 4-tuple (a port scan or SYN flood: one-packet
# connections that never go on), and measures `syncscope flows` on it in
# NDJSON (streamed), JSON and table form, next to tcpflow and tshark's
# conversation table on the same file.
#
#     bash bench/synscan.sh                # 1 000 000 SYNs
#     SYN_COUNT=490000 bash bench/synscan.sh
#
# Environment: BENCH_DIR (default target/bench), SYN_COUNT (1000000),
# BENCH_NO_COMPARE=1 skips tcpflow and tshark.
# Target (issue #13): 1 000 000 SYN-only connections in under 10 s and under
# 512 MB peak RSS at the default --max-flows (500 000).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-target/bench}
SYN_COUNT=${SYN_COUNT:-1000000}
BENCH_NO_COMPARE=${BENCH_NO_COMPARE:-0}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
SYNCSCOPE=$PWD/target/release/syncscope
FILE=$BENCH_DIR/syn-$SYN_COUNT.pcap
TIME_FILE=$(mktemp "$BENCH_DIR/time.XXXXXX")
FLOWDIR=$BENCH_DIR/tcpflow-syn.out
trap 'rm -rf "$TIME_FILE" "$FLOWDIR"' EXIT
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_setup

if [ ! -f "$FILE" ]; then
    say "== writing $FILE ($SYN_COUNT SYNs)"
    python3 - "$FILE" "$SYN_COUNT" <<'PY'
import struct, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, 'wb') as out:
    out.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    eth = bytes.fromhex('001122334455') + bytes.fromhex('66778899aabb') + b'\x08\x00'
    def csum(b):
        s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
        s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)
        return ~s & 0xffff
    for i in range(n):
        src = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, i & 0xffff, 0, 64, 6, 0, src, bytes([192, 0, 2, 1]))
        ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
        tcp = struct.pack('!HHIIBBHHH', 40000 + i % 20000, 8080, i * 7919 & 0xffffffff, 0, 5 << 4, 0x02, 65535, 0, 0)
        pkt = eth + ip + tcp
        out.write(struct.pack('<IIII', 1700000000 + i // 10000, (i % 10000) * 100, len(pkt), len(pkt)))
        out.write(pkt)
PY
fi
cat "$FILE" > /dev/null

echo "file: $FILE ($SYN_COUNT SYN-only connections, $(stat -c %s "$FILE") bytes)"
run "syncscope flows --format ndjson" "$SYNCSCOPE" flows "$FILE" --format ndjson -q
run "syncscope flows --format json" "$SYNCSCOPE" flows "$FILE" --format json -q
run "syncscope flows (table)" "$SYNCSCOPE" flows "$FILE" -q
run "syncscope analyze --format json" "$SYNCSCOPE" analyze "$FILE" --format json -q
if [ "$BENCH_NO_COMPARE" != 1 ]; then
    command -v tcpflow > /dev/null || apt_install tcpflow || true
    command -v tshark > /dev/null || apt_install tshark || true
    if command -v tcpflow > /dev/null; then
        rm -rf "$FLOWDIR"
        mkdir -p "$FLOWDIR"
        run "tcpflow -r FILE -o DIR" tcpflow -r "$FILE" -o "$FLOWDIR"
    fi
    command -v tshark > /dev/null && run "tshark -q -z conv,tcp" tshark -n -q -r "$FILE" -z conv,tcp
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPU(s)"
