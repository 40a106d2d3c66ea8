//! Opaque bytes as shown in JSON: hex prefix, length, Shannon entropy and,
//! past [`HEX_PREFIX_LEN`], a SHA-256.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Raw byte values longer than this are rendered as a hex prefix of this
/// many bytes plus their SHA-256.
pub const HEX_PREFIX_LEN: usize = 64;

/// Shannon entropy in bits per byte (0 for empty input, at most 8, and at
/// most log2(len) for short inputs). Compressed or encrypted data is close
/// to 8; text is usually 4 to 5.
pub fn entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    // H = log2(n) - (1/n) * sum(c * log2 c): one log per distinct count
    // value at most, from a table for the small counts most bodies have.
    static C_LOG_C: std::sync::OnceLock<[f64; 257]> = std::sync::OnceLock::new();
    let table = C_LOG_C.get_or_init(|| {
        let mut t = [0.0; 257];
        for (c, v) in t.iter_mut().enumerate().skip(1) {
            *v = c as f64 * (c as f64).log2();
        }
        t
    });
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let n = bytes.len() as f64;
    let sum: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| match table.get(c as usize) {
            Some(v) => *v,
            None => c as f64 * (c as f64).log2(),
        })
        .sum();
    (n.log2() - sum / n).max(0.0)
}

/// Lower-case hex (the `hex` crate's slice encoder: no per-char collect).
fn to_hex(bytes: &[u8]) -> String {
    let mut buf = vec![0u8; bytes.len() * 2];
    if hex::encode_to_slice(bytes, &mut buf).is_err() {
        return hex::encode(bytes);
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Summary of opaque bytes as rendered in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blob {
    /// Hex of the bytes, or of the first [`HEX_PREFIX_LEN`] when truncated.
    pub hex: String,
    pub len: usize,
    /// Shannon entropy in bits per byte, two decimals.
    pub entropy: f64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// SHA-256 of all the bytes, given when the hex is truncated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Blob {
    pub fn new(bytes: &[u8]) -> Blob {
        let truncated = bytes.len() > HEX_PREFIX_LEN;
        let shown = &bytes[..bytes.len().min(HEX_PREFIX_LEN)];
        Blob {
            hex: to_hex(shown),
            len: bytes.len(),
            entropy: (entropy(bytes) * 100.0).round() / 100.0,
            truncated,
            sha256: truncated.then(|| to_hex(&Sha256::digest(bytes))),
        }
    }
}
