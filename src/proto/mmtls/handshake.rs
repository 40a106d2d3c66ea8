//! MMTLS handshake messages: the cleartext ClientHello / ServerHello and
//! the handshake message type of a decrypted payload.

use serde::Serialize;

use super::{MmtlsError, RecordType, TAG_LEN};

/// True for payloads sent in the clear: a ClientHello/ServerHello (u32
/// length == payload length - 4, type 1 or 2, version `04 f1`) in a
/// handshake record, or a payload too short to hold a GCM tag.
pub fn is_cleartext(typ: RecordType, payload: &[u8]) -> bool {
    if payload.len() < TAG_LEN {
        return true;
    }
    let hs = typ == RecordType::HANDSHAKE || typ == RecordType::RESUMPTION_HANDSHAKE;
    hs && matches!(payload, [_, _, _, _, 1 | 2, 0x04, 0xf1, ..])
        && handshake_type(payload).is_some()
}

/// Handshake message type (TLS numbering, an inference for the encrypted
/// ones); unknown values stay representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct HandshakeType(pub u8);

impl HandshakeType {
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "client_hello",
            2 => "server_hello",
            4 => "new_session_ticket",
            8 => "encrypted_extensions",
            11 => "certificate",
            13 => "certificate_request",
            15 => "certificate_verify",
            20 => "finished",
            _ => return None,
        })
    }
}

/// Handshake message view: u32 length (of what follows), type byte.
/// Returns the type when the length matches the payload exactly.
pub fn handshake_type(plaintext: &[u8]) -> Option<HandshakeType> {
    match plaintext {
        [a, b, c, d, t, ..]
            if u32::from_be_bytes([*a, *b, *c, *d]) as usize == plaintext.len() - 4 =>
        {
            Some(HandshakeType(*t))
        }
        _ => None,
    }
}

/// Cleartext ClientHello fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientHello {
    pub version: u16,
    pub cipher_suites: Vec<u16>,
    pub random: [u8; 32],
    /// Unix time (seconds).
    pub timestamp: u32,
    /// Offset (in the payload) of the extensions that follow.
    pub extensions_offset: usize,
}

/// Cleartext ServerHello fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerHello {
    pub version: u16,
    pub cipher_suite: u16,
    pub random: [u8; 32],
    pub extensions_offset: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum Hello {
    ClientHello(ClientHello),
    ServerHello(ServerHello),
}

fn take<'a>(p: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], MmtlsError> {
    let s = p
        .get(*at..at.saturating_add(n))
        .ok_or_else(|| MmtlsError::Truncated {
            offset: *at,
            needed: (*at + n).saturating_sub(p.len()),
        })?;
    *at += n;
    Ok(s)
}

/// Parses a cleartext hello from a record payload:
/// `u32 len | u8 type | u16 version | ...`; ClientHello continues with
/// `u8 n | n x u16 suite | random[32] | u32 timestamp | extensions`,
/// ServerHello with `u16 suite | random[32] | extensions`.
pub fn parse_hello(payload: &[u8]) -> Result<Hello, MmtlsError> {
    let mut at = 0;
    let len = take(payload, &mut at, 4)?;
    let declared = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    if declared as usize != payload.len() - 4 {
        return Err(MmtlsError::LengthMismatch {
            offset: 0,
            declared,
            actual: payload.len() - 4,
        });
    }
    let typ = take(payload, &mut at, 1)?[0];
    let v = take(payload, &mut at, 2)?;
    let version = u16::from_be_bytes([v[0], v[1]]);
    let mut random = [0u8; 32];
    match typ {
        1 => {
            let n = take(payload, &mut at, 1)?[0] as usize;
            let suites = take(payload, &mut at, 2 * n)?;
            let cipher_suites = suites
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            random.copy_from_slice(take(payload, &mut at, 32)?);
            let t = take(payload, &mut at, 4)?;
            Ok(Hello::ClientHello(ClientHello {
                version,
                cipher_suites,
                random,
                timestamp: u32::from_be_bytes([t[0], t[1], t[2], t[3]]),
                extensions_offset: at,
            }))
        }
        2 => {
            let s = take(payload, &mut at, 2)?;
            let cipher_suite = u16::from_be_bytes([s[0], s[1]]);
            random.copy_from_slice(take(payload, &mut at, 32)?);
            Ok(Hello::ServerHello(ServerHello {
                version,
                cipher_suite,
                random,
                extensions_offset: at,
            }))
        }
        typ => Err(MmtlsError::NotHello { offset: 4, typ }),
    }
}
