//! A TLS connection's record protection, opened with the secrets of an
//! NSS key log: TLS 1.3 (AES-128/256-GCM, ChaCha20-Poly1305; handshake
//! then application traffic keys, key updates) and TLS 1.2 AEAD suites
//! (AES-GCM, ChaCha20-Poly1305; keys from the master secret) and the
//! TLS 1.0–1.2 CBC suites (AES-CBC with HMAC, [`super::cbc`]). Sans-IO:
//! the caller says which direction a record came from and when a
//! direction's keys change (its Finished, its ChangeCipherSpec).

use aes::{Aes128, Aes256};
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::AesGcm;
use chacha20poly1305::ChaCha20Poly1305;

use super::cbc::{prf10, CbcKeys, MacAlg};
use super::hello::HelloFacts;
use super::keys::{expand_label, prf, HashAlg, NssKeyLog, Secrets};

/// Length of an AEAD tag.
pub const TAG_LEN: usize = 16;
/// Records a gap may have taken, at most, for the record after it to be
/// opened (the sequence numbers searched: 4096 full records are 64 MiB).
pub const MAX_LOST_RECORDS: u64 = 4096;
/// Records opened after a gap that get that search: past them (none
/// opened), only the 8th, 16th, 32nd... record does, so that records that
/// cannot be opened anyway (no key for them, a wrong key log, false records
/// found after the gap) cost one try each on the whole, not 4097, while a
/// direction whose real records come later still finds its count again.
pub const GAP_TRIES: u64 = 4;

/// Why a record was not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undecrypted {
    /// No key log was given.
    NoKeyLog,
    /// The hellos were not seen (a capture that starts mid-connection).
    NoHandshake,
    /// The key log has no secret for this connection (or this stage).
    NoKey,
    /// The cipher suite is not one this module opens.
    UnsupportedSuite(String),
    /// The record did not authenticate with the logged secret.
    Failed,
}

impl Undecrypted {
    /// The word records and reports use (`no_key`, `unsupported_suite`,
    /// `failed`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Undecrypted::NoKeyLog | Undecrypted::NoHandshake | Undecrypted::NoKey => "no_key",
            Undecrypted::UnsupportedSuite(_) => "unsupported_suite",
            Undecrypted::Failed => "failed",
        }
    }

    /// A sentence for an anomaly.
    pub fn detail(&self) -> String {
        match self {
            Undecrypted::NoKeyLog => "no key log given (--keylog)".into(),
            Undecrypted::NoHandshake => "the handshake was not captured".into(),
            Undecrypted::NoKey => "no secret for this connection in the key log".into(),
            Undecrypted::UnsupportedSuite(s) => format!("cipher suite {s} is not supported"),
            Undecrypted::Failed => "the record did not authenticate with the logged secret".into(),
        }
    }
}

/// An opened record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The inner content type (TLS 1.3) or the record's (TLS 1.2).
    pub content_type: u8,
    pub plaintext: Vec<u8>,
    /// The key-log line of the connection's first secret.
    pub line: usize,
}

enum Cipher {
    Aes128(Box<AesGcm<Aes128, U12>>),
    Aes256(Box<AesGcm<Aes256, U12>>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl Cipher {
    fn new(kind: CipherKind, key: &[u8]) -> Option<Cipher> {
        Some(match kind {
            CipherKind::Aes128Gcm => Cipher::Aes128(Box::new(AesGcm::new_from_slice(key).ok()?)),
            CipherKind::Aes256Gcm => Cipher::Aes256(Box::new(AesGcm::new_from_slice(key).ok()?)),
            CipherKind::ChaCha => {
                Cipher::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?))
            }
            CipherKind::Cbc { .. } => return None,
        })
    }

    fn open(&self, nonce: &[u8; 12], aad: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
        fn go<C: Aead>(c: &C, nonce: &[u8], aad: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
            let n = aes_gcm::aead::Nonce::<C>::try_from(nonce).ok()?;
            c.decrypt(&n, Payload { msg, aad }).ok()
        }
        match self {
            Cipher::Aes128(c) => go(c.as_ref(), nonce, aad, msg),
            Cipher::Aes256(c) => go(c.as_ref(), nonce, aad, msg),
            Cipher::ChaCha(c) => go(c.as_ref(), nonce, aad, msg),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CipherKind {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha,
    /// AES-CBC with an HMAC (TLS 1.0 to 1.2).
    Cbc {
        key_len: usize,
        mac: MacAlg,
    },
}

impl CipherKind {
    fn key_len(self) -> usize {
        match self {
            CipherKind::Aes128Gcm => 16,
            CipherKind::Cbc { key_len, .. } => key_len,
            _ => 32,
        }
    }
}

fn cbc(key_len: usize, mac: MacAlg) -> CipherKind {
    CipherKind::Cbc { key_len, mac }
}

/// The suites opened here: (cipher, hash), by suite id.
fn suite(id: u16) -> Option<(CipherKind, HashAlg)> {
    use CipherKind::*;
    Some(match id {
        0x1301 => (Aes128Gcm, HashAlg::Sha256),
        0x1302 => (Aes256Gcm, HashAlg::Sha384),
        0x1303 => (ChaCha, HashAlg::Sha256),
        // TLS 1.2: (EC)DHE and RSA key exchange, AES-GCM.
        0xc02b | 0xc02f | 0x009c | 0x009e => (Aes128Gcm, HashAlg::Sha256),
        0xc02c | 0xc030 | 0x009d | 0x009f => (Aes256Gcm, HashAlg::Sha384),
        // ChaCha20-Poly1305 (RFC 7905).
        0xcca8..=0xccaa => (ChaCha, HashAlg::Sha256),
        // CBC: (EC)DHE and RSA, AES-128/256 with HMAC-SHA1 (any version),
        // -SHA256 and -SHA384 (TLS 1.2; SHA384 suites use its PRF).
        0xc009 | 0xc013 | 0x002f | 0x0033 => (cbc(16, MacAlg::Sha1), HashAlg::Sha256),
        0xc00a | 0xc014 | 0x0035 | 0x0039 => (cbc(32, MacAlg::Sha1), HashAlg::Sha256),
        0xc023 | 0xc027 | 0x003c | 0x0067 => (cbc(16, MacAlg::Sha256), HashAlg::Sha256),
        0x003d | 0x006b => (cbc(32, MacAlg::Sha256), HashAlg::Sha256),
        0xc024 | 0xc028 => (cbc(32, MacAlg::Sha384), HashAlg::Sha384),
        _ => return None,
    })
}

/// One direction's current keys.
struct DirKeys {
    cipher: Cipher,
    iv: Vec<u8>,
    seq: u64,
    /// TLS 1.3: the traffic secret (for key updates).
    secret: Vec<u8>,
}

/// A connection's record protection (see the module doc).
pub struct Protection {
    tls13: bool,
    kind: CipherKind,
    hash: HashAlg,
    secrets: Secrets,
    /// Client's then server's keys; `None` before they are in use.
    dirs: [Option<DirKeys>; 2],
    /// TLS 1.3: whether a direction moved to its application keys.
    application: [bool; 2],
    /// Sequence numbers to search past the expected one, per direction
    /// (set by [`Self::gap`]).
    lost: [u64; 2],
    /// Records tried since the gap, none opened (see [`GAP_TRIES`]).
    since_gap: [u64; 2],
    /// TLS 1.2: the key block's keys, (key, iv) per direction.
    tls12: Option<[(Vec<u8>, Vec<u8>); 2]>,
    /// CBC suites: the key block's keys per direction, then (after each
    /// direction's ChangeCipherSpec) the keys in use and the next sequence
    /// number.
    cbc_block: Option<[CbcKeys; 2]>,
    cbc_dirs: [Option<(CbcKeys, u64)>; 2],
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("tls13", &self.tls13)
            .field("kind", &self.kind)
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

fn idx(from_client: bool) -> usize {
    usize::from(!from_client)
}

impl Protection {
    /// The protection the hellos agreed, with the key log's secrets.
    pub fn new(facts: &HelloFacts, log: Option<&NssKeyLog>) -> Result<Protection, Undecrypted> {
        let log = log.ok_or(Undecrypted::NoKeyLog)?;
        let (Some(cr), Some(sr), Some(version), Some(cipher)) = (
            facts.client_random,
            facts.server_random,
            facts.version_id,
            facts.cipher_id,
        ) else {
            return Err(Undecrypted::NoHandshake);
        };
        let (kind, hash) = suite(cipher)
            .ok_or_else(|| Undecrypted::UnsupportedSuite(super::hello::cipher_name(cipher)))?;
        let secrets = log.get(&cr).ok_or(Undecrypted::NoKey)?.clone();
        let tls13 = version >= 0x0304;
        let mut p = Protection {
            tls13,
            kind,
            hash,
            secrets,
            dirs: [None, None],
            application: [false; 2],
            lost: [0; 2],
            since_gap: [0; 2],
            tls12: None,
            cbc_block: None,
            cbc_dirs: [None, None],
        };
        if tls13 {
            for from_client in [true, false] {
                let hs = if from_client {
                    p.secrets.client_handshake.clone()
                } else {
                    p.secrets.server_handshake.clone()
                };
                match hs {
                    Some(s) => p.dirs[idx(from_client)] = p.keys13(s),
                    None => p.to_application(from_client),
                }
            }
            if p.dirs.iter().all(Option::is_none) {
                return Err(Undecrypted::NoKey);
            }
        } else if let CipherKind::Cbc { key_len, mac } = kind {
            let master = p.secrets.master.clone().ok_or(Undecrypted::NoKey)?;
            let seed = [sr.as_slice(), cr.as_slice()].concat();
            let ml = mac.tag_len();
            let len = 2 * ml + 2 * key_len + 2 * super::cbc::BLOCK;
            let kb = if version >= 0x0303 {
                prf(hash, &master, b"key expansion", &seed, len)
            } else {
                prf10(&master, b"key expansion", &seed, len)
            };
            let (cm, rest) = kb.split_at(ml);
            let (sm, rest) = rest.split_at(ml);
            let (ck, rest) = rest.split_at(key_len);
            let (sk, rest) = rest.split_at(key_len);
            let (civ, siv) = rest.split_at(super::cbc::BLOCK);
            let keys = |key: &[u8], mac_key: &[u8], iv: &[u8]| CbcKeys {
                key: key.to_vec(),
                mac_key: mac_key.to_vec(),
                mac,
                // TLS 1.0 chains its IVs; 1.1 on sends one per record.
                chained_iv: (version < 0x0302).then(|| iv.try_into().unwrap_or([0; 16])),
                etm: facts.encrypt_then_mac,
            };
            p.cbc_block = Some([keys(ck, cm, civ), keys(sk, sm, siv)]);
        } else {
            let master = p.secrets.master.clone().ok_or(Undecrypted::NoKey)?;
            let (kl, il) = (
                kind.key_len(),
                if kind == CipherKind::ChaCha { 12 } else { 4 },
            );
            let seed = [sr.as_slice(), cr.as_slice()].concat();
            let kb = prf(hash, &master, b"key expansion", &seed, 2 * kl + 2 * il);
            let (ck, rest) = kb.split_at(kl);
            let (sk, rest) = rest.split_at(kl);
            let (civ, siv) = rest.split_at(il);
            p.tls12 = Some([(ck.to_vec(), civ.to_vec()), (sk.to_vec(), siv.to_vec())]);
        }
        Ok(p)
    }

    /// The key-log line of the connection's secrets.
    pub fn line(&self) -> usize {
        self.secrets.line
    }

    pub fn is_tls13(&self) -> bool {
        self.tls13
    }

    fn keys13(&self, secret: Vec<u8>) -> Option<DirKeys> {
        let key = expand_label(self.hash, &secret, "key", self.kind.key_len())?;
        let iv = expand_label(self.hash, &secret, "iv", 12)?;
        Some(DirKeys {
            cipher: Cipher::new(self.kind, &key)?,
            iv,
            seq: 0,
            secret,
        })
    }

    /// TLS 1.3: the direction sent its Finished; its next records use the
    /// application traffic keys.
    pub fn to_application(&mut self, from_client: bool) {
        let i = idx(from_client);
        self.application[i] = true;
        let s = if from_client {
            self.secrets.client_traffic0.clone()
        } else {
            self.secrets.server_traffic0.clone()
        };
        self.dirs[i] = s.and_then(|s| self.keys13(s));
    }

    /// TLS 1.3: the direction sent a KeyUpdate; its next records use the
    /// next generation of its traffic secret.
    pub fn key_update(&mut self, from_client: bool) {
        let i = idx(from_client);
        let next = self.dirs[i].as_ref().and_then(|d| {
            expand_label(self.hash, &d.secret, "traffic upd", self.hash.output_len())
        });
        self.dirs[i] = next.and_then(|s| self.keys13(s));
    }

    /// TLS 1.2: the direction sent its ChangeCipherSpec; its next records
    /// are protected, from sequence number 0.
    pub fn change_cipher_spec(&mut self, from_client: bool) {
        let i = idx(from_client);
        if let Some(k) = &self.cbc_block {
            self.cbc_dirs[i] = Some((k[i].clone(), 0));
            return;
        }
        if let Some(k) = &self.tls12 {
            let (key, iv) = &k[i];
            self.dirs[i] = Cipher::new(self.kind, key).map(|cipher| DirKeys {
                cipher,
                iv: iv.clone(),
                seq: 0,
                secret: Vec::new(),
            });
        }
    }

    /// Opens a protected record (`header`: its 5 bytes; `payload`: the rest).
    pub fn open(
        &mut self,
        from_client: bool,
        header: &[u8],
        payload: &[u8],
    ) -> Result<Decrypted, Undecrypted> {
        let i = idx(from_client);
        let line = self.secrets.line;
        // The sequence numbers searched past the expected one: after a
        // gap, as many as it may have taken, plus the records tried since
        // (real ones among them moved the count on).
        let k = self.since_gap[i];
        let window = if self.lost[i] > 0 && (k < GAP_TRIES || k.is_power_of_two()) {
            self.lost[i] + k
        } else {
            0
        };
        if self.lost[i] > 0 {
            self.since_gap[i] += 1;
        }
        if self.tls13 {
            let r = self.open13(i, window, header, payload);
            if r.is_none() && !self.application[i] {
                // A Finished lost to a gap, or no handshake secret logged:
                // the application keys may open it.
                let saved = self.dirs[i].take();
                self.to_application(from_client);
                if let Some(d) = self.open13(i, window, header, payload) {
                    return Ok(Decrypted { line, ..d });
                }
                self.application[i] = false;
                self.dirs[i] = saved;
            }
            return match r {
                Some(d) => Ok(Decrypted { line, ..d }),
                None if self.dirs[i].is_none() => Err(Undecrypted::NoKey),
                None => Err(Undecrypted::Failed),
            };
        }
        if matches!(self.kind, CipherKind::Cbc { .. }) {
            let (k, next) = self.cbc_dirs[i].as_mut().ok_or(Undecrypted::NoKey)?;
            let (seq, plaintext) = k
                .open(*next..=next.saturating_add(window), header, payload)
                .ok_or(Undecrypted::Failed)?;
            *next = seq + 1;
            self.lost[i] = 0;
            return Ok(Decrypted {
                content_type: header[0],
                plaintext,
                line,
            });
        }
        let chacha = self.kind == CipherKind::ChaCha;
        let d = self.dirs[i].as_mut().ok_or(Undecrypted::NoKey)?;
        let (explicit, ct) = if chacha {
            (&[][..], payload)
        } else {
            payload.split_at_checked(8).ok_or(Undecrypted::Failed)?
        };
        let plain_len = ct.len().checked_sub(TAG_LEN).ok_or(Undecrypted::Failed)?;
        let (seq, plaintext) = (d.seq..=d.seq.saturating_add(window))
            .find_map(|seq| {
                let nonce = if chacha {
                    xor_nonce(&d.iv, seq)
                } else {
                    let mut n = [0u8; 12];
                    n[..4].copy_from_slice(&d.iv);
                    n[4..].copy_from_slice(explicit);
                    n
                };
                let mut aad = Vec::with_capacity(13);
                aad.extend_from_slice(&seq.to_be_bytes());
                aad.extend_from_slice(&header[..3]);
                aad.extend_from_slice(&(plain_len as u16).to_be_bytes());
                d.cipher.open(&nonce, &aad, ct).map(|p| (seq, p))
            })
            .ok_or(Undecrypted::Failed)?;
        d.seq = seq + 1;
        self.lost[i] = 0;
        Ok(Decrypted {
            content_type: header[0],
            plaintext,
            line,
        })
    }

    /// Records of the direction (`from_client`) were lost to a gap: the
    /// next record is tried with up to [`MAX_LOST_RECORDS`] sequence
    /// numbers past the expected one (then the count goes on from it); so
    /// are the next ones while none opens ([`GAP_TRIES`], then fewer).
    pub fn gap(&mut self, from_client: bool) {
        self.lost[idx(from_client)] = MAX_LOST_RECORDS;
        self.since_gap[idx(from_client)] = 0;
    }

    fn open13(
        &mut self,
        i: usize,
        window: u64,
        header: &[u8],
        payload: &[u8],
    ) -> Option<Decrypted> {
        let d = self.dirs[i].as_mut()?;
        let (seq, mut pt) = (d.seq..=d.seq.saturating_add(window)).find_map(|seq| {
            let nonce = xor_nonce(&d.iv, seq);
            d.cipher.open(&nonce, header, payload).map(|p| (seq, p))
        })?;
        d.seq = seq + 1;
        self.lost[i] = 0;
        // TLSInnerPlaintext: content, the type, then zero padding.
        let end = pt.iter().rposition(|&b| b != 0)?;
        let content_type = pt[end];
        pt.truncate(end);
        Some(Decrypted {
            content_type,
            plaintext: pt,
            line: 0,
        })
    }
}

/// The per-record nonce: the IV XOR the sequence number (left-padded).
fn xor_nonce(iv: &[u8], seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n.copy_from_slice(&iv[..12]);
    for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
        *b ^= s;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS 1.3 AES-128-GCM record sealed with the server's traffic
    /// secret at sequence number `seq` (content, then its inner type).
    fn seal(secret: &[u8], seq: u64, content: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let key = expand_label(HashAlg::Sha256, secret, "key", 16).unwrap();
        let iv = expand_label(HashAlg::Sha256, secret, "iv", 12).unwrap();
        let c = AesGcm::<Aes128, U12>::new_from_slice(&key).unwrap();
        let msg = [content, &[23]].concat();
        let len = (msg.len() + TAG_LEN) as u16;
        let header = [&[23u8, 3, 3][..], &len.to_be_bytes()].concat();
        let nonce = xor_nonce(&iv, seq);
        let n = aes_gcm::aead::Nonce::<AesGcm<Aes128, U12>>::try_from(&nonce[..]).unwrap();
        let ct = c
            .encrypt(
                &n,
                Payload {
                    msg: &msg,
                    aad: &header,
                },
            )
            .unwrap();
        (header, ct)
    }

    /// The server's application traffic secret of [`server_only`].
    const SECRET: [u8; 32] = [7; 32];

    /// A TLS 1.3 AES-128-GCM connection whose key log holds only the
    /// server's application traffic secret ([`SECRET`]).
    fn server_only() -> Protection {
        let log = NssKeyLog::parse(&format!(
            "SERVER_TRAFFIC_SECRET_0 {} {}\n",
            "11".repeat(32),
            hex::encode(SECRET)
        ))
        .unwrap();
        let facts = HelloFacts {
            client_random: Some([0x11; 32]),
            server_random: Some([0x22; 32]),
            version_id: Some(0x0304),
            cipher_id: Some(0x1301),
            ..HelloFacts::default()
        };
        Protection::new(&facts, Some(&log)).unwrap()
    }

    /// RFC 8446 section 7.2: after a KeyUpdate a direction's secret is
    /// HKDF-Expand-Label(secret, "traffic upd", "", Hash.length) and its
    /// records count from 0 again.
    #[test]
    fn a_key_update_moves_the_direction_to_its_next_secret() {
        let secret = SECRET;
        let next = expand_label(HashAlg::Sha256, &secret, "traffic upd", 32).unwrap();
        let (h0, r0) = seal(&secret, 0, b"before");
        let (h1, r1) = seal(&next, 0, b"after");
        let (h2, r2) = seal(&next, 1, b"after again");
        let mut p = server_only();
        assert_eq!(p.open(false, &h0, &r0).unwrap().plaintext, b"before");
        p.key_update(false);
        assert_eq!(p.open(false, &h1, &r1).unwrap().plaintext, b"after");
        assert_eq!(p.open(false, &h2, &r2).unwrap().plaintext, b"after again");
        // Without the update, the old key does not open them.
        let mut q = server_only();
        assert_eq!(q.open(false, &h0, &r0).unwrap().plaintext, b"before");
        assert_eq!(q.open(false, &h1, &r1), Err(Undecrypted::Failed));
    }

    /// After a gap, the record that follows opens with the sequence number
    /// it has (records lost in the gap are skipped); without the gap said,
    /// it does not.
    #[test]
    fn records_after_a_gap_open_at_their_sequence_number() {
        let secret = SECRET;
        let (h0, r0) = seal(&secret, 0, b"first");
        let (h5, r5) = seal(&secret, 5, b"after the gap");
        let (h6, r6) = seal(&secret, 6, b"next");
        let mut p = server_only();
        assert_eq!(p.open(false, &h0, &r0).unwrap().plaintext, b"first");
        assert_eq!(p.open(false, &h5, &r5), Err(Undecrypted::Failed));
        p.gap(false);
        assert_eq!(p.open(false, &h5, &r5).unwrap().plaintext, b"after the gap");
        assert_eq!(p.open(false, &h6, &r6).unwrap().plaintext, b"next");
        // The client's side has no secret.
        assert_eq!(p.open(true, &h0, &r0), Err(Undecrypted::NoKey));
    }

    /// The search after a gap serves the next [`GAP_TRIES`] records opened,
    /// then every power of two, not every record that fails from then on
    /// (each of those cost up to
    /// twice [`MAX_LOST_RECORDS`] openings; found with the `tls` fuzz
    /// target, `fuzz/regressions/tls-gap-search.bin`).
    #[test]
    fn the_search_after_a_gap_ends_after_a_few_records_that_fail() {
        let secret = SECRET;
        let (h5, r5) = seal(&secret, 5, b"after the gap");
        let junk = vec![0u8; r5.len()];
        let after = |failing: u64| {
            let mut p = server_only();
            p.gap(false);
            for _ in 0..failing {
                assert_eq!(p.open(false, &h5, &junk), Err(Undecrypted::Failed));
            }
            p.open(false, &h5, &r5)
        };
        assert_eq!(after(GAP_TRIES - 1).unwrap().plaintext, b"after the gap");
        // Past those, the 8th, 16th, ... record tried gets it: the real
        // records found again, later, the others tried once.
        assert_eq!(after(5), Err(Undecrypted::Failed));
        assert_eq!(after(7), Err(Undecrypted::Failed));
        assert_eq!(after(8).unwrap().plaintext, b"after the gap");
        assert_eq!(after(13), Err(Undecrypted::Failed));
        assert_eq!(after(16).unwrap().plaintext, b"after the gap");
    }
}
