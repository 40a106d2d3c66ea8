//! TLS handshake messages, read with the `tls-parser` crate: what a
//! ClientHello offers (server name, ALPN, versions, a resumption attempt)
//! and what a ServerHello picks (version, cipher suite, ALPN, resumption);
//! alerts by name. [`HandshakeBuf`] joins the handshake messages of a
//! direction across records (bounded).

use serde::Serialize;
use tls_parser::{
    parse_tls_client_hello_extensions, parse_tls_handshake_client_hello,
    parse_tls_handshake_server_hello, parse_tls_server_hello_extensions, SNIType,
    TlsAlertDescription, TlsAlertSeverity, TlsCipherSuite, TlsExtension, TlsExtensionType,
    TlsVersion,
};

/// Handshake bytes held per direction, at most, while a message is not
/// whole (a certificate chain is the largest).
pub const MAX_HANDSHAKE_HOLD: usize = 64 << 10;

/// Handshake message types this module reads.
pub const CLIENT_HELLO: u8 = 1;
pub const SERVER_HELLO: u8 = 2;
pub const NEW_SESSION_TICKET: u8 = 4;
pub const FINISHED: u8 = 20;
pub const KEY_UPDATE: u8 = 24;

/// The random of a HelloRetryRequest (RFC 8446 section 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// What the hellos of a connection said.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HelloFacts {
    /// The server name the client asked for (SNI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// The protocol version agreed (`TLS 1.3`, `TLS 1.2`, ...), from the
    /// ServerHello (its supported_versions extension for TLS 1.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The cipher suite the server picked, by its IANA name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// The application protocols the client offered (ALPN).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alpn_offered: Vec<String>,
    /// The application protocol the server picked (in the clear up to TLS
    /// 1.2; in TLS 1.3 it is in the encrypted extensions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// The session was resumed: TLS 1.2 with the session id the client
    /// offered, TLS 1.3 with a pre-shared key the server accepted.
    pub resumed: bool,
    /// The server asked the client to try again (HelloRetryRequest).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hello_retry: bool,
    /// Alerts seen in the clear or decrypted, `level: description`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
    /// Application bytes opened with the key log, client to server and
    /// server to client (absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub decrypted_c2s: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub decrypted_s2c: u64,
    #[serde(skip)]
    pub client_random: Option<[u8; 32]>,
    #[serde(skip)]
    pub server_random: Option<[u8; 32]>,
    #[serde(skip)]
    pub client_session_id: Vec<u8>,
    #[serde(skip)]
    pub version_id: Option<u16>,
    /// The ServerHello agreed encrypt_then_mac (RFC 7366: CBC suites put
    /// the MAC after the ciphertext).
    #[serde(skip)]
    pub encrypt_then_mac: bool,
    #[serde(skip)]
    pub cipher_id: Option<u16>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One handshake message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub typ: u8,
    /// The whole message, its 4-byte header included.
    pub raw: Vec<u8>,
}

impl Handshake {
    pub fn body(&self) -> &[u8] {
        &self.raw[4..]
    }
}

/// The name of a handshake message type.
pub fn handshake_name(t: u8) -> &'static str {
    match t {
        0 => "hello_request",
        CLIENT_HELLO => "client_hello",
        SERVER_HELLO => "server_hello",
        NEW_SESSION_TICKET => "new_session_ticket",
        5 => "end_of_early_data",
        8 => "encrypted_extensions",
        11 => "certificate",
        12 => "server_key_exchange",
        13 => "certificate_request",
        14 => "server_hello_done",
        15 => "certificate_verify",
        16 => "client_key_exchange",
        FINISHED => "finished",
        KEY_UPDATE => "key_update",
        _ => "unknown",
    }
}

/// Joins a direction's handshake bytes into messages. Holds at most
/// [`MAX_HANDSHAKE_HOLD`] bytes: a message announced longer is given up
/// (`overflow` is set and the rest of the direction's handshake skipped).
#[derive(Debug, Default)]
pub struct HandshakeBuf {
    buf: Vec<u8>,
    pub overflow: bool,
}

impl HandshakeBuf {
    /// Adds a handshake record's content; returns the messages now whole.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Handshake> {
        if self.overflow {
            return Vec::new();
        }
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut pos = 0;
        while let [t, a, b, c, ..] = self.buf[pos..] {
            let len = 4 + (usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c));
            if len > MAX_HANDSHAKE_HOLD {
                self.overflow = true;
                self.buf = Vec::new();
                return out;
            }
            if self.buf.len() - pos < len {
                break;
            }
            out.push(Handshake {
                typ: t,
                raw: self.buf[pos..pos + len].to_vec(),
            });
            pos += len;
        }
        self.buf.drain(..pos);
        out
    }

    /// Bytes held (a message not whole yet).
    pub fn held(&self) -> usize {
        self.buf.len()
    }
}

/// A version by name (`TLS 1.3`, ...).
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        _ => format!("0x{v:04x}"),
    }
}

/// A cipher suite by its IANA name (hex when unknown to tls-parser).
pub fn cipher_name(id: u16) -> String {
    TlsCipherSuite::from_id(id).map_or_else(|| format!("0x{id:04x}"), |c| c.name.to_owned())
}

fn random32(r: &[u8]) -> Option<[u8; 32]> {
    r.try_into().ok()
}

impl HelloFacts {
    /// Reads a ClientHello's body (the message without its header).
    /// Whether it parsed.
    pub fn client_hello(&mut self, body: &[u8]) -> bool {
        let Ok((_, ch)) = parse_tls_handshake_client_hello(body) else {
            return false;
        };
        self.client_random = random32(ch.random);
        self.client_session_id = ch.session_id.unwrap_or(&[]).to_vec();
        let exts = ch
            .ext
            .and_then(|e| parse_tls_client_hello_extensions(e).ok())
            .map(|(_, v)| v)
            .unwrap_or_default();
        for e in exts {
            match e {
                TlsExtension::SNI(names) => {
                    if let Some((_, n)) = names.iter().find(|(t, _)| *t == SNIType::HostName) {
                        self.server_name = Some(String::from_utf8_lossy(n).into_owned());
                    }
                }
                TlsExtension::ALPN(protos) => {
                    self.alpn_offered = protos
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect();
                }
                _ => {}
            }
        }
        true
    }

    /// Reads a ServerHello's body. Whether it parsed.
    pub fn server_hello(&mut self, body: &[u8]) -> bool {
        let Ok((_, sh)) = parse_tls_handshake_server_hello(body) else {
            return false;
        };
        if sh.random == HRR_RANDOM {
            self.hello_retry = true;
            return true;
        }
        self.server_random = random32(sh.random);
        let mut version = sh.version.0;
        let mut psk = false;
        let exts = sh
            .ext
            .and_then(|e| parse_tls_server_hello_extensions(e).ok())
            .map(|(_, v)| v)
            .unwrap_or_default();
        for e in exts {
            match e {
                TlsExtension::SupportedVersions(v) => {
                    if let Some(TlsVersion(x)) = v.first() {
                        version = *x;
                    }
                }
                TlsExtension::ALPN(p) => {
                    self.alpn = p.first().map(|p| String::from_utf8_lossy(p).into_owned());
                }
                TlsExtension::PreSharedKey(_) => psk = true,
                // encrypt_then_mac is type 22; tls-parser 0.12.2 reads a
                // ServerHello's 22 as Unknown (and 21, padding, as
                // EncryptThenMac): both are taken.
                TlsExtension::Unknown(TlsExtensionType(22), _) | TlsExtension::EncryptThenMac => {
                    self.encrypt_then_mac = true
                }
                _ => {}
            }
        }
        self.version_id = Some(version);
        self.version = Some(version_name(version));
        self.cipher_id = Some(sh.cipher.0);
        self.cipher = Some(cipher_name(sh.cipher.0));
        let sid = sh.session_id.unwrap_or(&[]);
        self.resumed = if version >= 0x0304 {
            psk
        } else {
            !sid.is_empty() && sid == self.client_session_id.as_slice()
        };
        true
    }

    /// Whether the agreed version is TLS 1.3.
    pub fn is_tls13(&self) -> bool {
        self.version_id.is_some_and(|v| v >= 0x0304)
    }
}

/// The ALPN protocol in a TLS 1.3 EncryptedExtensions body.
pub fn encrypted_extensions_alpn(body: &[u8]) -> Option<String> {
    let len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let exts = body.get(2..2 + len)?;
    let (_, v) = parse_tls_server_hello_extensions(exts).ok()?;
    v.into_iter().find_map(|e| match e {
        TlsExtension::ALPN(p) => p.first().map(|p| String::from_utf8_lossy(p).into_owned()),
        _ => None,
    })
}

/// An alert's two bytes as `level: description` (`fatal: handshake_failure`).
pub fn alert_text(b: &[u8]) -> String {
    match b {
        [level, desc] => {
            let level = match TlsAlertSeverity(*level) {
                TlsAlertSeverity::Warning => "warning".to_owned(),
                TlsAlertSeverity::Fatal => "fatal".to_owned(),
                other => format!("level {}", other.0),
            };
            let name = TlsAlertDescription(*desc).to_string();
            if name.starts_with("TlsAlertDescription") {
                format!("{level}: alert {desc}")
            } else {
                format!("{level}: {}", snake(&name))
            }
        }
        _ => format!("{} bytes (not an alert)", b.len()),
    }
}

/// `HandshakeFailure` as `handshake_failure`.
fn snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
