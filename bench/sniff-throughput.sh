#!/usr/bin/env bash
# sniff-throughput.sh: how many packets per second `syncscope sniff` keeps up
# with on loopback, with no kernel drop and no lost frame.
#
# Run as root (live capture needs CAP_NET_RAW) from anywhere:
#
#     bash bench/sniff-throughput.sh
#
# Environment:
#   RATES   target packet rates to try, in packets/s (default
#           "25000 50000 100000 150000 200000 250000 300000")
#   SECS    seconds of traffic per rate (default 5)
#   CONNS   long-link connections (default 4)
#   BODY    request body bytes (default 32)
#   PORT    loopback port (default 18080)
#
# What it does, for each rate:
#   1. starts `syncscope sniff -i lo --port PORT --format ndjson > /dev/null`
#      and waits until it says "listening on lo";
#   2. runs examples/llblast.rs: CONNS connections to a sink on 127.0.0.1:PORT;
#      the clients send long-link requests (one write, one segment each) at
#      RATE/2 requests/s, the sink answers each one (cmd + 10^9, same seq), so
#      that requests and responses make about RATE data packets/s;
#   3. stops sniff with SIGINT and reads its summary: packets captured,
#      kernel drops (libpcap's ps_drop) and frames dissected;
#   4. prints: target rate, packets/s achieved (packets sniffed / SECS),
#      frames/s dissected (frames sniffed / SECS), kernel drops, frames on the wire (requests + responses, as llblast
#      counted them), frames sniffed, lost frames (the difference).
# At the end: the highest rate with zero kernel drops and zero lost frames,
# against the target of 200 000 packets/s. Only loopback traffic; every run
# is bounded (SECS plus a few seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=${RATES:-"25000 50000 100000 150000 200000 250000 300000"}
SECS=${SECS:-5}
CONNS=${CONNS:-4}
BODY=${BODY:-32}
PORT=${PORT:-18080}
TARGET=200000

cargo build --release --features live --bin syncscope --example llblast >&2
BIN=target/release/syncscope
BLAST=target/release/examples/llblast
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "machine: $(nproc) cores; load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %12s %10s %12s %12s %12s %8s\n' target_pps achieved_pps frames_per_s drops frames_sent frames_seen lost
best=0
for rate in $RATES; do
  "$BIN" sniff -i lo --port "$PORT" --format ndjson --status-interval 0 \
    >/dev/null 2>"$TMP/sniff.err" &
  pid=$!
  for _ in $(seq 600); do
    grep -q '^listening on lo' "$TMP/sniff.err" && break
    if ! kill -0 "$pid" 2>/dev/null; then cat "$TMP/sniff.err" >&2; exit 1; fi
    sleep 0.05
  done
  grep -q "^listening on lo" "$TMP/sniff.err" || { kill "$pid"; echo "sniff did not start:" >&2; cat "$TMP/sniff.err" >&2; exit 1; }

  "$BLAST" --port "$PORT" --conns "$CONNS" --rate $((rate / 2)) --secs "$SECS" --body "$BODY" >"$TMP/blast.out"
  sleep 0.5
  kill -INT "$pid"
  wait "$pid" || true

  line=$(grep '^stopped' "$TMP/sniff.err" || true)
  if [ -z "$line" ]; then cat "$TMP/sniff.err" >&2; exit 1; fi
  packets=$(sed -E 's/.*: packets ([0-9]+) .*/\1/' <<<"$line")
  drops=$(sed -E 's/.*, dropped ([0-9]+),.*/\1/' <<<"$line")
  seen=$(sed -E 's/.*, frames ([0-9]+).*/\1/' <<<"$line")
  read -r _ req _ resp _ <"$TMP/blast.out"
  sent=$((req + resp))
  lost=$((sent - seen))
  achieved=$(awk -v p="$packets" -v s="$SECS" 'BEGIN { printf "%d", p / s }')
  fps=$(awk -v f="$seen" -v s="$SECS" 'BEGIN { printf "%d", f / s }')
  printf '%-10s %12s %10s %12s %12s %12s %8s\n' "$rate" "$achieved" "$fps" "$drops" "$sent" "$seen" "$lost"
  if [ "$drops" -eq 0 ] && [ "$lost" -eq 0 ] && [ "$achieved" -gt "$best" ]; then
    best=$achieved
  fi
  sleep 0.5
done
echo "highest rate with zero kernel drops and zero lost frames: $best packets/s (target $TARGET: $([ "$best" -ge "$TARGET" ] && echo MET || echo MISSED))"
