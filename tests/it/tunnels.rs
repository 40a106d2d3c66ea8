//! Tunnels and other link layers on nDPI's captures (`../shared/corpus/ndpi`)
//! and on built ones: every capture reads, the tunnel of a connection is
//! shown, and the same inner 4-tuple in two tunnels is two connections.

use std::process::{Command, Output};

use serde_json::Value;
use syncscope::capture::Reader;
use syncscope::flow::{self, FlowMeta, FlowSummary, Side, Sink};
use syncscope::pipeline;
use syncscope::reassembly::Event;

use crate::common::{pcap_of, shared};

fn ndpi(name: &str) -> String {
    shared()
        .join("corpus/ndpi")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn syncscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syncscope"))
        .args(args)
        .env_remove("COLUMNS")
        .output()
        .expect("run syncscope")
}

fn flows_json(path: &str) -> (Vec<Value>, String) {
    let o = syncscope(&["flows", path, "--format", "json"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    (serde_json::from_slice(&o.stdout).unwrap(), err)
}

/// Counts connections, nothing more.
#[derive(Default)]
struct Count(u64);

impl Sink for Count {
    fn event(&mut self, _: &FlowMeta, _: Side, _: Event<'_>) {}
    fn flow_end(&mut self, _: &FlowSummary) {
        self.0 += 1;
    }
}

/// Every capture of the corpus reads to its end (or to the damage that
/// stops it) without a panic, and every link type in it is one we decode.
#[test]
fn every_ndpi_capture_reads_and_every_link_type_is_known() {
    let dir = shared().join("corpus/ndpi");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e != "md"))
        .collect();
    files.sort();
    assert!(files.len() >= 540, "the whole corpus: {}", files.len());
    let (mut tunnelled, mut read) = (0, 0);
    for path in files {
        let Ok(mut reader) = Reader::open(&path) else {
            continue; // refused at the start, as tshark refuses it
        };
        read += 1;
        let mut sink = Count::default();
        let s = pipeline::run(&mut reader, flow::Config::default(), &mut sink, |_| {});
        assert_eq!(
            s.wire.unknown_linktype,
            0,
            "{}: {:?}",
            path.display(),
            s.linktypes
        );
        assert_eq!(sink.0, s.flows.flows);
        if !s.wire.encapsulations.is_empty() {
            tunnelled += 1;
        }
    }
    assert!(read >= 530, "{read} captures read");
    assert!(tunnelled >= 15, "{tunnelled} captures with encapsulations");
}

#[test]
fn gtpu_connections_show_their_tunnel_and_teids() {
    let (flows, err) = flows_json(&ndpi("rtmp.pcap"));
    assert_eq!(flows.len(), 3);
    assert!(flows[0].get("tunnel").is_none(), "plain TCP has no tunnel");
    let t = &flows[1]["tunnel"];
    assert_eq!(t["kind"], "gtp-u");
    assert_eq!(
        (t["client"].as_str(), t["server"].as_str()),
        (Some("10.134.25.76"), Some("10.132.15.176"))
    );
    assert_eq!(t["c2s_id"], 0x014C_C10C);
    assert!(t["s2c_id"].as_u64().is_some_and(|id| id != 0x014C_C10C));
    assert_eq!(t["depth"], 1);
    // tshark -Y gtp counts 34 frames too.
    assert!(err.contains("frames decapsulated: gtp-u 34"), "{err}");
    // The table shows it in a column of its own when there is room.
    let o = syncscope(&["flows", &ndpi("rtmp.pcap"), "--wide"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("gtp-u 10.134.25.76-10.132.15.176 teid 0x14cc10c/0x"),
        "{table}"
    );
    // No tunnel, no column.
    let o = syncscope(&["flows", &ndpi("BGP_redist.pcap"), "--wide"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(!table.contains("tunnel"), "{table}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("frames decapsulated: mpls 1"));
}

#[test]
fn vxlan_capwap_ip_in_ip_and_cisco_hdlc_from_the_corpus() {
    for (file, kind, id) in [
        ("vxlan.pcap", "vxlan", Some(1111)), // tshark: vxlan.vni 1111
        ("capwap_data.pcapng", "capwap", None),
        ("4in6tunnel.pcap", "ip-in-ip", None),
        ("6in4tunnel.pcap", "ip-in-ip", None),
    ] {
        let (flows, _) = flows_json(&ndpi(file));
        assert!(!flows.is_empty(), "{file}");
        for f in &flows {
            assert_eq!(f["tunnel"]["kind"], kind, "{file}");
            assert_eq!(f["tunnel"]["c2s_id"].as_u64(), id, "{file}");
        }
    }
    // Cisco HDLC (link type 104) and under PPP's link type (9).
    for file in ["BGP_redist.pcap", "BGP_Cisco_hdlc_slarp.pcap"] {
        let (flows, _) = flows_json(&ndpi(file));
        assert!(!flows.is_empty(), "{file}");
        assert!(flows.iter().all(|f| f["c2s"]["bytes"].as_u64() > Some(0)));
    }
}

/// Frames taken out of each encapsulation, as tshark counts the frames whose
/// `frame.protocols` hold it (`gre`, `pppoes`, `gtp` G-PDUs, `capwap.data`,
/// `vxlan`, `mpls`, `ipv6` under `ip`): the same frames, TCP or not.
#[test]
fn encapsulations_are_counted_as_tshark_counts_them() {
    for (file, want) in [
        ("gre.pcapng", &[("gre", 1)][..]),
        ("discord_mid_flow.pcap", &[("pppoe", 40)]),
        ("syslog.pcap", &[("ip-in-ip", 6), ("pppoe", 6)]),
        ("zoom.pcap", &[("gtp-u", 81)]),
        ("ipv6_in_gtp.pcap", &[("gtp-u", 2)]),
        ("capwap.pcap", &[("capwap", 173)]),
        ("vxlan.pcap", &[("vxlan", 127)]),
        ("BGP_redist.pcap", &[("mpls", 1)]),
        // A GTP control message (version not supported) is not a G-PDU.
        ("gtp_false_positive.pcapng", &[]),
    ] {
        let mut reader = Reader::open(std::path::Path::new(&ndpi(file))).unwrap();
        let s = pipeline::run(
            &mut reader,
            flow::Config::default(),
            &mut Count::default(),
            |_| {},
        );
        let got: Vec<(&str, u64)> = s
            .wire
            .encapsulations
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        assert_eq!(got, want, "{file}");
    }
}

/// An Ethernet frame with IPv4 from `outer_src` to `outer_dst`, UDP 2152 and
/// a G-PDU with `teid` around `inner` (an IPv4 packet).
fn gtpu(outer_src: [u8; 4], outer_dst: [u8; 4], teid: u32, inner: &[u8]) -> Vec<u8> {
    let mut gtp = vec![0x30, 0xFF];
    gtp.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    gtp.extend_from_slice(&teid.to_be_bytes());
    gtp.extend_from_slice(inner);
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(outer_src, outer_dst, 64)
        .udp(2152, 2152)
        .write(&mut v, &gtp)
        .unwrap();
    v
}

fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, seq: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ipv4(src, dst, 64)
        .tcp(sport, dport, seq, 1000)
        .write(&mut v, data)
        .unwrap();
    v
}

/// Two UEs behind different base stations with the same private address
/// and port talk to the same server: two connections, each with its tunnel.
#[test]
fn the_same_inner_4_tuple_in_two_gtp_tunnels_is_two_connections() {
    let (ue, srv) = ([10, 0, 0, 1], [93, 184, 216, 34]);
    let frames = vec![
        gtpu(
            [172, 16, 0, 1],
            [172, 16, 9, 9],
            0x100,
            &tcp(ue, 40000, srv, 443, 1, b"from A"),
        ),
        gtpu(
            [172, 16, 0, 2],
            [172, 16, 9, 9],
            0x200,
            &tcp(ue, 40000, srv, 443, 5000, b"from B"),
        ),
        gtpu(
            [172, 16, 9, 9],
            [172, 16, 0, 1],
            0x101,
            &tcp(srv, 443, ue, 40000, 77, b"to A"),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two-tunnels.pcap");
    std::fs::write(&path, pcap_of(&frames)).unwrap();
    let (flows, _) = flows_json(&path.to_string_lossy());
    assert_eq!(flows.len(), 2, "{flows:#?}");
    let a = &flows[0];
    assert_eq!(a["c2s"]["bytes"], 6);
    assert_eq!(a["s2c"]["bytes"], 4);
    assert_eq!(a["tunnel"]["client"], "172.16.0.1");
    assert_eq!(
        (
            a["tunnel"]["c2s_id"].as_u64(),
            a["tunnel"]["s2c_id"].as_u64()
        ),
        (Some(0x100), Some(0x101))
    );
    let b = &flows[1];
    assert_eq!(
        (b["c2s"]["bytes"].as_u64(), b["s2c"]["bytes"].as_u64()),
        (Some(6), Some(0))
    );
    assert_eq!(b["tunnel"]["client"], "172.16.0.2");
    assert_eq!(b["client"], a["client"]);
    assert_eq!(b["server"], a["server"]);
}
