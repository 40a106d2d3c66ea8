#!/usr/bin/env bash
# make-tls-cbc-sample.sh: records samples/curl-tls-cbc.pcapng and its NSS key
# log samples/curl-tls-cbc.keys: curl against two small HTTPS servers
# (python3's http.server and ssl, a self-signed ECDSA certificate) on
# loopback that offer only CBC suites, one agreeing encrypt_then_mac
# (RFC 7366, port 8461) and one refusing it (MAC-then-encrypt, port 8462).
# Six connections, each a GET and a POST on one keep-alive connection:
#   TLS 1.2 ECDHE-ECDSA-AES128-SHA      encrypt-then-MAC
#   TLS 1.2 ECDHE-ECDSA-AES256-SHA384   encrypt-then-MAC (SHA-384 PRF)
#   TLS 1.2 ECDHE-ECDSA-AES256-SHA      MAC-then-encrypt
#   TLS 1.2 ECDHE-ECDSA-AES128-SHA256   MAC-then-encrypt
#   TLS 1.1 ECDHE-ECDSA-AES128-SHA      MAC-then-encrypt (explicit IVs)
#   TLS 1.0 ECDHE-ECDSA-AES256-SHA      encrypt-then-MAC (chained IVs, 1/n-1 split)
#
# Run as root (dumpcap on lo): bash bench/make-tls-cbc-sample.sh
# Needs curl (OpenSSL build), openssl, python3 and dumpcap (tshark).
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -addext basicConstraints=critical,CA:FALSE -addext subjectAltName=DNS:localhost \
  -subj /CN=localhost -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null

cat > "$TMP/cbc-server.py" <<'PY'
"""An HTTPS echo server offering only CBC suites, TLS 1.0 to 1.2."""
import http.server, ssl, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)

class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer(b'{"path":"%s","hello":"world"}' % self.path.encode())
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.answer(b'{"echo":' + body + b'}')
    def log_message(self, *a):
        pass

port, cert, key, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:"
                "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:@SECLEVEL=0")
if mode == "mte":
    ctx.options |= 0x00080000  # SSL_OP_NO_ENCRYPT_THEN_MAC
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Echo)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
PY
for m in "8461 etm" "8462 mte"; do
  set -- $m
  python3 "$TMP/cbc-server.py" "$1" "$TMP/cert.pem" "$TMP/key.pem" "$2" > "$TMP/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q ready "$TMP/$1.log" && break; sleep 0.1; done
done

dumpcap -q -i lo -f "tcp port 8461 or tcp port 8462" -w "$TMP/cap.pcapng" 2>/dev/null &
dpid=$!
pids+=($dpid)
sleep 1
export SSLKEYLOGFILE="$TMP/keys"
get_post() {
  local url=https://localhost:$1/cgi-bin/mmwebwx-bin
  shift
  curl -sS --http1.1 --cacert "$TMP/cert.pem" "$@" "$url/webwxinit?r=1" \
    --next --http1.1 --cacert "$TMP/cert.pem" "$@" -d '{"BaseRequest":{"Uin":1}}' \
    "$url/webwxsync" > /dev/null
}
get_post 8461 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-SHA
get_post 8461 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES256-SHA384
get_post 8462 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES256-SHA
get_post 8462 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-SHA256
get_post 8462 --tlsv1.1 --tls-max 1.1 --ciphers 'ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0'
get_post 8461 --tlsv1.0 --tls-max 1.0 --ciphers 'ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0'
sleep 1
kill -INT "$dpid"
wait "$dpid" || true
mkdir -p samples
cp "$TMP/cap.pcapng" samples/curl-tls-cbc.pcapng
cp "$TMP/keys" samples/curl-tls-cbc.keys
echo "samples/curl-tls-cbc.pcapng ($(stat -c %s samples/curl-tls-cbc.pcapng) bytes), samples/curl-tls-cbc.keys ($(wc -l < samples/curl-tls-cbc.keys) lines)"
