//! The replay's report: every exchange's verdict, and per session and per
//! command the counts and latency percentiles.

use std::collections::BTreeMap;

use serde::Serialize;

use super::diff::FieldDiff;
use super::recording::Link;

/// How one recorded exchange went live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The live answer equals the recorded one outside volatile fields.
    Matched,
    /// It differs (the fields are listed).
    Different,
    /// A recorded answer or push that did not come live.
    Missing,
    /// A live answer or push the recording does not have.
    Extra,
    /// Recorded, not sent (why is in the note).
    NotSent,
    /// Sent, and the connection failed (why is in the note).
    Error,
    /// Sent, no answer expected and none recorded.
    Sent,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Matched => "matched",
            Verdict::Different => "different",
            Verdict::Missing => "missing",
            Verdict::Extra => "extra",
            Verdict::NotSent => "not_sent",
            Verdict::Error => "error",
            Verdict::Sent => "sent",
        }
    }
}

/// One exchange (or push) of one session.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub conn: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub clone: u32,
    /// cmd name, web endpoint or cgi.
    pub name: String,
    /// A push (newnotify, synccheck answer) rather than an answer.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub push: bool,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<FieldDiff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// Values substituted in the request sent.
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub substituted: usize,
    /// The MsgIds a live newsendmsg answer gave (a second replay of the
    /// same sends gets the first one's back: the server's dedupe).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub msg_ids: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

impl Exchange {
    pub fn new(conn: u64, clone: u32, name: impl Into<String>, verdict: Verdict) -> Exchange {
        Exchange {
            conn,
            clone,
            name: name.into(),
            push: false,
            verdict,
            diffs: Vec::new(),
            latency_us: None,
            substituted: 0,
            msg_ids: Vec::new(),
            note: None,
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Exchange {
        self.note = Some(note.into());
        self
    }
}

/// Counts by verdict.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub matched: u64,
    pub different: u64,
    pub missing: u64,
    pub extra: u64,
    pub not_sent: u64,
    pub error: u64,
    pub sent: u64,
}

impl Counts {
    /// Counts one exchange.
    pub fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Matched => self.matched += 1,
            Verdict::Different => self.different += 1,
            Verdict::Missing => self.missing += 1,
            Verdict::Extra => self.extra += 1,
            Verdict::NotSent => self.not_sent += 1,
            Verdict::Error => self.error += 1,
            Verdict::Sent => self.sent += 1,
        }
    }

    /// Differences in the diff's sense: anything but matched, sent, not sent.
    pub fn differs(&self) -> bool {
        self.different + self.missing + self.extra + self.error > 0
    }
}

/// One recorded session as replayed (per clone).
#[derive(Debug, Clone, Serialize)]
pub struct SessionRow {
    pub conn: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub clone: u32,
    pub link: Link,
    pub client: String,
    pub server: String,
    pub counts: Counts,
    /// Pushes recorded and received live.
    pub pushes_recorded: u64,
    pub pushes_live: u64,
    /// Why the session stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SessionRow {
    /// The row of `s` (in clone `clone`) before anything ran.
    pub fn new(s: &super::recording::Session, clone: u32) -> SessionRow {
        SessionRow {
            conn: s.conn,
            clone,
            link: s.link,
            client: s.client.clone(),
            server: s.server.clone(),
            counts: Counts::default(),
            pushes_recorded: 0,
            pushes_live: 0,
            error: None,
        }
    }
}

/// Latency of the answers of one command, in microseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(samples: &mut [u64]) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Some(Latency {
            count: samples.len() as u64,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: samples[samples.len() - 1],
        })
    }
}

/// One command (or endpoint) over all sessions.
#[derive(Debug, Clone, Serialize)]
pub struct CmdRow {
    pub name: String,
    pub counts: Counts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<Latency>,
}

/// [`Report::summary`].
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub server: &'a str,
    pub clones: u32,
    pub totals: &'a Counts,
    pub commands: &'a [CmdRow],
    pub sessions: &'a [SessionRow],
    pub elapsed_ms: u64,
}

/// The whole replay.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub server: String,
    pub clones: u32,
    pub sessions: Vec<SessionRow>,
    pub commands: Vec<CmdRow>,
    pub totals: Counts,
    /// Every exchange that did not match (all of them with `all`).
    pub exchanges: Vec<Exchange>,
    pub elapsed_ms: u64,
}

impl Report {
    /// Builds the report from every exchange; `all`: list matched ones too.
    pub fn build(
        server: &str,
        clones: u32,
        sessions: Vec<SessionRow>,
        exchanges: Vec<Exchange>,
        elapsed_ms: u64,
        all: bool,
    ) -> Report {
        let mut totals = Counts::default();
        let mut by_cmd: BTreeMap<String, (Counts, Vec<u64>)> = BTreeMap::new();
        for e in &exchanges {
            totals.add(e.verdict);
            let c = by_cmd.entry(e.name.clone()).or_default();
            c.0.add(e.verdict);
            if let Some(l) = e.latency_us {
                c.1.push(l);
            }
        }
        let commands = by_cmd
            .into_iter()
            .map(|(name, (counts, mut l))| CmdRow {
                name,
                counts,
                latency_us: Latency::of(&mut l),
            })
            .collect();
        let exchanges = if all {
            exchanges
        } else {
            exchanges
                .into_iter()
                .filter(|e| !matches!(e.verdict, Verdict::Matched | Verdict::Sent))
                .collect()
        };
        Report {
            server: server.to_owned(),
            clones,
            sessions,
            commands,
            totals,
            exchanges,
            elapsed_ms,
        }
    }

    /// The report without its exchanges: the last line of `--format
    /// ndjson`, after the exchanges one per line.
    pub fn summary(&self) -> Summary<'_> {
        Summary {
            server: &self.server,
            clones: self.clones,
            totals: &self.totals,
            commands: &self.commands,
            sessions: &self.sessions,
            elapsed_ms: self.elapsed_ms,
        }
    }

    /// Whether the replay differs from the recording.
    pub fn differs(&self) -> bool {
        self.totals.differs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s: Vec<u64> = (1..=100).collect();
        let l = Latency::of(&mut s).unwrap();
        assert_eq!((l.p50, l.p90, l.p99, l.max), (50, 90, 99, 100));
        assert_eq!(Latency::of(&mut []), None);
        let l = Latency::of(&mut [7]).unwrap();
        assert_eq!((l.p50, l.p99), (7, 7));
    }

    #[test]
    fn counts_and_what_differs() {
        let e = |v| Exchange::new(0, 0, "newsync", v);
        let r = Report::build(
            "x",
            1,
            vec![],
            vec![e(Verdict::Matched), e(Verdict::Sent)],
            0,
            false,
        );
        assert!(!r.differs());
        assert!(r.exchanges.is_empty());
        let r = Report::build(
            "x",
            1,
            vec![],
            vec![e(Verdict::Matched), e(Verdict::Missing)],
            0,
            false,
        );
        assert!(r.differs());
        assert_eq!(r.commands[0].counts.missing, 1);
        assert_eq!(r.exchanges.len(), 1);
    }
}
