//! Which connections, and which stretch of a capture, a run looks at
//! (`--host`, `--since`, `--until`): [`Scope`], applied by [`Scoped`]
//! between the flow table and any [`Sink`].
//!
//! The flow table still sees every packet, so connection ids stay those of
//! the whole capture (`frames --conn N` finds what `flows` numbered N) and
//! reassembly is exact. The sink sees:
//!
//! * only connections with an endpoint that [`HostMatch`] names (any of
//!   them when several are given);
//! * only the events of packets captured within `[since, until]` (both
//!   ends included): as if the capture had been cut there (`editcap -A/-B`),
//!   a connection open at `since` is picked up mid-stream and one still
//!   open at `until` ends there;
//! * the end of every such connection that was active in the window, so a
//!   connection with packets in it is listed even when none carried data.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::{FlowMeta, FlowSummary, Side, Sink};
use crate::capture::Timestamp;
use crate::reassembly::Event;

/// An address that selects connections: an IP, or an IP and port
/// (`10.0.0.2`, `10.0.0.2:8080`, `::1`, `[::1]:8080`). It matches either
/// endpoint of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostMatch {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl HostMatch {
    pub fn matches(&self, a: &SocketAddr) -> bool {
        same_ip(a.ip(), self.ip) && self.port.is_none_or(|p| p == a.port())
    }
}

/// IPv4 addresses match their IPv4-mapped IPv6 form too.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

impl FromStr for HostMatch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(HostMatch { ip, port: None });
        }
        match s.parse::<SocketAddr>() {
            Ok(a) => Ok(HostMatch {
                ip: a.ip(),
                port: Some(a.port()),
            }),
            Err(_) => Err(format!(
                "'{s}' is not an IP address or IP:PORT (e.g. 10.0.0.2, 10.0.0.2:8080, \
                 [::1]:8080; host names are not looked up)"
            )),
        }
    }
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}", SocketAddr::new(self.ip, p)),
            None => write!(f, "{}", self.ip),
        }
    }
}

/// One end of a time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// An absolute time (RFC 3339, e.g. `2026-11-22T04:07:31Z`).
    At(Timestamp),
    /// Nanoseconds after the capture's first packet (`10s`, `2.5`).
    AfterStart(u64),
}

impl TimeBound {
    /// The absolute time, given the capture's first packet.
    pub fn resolve(&self, start: Timestamp) -> Timestamp {
        match *self {
            TimeBound::At(t) => t,
            TimeBound::AfterStart(n) => {
                let total = start.as_nanos() + i128::from(n);
                Timestamp::new(
                    total.div_euclid(1_000_000_000) as i64,
                    total.rem_euclid(1_000_000_000) as u32,
                    start.digits,
                )
            }
        }
    }
}

impl FromStr for TimeBound {
    type Err = String;

    /// RFC 3339 (`2026-11-22T04:07:31.5Z`, `2026-11-22T12:07:31+08:00`), or
    /// seconds after the capture's first packet (`10`, `10s`, `2.5s`).
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let secs = t.strip_suffix('s').unwrap_or(t);
        if !secs.is_empty() && secs.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return match secs.parse::<f64>() {
                Ok(v) if v.is_finite() && v * 1e9 < u64::MAX as f64 => {
                    Ok(TimeBound::AfterStart((v * 1e9).round() as u64))
                }
                _ => Err(format!("'{s}' is not a number of seconds")),
            };
        }
        match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(dt) => Ok(TimeBound::At(Timestamp::new(
                dt.timestamp(),
                dt.timestamp_subsec_nanos(),
                9,
            ))),
            Err(_) => Err(format!(
                "'{s}' is neither seconds after the capture's first packet (10s, 2.5) \
                 nor an RFC 3339 time (2026-11-22T04:07:31Z, 2026-11-22T12:07:31+08:00)"
            )),
        }
    }
}

/// The connections and time window a run is about (all by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Connections with an endpoint that one of these names (all when empty).
    pub hosts: Vec<HostMatch>,
    pub since: Option<TimeBound>,
    pub until: Option<TimeBound>,
}

impl Scope {
    /// Whether it keeps everything.
    pub fn is_all(&self) -> bool {
        self.hosts.is_empty() && self.since.is_none() && self.until.is_none()
    }

    /// An error when both bounds are absolute and the window is empty.
    pub fn check(&self) -> Result<(), String> {
        if let (Some(TimeBound::At(a)), Some(TimeBound::At(b))) = (self.since, self.until) {
            if a > b {
                return Err(format!("--since {a} is after --until {b}"));
            }
        }
        if let (Some(TimeBound::AfterStart(a)), Some(TimeBound::AfterStart(b))) =
            (self.since, self.until)
        {
            if a > b {
                return Err(format!(
                    "--since {} s is after --until {} s",
                    a as f64 / 1e9,
                    b as f64 / 1e9
                ));
            }
        }
        Ok(())
    }

    fn host_ok(&self, a: &SocketAddr, b: &SocketAddr) -> bool {
        self.hosts.is_empty() || self.hosts.iter().any(|h| h.matches(a) || h.matches(b))
    }
}

/// A [`Sink`] that passes on what a [`Scope`] keeps (see the module doc),
/// and counts the anomalies and gaps it passed on.
pub struct Scoped<'a, S> {
    inner: &'a mut S,
    scope: Scope,
    /// The window, once the capture's first packet is known.
    window: Option<(Option<Timestamp>, Option<Timestamp>)>,
    /// Connections that had events in the window.
    active: HashSet<u64>,
    anomalies: u64,
    /// The scope keeps everything: events go straight through.
    everything: bool,
}

impl<'a, S: Sink> Scoped<'a, S> {
    pub fn new(inner: &'a mut S, scope: Scope) -> Self {
        Scoped {
            inner,
            everything: scope.is_all(),
            scope,
            window: None,
            active: HashSet::new(),
            anomalies: 0,
        }
    }

    /// Anomaly and gap events passed on.
    pub fn anomalies(&self) -> u64 {
        self.anomalies
    }

    fn window(&mut self, start: Timestamp) -> (Option<Timestamp>, Option<Timestamp>) {
        *self.window.get_or_insert_with(|| {
            (
                self.scope.since.map(|b| b.resolve(start)),
                self.scope.until.map(|b| b.resolve(start)),
            )
        })
    }

    fn in_window(w: (Option<Timestamp>, Option<Timestamp>), ts: Timestamp) -> bool {
        w.0.is_none_or(|s| ts >= s) && w.1.is_none_or(|u| ts <= u)
    }
}

impl<S: Sink> Sink for Scoped<'_, S> {
    fn capture_start(&mut self, ts: Timestamp) {
        self.window(ts);
        self.inner.capture_start(ts);
    }

    fn event(&mut self, flow: &FlowMeta, side: Side, ev: Event<'_>) {
        if self.everything {
            if matches!(ev, Event::Anomaly(_) | Event::Gap { .. }) {
                self.anomalies += 1;
            }
            return self.inner.event(flow, side, ev);
        }
        if !self.scope.host_ok(&flow.first_src, &flow.first_dst) {
            return;
        }
        // Without a capture_start (a driver other than pipeline::run), the
        // first connection's first packet stands for the capture's.
        let w = self.window(flow.first_ts);
        if !Self::in_window(w, flow.now) {
            return;
        }
        if matches!(ev, Event::Anomaly(_) | Event::Gap { .. }) {
            self.anomalies += 1;
        }
        self.active.insert(flow.id);
        self.inner.event(flow, side, ev);
    }

    fn flow_end(&mut self, s: &FlowSummary) {
        if self.everything {
            return self.inner.flow_end(s);
        }
        if !self.scope.host_ok(&s.client, &s.server) {
            return;
        }
        let (since, until) = self.window(s.first_ts);
        let overlaps =
            since.is_none_or(|t| s.last_ts >= t) && until.is_none_or(|t| s.first_ts <= t);
        if self.active.remove(&s.id) || overlaps {
            self.inner.flow_end(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_and_match_either_endpoint() {
        let h: HostMatch = "10.0.0.2".parse().unwrap();
        assert_eq!(h.port, None);
        assert!(h.matches(&"10.0.0.2:5555".parse().unwrap()));
        assert!(!h.matches(&"10.0.0.3:5555".parse().unwrap()));
        let h: HostMatch = "10.0.0.2:8080".parse().unwrap();
        assert!(h.matches(&"10.0.0.2:8080".parse().unwrap()));
        assert!(!h.matches(&"10.0.0.2:8081".parse().unwrap()));
        assert!(h.matches(&"[::ffff:10.0.0.2]:8080".parse().unwrap()));
        let h: HostMatch = "[::1]:80".parse().unwrap();
        assert_eq!(h.to_string(), "[::1]:80");
        let e = "example.com".parse::<HostMatch>().unwrap_err();
        assert!(e.contains("not an IP address"), "{e}");
        let scope = Scope {
            hosts: vec!["10.0.0.9".parse().unwrap()],
            ..Scope::default()
        };
        let (a, b) = ("10.0.0.1:1".parse().unwrap(), "10.0.0.9:2".parse().unwrap());
        assert!(scope.host_ok(&a, &b) && scope.host_ok(&b, &a) && !scope.host_ok(&a, &a));
    }

    #[test]
    fn times_are_seconds_after_the_start_or_rfc3339() {
        assert_eq!("10s".parse(), Ok(TimeBound::AfterStart(10_000_000_000)));
        assert_eq!("2.5".parse(), Ok(TimeBound::AfterStart(2_500_000_000)));
        assert_eq!("0".parse(), Ok(TimeBound::AfterStart(0)));
        let at: TimeBound = "2026-11-22T12:07:31.5+08:00".parse().unwrap();
        let TimeBound::At(t) = at else {
            panic!("{at:?}")
        };
        assert_eq!(t.to_rfc3339(), "2026-11-22T04:07:31.500000000Z");
        for bad in ["-1s", "1.2.3", "yesterday", "2026-11-22", "s"] {
            assert!(bad.parse::<TimeBound>().is_err(), "{bad}");
        }
        let start = Timestamp::new(100, 900_000_000, 6);
        assert_eq!(
            TimeBound::AfterStart(200_000_000).resolve(start),
            Timestamp::new(101, 100_000_000, 6)
        );
        let bad = Scope {
            since: Some("5s".parse().unwrap()),
            until: Some("1s".parse().unwrap()),
            ..Scope::default()
        };
        assert!(bad.check().is_err());
        assert!(Scope::default().is_all() && Scope::default().check().is_ok());
    }
}
