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
#       over TLS 1.3: `serve --tls-cert`, `client --web --tls-ca` with
#       SSLKEYLOGFILE (the key log is the client's).
#
#   samples/curl-h2.pcapng + samples/curl-h2.keys   curl --http2 against
#       `serve --tls-cert` (ALPN h2): one connection over TLS 1.2
#       (ECDHE-ECDSA-AES128-GCM-SHA256), one over TLS 1.3, four streams
#       each (GET and POST jslogin, POST webwxinit with a JSON body, a 404).
#
# Run as root (dumpcap on lo): bash bench/make-tls-samples.sh [curl] [web] [h2]
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
  -addext basicConstraints=critical,CA:FALSE -addext subjectAltName=DNS:localhost \
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
record_web() {
  local SPORT=$((PORT + 1))
  "$BIN" serve --listen "127.0.0.1:$SPORT" --memory --users alice,bob \
    --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" 2>"$TMP/serve.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q 'listening on' "$TMP/serve.err" && break; sleep 0.1; done
  dumpcap -q -i lo -f "tcp port $SPORT" -w "$TMP/web.pcapng" 2>/dev/null &
  local dpid=$!
  pids+=($dpid)
  sleep 1
  # bob's web client over HTTPS writes its key log; alice's long link is clear.
  SSLKEYLOGFILE="$TMP/web.keys" timeout 20 "$BIN" client --server "localhost:$SPORT" --user bob \
    --web --tls-ca "$TMP/cert.pem" listen --count 1 --timeout 15 --format ndjson \
    >"$TMP/bob-web" 2>"$TMP/bob-web.err" &
  local p1=$!
  pids+=($p1)
  for _ in $(seq 200); do grep -q 'listening as bob' "$TMP/bob-web.err" && break; sleep 0.05; done
  timeout 20 "$BIN" client --server "127.0.0.1:$SPORT" --user alice send bob "hello bob on the web" >/dev/null
  wait "$p1"
  grep -q '"hello bob on the web"' "$TMP/bob-web"
  SSLKEYLOGFILE="$TMP/web.keys" timeout 20 "$BIN" client --server "localhost:$SPORT" --user bob \
    --web --tls-ca "$TMP/cert.pem" send alice "hi alice, from the web" >/dev/null
  sleep 1
  kill -INT "$dpid"
  wait "$dpid" || true
  cp "$TMP/web.pcapng" samples/serve-client-web-tls.pcapng
  cp "$TMP/web.keys" samples/serve-client-web-tls.keys
  echo "samples/serve-client-web-tls.pcapng ($(stat -c %s samples/serve-client-web-tls.pcapng) bytes)"
}

# --- HTTP/2 against serve --tls-cert ----------------------------------------------
record_h2() {
  local SPORT=$((PORT + 2))
  "$BIN" serve --listen "127.0.0.1:$SPORT" --memory --users alice,bob \
    --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" 2>"$TMP/serve-h2.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q 'listening on' "$TMP/serve-h2.err" && break; sleep 0.1; done
  dumpcap -q -i lo -f "tcp port $SPORT" -w "$TMP/h2.pcapng" 2>/dev/null &
  local dpid=$!
  pids+=($dpid)
  sleep 1
  local URL=https://localhost:$SPORT
  # One connection per TLS version, four streams each: GET and POST (a form
  # body) of jslogin, a POST with a JSON body, and a path nobody serves.
  for v in "--tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-GCM-SHA256" "--tlsv1.3"; do
    # shellcheck disable=SC2086
    SSLKEYLOGFILE="$TMP/h2.keys" curl -sS --http2 --cacert "$TMP/cert.pem" $v \
      "$URL/jslogin?appid=wx782c26e4c19acffb&fun=new" \
      --next --http2 --cacert "$TMP/cert.pem" $v -d 'appid=wx782c26e4c19acffb&fun=new&user=bob' "$URL/jslogin" \
      --next --http2 --cacert "$TMP/cert.pem" $v -H 'Content-Type: application/json' \
        -d '{"BaseRequest":{"Uin":1,"Sid":"none","Skey":"","DeviceID":"e1"}}' "$URL/cgi-bin/mmwebwx-bin/webwxinit" \
      --next --http2 --cacert "$TMP/cert.pem" $v "$URL/nothing/here" \
      > /dev/null
  done
  sleep 1
  kill -INT "$dpid"
  wait "$dpid" || true
  cp "$TMP/h2.pcapng" samples/curl-h2.pcapng
  cp "$TMP/h2.keys" samples/curl-h2.keys
  echo "samples/curl-h2.pcapng ($(stat -c %s samples/curl-h2.pcapng) bytes)"
}

for n in ${@:-curl web h2}; do
  case $n in
    curl|web|h2) "record_$n" ;;
    *) echo "unknown sample $n (curl, web, h2)" >&2; exit 2 ;;
  esac
done
