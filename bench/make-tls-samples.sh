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
#   samples/curl-tls-cbc.pcapng + .keys   the CBC suites: curl against two
#       such servers offering only CBC suites, one agreeing encrypt_then_mac
#       (RFC 7366, port 8461), one refusing it (MAC-then-encrypt, 8462); six
#       connections, each a GET and a POST: TLS 1.2 ECDHE-ECDSA-AES128-SHA
#       and -AES256-SHA384 (encrypt-then-MAC), -AES256-SHA and -AES128-SHA256
#       (MAC-then-encrypt), TLS 1.1 -AES128-SHA (MAC-then-encrypt, explicit
#       IVs), TLS 1.0 -AES256-SHA (encrypt-then-MAC, chained IVs, 1/n-1 split)
#
#   samples/curl-h2.pcapng + samples/curl-h2.keys   curl --http2 against
#       `serve --tls-cert` (ALPN h2): one connection over TLS 1.2
#       (ECDHE-ECDSA-AES128-GCM-SHA256), one over TLS 1.3, four streams
#       each (GET and POST jslogin, POST webwxinit with a JSON body, a 404).
#
# Run as root (dumpcap on lo): bash bench/make-tls-samples.sh [curl] [cbc] [web] [h2]
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

# An HTTPS echo server (python3's http.server and ssl): GET answers its path,
# POST echoes its body. Arguments: port, cert, key, OpenSSL cipher list,
# then `tls10` to accept TLS 1.0 to 1.2 only and `mte` to refuse
# encrypt_then_mac (CBC suites then MAC before encrypting).
cat > "$TMP/server.py" <<'PY'
import http.server, ssl, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)
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
port, cert, key, ciphers = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
if "tls10" in sys.argv[5:]:
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
if "mte" in sys.argv[5:]:
    ctx.options |= 0x00080000  # SSL_OP_NO_ENCRYPT_THEN_MAC
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
ctx.set_ciphers(ciphers)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print("ready", flush=True)
s.serve_forever()
PY

# serve PORT CIPHERS [tls10] [mte]: the echo server, in the background.
serve() {
  python3 "$TMP/server.py" "$1" "$TMP/cert.pem" "$TMP/key.pem" "${@:2}" > "$TMP/server-$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q ready "$TMP/server-$1.log" && break; sleep 0.1; done
}

# capture_start FILTER / capture_end NAME: dumpcap on lo; the capture and the
# key log curl wrote become samples/NAME.pcapng and samples/NAME.keys.
capture_start() {
  dumpcap -q -i lo -f "$1" -w "$TMP/cap.pcapng" 2>/dev/null &
  dpid=$!
  pids+=($dpid)
  sleep 1
  rm -f "$TMP/keys"
  export SSLKEYLOGFILE="$TMP/keys"
}
capture_end() {
  sleep 1
  kill -INT "$dpid"
  wait "$dpid" || true
  unset SSLKEYLOGFILE
  cp "$TMP/cap.pcapng" "samples/$1.pcapng"
  cp "$TMP/keys" "samples/$1.keys"
  echo "samples/$1.pcapng ($(stat -c %s "samples/$1.pcapng") bytes), samples/$1.keys ($(wc -l < "samples/$1.keys") lines)"
}

# get_post PORT CURL-OPTIONS...: a GET and a POST on one keep-alive connection.
get_post() {
  local url=https://localhost:$1/cgi-bin/mmwebwx-bin
  shift
  curl -sS --http1.1 --cacert "$TMP/cert.pem" "$@" "$url/webwxinit?r=1" \
    --next --http1.1 --cacert "$TMP/cert.pem" "$@" -d '{"BaseRequest":{"Uin":1}}' \
    "$url/webwxsync" > /dev/null
}

record_curl() {
  serve "$PORT" "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"
  capture_start "tcp port $PORT"
  for c in ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305; do
    get_post "$PORT" --tls-max 1.2 --ciphers "$c"
  done
  for c in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
    get_post "$PORT" --tlsv1.3 --tls13-ciphers "$c"
  done
  capture_end curl-tls
}

# --- CBC suites, TLS 1.0 to 1.2 --------------------------------------------------
record_cbc() {
  local cbc="ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:@SECLEVEL=0"
  serve 8461 "$cbc" tls10
  serve 8462 "$cbc" tls10 mte
  capture_start "tcp port 8461 or tcp port 8462"
  get_post 8461 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-SHA
  get_post 8461 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES256-SHA384
  get_post 8462 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES256-SHA
  get_post 8462 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-SHA256
  get_post 8462 --tlsv1.1 --tls-max 1.1 --ciphers 'ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0'
  get_post 8461 --tlsv1.0 --tls-max 1.0 --ciphers 'ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0'
  capture_end curl-tls-cbc
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

for n in ${@:-curl cbc web h2}; do
  case $n in
    curl|cbc|web|h2) "record_$n" ;;
    *) echo "unknown sample $n (curl, cbc, web, h2)" >&2; exit 2 ;;
  esac
done
