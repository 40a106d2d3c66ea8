//! Tunnels: what a TCP segment was carried in, as the flow table keys and
//! shows it. Only encapsulations with outer IP endpoints are tunnels (IP in
//! IP, GRE, ERSPAN, GTP-U, VXLAN, CAPWAP); link-level ones (VLAN, MPLS,
//! PPPoE) are decoded through but are not part of a connection's identity,
//! as VLAN tags never were.

use std::fmt;
use std::net::IpAddr;

/// The kind of an IP-level tunnel.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum TunnelKind {
    /// IPv4 or IPv6 directly inside IPv4 or IPv6 (protocols 4 and 41).
    #[serde(rename = "ip-in-ip")]
    IpInIp,
    /// GRE (RFC 2784 / 2890, and PPTP's enhanced GRE); the id is the key.
    #[serde(rename = "gre")]
    Gre,
    /// ERSPAN type I, II or III over GRE (a mirrored Ethernet frame); the id
    /// is the session.
    #[serde(rename = "erspan")]
    Erspan,
    /// GTP-U (UDP 2152); the id is the TEID, which differs by direction.
    #[serde(rename = "gtp-u")]
    GtpU,
    /// VXLAN (UDP 4789) and VXLAN-GPE (4790); the id is the VNI.
    #[serde(rename = "vxlan")]
    Vxlan,
    /// CAPWAP data (UDP 5247): 802.11 or 802.3 frames between an access
    /// point and its controller.
    #[serde(rename = "capwap")]
    Capwap,
}

impl TunnelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::IpInIp => "ip-in-ip",
            TunnelKind::Gre => "gre",
            TunnelKind::Erspan => "erspan",
            TunnelKind::GtpU => "gtp-u",
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Capwap => "capwap",
        }
    }

    /// Whether the id is the same in both directions (a VNI, a session) and
    /// so part of a connection's identity. A TEID or a GRE key (PPTP's call
    /// id) may differ by direction: shown, not keyed.
    pub fn id_is_shared(self) -> bool {
        matches!(self, TunnelKind::Vxlan | TunnelKind::Erspan)
    }

    /// What the id is called (`teid`, `vni`, ...), when the kind has one.
    pub fn id_name(self) -> Option<&'static str> {
        match self {
            TunnelKind::Gre => Some("key"),
            TunnelKind::Erspan => Some("session"),
            TunnelKind::GtpU => Some("teid"),
            TunnelKind::Vxlan => Some("vni"),
            TunnelKind::IpInIp | TunnelKind::Capwap => None,
        }
    }
}

impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The innermost tunnel a packet came through: its kind, the outer
/// addresses of this packet and the tunnel's id (TEID, VNI, GRE key,
/// ERSPAN session) when it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tunnel {
    pub kind: TunnelKind,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: Option<u32>,
    /// Encapsulations the packet went through in all (tunnels and link-level
    /// ones such as MPLS or PPPoE), this one included.
    pub depth: u8,
}

impl Tunnel {
    /// What makes two packets' tunnels the same one, whichever way they go:
    /// the kind, the outer addresses in either order and the id when it is
    /// the same both ways.
    pub fn key(&self) -> TunnelKey {
        let (a, b) = if self.src <= self.dst {
            (self.src, self.dst)
        } else {
            (self.dst, self.src)
        };
        TunnelKey {
            kind: self.kind,
            a,
            b,
            id: if self.kind.id_is_shared() {
                self.id.unwrap_or(0)
            } else {
                0
            },
        }
    }
}

/// A tunnel's identity in a connection key (see [`Tunnel::key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelKey {
    pub kind: TunnelKind,
    pub a: IpAddr,
    pub b: IpAddr,
    pub id: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(kind: TunnelKind, src: &str, dst: &str, id: u32) -> Tunnel {
        Tunnel {
            kind,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            id: Some(id),
            depth: 1,
        }
    }

    #[test]
    fn both_directions_share_a_key_and_only_shared_ids_are_in_it() {
        // GTP-U: the TEID of each direction is different; the key is not.
        let up = t(TunnelKind::GtpU, "10.0.0.1", "10.0.0.2", 7);
        let down = t(TunnelKind::GtpU, "10.0.0.2", "10.0.0.1", 9);
        assert_eq!(up.key(), down.key());
        // VXLAN: the VNI is one segment, the same both ways: keyed.
        let a = t(TunnelKind::Vxlan, "10.0.0.1", "10.0.0.2", 7);
        let b = t(TunnelKind::Vxlan, "10.0.0.2", "10.0.0.1", 8);
        assert_ne!(a.key(), b.key());
        // Other outer endpoints, or another kind: another tunnel.
        assert_ne!(
            up.key(),
            t(TunnelKind::GtpU, "10.0.0.3", "10.0.0.2", 7).key()
        );
        assert_ne!(
            up.key(),
            t(TunnelKind::Gre, "10.0.0.1", "10.0.0.2", 7).key()
        );
    }
}
