//! Client and server of a connection seen without its handshake: when no
//! SYN or SYN+ACK settled them (`flow::ClientBy::FirstPacket`), the
//! analyzer infers them from what a side sends (long-link requests or
//! responses, an HTTP request line or status line, an MMTLS or TLS
//! ClientHello or ServerHello) and then from well-known ports. The flow
//! table's own first-packet guess (what `flows` shows) is left as it is.
//!
//! Inferred roles are never flipped afterwards: evidence that contradicts
//! them (a long-link response or an HTTP status line from the client, a
//! request line or an identify from the server, a hello of the other role)
//! is reported as a `role_conflict` anomaly and counted per connection.

use serde::Serialize;

use crate::detect::Protocol;
use crate::flow::{ClientBy, Direction, FlowMeta, FlowSummary, Side};
use crate::proto::commands::{
    IDENTIFY, NOOP, RESPONSE_OFFSET, SEQ_HEARTBEAT, SEQ_IDENTIFY, SEQ_PUSH,
};
use crate::proto::longlink::{Header, Kind};
use crate::proto::mmtls;

/// How a connection's client and server were decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolesBy {
    /// The sender of a SYN without ACK is the client.
    Syn,
    /// The receiver of a SYN+ACK is the client.
    Synack,
    /// Inferred from the protocol (requests vs responses, start lines, hellos).
    Protocol,
    /// Inferred from a well-known (or privileged) server port.
    Port,
    /// Nothing told: the sender of the first packet is taken for the client.
    FirstPacket,
}

impl RolesBy {
    pub fn as_str(self) -> &'static str {
        match self {
            RolesBy::Syn => "syn",
            RolesBy::Synack => "synack",
            RolesBy::Protocol => "protocol",
            RolesBy::Port => "port",
            RolesBy::FirstPacket => "first_packet",
        }
    }

    /// Not seen in a handshake: records and rows say how it was decided.
    pub fn inferred(self) -> bool {
        !matches!(self, RolesBy::Syn | RolesBy::Synack)
    }
}

named!(RolesBy);

/// Ports servers listen on (WeChat's long and short link, HTTP, TLS,
/// XMPP, FCM and the usual alternates).
const SERVER_PORTS: &[u16] = &[80, 443, 5222, 5223, 5228, 8000, 8080, 8443, 8888, 14000];

/// The roles of one connection as the analyzer uses them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Roles {
    client: Side,
    by: RolesBy,
    /// Ports of the first packet's sender and receiver.
    ports: [u16; 2],
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            client: Side::First,
            by: RolesBy::FirstPacket,
            ports: [0, 0],
        }
    }
}

impl Roles {
    /// Takes in what the flow table knows: a handshake settles the roles
    /// (even after an inference); without one an inference stays.
    pub(super) fn sync(&mut self, meta: &FlowMeta) {
        self.ports = [meta.first_src.port(), meta.first_dst.port()];
        let client = if meta.client_side() == 0 {
            Side::First
        } else {
            Side::Second
        };
        match meta.client_by() {
            ClientBy::Syn => (self.client, self.by) = (client, RolesBy::Syn),
            ClientBy::Synack => (self.client, self.by) = (client, RolesBy::Synack),
            ClientBy::FirstPacket => {}
        }
    }

    /// The roles of a connection that ended without any event (no payload).
    pub(super) fn of_summary(s: &FlowSummary) -> Roles {
        let (first, second) = if s.client_side == Side::First {
            (s.client, s.server)
        } else {
            (s.server, s.client)
        };
        let mut r = Roles {
            ports: [first.port(), second.port()],
            ..Roles::default()
        };
        r.settle(s);
        r
    }

    /// The connection ended: a handshake seen at last settles the roles,
    /// else whatever is still open goes to the ports.
    pub(super) fn settle(&mut self, s: &FlowSummary) {
        match s.client_by {
            ClientBy::Syn => (self.client, self.by) = (s.client_side, RolesBy::Syn),
            ClientBy::Synack => (self.client, self.by) = (s.client_side, RolesBy::Synack),
            ClientBy::FirstPacket => self.by_ports(),
        }
    }

    /// `s` with these roles: client and server (and their byte counts)
    /// swapped when the analyzer's client is the flow table's server.
    pub(super) fn apply(&self, s: &FlowSummary) -> FlowSummary {
        let mut s = s.clone();
        if s.client_side != self.client {
            std::mem::swap(&mut s.client, &mut s.server);
            std::mem::swap(&mut s.c2s, &mut s.s2c);
            s.client_side = self.client;
        }
        s
    }

    pub(super) fn by(&self) -> RolesBy {
        self.by
    }

    pub(super) fn client(&self) -> Side {
        self.client
    }

    /// The direction `side` sends in.
    pub(super) fn direction(&self, side: Side) -> Direction {
        if side == self.client {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        }
    }

    /// `side`'s protocol was decided, with `evidence` from its first bytes
    /// (see [`evidence`]): when the roles are still open, the evidence
    /// decides them, else the ports do (only for a side that will be
    /// dissected: an unknown side leaves the other side its chance to tell
    /// by protocol).
    pub(super) fn infer(&mut self, side: Side, proto: Protocol, evidence: Option<Evidence>) {
        if self.by != RolesBy::FirstPacket {
            return;
        }
        match evidence {
            Some(e) => {
                self.client = if e.client { side } else { side.other() };
                self.by = RolesBy::Protocol;
            }
            None if proto != Protocol::Unknown => self.by_ports(),
            None => {}
        }
    }

    /// Whether evidence that the sender of `dir` is the client (`client`)
    /// or the server contradicts roles that were inferred (by protocol or
    /// port; a handshake is not questioned, and open roles are inferred,
    /// not contradicted).
    pub(super) fn contradicted(by: RolesBy, dir: Direction, client: bool) -> bool {
        matches!(by, RolesBy::Protocol | RolesBy::Port)
            && (dir == Direction::ClientToServer) != client
    }

    /// Still open: the ports decide if they can (the connection ends, or a
    /// dissected side gave no protocol evidence).
    pub(super) fn by_ports(&mut self) {
        if self.by != RolesBy::FirstPacket {
            return;
        }
        if let Some(server) = server_by_ports(self.ports) {
            self.client = server.other();
            self.by = RolesBy::Port;
        }
    }
}

/// Which side is the server from the ports alone: the only one on a
/// well-known server port, else the only one below 1024.
fn server_by_ports([a, b]: [u16; 2]) -> Option<Side> {
    let one = |f: &dyn Fn(u16) -> bool| match (f(a), f(b)) {
        (true, false) => Some(Side::First),
        (false, true) => Some(Side::Second),
        _ => None,
    };
    one(&|p| SERVER_PORTS.contains(&p)).or_else(|| one(&|p| p < 1024))
}

/// What a side's bytes say about its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Evidence {
    /// The sender is the client (else the server).
    pub client: bool,
    /// What said so, for a conflict's report.
    pub what: &'static str,
}

impl Evidence {
    fn new(client: bool, what: &'static str) -> Evidence {
        Evidence { client, what }
    }
}

/// What the sender of `first` (a direction's first bytes from where its
/// protocol starts) is, when the protocol says.
pub(super) fn evidence(proto: Protocol, first: &[u8]) -> Option<Evidence> {
    match proto {
        Protocol::Longlink => longlink_sender_is_client(first).map(|c| {
            let what = if c {
                "long-link requests"
            } else {
                "a long-link response or push"
            };
            Evidence::new(c, what)
        }),
        Protocol::Http if first.starts_with(b"HTTP/") => {
            Some(Evidence::new(false, "an HTTP status line"))
        }
        Protocol::Http if first.starts_with(b"PRI ") => {
            Some(Evidence::new(true, "the HTTP/2 client preface"))
        }
        Protocol::Http if crate::proto::h2::looks_like_server_start(first) => {
            Some(Evidence::new(false, "an HTTP/2 server's first SETTINGS"))
        }
        Protocol::Http => Some(Evidence::new(true, "an HTTP request line")),
        Protocol::Mmtls => mmtls_hello(first).map(|c| {
            let what = if c {
                "an MMTLS ClientHello"
            } else {
                "an MMTLS ServerHello"
            };
            Evidence::new(c, what)
        }),
        Protocol::Unknown | Protocol::Tls => tls_hello(first).map(|c| {
            let what = if c {
                "a TLS ClientHello"
            } else {
                "a TLS ServerHello"
            };
            Evidence::new(c, what)
        }),
        Protocol::Mars => None,
    }
}

/// What a long-link frame says about its sender, once paired (`kind`: a
/// Mars echo is a response): a response comes from the server, the
/// identify from the client. (Requests and heartbeats say little more: a
/// Mars server sends noops too.)
pub(super) fn frame_evidence(h: &Header, kind: Kind) -> Option<Evidence> {
    match kind {
        Kind::Response => Some(Evidence::new(false, "a long-link response")),
        Kind::Request if h.cmd == IDENTIFY && h.seq == SEQ_IDENTIFY => {
            Some(Evidence::new(true, "a long-link identify"))
        }
        _ => None,
    }
}

/// The first long-link frame that tells: requests, heartbeats and identify
/// come from the client, responses and pushes from the server. A noop
/// (cmd 6) is also a Mars server's echo, so the next frame is looked at;
/// noops alone are taken for the client's.
fn longlink_sender_is_client(mut b: &[u8]) -> Option<bool> {
    let mut noop = false;
    while let Ok(h) = Header::parse(b) {
        let client = if h.cmd >= RESPONSE_OFFSET || h.seq == SEQ_PUSH {
            Some(false)
        } else if h.seq == SEQ_HEARTBEAT || (h.cmd == IDENTIFY && h.seq == SEQ_IDENTIFY) {
            Some(true)
        } else if h.cmd == NOOP {
            None
        } else {
            Some(true)
        };
        if client.is_some() {
            return client;
        }
        noop = true;
        match b.get(h.len as usize..) {
            Some(rest) => b = rest,
            None => break,
        }
    }
    noop.then_some(true)
}

/// A TLS handshake record (type 0x16, version 3.x) whose first message is
/// a ClientHello (1, from the client) or a ServerHello (2, from the server).
fn tls_hello(b: &[u8]) -> Option<bool> {
    match b {
        [0x16, 0x03, 0..=4, _, _, 1, ..] => Some(true),
        [0x16, 0x03, 0..=4, _, _, 2, ..] => Some(false),
        _ => None,
    }
}

/// A cleartext hello in a handshake record: ClientHello (1) from the
/// client, ServerHello (2) from the server.
fn mmtls_hello(b: &[u8]) -> Option<bool> {
    let typ = mmtls::RecordType(*b.first()?);
    if typ != mmtls::RecordType::HANDSHAKE && typ != mmtls::RecordType::RESUMPTION_HANDSHAKE {
        return None;
    }
    match b.get(mmtls::HEADER_LEN..)? {
        [_, _, _, _, 1, 0x04, 0xf1, ..] => Some(true),
        [_, _, _, _, 2, 0x04, 0xf1, ..] => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::commands::{response, NEWNOTIFY, NEWSYNC};

    #[test]
    fn long_link_frames() {
        let f = |cmd, seq| Header::new(cmd, seq, 0).emit().to_vec();
        let ll = |b: &[u8]| longlink_sender_is_client(b);
        assert_eq!(ll(&f(NEWSYNC, 7)), Some(true));
        assert_eq!(ll(&f(response(NEWSYNC), 7)), Some(false));
        assert_eq!(ll(&f(NEWNOTIFY, SEQ_PUSH)), Some(false));
        assert_eq!(ll(&f(IDENTIFY, SEQ_IDENTIFY)), Some(true));
        assert_eq!(ll(&f(NOOP, SEQ_HEARTBEAT)), Some(true));
        // A noop then a response: a Mars server echoing.
        assert_eq!(
            ll(&[f(NOOP, 3), f(response(NEWSYNC), 4)].concat()),
            Some(false)
        );
        assert_eq!(ll(&f(NOOP, 3)), Some(true));
        assert_eq!(ll(b"garbage, not a header"), None);
    }

    fn sender_is_client(proto: Protocol, first: &[u8]) -> Option<bool> {
        evidence(proto, first).map(|e| e.client)
    }

    #[test]
    fn http_and_mmtls() {
        assert_eq!(
            sender_is_client(Protocol::Http, b"HTTP/1.1 200 OK\r\n"),
            Some(false)
        );
        assert_eq!(
            sender_is_client(Protocol::Http, b"POST /cgi-bin/x HTTP/1.1\r\n"),
            Some(true)
        );
        let hello = |t| [0x16, 0xf1, 0x04, 0, 9, 0, 0, 0, 5, t, 0x04, 0xf1, 0, 0];
        assert_eq!(mmtls_hello(&hello(1)), Some(true));
        assert_eq!(mmtls_hello(&hello(2)), Some(false));
        assert_eq!(mmtls_hello(&[0x17, 0xf1, 0x04, 0, 20, 1, 2, 3]), None);
    }

    #[test]
    fn tls_hellos() {
        // Record header (handshake, TLS 1.0/1.2 record version, length),
        // then the handshake type.
        let hello = |v: u8, t: u8| [0x16, 0x03, v, 0x02, 0x00, t, 0x00, 0x01, 0xfc];
        assert_eq!(
            sender_is_client(Protocol::Unknown, &hello(1, 1)),
            Some(true)
        );
        assert_eq!(
            sender_is_client(Protocol::Unknown, &hello(3, 2)),
            Some(false)
        );
        // Another handshake message, another record type, or no TLS.
        assert_eq!(sender_is_client(Protocol::Unknown, &hello(3, 11)), None);
        assert_eq!(
            sender_is_client(Protocol::Unknown, &[0x17, 0x03, 0x03, 0, 5, 1]),
            None
        );
        assert_eq!(sender_is_client(Protocol::Unknown, b"SSH-2.0-x"), None);
        assert_eq!(sender_is_client(Protocol::Unknown, &[0x16, 0x03]), None);
    }

    #[test]
    fn conflicts_only_with_inferred_roles() {
        use Direction::{ClientToServer as C2S, ServerToClient as S2C};
        for by in [RolesBy::Protocol, RolesBy::Port] {
            assert!(Roles::contradicted(by, C2S, false), "{by}");
            assert!(Roles::contradicted(by, S2C, true), "{by}");
            assert!(!Roles::contradicted(by, C2S, true), "{by}");
            assert!(!Roles::contradicted(by, S2C, false), "{by}");
        }
        for by in [RolesBy::Syn, RolesBy::Synack, RolesBy::FirstPacket] {
            assert!(!Roles::contradicted(by, C2S, false), "{by}");
        }
        let resp = Header::new(response(NEWSYNC), 3, 0);
        assert_eq!(
            frame_evidence(&resp, Kind::Response).map(|e| e.client),
            Some(false)
        );
        let id = Header::new(IDENTIFY, SEQ_IDENTIFY, 0);
        assert_eq!(
            frame_evidence(&id, Kind::Request).map(|e| e.client),
            Some(true)
        );
        let sync = Header::new(NEWSYNC, 3, 0);
        assert_eq!(frame_evidence(&sync, Kind::Request), None);
    }

    #[test]
    fn ports() {
        assert_eq!(server_by_ports([8080, 45475]), Some(Side::First));
        assert_eq!(server_by_ports([45475, 443]), Some(Side::Second));
        assert_eq!(server_by_ports([50000, 993]), Some(Side::Second));
        assert_eq!(server_by_ports([50000, 50001]), None);
        assert_eq!(server_by_ports([80, 443]), None);
    }
}
