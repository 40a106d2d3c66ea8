#!/usr/bin/env bash
# holes.sh: reassembly under a flood of holes. Writes a capture of one TCP
# connection whose client sends N one-byte segments, each one byte past the
# previous one's end (a hole between every two), and no ACK from the server
# ever covers them (so no hole may be given up early: all wait for the
# buffer caps). Measures `syncscope flows` and `analyze` on it, next to
# tcpflow. Target (issue #13): memory bounded by --max-buffer whatever the
# number of segments.
#
#     bash bench/holes.sh                 # 2 000 000 holes
#     HOLES=200000 bash bench/holes.sh
#
# Environment: BENCH_DIR (default target/bench), HOLES (2000000),
# BENCH_NO_COMPARE=1 skips tcpflow.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-target/bench}
HOLES=${HOLES:-2000000}
BENCH_NO_COMPARE=${BENCH_NO_COMPARE:-0}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
SYNCSCOPE=$PWD/target/release/syncscope
FILE=$BENCH_DIR/holes-$HOLES.pcap
TIME_FILE=$(mktemp "$BENCH_DIR/time.XXXXXX")
FLOWDIR=$BENCH_DIR/tcpflow-holes.out
trap 'rm -rf "$TIME_FILE" "$FLOWDIR"' EXIT
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_setup
if [ ! -f "$FILE" ]; then
    say "== writing $FILE ($HOLES one-byte holes, never ACKed)"
    python3 - "$FILE" "$HOLES" <<'PY'
import struct, sys
path, n = sys.argv[1], int(sys.argv[2])
eth = bytes.fromhex('001122334455') + bytes.fromhex('66778899aabb') + b'\x08\x00'
cli, srv = bytes([10, 0, 0, 1]), bytes([192, 0, 2, 1])
def pkt(src, dst, sport, dport, seq, ack, flags, payload, i):
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40 + len(payload), i & 0xffff, 0, 64, 6, 0, src, dst)
    tcp = struct.pack('!HHIIBBHHH', sport, dport, seq & 0xffffffff, ack, 5 << 4, flags, 65535, 0, 0)
    return eth + ip + tcp + payload
with open(path, 'wb') as out:
    out.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    def w(p, i):
        out.write(struct.pack('<IIII', 1700000000 + i // 100000, (i % 100000) * 10, len(p), len(p)))
        out.write(p)
    w(pkt(cli, srv, 40000, 8080, 1000, 0, 0x02, b'', 0), 0)
    w(pkt(srv, cli, 8080, 40000, 5000, 1001, 0x12, b'', 1), 1)
    # Data from seq 1001 + 1: byte 1001 is never sent, then every other byte.
    for i in range(n):
        w(pkt(cli, srv, 40000, 8080, 1002 + 2 * i, 5001, 0x10, b'x', i + 2), i + 2)
PY
fi
cat "$FILE" > /dev/null

echo "file: $FILE ($HOLES one-byte holes, $(stat -c %s "$FILE") bytes)"
run "syncscope flows --format json" "$SYNCSCOPE" flows "$FILE" --format json -q
run "syncscope flows --format json --max-buffer 1M" "$SYNCSCOPE" flows "$FILE" --format json -q --max-buffer 1048576
run "syncscope analyze --format json" "$SYNCSCOPE" analyze "$FILE" --format json -q
if [ "$BENCH_NO_COMPARE" != 1 ]; then
    command -v tcpflow > /dev/null || apt_install tcpflow || true
    if command -v tcpflow > /dev/null; then
        rm -rf "$FLOWDIR"
        mkdir -p "$FLOWDIR"
        run "tcpflow -r FILE -o DIR" tcpflow -r "$FILE" -o "$FLOWDIR"
    fi
fi
