//! TLS 1.0–1.2 CBC suites (AES-128/256-CBC with HMAC-SHA1, -SHA256 or
//! -SHA384): MAC-then-encrypt (RFC 5246 section 6.2.3.2) or, when the
//! ServerHello agreed `encrypt_then_mac` (RFC 7366), encrypt-then-MAC.
//! TLS 1.1 and 1.2 carry an explicit IV per record; TLS 1.0 chains the IV
//! from the key block through the last ciphertext block of each record.
//! Also the TLS 1.0/1.1 PRF (P_MD5 XOR P_SHA1, RFC 2246 section 5). The
//! padding and MAC checks say only whether a record opened: this reads a
//! capture, it answers no one, so no padding oracle is at stake.

use aes::{Aes128, Aes256};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Sha256, Sha384};

/// The record MAC of a CBC suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAlg {
    Sha1,
    Sha256,
    Sha384,
}

impl MacAlg {
    pub fn tag_len(self) -> usize {
        match self {
            MacAlg::Sha1 => 20,
            MacAlg::Sha256 => 32,
            MacAlg::Sha384 => 48,
        }
    }

    fn mac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn go<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else {
                return Vec::new(); // HMAC takes keys of any length
            };
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        match self {
            MacAlg::Sha1 => go::<Hmac<Sha1>>(key, parts),
            MacAlg::Sha256 => go::<Hmac<Sha256>>(key, parts),
            MacAlg::Sha384 => go::<Hmac<Sha384>>(key, parts),
        }
    }
}

/// The AES block (and explicit IV) length.
pub const BLOCK: usize = 16;

/// One direction's CBC keys and state.
#[derive(Clone)]
pub struct CbcKeys {
    pub key: Vec<u8>,
    pub mac_key: Vec<u8>,
    pub mac: MacAlg,
    /// TLS 1.0: the IV of the next record (the key block's, then the last
    /// ciphertext block); None from TLS 1.1 on (each record carries its own).
    pub chained_iv: Option<[u8; BLOCK]>,
    pub etm: bool,
}

fn aes_cbc(key: &[u8], iv: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    fn dec<C>(key: &[u8], iv: &[u8], ct: &[u8]) -> Option<Vec<u8>>
    where
        cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
        C: cbc::cipher::BlockCipherDecrypt,
    {
        cbc::Decryptor::<C>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded_vec::<NoPadding>(ct)
            .ok()
    }
    match key.len() {
        16 => dec::<Aes128>(key, iv, ct),
        32 => dec::<Aes256>(key, iv, ct),
        _ => None,
    }
}

/// `seq || type || version || length` (the MAC's header).
fn mac_header(seq: u64, header: &[u8], len: usize) -> [u8; 13] {
    let mut h = [0u8; 13];
    h[..8].copy_from_slice(&seq.to_be_bytes());
    h[8..11].copy_from_slice(&header[..3]);
    h[11..].copy_from_slice(&(len as u16).to_be_bytes());
    h
}

/// Strips the TLS padding (`p` bytes of value `p`, then `p`) off `pt`.
fn unpad(pt: &mut Vec<u8>) -> Option<()> {
    let p = usize::from(*pt.last()?);
    let start = pt.len().checked_sub(p + 1)?;
    if pt[start..].iter().any(|&b| usize::from(b) != p) {
        return None;
    }
    pt.truncate(start);
    Some(())
}

impl CbcKeys {
    /// Opens one record (`header`: its 5 bytes, `payload`: the rest) with
    /// the first sequence number of `seqs` whose MAC matches: that number
    /// and the content.
    pub fn open(
        &mut self,
        seqs: std::ops::RangeInclusive<u64>,
        header: &[u8],
        payload: &[u8],
    ) -> Option<(u64, Vec<u8>)> {
        let ml = self.mac.tag_len();
        let (body, tag) = if self.etm {
            payload.split_at_checked(payload.len().checked_sub(ml)?)?
        } else {
            (payload, &[][..])
        };
        let (iv, ct) = match self.chained_iv {
            Some(iv) => (iv, body),
            None => {
                let (iv, ct) = body.split_at_checked(BLOCK)?;
                (iv.try_into().ok()?, ct)
            }
        };
        if ct.is_empty() || ct.len() % BLOCK != 0 {
            return None;
        }
        let seq = if self.etm {
            let seq = seqs.clone().find(|&s| {
                let h = mac_header(s, header, body.len());
                self.mac.mac(&self.mac_key, &[&h, body]) == tag
            })?;
            Some(seq)
        } else {
            None
        };
        let mut pt = aes_cbc(&self.key, &iv, ct)?;
        unpad(&mut pt)?;
        let seq = match seq {
            Some(s) => s,
            None => {
                let n = pt.len().checked_sub(ml)?;
                let (content, tag) = pt.split_at(n);
                let s = seqs.clone().find(|&s| {
                    let h = mac_header(s, header, content.len());
                    self.mac.mac(&self.mac_key, &[&h, content]) == tag
                })?;
                pt.truncate(n);
                s
            }
        };
        if let Some(next) = self.chained_iv.as_mut() {
            next.copy_from_slice(&ct[ct.len() - BLOCK..]);
        }
        Some((seq, pt))
    }
}

/// The TLS 1.0/1.1 PRF: P_MD5 over the secret's first half XOR P_SHA1
/// over its second (the halves share a byte when its length is odd).
pub fn prf10(secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let half = secret.len().div_ceil(2);
    let (s1, s2) = (&secret[..half], &secret[secret.len() - half..]);
    let seed = [label, seed].concat();
    let a = super::keys::p_hash::<Hmac<Md5>>(s1, &seed, len);
    let b = super::keys::p_hash::<Hmac<Sha1>>(s2, &seed, len);
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::BlockModeEncrypt;

    fn seal(k: &CbcKeys, seq: u64, header: &[u8; 5], content: &[u8], iv: [u8; 16]) -> Vec<u8> {
        let enc = |pt: &[u8]| {
            cbc::Encryptor::<Aes128>::new_from_slices(&k.key, &iv)
                .unwrap()
                .encrypt_padded_vec::<NoPadding>(pt)
        };
        let pad = |mut v: Vec<u8>| {
            let p = BLOCK - 1 - v.len() % BLOCK;
            v.extend(std::iter::repeat_n(p as u8, p + 1));
            v
        };
        let explicit = if k.chained_iv.is_some() {
            &[][..]
        } else {
            &iv[..]
        };
        if k.etm {
            let ct = enc(&pad(content.to_vec()));
            let body = [explicit, &ct].concat();
            let tag = k
                .mac
                .mac(&k.mac_key, &[&mac_header(seq, header, body.len()), &body]);
            [body, tag].concat()
        } else {
            let tag = k.mac.mac(
                &k.mac_key,
                &[&mac_header(seq, header, content.len()), content],
            );
            let ct = enc(&pad([content, &tag].concat()));
            [explicit, &ct].concat()
        }
    }

    #[test]
    fn records_open_with_either_mac_order_and_at_their_sequence_number() {
        let header = [23u8, 3, 3, 0, 0];
        for etm in [false, true] {
            let mut k = CbcKeys {
                key: vec![1; 16],
                mac_key: vec![2; 20],
                mac: MacAlg::Sha1,
                chained_iv: None,
                etm,
            };
            let r = seal(&k, 3, &header, b"hello over cbc", [9; 16]);
            assert_eq!(k.open(0..=2, &header, &r), None, "wrong sequence numbers");
            assert_eq!(
                k.open(0..=5, &header, &r),
                Some((3, b"hello over cbc".to_vec()))
            );
            let mut bad = r.clone();
            let n = bad.len();
            bad[n - 1] ^= 1;
            assert_eq!(k.open(0..=5, &header, &bad), None, "a flipped bit");
            for cut in 0..r.len() {
                assert_eq!(k.open(0..=5, &header, &r[..cut]), None, "cut at {cut}");
            }
        }
    }

    #[test]
    fn tls10_chains_the_iv_through_the_records() {
        let header = [23u8, 3, 1, 0, 0];
        let key_iv = [5u8; 16];
        let mut k = CbcKeys {
            key: vec![1; 16],
            mac_key: vec![2; 20],
            mac: MacAlg::Sha1,
            chained_iv: Some(key_iv),
            etm: false,
        };
        let r0 = seal(&k, 0, &header, b"first", key_iv);
        let next: [u8; 16] = r0[r0.len() - 16..].try_into().unwrap();
        let r1 = seal(&k, 1, &header, b"second", next);
        assert_eq!(k.open(0..=0, &header, &r0).unwrap().1, b"first");
        assert_eq!(k.open(1..=1, &header, &r1).unwrap().1, b"second");
    }

    /// The TLS 1.0 PRF vector of the IETF mailing-list test vectors
    /// (first 16 bytes of 104).
    #[test]
    fn prf10_matches_the_tls10_vector() {
        let secret = [0xab; 48];
        let seed = [0xcd; 64];
        let out = prf10(&secret, b"PRF Testvector", &seed, 104);
        assert_eq!(hex::encode(&out[..16]), "d3d4d1e349b5d515044666d51de32bab");
    }
}
