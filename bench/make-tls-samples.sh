#!/usr/bin/env bash
# make-tls-samples.sh: records the shipped TLS captures with their NSS key
# logs (what SSLKEYLOGFILE writes), made with curl against a small HTTPS
# server (python3's http.server and ssl, HTTP/1.1, a self-signed ECDSA
# certificate) on loopback:
#
#   samples/curl-tls.pcapng + samples/curl-tls.keys   six connections, one
#       per suite: TLS 1.2 ECDHE-ECDSA with AES-128-GCM, AES-256-GCM and
#       ChaCha20-Poly1305, TLS 1.3 with TLS_AES_128_GCM_SHA256,
#       TLS_AES_256_GCM_SHA384 and TLS_CHACHA20_POLY1305_SHA256; each a GET
#       and a POST (keep-alive, two exchanges on one connection)
#
#   samples/serve-client-web-tls.pcapng + .keys   the web session of
#       samples/serve-client-web.pcapng (bob logs in on the web, alice sends
#       from the long link, bob reads and answers) with bob's connections
#       over TLS 1.3: bob's client talks to a local TLS-wrapping proxy, whose
#       TLS connections (the recorded ones, with python's key log) go to a
#       TLS-terminating proxy in front of `syncscope serve`.
#
# Run as root (dumpcap on lo): bash bench/make-tls-samples.sh [curl] [web]
# Needs curl (OpenSSL build), openssl, python3 and dumpcap (tshark); BIN: a
# syncscope binary (default: build the release one).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8443}
TMP=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p samples

if [ -z "${BIN:-}" ]; then
  cargo build --release --bin syncscope >&2
  BIN=target/release/syncscope
fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj /CN=localhost -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null

record_curl() {
cat > "$TMP/server.py" <<'PY'
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.reply(b'{"path":"%s","hello":"world"}' % self.path.encode())
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.reply(b'{"echo":' + self.rfile.read(n) + b'}')
    def log_message(self, *a):
        pass
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305")
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print("ready", flush=True)
s.serve_forever()
PY
python3 "$TMP/server.py" "$PORT" "$TMP/cert.pem" "$TMP/key.pem" > "$TMP/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$TMP/server.log" && break; sleep 0.1; done

dumpcap -q -i lo -f "tcp port $PORT" -w "$TMP/cap.pcapng" 2>/dev/null &
dpid=$!
pids+=($dpid)
sleep 1
export SSLKEYLOGFILE="$TMP/keys"
URL=https://localhost:$PORT
run() {
  curl -sS --http1.1 --cacert "$TMP/cert.pem" "$@" "$URL/cgi-bin/mmwebwx-bin/webwxinit?r=1" \
    --next --http1.1 --cacert "$TMP/cert.pem" "$@" -d '{"BaseRequest":{"Uin":1}}' "$URL/cgi-bin/mmwebwx-bin/webwxsync" \
    > /dev/null
}
for c in ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305; do
  run --tls-max 1.2 --ciphers "$c"
done
for c in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
  run --tlsv1.3 --tls13-ciphers "$c"
done
sleep 1
kill -INT "$dpid"
wait "$dpid" || true
cp "$TMP/cap.pcapng" samples/curl-tls.pcapng
cp "$TMP/keys" samples/curl-tls.keys
echo "samples/curl-tls.pcapng ($(stat -c %s samples/curl-tls.pcapng) bytes), samples/curl-tls.keys ($(wc -l < samples/curl-tls.keys) lines)"
}

# --- web over TLS ---------------------------------------------------------------
cat > "$TMP/proxy.py" <<'PY'
# proxy.py MODE LISTEN_PORT TARGET_PORT CERT KEY KEYLOG
#   wrap:   plain in, TLS out (key log written); unwrap: TLS in, plain out.
import asyncio, ssl, sys
mode, lport, tport, cert, key, keylog = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:7]
async def pipe(r, w):
    try:
        while (b := await r.read(65536)):
            w.write(b)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()
async def handle(r, w):
    if mode == "wrap":
        ctx = ssl.create_default_context(cafile=cert)
        ctx.keylog_filename = keylog
        ctx.set_alpn_protocols(["http/1.1"])
        tr, tw = await asyncio.open_connection("127.0.0.1", tport, ssl=ctx, server_hostname="localhost")
    else:
        tr, tw = await asyncio.open_connection("127.0.0.1", tport)
    await asyncio.gather(pipe(r, tw), pipe(tr, w))
async def main():
    ctx = None
    if mode == "unwrap":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["http/1.1"])
    s = await asyncio.start_server(handle, "127.0.0.1", lport, ssl=ctx)
    print("ready", flush=True)
    await s.serve_forever()
asyncio.run(main())
PY

record_web() {
  local SPORT=$((PORT + 1)) WPORT=$((PORT + 2))
  "$BIN" serve --listen "127.0.0.1:$SPORT" --memory --users alice,bob 2>"$TMP/serve.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q 'listening on' "$TMP/serve.err" && break; sleep 0.1; done
  python3 "$TMP/proxy.py" unwrap "$PORT" "$SPORT" "$TMP/cert.pem" "$TMP/key.pem" "" >"$TMP/unwrap.log" 2>&1 &
  pids+=($!)
  python3 "$TMP/proxy.py" wrap "$WPORT" "$PORT" "$TMP/cert.pem" "$TMP/key.pem" "$TMP/web.keys" >"$TMP/wrap.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q ready "$TMP/unwrap.log" && grep -q ready "$TMP/wrap.log" && break; sleep 0.1; done
  dumpcap -q -i lo -f "tcp port $PORT" -w "$TMP/web.pcapng" 2>/dev/null &
  local dpid=$!
  pids+=($dpid)
  sleep 1
  timeout 20 "$BIN" client --server "127.0.0.1:$WPORT" --user bob --web listen --count 1 --timeout 15 \
    --format ndjson >"$TMP/bob-web" 2>"$TMP/bob-web.err" &
  local p1=$!
  pids+=($p1)
  for _ in $(seq 200); do grep -q 'listening as bob' "$TMP/bob-web.err" && break; sleep 0.05; done
  timeout 20 "$BIN" client --server "127.0.0.1:$SPORT" --user alice send bob "hello bob on the web" >/dev/null
  wait "$p1"
  grep -q '"hello bob on the web"' "$TMP/bob-web"
  timeout 20 "$BIN" client --server "127.0.0.1:$WPORT" --user bob --web send alice "hi alice, from the web" >/dev/null
  sleep 1
  kill -INT "$dpid"
  wait "$dpid" || true
  cp "$TMP/web.pcapng" samples/serve-client-web-tls.pcapng
  cp "$TMP/web.keys" samples/serve-client-web-tls.keys
  echo "samples/serve-client-web-tls.pcapng ($(stat -c %s samples/serve-client-web-tls.pcapng) bytes)"
}

for n in ${@:-curl web}; do
  case $n in
    curl|web) "record_$n" ;;
    *) echo "unknown sample $n (curl, web)" >&2; exit 2 ;;
  esac
done
