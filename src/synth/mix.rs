//! A capture that looks like real use, for the throughput benches and tests:
//! about 50 long-link connections that live for the whole capture, each
//! opening with manualauth and identify, then heartbeats every few seconds
//! (answered Mars-style, cmd 6 echoed with the same seq, on some connections
//! and with cmd 1000000006 on the others), newsendmsg exchanges, and newnotify
//! pushes each followed by a newsync whose response is large (tens of KB to
//! about 1 MB, over many segments of mixed sizes). Connections interleave in
//! capture time; a few segments are retransmitted or arrive swapped with the
//! next one (never lost: every byte is in the capture, so reassembly has no
//! gaps). Once a third of the file is written, a SYN scan burst (SYN-only
//! connections to random ports, half answered with RST); along the way, a
//! couple of short-lived HTTP connections (one short-link POST each).
//!
//! Bodies are built with the project's codecs (`proto::longlink::encode`,
//! `proto::commands`, `body::messages`, `body::identify`, `proto::http`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use prost::Message;

use super::{Conversation, Frame, Side, XorShift};
use crate::body::identify::{Identify, Tail};
use crate::body::messages::{
    AddMsg, BaseResponse, CmdItem, CmdList, ManualAuthRequest, ManualAuthResponse,
    MicroMsgRequestNew, MicroMsgResponseNew, NewSendMsgRequest, NewSendMsgResponse, NewSyncRequest,
    NewSyncResponse, SkBuiltinBuffer, SkBuiltinString, CMDID_ADDMSG,
};
use crate::body::synckey::SyncKey;
use crate::capture::writer::PcapWriter;
use crate::capture::{Linktype, Timestamp};
use crate::proto::commands::{
    response, IDENTIFY, MANUALAUTH, NEWNOTIFY, NEWSENDMSG, NEWSYNC, NOOP, SEQ_HEARTBEAT,
    SEQ_IDENTIFY, SEQ_PUSH,
};
use crate::proto::{http, longlink};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Params {
    /// Target size of the pcap in bytes (the last exchange may pass it by
    /// up to one newsync response).
    pub bytes: u64,
    /// Long-link connections (all open for the whole capture).
    pub conns: usize,
    pub port: u16,
    pub seed: u64,
    /// SYN-only connections of the scan burst.
    pub scan_syns: usize,
    /// Short-lived HTTP connections (port 80).
    pub http_conns: usize,
    /// Largest newsync response body (the smallest is 16 KiB, or this when smaller).
    pub sync_max: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            bytes: 1 << 30,
            conns: 50,
            port: 8080,
            seed: 1,
            scan_syns: 3000,
            http_conns: 2,
            sync_max: 1 << 20,
        }
    }
}

/// One connection that carries data, and the TCP payload bytes it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnTotals {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Client -> server and server -> client.
    pub payload: [u64; 2],
}

/// What was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub packets: u64,
    pub pcap_bytes: u64,
    /// Long-link frames.
    pub messages: u64,
    /// Heartbeats sent, and how many of them the server echoed Mars-style
    /// (cmd 6 with the same seq: a second "request" for a pairing tracker).
    pub noops: u64,
    pub noop_echoes: u64,
    pub pushes: u64,
    pub sends: u64,
    /// newsync response body bytes.
    pub sync_bytes: u64,
    /// Segments sent twice, segments swapped with the next one.
    pub retransmits: u64,
    pub reordered: u64,
    pub scan_syns: u64,
    /// Every connection with data: long link first, then HTTP.
    pub conns: Vec<ConnTotals>,
}

/// 2024-01-01T00:00:00Z.
const START_SECS: i64 = 1_704_067_200;
/// One segment in this many is sent again; one in REORDER swapped with the next.
const RETX: u64 = 400;
const REORDER: u64 = 300;
const MS: u64 = 1000;
const SEC: u64 = 1_000_000;

/// One long-link connection being generated.
struct Long {
    conv: Conversation,
    /// Answers heartbeats with cmd 6 (Mars-style echo) instead of 1000000006.
    mars: bool,
    /// Largest segment payload (MSS, or several with receive offload).
    seg_max: usize,
    /// Round-trip time, microseconds.
    rtt: u64,
    seq: u32,
    uin: u32,
    synckey: SyncKey,
    msg_id: i32,
    started: bool,
    /// Capture time (microseconds) when its last packet so far goes out.
    busy: u64,
    next_hb: u64,
    next_send: u64,
    next_push: u64,
    payload: [u64; 2],
}

impl Long {
    fn next_action(&self) -> u64 {
        if !self.started {
            return self.next_push;
        }
        self.next_hb.min(self.next_send).min(self.next_push)
    }

    fn take_seq(&mut self) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        if self.seq >= SEQ_IDENTIFY {
            self.seq = 1;
        }
        s
    }
}

/// Packets waiting for their time, written in time order.
struct Gen<'a, W: Write> {
    w: PcapWriter<&'a mut W>,
    rng: XorShift,
    /// (time, insertion number, frame): the number keeps equal times in order.
    heap: BinaryHeap<Reverse<(u64, u64, Frame)>>,
    n: u64,
    totals: Totals,
    /// Printable text that message contents are cut from.
    text: Vec<u8>,
}

fn idx(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

fn peer(side: Side) -> Side {
    match side {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    }
}

fn text_pool(rng: &mut XorShift) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "ok",
        "hello",
        "see you",
        "tomorrow",
        "lunch?",
        "on my way",
        "haha",
        "photo",
        "meeting",
        "call me",
        "thanks",
        "the file",
        "where",
        "now",
        "good night",
        "weixin",
        "sync",
    ];
    let mut t = Vec::with_capacity(64 << 10);
    while t.len() < 64 << 10 {
        t.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
        t.push(b' ');
    }
    t
}

impl<W: Write> Gen<'_, W> {
    fn at(&mut self, t: u64, frame: Frame) {
        self.totals.packets += 1;
        self.totals.pcap_bytes += 16 + frame.len() as u64;
        self.heap.push(Reverse((t, self.n, frame)));
        self.n += 1;
    }

    /// Writes every packet due at or before `t`.
    fn flush(&mut self, t: u64) -> io::Result<()> {
        while self.heap.peek().is_some_and(|Reverse((pt, _, _))| *pt <= t) {
            let Reverse((pt, _, f)) = self.heap.pop().expect("peeked");
            let ts = Timestamp::new(
                START_SECS + (pt / SEC) as i64,
                ((pt % SEC) * 1000) as u32,
                6,
            );
            self.w.write(ts, &f, None)?;
        }
        Ok(())
    }

    fn content(&mut self, len: usize) -> String {
        let at = self.rng.below((self.text.len() - len) as u64) as usize;
        String::from_utf8_lossy(&self.text[at..at + len]).into_owned()
    }

    /// `data` from `side` from time `t` on: segments of mixed sizes up to
    /// `seg_max`, an ACK from the peer every second segment and after the
    /// last; now and then a segment twice or two segments swapped. Returns
    /// the time of the last packet.
    fn stream(
        &mut self,
        conv: &mut Conversation,
        seg_max: usize,
        side: Side,
        mut t: u64,
        data: &[u8],
    ) -> u64 {
        let i = idx(side);
        // Microseconds between segments: the server's answers are the long ones.
        let (lo, hi) = if side == Side::Server {
            (60, 400)
        } else {
            (20, 120)
        };
        let mut held: Option<Frame> = None;
        let mut unacked = 0;
        let mut off = 0;
        while off < data.len() {
            let mut n = seg_max.min(data.len() - off);
            if self.rng.below(8) == 0 {
                n = 1 + self.rng.below(n as u64) as usize;
            }
            let last = off + n == data.len();
            let f = conv.segment(
                side,
                conv.seq[i],
                if last { "PA" } else { "A" },
                &data[off..off + n],
            );
            conv.seq[i] = conv.seq[i].wrapping_add(n as u32);
            off += n;
            t += self.rng.range(lo, hi);
            if held.is_none() && !last && self.rng.below(REORDER) == 0 {
                self.totals.reordered += 1;
                held = Some(f);
                continue;
            }
            let again = (self.rng.below(RETX) == 0).then(|| f.clone());
            self.at(t, f);
            if let Some(h) = held.take() {
                t += self.rng.range(lo, hi);
                self.at(t, h);
            }
            if let Some(f) = again {
                self.totals.retransmits += 1;
                t += self.rng.range(lo, hi);
                self.at(t, f);
            }
            unacked += 1;
            if unacked >= 2 || last {
                unacked = 0;
                t += self.rng.range(5, 40);
                let ack = conv.segment(peer(side), conv.seq[1 - i], "A", b"");
                self.at(t, ack);
            }
        }
        t
    }

    /// One long-link frame from `side` at `t`; returns the time of its last packet.
    fn frame(&mut self, c: &mut Long, side: Side, t: u64, cmd: u32, seq: u32, body: &[u8]) -> u64 {
        let msg = longlink::encode(cmd, seq, body);
        c.payload[idx(side)] += msg.len() as u64;
        self.totals.messages += 1;
        self.stream(&mut c.conv, c.seg_max, side, t, &msg)
    }

    /// A request at `t` and its response after `think` microseconds plus
    /// the round trip; returns the time of the last packet.
    fn exchange(
        &mut self,
        c: &mut Long,
        t: u64,
        seq: u32,
        req: (u32, &[u8]),
        resp: (u32, &[u8]),
        think: u64,
    ) -> u64 {
        let t = self.frame(c, Side::Client, t, req.0, seq, req.1);
        let t = t + c.rtt + think;
        self.frame(c, Side::Server, t, resp.0, seq, resp.1)
    }

    fn open(&mut self, c: &mut Long, t: u64) -> u64 {
        let hs = c.conv.handshake();
        let mut t = t;
        for (k, f) in hs.into_iter().enumerate() {
            if k > 0 {
                t += c.rtt / 2;
            }
            self.at(t, f);
        }
        let user = format!("wxid_{:08x}", c.uin);
        let auth = ManualAuthRequest {
            user_name: Some(SkBuiltinString::new(user)),
            device_id: Some(format!("A{:015x}", self.rng.next() >> 4)),
            client_version: Some(0x2800_0000 + self.rng.below(0x100) as u32),
            password: None,
        };
        let key: Vec<u8> = (0..32).map(|_| self.rng.next() as u8).collect();
        let auth_resp = ManualAuthResponse {
            base_response: Some(BaseResponse::error(0, "")),
            uin: Some(c.uin),
            auto_auth_key: Some(key),
        };
        let seq = c.take_seq();
        let think = self.rng.range(20 * MS, 120 * MS);
        t = self.exchange(
            c,
            t + 200,
            seq,
            (MANUALAUTH, &auth.encode_to_vec()),
            (response(MANUALAUTH), &auth_resp.encode_to_vec()),
            think,
        );
        let sk = c.synckey.encode();
        let ident = Identify {
            uin: c.uin,
            synckey_len: sk.len() as u32,
            synckey: c.synckey.clone(),
            synckey_count: Some(c.synckey.keys.len() as u32),
            client_version: 0x2800_0000,
            locale: "zh_CN".into(),
            tail_words: Vec::new(),
            network_id: None,
            network_id_ctx: None,
            tail_fully_parsed: true,
            tail: Vec::new(),
        };
        let ident_resp = Tail {
            words: vec![0, c.uin, 1, 0],
            ..Tail::default()
        };
        let think = self.rng.range(2 * MS, 20 * MS);
        self.exchange(
            c,
            t + 500,
            SEQ_IDENTIFY,
            (IDENTIFY, &ident.encode()),
            (response(IDENTIFY), &ident_resp.encode()),
            think,
        )
    }

    fn heartbeat(&mut self, c: &mut Long, t: u64) -> u64 {
        self.totals.noops += 1;
        let answer = if c.mars {
            self.totals.noop_echoes += 1;
            NOOP
        } else {
            response(NOOP)
        };
        let think = self.rng.range(MS, 5 * MS);
        self.exchange(c, t, SEQ_HEARTBEAT, (NOOP, &[]), (answer, &[]), think)
    }

    fn send(&mut self, c: &mut Long, t: u64) -> u64 {
        self.totals.sends += 1;
        let len = self.rng.range(2, 400) as usize;
        let to = format!("wxid_{:08x}", self.rng.next() as u32);
        let id = self.rng.next() >> 1;
        let now = (START_SECS as u64 + t / SEC) as u32;
        let req = NewSendMsgRequest {
            count: Some(1),
            list: vec![MicroMsgRequestNew {
                to_user_name: Some(SkBuiltinString::new(to.clone())),
                content: Some(self.content(len)),
                msg_type: Some(1),
                create_time: Some(now),
                client_msg_id: Some(id),
            }],
        };
        c.msg_id += 1;
        let resp = NewSendMsgResponse {
            base_response: Some(BaseResponse::error(0, "")),
            count: Some(1),
            list: vec![MicroMsgResponseNew {
                ret: Some(0),
                to_user_name: Some(SkBuiltinString::new(to)),
                msg_id: Some(c.msg_id as u32),
                client_msg_id: Some(id),
                create_time: Some(now),
                server_time: Some(now),
                msg_type: Some(1),
                new_msg_id: Some(self.rng.next() >> 1),
            }],
        };
        let seq = c.take_seq();
        let think = self.rng.range(5 * MS, 60 * MS);
        self.exchange(
            c,
            t,
            seq,
            (NEWSENDMSG, &req.encode_to_vec()),
            (response(NEWSENDMSG), &resp.encode_to_vec()),
            think,
        )
    }

    /// newnotify, then the client's newsync and its large response.
    fn push(&mut self, c: &mut Long, t: u64, sync_max: usize) -> u64 {
        self.totals.pushes += 1;
        let t = self.frame(c, Side::Server, t, NEWNOTIFY, SEQ_PUSH, &[]);
        let req = NewSyncRequest {
            oplog: Some(CmdList {
                count: Some(0),
                list: Vec::new(),
            }),
            selector: Some(7),
            key_buf: Some(SkBuiltinBuffer::new(c.synckey.encode())),
            scene: Some(7),
            device_type: Some("android-29".into()),
        };
        // Log-uniform size between 16 KiB and sync_max.
        let lo = (16usize << 10).min(sync_max).max(1) as f64;
        let f = self.rng.below(1 << 20) as f64 / (1 << 20) as f64;
        let want = (lo * (sync_max as f64 / lo).powf(f)) as usize;
        let mut list = Vec::new();
        let mut size = 0;
        let now = (START_SECS as u64 + t / SEC) as u32;
        while size < want {
            c.msg_id += 1;
            let len = self.rng.range(20, 3000) as usize;
            let m = AddMsg {
                msg_id: Some(c.msg_id),
                from_user_name: Some(SkBuiltinString::new(format!(
                    "wxid_{:08x}",
                    self.rng.next() as u32
                ))),
                to_user_name: Some(SkBuiltinString::new(format!("wxid_{:08x}", c.uin))),
                msg_type: Some(1),
                content: Some(SkBuiltinString::new(self.content(len))),
                create_time: Some(now),
                new_msg_id: Some((self.rng.next() >> 1) as i64),
                client_msg_id: None,
                msg_seq: None,
            };
            let item = CmdItem {
                cmd_id: Some(CMDID_ADDMSG),
                cmd_buf: Some(SkBuiltinBuffer::new(m.encode_to_vec())),
            };
            size += item.encoded_len() + 3;
            list.push(item);
        }
        for (_, v) in c.synckey.keys.iter_mut() {
            *v += 1 + self.rng.below(3);
        }
        let resp = NewSyncResponse {
            ret: Some(0),
            cmd_list: Some(CmdList {
                count: Some(list.len() as u32),
                list,
            }),
            continue_flag: Some(0),
            key_buf: Some(SkBuiltinBuffer::new(c.synckey.encode())),
            status: Some(0),
        };
        let body = resp.encode_to_vec();
        self.totals.sync_bytes += body.len() as u64;
        let seq = c.take_seq();
        let react = self.rng.range(5 * MS, 50 * MS) + c.rtt / 2;
        let think = self.rng.range(10 * MS, 100 * MS);
        self.exchange(
            c,
            t + react,
            seq,
            (NEWSYNC, &req.encode_to_vec()),
            (response(NEWSYNC), &body),
            think,
        )
    }

    /// `n` SYNs from one scanner to random ports of `server`'s address, half answered with RST.
    fn scan(&mut self, server: IpAddr, n: usize, mut t: u64) {
        let scanner = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 66));
        for k in 0..n {
            let dport = 1 + self.rng.below(65_535) as u16;
            let client = SocketAddr::new(scanner, 50_000 + (k % 15_000) as u16);
            let mut conv = Conversation::new(
                client,
                SocketAddr::new(server, dport),
                self.rng.next() as u32,
                0,
            );
            t += self.rng.range(50, 300);
            let syn = conv.segment(Side::Client, conv.seq[0], "S", b"");
            self.at(t, syn);
            self.totals.scan_syns += 1;
            if self.rng.below(2) == 0 {
                conv.seq[0] = conv.seq[0].wrapping_add(1);
                let rst = conv.segment(Side::Server, 0, "RA", b"");
                let later = t + self.rng.range(200, 2000);
                self.at(later, rst);
            }
        }
    }

    /// One short-lived HTTP connection: handshake, a short-link POST, its answer, FIN.
    fn http(&mut self, k: usize, server: IpAddr, t: u64) -> ConnTotals {
        let client = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(192, 168, 200, 1 + k as u8)),
            51_000 + k as u16,
        );
        let server = SocketAddr::new(server, 80);
        let mut conv = Conversation::new(
            client,
            server,
            self.rng.next() as u32,
            self.rng.next() as u32,
        );
        let rtt = self.rng.range(20 * MS, 80 * MS);
        let mut t = t;
        for (j, f) in conv.handshake().into_iter().enumerate() {
            if j > 0 {
                t += rtt / 2;
            }
            self.at(t, f);
        }
        let body = NewSyncRequest {
            selector: Some(7),
            scene: Some(3),
            ..NewSyncRequest::default()
        }
        .encode_to_vec();
        let len = body.len().to_string();
        let req = http::message::encode_request(
            "POST",
            "/cgi-bin/micromsg-bin/newsync",
            &[
                ("Host", "short.weixin.qq.com"),
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &len),
                ("Connection", "close"),
            ],
            &body,
        );
        let rbody = NewSyncResponse {
            ret: Some(0),
            continue_flag: Some(0),
            ..NewSyncResponse::default()
        }
        .encode_to_vec();
        let rlen = rbody.len().to_string();
        let resp = http::message::encode_response(
            200,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &rlen),
                ("Connection", "close"),
            ],
            &rbody,
        );
        let mss = conv.mss;
        t = self.stream(&mut conv, mss, Side::Client, t + 100, &req);
        t = self.stream(&mut conv, mss, Side::Server, t + rtt, &resp);
        for f in conv.close() {
            t += rtt / 2;
            self.at(t, f);
        }
        ConnTotals {
            client,
            server,
            payload: [req.len() as u64, resp.len() as u64],
        }
    }
}

/// Streams the capture into `out` (classic pcap, Ethernet, microseconds).
/// The same `p` always gives the same bytes.
pub fn generate<W: Write>(out: &mut W, p: &Params) -> io::Result<Totals> {
    let mut rng = XorShift::new(p.seed ^ 0x004D_4958);
    let server_ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
    let server = SocketAddr::new(server_ip, p.port);
    let n = p.conns.max(1);
    let mut conns: Vec<Long> = (0..n)
        .map(|i| {
            let client = SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(10, (i / 250) as u8, (i % 250) as u8 + 1, 2)),
                30_000 + rng.below(30_000) as u16,
            );
            let mut conv = Conversation::new(client, server, rng.next() as u32, rng.next() as u32);
            conv.mss = [1448, 1400, 1360][rng.below(3) as usize];
            // Most captures see MSS-sized segments; some see receive offload.
            let seg_max = match rng.below(4) {
                0 => conv.mss * (2 + rng.below(8) as usize),
                _ => conv.mss,
            };
            let keys = (1..=8)
                .map(|k| (k as u32, 1_000_000 + rng.below(1_000_000)))
                .collect();
            Long {
                conv,
                mars: rng.below(2) == 0,
                seg_max: seg_max.min(60_000),
                rtt: rng.range(20 * MS, 250 * MS),
                seq: 1 + rng.below(1000) as u32,
                uin: 0x1000_0000 + rng.below(0x7000_0000) as u32,
                synckey: SyncKey { keys },
                msg_id: 0,
                started: false,
                busy: 0,
                next_hb: 0,
                next_send: 0,
                // Before it starts: when it opens (within the first 2 s).
                next_push: rng.below(2 * SEC),
                payload: [0, 0],
            }
        })
        .collect();
    let mut g = Gen {
        w: PcapWriter::new(out, Linktype::ETHERNET, false)?,
        text: text_pool(&mut rng),
        rng,
        heap: BinaryHeap::new(),
        n: 0,
        totals: Totals {
            pcap_bytes: 24,
            ..Totals::default()
        },
    };
    // Room for the closes at the end.
    let reserve = n as u64 * 3 * 80;
    let mut scanned = p.scan_syns == 0;
    let mut https = Vec::new();
    let mut now = 0;
    loop {
        let (ci, t) = conns
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.next_action().max(c.busy)))
            .min_by_key(|&(i, t)| (t, i))
            .expect("at least one connection");
        g.flush(t)?;
        now = now.max(t);
        let written = g.totals.pcap_bytes + reserve;
        if written >= p.bytes {
            break;
        }
        if !scanned && written >= p.bytes / 3 {
            scanned = true;
            g.scan(server_ip, p.scan_syns, t);
            continue;
        }
        if https.len() < p.http_conns
            && written >= p.bytes / (p.http_conns as u64 + 1) * (https.len() as u64 + 1)
        {
            let h = g.http(https.len(), server_ip, t);
            https.push(h);
            continue;
        }
        let c = &mut conns[ci];
        let end = if !c.started {
            c.started = true;
            let end = g.open(c, t);
            c.next_hb = end + g.rng.range(2 * SEC, 6 * SEC);
            c.next_send = end + g.rng.range(200 * MS, 4 * SEC);
            c.next_push = end + g.rng.range(100 * MS, 3 * SEC);
            end
        } else if c.next_hb <= c.next_send && c.next_hb <= c.next_push {
            let end = g.heartbeat(c, t);
            c.next_hb = t + g.rng.range(2 * SEC, 6 * SEC);
            end
        } else if c.next_send <= c.next_push {
            let end = g.send(c, t);
            c.next_send = t + g.rng.range(200 * MS, 4 * SEC);
            end
        } else {
            let end = g.push(c, t, p.sync_max);
            c.next_push = t + g.rng.range(SEC, 6 * SEC);
            end
        };
        c.busy = end + 1;
    }
    // Close every connection that opened once its traffic is out.
    for c in conns.iter_mut().filter(|c| c.started) {
        let mut t = c.busy.max(now) + g.rng.range(MS, 50 * MS);
        for f in c.conv.close() {
            g.at(t, f);
            t += c.rtt / 2;
        }
    }
    g.flush(u64::MAX)?;
    let mut totals = g.totals;
    totals.conns = conns
        .iter()
        .filter(|c| c.started)
        .map(|c| ConnTotals {
            client: c.conv.client,
            server: c.conv.server,
            payload: c.payload,
        })
        .collect();
    totals.conns.extend(https);
    g.w.into_inner().flush()?;
    Ok(totals)
}
