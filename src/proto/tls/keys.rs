//! The NSS key log (`SSLKEYLOGFILE`, what browsers, curl and OpenSSL
//! write) and the key schedules that turn its secrets into record keys:
//! TLS 1.3's HKDF-Expand-Label (RFC 8446 section 7) and TLS 1.2's PRF
//! (RFC 5246 section 5), with the RustCrypto hkdf, hmac and sha2 crates.
//!
//! Lines are `LABEL <client random, 64 hex> <secret, hex>`; `#` comments
//! and blank lines are skipped, as are labels that open nothing here
//! (early data, exporter secrets). Parsing is strict otherwise.

use std::collections::HashMap;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha384};

use crate::proto::keylog::KeyLogError;

/// The secrets logged for one connection (one client random).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// TLS 1.2 and older: the 48-byte master secret (`CLIENT_RANDOM`).
    pub master: Option<Vec<u8>>,
    pub client_handshake: Option<Vec<u8>>,
    pub server_handshake: Option<Vec<u8>>,
    pub client_traffic0: Option<Vec<u8>>,
    pub server_traffic0: Option<Vec<u8>>,
    /// The 1-based line of the first secret logged for this connection.
    pub line: usize,
}

/// An NSS key log, by client random.
#[derive(Debug, Clone, Default)]
pub struct NssKeyLog {
    by_random: HashMap<[u8; 32], Secrets>,
    lines: usize,
}

/// Whether `text`'s first meaningful line is an NSS key log line (a label
/// in capitals, a space, 64 hex digits).
pub fn looks_like_nss(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| {
            let mut f = l.split_ascii_whitespace();
            let label = f.next().unwrap_or("");
            let random = f.next().unwrap_or("");
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
                && random.len() == 64
                && random.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

impl NssKeyLog {
    pub fn parse(text: &str) -> Result<NssKeyLog, KeyLogError> {
        let mut log = NssKeyLog::default();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: &str| KeyLogError {
                line: n,
                reason: reason.to_owned(),
            };
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            let [label, random, secret] = f[..] else {
                return Err(err("expected LABEL CLIENT_RANDOM SECRET (three fields)"));
            };
            let random: [u8; 32] = hex::decode(random)
                .ok()
                .and_then(|r| r.try_into().ok())
                .ok_or_else(|| err("the client random is not 64 hex digits"))?;
            let secret = hex::decode(secret).map_err(|_| err("the secret is not hex"))?;
            let s = log.by_random.entry(random).or_insert_with(|| Secrets {
                line: n,
                ..Secrets::default()
            });
            let slot = match label {
                "CLIENT_RANDOM" => &mut s.master,
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut s.client_handshake,
                "SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut s.server_handshake,
                "CLIENT_TRAFFIC_SECRET_0" => &mut s.client_traffic0,
                "SERVER_TRAFFIC_SECRET_0" => &mut s.server_traffic0,
                _ => continue,
            };
            if label == "CLIENT_RANDOM" && secret.len() != 48 {
                return Err(err("a CLIENT_RANDOM master secret is 48 bytes"));
            }
            if secret.len() < 32 {
                return Err(err("a traffic secret is at least 32 bytes"));
            }
            *slot = Some(secret);
            log.lines += 1;
        }
        Ok(log)
    }

    /// The secrets logged for the connection with this client random.
    pub fn get(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        self.by_random.get(client_random)
    }

    /// Secrets lines read.
    pub fn len(&self) -> usize {
        self.lines
    }

    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }
}

/// The hash of a cipher suite's key schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
}

impl HashAlg {
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
        }
    }
}

/// HKDF-Expand-Label (RFC 8446 section 7.1) with an empty context.
/// `None` when the secret is shorter than the hash.
pub fn expand_label(hash: HashAlg, secret: &[u8], label: &str, len: usize) -> Option<Vec<u8>> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(0);
    let mut out = vec![0; len];
    match hash {
        HashAlg::Sha256 => Hkdf::<Sha256>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
        HashAlg::Sha384 => Hkdf::<Sha384>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
    }
    Some(out)
}

/// The TLS 1.2 PRF (P_SHA256 or P_SHA384) of `len` bytes.
pub fn prf(hash: HashAlg, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    match hash {
        HashAlg::Sha256 => p_hash::<Hmac<Sha256>>(secret, &[label, seed].concat(), len),
        HashAlg::Sha384 => p_hash::<Hmac<Sha384>>(secret, &[label, seed].concat(), len),
    }
}

pub(super) fn p_hash<M: Mac + KeyInit + Clone>(secret: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let Ok(base) = <M as KeyInit>::new_from_slice(secret) else {
        return Vec::new(); // HMAC takes keys of any length
    };
    let mut out = Vec::with_capacity(len);
    let mut a = {
        let mut m = base.clone();
        m.update(seed);
        m.finalize().into_bytes().to_vec()
    };
    while out.len() < len {
        let mut m = base.clone();
        m.update(&a);
        m.update(seed);
        out.extend_from_slice(&m.finalize().into_bytes());
        let mut m = base.clone();
        m.update(&a);
        a = m.finalize().into_bytes().to_vec();
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8448 (TLS 1.3 traces), section 3: the server handshake traffic
    /// secret gives this key and IV.
    #[test]
    fn expand_label_matches_rfc8448() {
        let secret =
            hex::decode("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
                .unwrap();
        let key = expand_label(HashAlg::Sha256, &secret, "key", 16).unwrap();
        let iv = expand_label(HashAlg::Sha256, &secret, "iv", 12).unwrap();
        assert_eq!(hex::encode(key), "3fce516009c21727d0f2e4e86ee403bc");
        assert_eq!(hex::encode(iv), "5d313eb2671276ee13000b30");
    }

    /// The TLS 1.2 PRF test vector (SHA-256) published with the IETF
    /// mailing-list test vectors (first 16 bytes of 100).
    #[test]
    fn prf_sha256_vector() {
        let secret = hex::decode("9bbe436ba940f017b17652849a71db35").unwrap();
        let seed = hex::decode("a0ba9f936cda311827a6f796ffd5198c").unwrap();
        let out = prf(HashAlg::Sha256, &secret, b"test label", &seed, 100);
        assert_eq!(out.len(), 100);
        assert_eq!(hex::encode(&out[..16]), "e3f229ba727be17b8d122620557cd453");
    }

    #[test]
    fn parses_nss_lines_and_rejects_bad_ones() {
        let r = "aa".repeat(32);
        let text = format!(
            "# SSL/TLS secrets log file\n\nCLIENT_RANDOM {r} {}\nSERVER_TRAFFIC_SECRET_0 {r} {}\nEXPORTER_SECRET {r} {}\n",
            "01".repeat(48),
            "02".repeat(32),
            "03".repeat(32)
        );
        assert!(looks_like_nss(&text));
        assert!(!looks_like_nss("{\"layer\":\"OUTER\"}"));
        let log = NssKeyLog::parse(&text).unwrap();
        let s = log.get(&[0xaa; 32]).unwrap();
        assert_eq!(s.master.as_deref(), Some(&[1u8; 48][..]));
        assert_eq!(s.server_traffic0.as_deref(), Some(&[2u8; 32][..]));
        assert_eq!(s.line, 3);
        assert_eq!(log.len(), 2);
        let e = NssKeyLog::parse(&format!("CLIENT_RANDOM {r} 0102\n")).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.reason.contains("48 bytes"), "{e}");
        let e = NssKeyLog::parse("CLIENT_RANDOM abc\n").unwrap_err();
        assert!(e.reason.contains("three fields"), "{e}");
    }
}
