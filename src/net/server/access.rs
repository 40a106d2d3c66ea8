//! Who may use the server ([`Access`]) and how many connections one
//! address may hold before authenticating ([`PeerSlots`]).
//!
//! Two modes. **Test mode** ([`Access::test_mode`], the default): nothing
//! is checked, as a loopback test server wants: identify needs no auth,
//! the short link names its user in the query string, web logins are
//! confirmed at once. **Enforced** ([`Access::enforced`]): every user has
//! a password; manualauth must give it; a long-link identify must follow a
//! successful manualauth or autoauth on the same connection, for that uin
//! and device; short-link requests carry the session their auth gave them
//! (the `mmsid` cookie); a web login is confirmed by an authenticated
//! device of the user (long-link cmd [`WEBLOGIN_CONFIRM`]) unless
//! [`Access::with_web_auto_confirm`] says otherwise (tests).
//!
//! [`WEBLOGIN_CONFIRM`]: crate::proto::commands::WEBLOGIN_CONFIRM

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// Who may use the server.
#[derive(Clone, Default)]
pub struct Access {
    /// SHA-256 of each user's password (enforced mode only).
    passwords: HashMap<String, [u8; 32]>,
    enforce: bool,
    web_auto_confirm: bool,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&String> = self.passwords.keys().collect();
        users.sort();
        f.debug_struct("Access")
            .field("enforce", &self.enforce)
            .field("users", &users)
            .field("web_auto_confirm", &self.web_auto_confirm)
            .finish()
    }
}

/// A fresh password for a user given none: 128 bits from the operating
/// system's random source, in hex.
pub fn new_password() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| format!("no random source: {e}"))?;
    Ok(hex::encode(b))
}

fn digest(password: &str) -> [u8; 32] {
    Sha256::digest(password.as_bytes()).into()
}

impl Access {
    /// Nothing checked (loopback tests): identify without auth, short-link
    /// `?user=`, web logins confirmed automatically.
    pub fn test_mode() -> Access {
        Access::default()
    }

    /// Identity enforced on every link; `users` are (name, password).
    pub fn enforced<N, P>(users: impl IntoIterator<Item = (N, P)>) -> Access
    where
        N: Into<String>,
        P: AsRef<str>,
    {
        Access {
            passwords: users
                .into_iter()
                .map(|(n, p)| (n.into(), digest(p.as_ref())))
                .collect(),
            enforce: true,
            web_auto_confirm: false,
        }
    }

    /// Web logins confirmed without a device (for tests; implied in test
    /// mode).
    pub fn with_web_auto_confirm(mut self, on: bool) -> Access {
        self.web_auto_confirm = on;
        self
    }

    /// Whether `user` has a password (enforced mode).
    pub fn has_user(&self, user: &str) -> bool {
        self.passwords.contains_key(user)
    }

    /// Whether identity is checked.
    pub fn enforced_mode(&self) -> bool {
        self.enforce
    }

    /// Whether web logins are confirmed without a device.
    pub fn auto_confirm(&self) -> bool {
        !self.enforce || self.web_auto_confirm
    }

    /// Whether `password` is `user`'s (always, in test mode).
    pub fn password_ok(&self, user: &str, password: Option<&str>) -> bool {
        if !self.enforce {
            return true;
        }
        match (self.passwords.get(user), password) {
            // Digests of equal length: comparing them says nothing useful
            // about the password through timing.
            (Some(want), Some(given)) => digest(given) == *want,
            _ => false,
        }
    }
}

/// Connections not yet authenticated, per peer address, capped: a
/// [`Slot`] is held from accept until the connection authenticates (or
/// ends).
pub(super) struct PeerSlots {
    cap: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place under its address's cap; given back on drop.
pub(super) struct Slot {
    slots: Arc<PeerSlots>,
    ip: IpAddr,
}

impl PeerSlots {
    pub(super) fn new(cap: usize) -> Arc<PeerSlots> {
        Arc::new(PeerSlots {
            cap: cap.max(1),
            counts: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// A slot for `ip`, or `None` when it holds the cap already.
    pub(super) fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Slot {
            slots: Arc::clone(self),
            ip,
        })
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_checked_only_when_enforced() {
        let open = Access::test_mode();
        assert!(open.password_ok("anyone", None));
        assert!(open.auto_confirm());
        let a = Access::enforced([("alice", "secret")]);
        assert!(a.password_ok("alice", Some("secret")));
        assert!(!a.password_ok("alice", Some("Secret")));
        assert!(!a.password_ok("alice", None));
        assert!(!a.password_ok("bob", Some("secret")));
        assert!(!a.auto_confirm());
        assert!(a.clone().with_web_auto_confirm(true).auto_confirm());
        assert!(!format!("{a:?}").contains("secret"), "{a:?}");
    }

    #[test]
    fn slots_per_address_are_capped_and_given_back() {
        let slots = PeerSlots::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let one = slots.take(a).expect("first");
        let two = slots.take(mapped).expect("second, the same address");
        assert!(slots.take(a).is_none(), "over the cap");
        let other = slots.take(b).expect("another address has its own cap");
        drop(one);
        assert_eq!(slots.held(a), 1);
        let three = slots.take(a).expect("a slot given back");
        drop((two, three, other));
        assert_eq!(slots.held(a), 0);
        assert!(slots.counts.lock().unwrap().is_empty(), "no entry left");
    }
}
