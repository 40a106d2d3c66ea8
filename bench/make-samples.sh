#!/usr/bin/env bash
# make-samples.sh: records the shipped captures of real loopback traffic
# between `syncscope serve` and its clients:
#
#   samples/serve-client-longlink.pcapng   long link: two users (bob on two
#       devices), manualauth, identify with the uin, heartbeats, newsendmsg,
#       newnotify pushes, newsync
#   samples/serve-client-shortlink.pcapng  short link: HTTP POST
#       /cgi-bin/micromsg-bin/manualauth, newsendmsg and newsync (keep-alive, two
#       requests on one connection), same protobuf bodies
#   samples/serve-client-web.pcapng        web: bob logs in on the web
#       (jslogin, login poll, ticket page, webwxinit, statusnotify), alice
#       sends from the long link, the held synccheck is answered at once,
#       webwxsync brings the message, the listener confirms it and logs
#       out; bob answers with webwxsendmsg (a second, short web login)
#   samples/serve-client-media.pcapng      media: alice sends an image over the
#       short link (uploadmsgimg, 1500-byte parts on 4 connections at once) and
#       a voice recording over the long link (uploadvoice, two chunks); bob's
#       listener downloads both (getmsgimg, downloadvoice). The files sent are
#       samples/serve-client-media/photo.png and memo.voice.
#   samples/serve-client-receipts.pcapng   receipts (serve --receipts): alice
#       sends bob two messages and carol one; bob's phone listens and reports
#       each read (statusnotify over the short link), bob's pad is offline
#       and connects afterwards (its backlog by newsync), carol never comes;
#       then alice's phone, offline meanwhile, gets the receipts in order.
#       What the clients printed is in samples/serve-client-receipts/*.ndjson
#       (the tests compare the analyzer's lifecycles with it).
#
# Run as root (live capture needs CAP_NET_RAW) from anywhere:
#
#     bash bench/make-samples.sh [longlink] [shortlink] [web] [media] [receipts]
#
# (no names: all five).
#
# Environment: PORT (default 8080, the long link's usual port; must be free),
# BIN (a syncscope with the `live` feature; default: build the release one).
# Needs libpcap (apt-get install -y libpcap-dev) and python3 (the short-link
# requests). Only loopback traffic; every step is bounded. Timestamps, ports
# and MsgIds differ from run to run, the conversation does not.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-8080}
ADDR=127.0.0.1:$PORT

# BIN: a syncscope built with the `live` feature to use instead of building
# the release one.
if [ -z "${BIN:-}" ]; then
  cargo build --release --features live --bin syncscope >&2
  BIN=target/release/syncscope
fi
TMP=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p samples

# wait_for FILE PATTERN PID: until FILE has a line matching PATTERN (10 s).
wait_for() {
  for _ in $(seq 200); do
    grep -q "$2" "$1" && return 0
    if ! kill -0 "$3" 2>/dev/null; then cat "$1" >&2; return 1; fi
    sleep 0.05
  done
  echo "timed out waiting for '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

# start NAME: a fresh in-memory server and a capture of its port into
# samples/NAME.pcapng.
start() {
  "$BIN" serve --listen "$ADDR" --memory --users alice,bob,carol ${SERVE_ARGS:-} 2>"$TMP/$1.serve.err" &
  serve_pid=$!
  pids+=("$serve_pid")
  wait_for "$TMP/$1.serve.err" 'listening on' "$serve_pid"
  rm -f "samples/$1.pcapng"
  "$BIN" sniff -i lo --port "$PORT" --write "samples/$1.pcapng" --format ndjson \
    --status-interval 0 >"$TMP/$1.frames" 2>"$TMP/$1.sniff.err" &
  sniff_pid=$!
  pids+=("$sniff_pid")
  wait_for "$TMP/$1.sniff.err" '^listening on lo' "$sniff_pid"
}

# stop NAME: ends the capture (SIGINT writes the file out), then the server.
stop() {
  sleep 0.5
  kill -INT "$sniff_pid"
  wait "$sniff_pid" || { cat "$TMP/$1.sniff.err" >&2; exit 1; }
  kill -TERM "$serve_pid"
  wait "$serve_pid" || true
  echo "samples/$1.pcapng: $(stat -c %s "samples/$1.pcapng") bytes; $(grep '^stopped' "$TMP/$1.sniff.err" || true)" >&2
}

client() { timeout 20 "$BIN" client --server "$ADDR" "$@"; }

# --- long link ---------------------------------------------------------------
record_longlink() {
start serve-client-longlink
# bob listens on his phone and on the web (a secondary device): both get the
# pushes; heartbeats every second while they wait.
client --user bob listen --count 2 --timeout 15 --heartbeat 1 --format ndjson >"$TMP/bob-phone" &
p1=$!
client --user bob --device web listen --count 2 --timeout 15 --heartbeat 1 --format ndjson >"$TMP/bob-web" &
p2=$!
sleep 1.5
client --user alice send bob "hello bob" >/dev/null
client --user alice send bob "are you there?" >/dev/null
wait "$p1" "$p2"
# alice, offline until now, gets bob's answer through newsync at identify.
client --user bob send alice "hi alice" >/dev/null
client --user alice listen --count 1 --timeout 10 --format ndjson >"$TMP/alice"
stop serve-client-longlink
}

# --- short link --------------------------------------------------------------
record_shortlink() {
start serve-client-shortlink
python3 - "$ADDR" <<'EOF'
import http.client, sys

host, port = sys.argv[1].rsplit(":", 1)

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def field(num, value):
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value

def fields(buf):
    i = 0
    while i < len(buf):
        tag, i = read_varint(buf, i)
        if tag & 7 == 0:
            v, i = read_varint(buf, i)
        elif tag & 7 == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError("unexpected wire type")
        yield tag >> 3, v

def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i

def sendmsg(to, text, cid):
    item = field(1, field(1, to)) + field(2, text) + field(3, 1) + field(4, 1700000000) + field(5, cid)
    return field(1, 1) + field(2, item)

def newsync(keybuf):
    body = field(2, 7) + field(4, 7) + field(5, "syncscope")
    return body if keybuf is None else field(3, keybuf) + body

def post(conn, cgi, query, body):
    conn.request("POST", "/cgi-bin/micromsg-bin/%s?%s" % (cgi, query), body,
                 {"Content-Type": "application/octet-stream"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit("%s: HTTP %d %r" % (cgi, r.status, data))
    return data

# alice sends twice on one keep-alive connection (the second is a resend with
# the same ClientMsgId: answered with the same MsgId, stored once).
a = http.client.HTTPConnection(host, int(port), timeout=10)
# manualauth first (user name and device in the body; the answer gives the uin).
post(a, "manualauth", "", field(1, field(1, "alice")) + field(2, "shortlink"))
post(a, "newsendmsg", "user=alice", sendmsg("bob", "hello over the short link", 7001))
post(a, "newsendmsg", "user=alice", sendmsg("bob", "hello over the short link", 7001))
post(a, "newsendmsg", "user=alice", sendmsg("bob", "second one", 7002))
a.close()
# bob syncs from nothing, then presents the key he got: nothing left.
b = http.client.HTTPConnection(host, int(port), timeout=10)
resp = post(b, "newsync", "user=bob", newsync(None))
keybuf = dict(fields(resp)).get(4)
post(b, "newsync", "user=bob", newsync(keybuf))
b.close()
EOF
stop serve-client-shortlink
}

# --- web ---------------------------------------------------------------------
record_web() {
start serve-client-web
client --user bob --web listen --count 1 --timeout 15 --format ndjson >"$TMP/bob-web" 2>"$TMP/bob-web.err" &
p1=$!
pids+=("$p1")
# Logged in and synced: what alice sends now reaches the web session.
wait_for "$TMP/bob-web.err" 'listening as bob' "$p1"
client --user alice send bob "hello bob on the web" >/dev/null
# The listener exits after the message (it confirms it and logs out), so the
# recording does not wait for a synccheck hold.
wait "$p1"
grep -q '"hello bob on the web"' "$TMP/bob-web"
client --user bob --web send alice "hi alice, from the web" >/dev/null
stop serve-client-web
}

# --- media -------------------------------------------------------------------
record_media() {
mkdir -p samples/serve-client-media
# The files sent: a noisy 96x64 PNG (about 20 parts) and 3000 bytes standing
# for a 2-second recording, both from a fixed seed (made when missing).
python3 - samples/serve-client-media <<'EOF'
import os, random, struct, sys, zlib
d = sys.argv[1]
rng = random.Random(20)
png = os.path.join(d, "photo.png")
if not os.path.exists(png):
    w, h = 96, 64
    rows = b"".join(
        b"\0" + bytes(v for x in range(w) for v in (x * 255 // w, y * 255 // h, rng.randrange(256)))
        for y in range(h))
    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))
    with open(png, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
voice = os.path.join(d, "memo.voice")
if not os.path.exists(voice):
    with open(voice, "wb") as f:
        f.write(bytes(rng.randrange(256) for _ in range(3000)))
EOF
start serve-client-media
client --user bob listen --count 2 --timeout 15 --format ndjson --save "$TMP/saved" \
  >"$TMP/bob-media" 2>"$TMP/bob-media.err" &
p1=$!
pids+=("$p1")
wait_for "$TMP/bob-media.err" 'listening as bob' "$p1"
client --user alice send-image bob samples/serve-client-media/photo.png >/dev/null
client --user alice send-voice bob samples/serve-client-media/memo.voice --duration-ms 2000 >/dev/null
wait "$p1"
cmp "$TMP"/saved/*.png samples/serve-client-media/photo.png
cmp "$TMP"/saved/*.voice samples/serve-client-media/memo.voice
stop serve-client-media
}

# --- receipts ----------------------------------------------------------------
record_receipts() {
local out=samples/serve-client-receipts
mkdir -p "$out"
SERVE_ARGS=--receipts start serve-client-receipts
client --user bob listen --read --count 2 --timeout 15 --format ndjson \
  >"$out/bob-phone.ndjson" 2>"$TMP/bob-phone.err" &
p1=$!
pids+=("$p1")
wait_for "$TMP/bob-phone.err" 'listening as bob' "$p1"
: >"$out/sends.ndjson"
client --user alice send bob "one" >>"$out/sends.ndjson"
client --user alice send bob "two" >>"$out/sends.ndjson"
client --user alice send carol "never read" >>"$out/sends.ndjson"
wait "$p1"
sleep 0.5
# bob's pad, offline so far, gets both from its backlog.
client --user bob --device pad listen --count 2 --timeout 10 --format ndjson >"$out/bob-pad.ndjson"
sleep 0.5
# alice's phone, offline since its sends, gets the receipts in order.
client --user alice listen --receipts --timeout 2 --format ndjson >"$out/alice-receipts.ndjson" || true
stop serve-client-receipts
}

for name in "${@:-longlink shortlink web media receipts}"; do
  for n in $name; do
    case $n in
      longlink|shortlink|web|media|receipts) "record_$n" ;;
      *) echo "unknown sample $n (longlink, shortlink, web, media, receipts)" >&2; exit 2 ;;
    esac
  done
done

ls -l samples/serve-client-*.pcapng
