//! Which records `frames` keeps: [`RecordFilter`] (`--cmd`, `--conn`,
//! `--layer`). Which connections and which stretch of the capture are
//! analysed at all (`--host`, `--since`, `--until`) is
//! [`flow::Scope`](crate::flow::Scope)'s, applied before the analyzer.
//!
//! A `--cmd` value is a number (decimal, or hex with `0x`) or a name. The
//! names are those records print: the long-link cmds of the command table
//! (with a profile's), the short-link cgis and the web endpoints, compared
//! without regard to case; a request's name selects its responses too.

use super::record::{FrameRecord, Layer};
use crate::proto::commands::{Registry, RESPONSE_OFFSET};
use crate::proto::web::Endpoint;

/// What `--cmd` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdMatch {
    /// Records whose `cmd` is this number, or its response (+10^9).
    Number(u32),
    /// Records whose name is this one (lower case), or `<name>_resp`.
    Name(String),
}

/// A `--cmd` name that no cmd, cgi or web endpoint has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    #[error("--cmd {given}: not a number (decimal, or hex as 0x79)")]
    BadNumber { given: String },
    #[error("--cmd {given}: no cmd, cgi or web endpoint has this name.\n{}", known_names(.known))]
    UnknownName {
        given: String,
        /// (group, names) in the order they are listed.
        known: Vec<(&'static str, Vec<String>)>,
    },
}

/// The list of known names, wrapped to fit 80 columns.
fn known_names(known: &[(&'static str, Vec<String>)]) -> String {
    let mut out = String::from("Give a number (121, 0x79) or one of these names (any case):");
    for (group, names) in known {
        out.push_str(&format!("\n  {group}:"));
        let mut col = 4 + group.len();
        for n in names {
            if col + 1 + n.len() > 78 {
                out.push_str("\n   ");
                col = 3;
            }
            out.push(' ');
            out.push_str(n);
            col += 1 + n.len();
        }
    }
    out
}

impl CmdMatch {
    /// Parses a `--cmd` value: `121`, `0x79`, or a name the `registry`
    /// (built-in and profile), the cgi table or the web endpoints know.
    pub fn parse(given: &str, registry: &Registry) -> Result<CmdMatch, CmdError> {
        let s = given.trim();
        if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            return u32::from_str_radix(hex, 16)
                .map(CmdMatch::Number)
                .map_err(|_| CmdError::BadNumber {
                    given: given.to_owned(),
                });
        }
        if s.starts_with(|c: char| c.is_ascii_digit()) {
            return s
                .parse()
                .map(CmdMatch::Number)
                .map_err(|_| CmdError::BadNumber {
                    given: given.to_owned(),
                });
        }
        let want = s.to_lowercase();
        let known = known(registry);
        let base = want.strip_suffix("_resp").unwrap_or(&want);
        let found = known.iter().any(|(_, names)| {
            names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&want) || n.eq_ignore_ascii_case(base))
        });
        if !found {
            return Err(CmdError::UnknownName {
                given: given.to_owned(),
                known,
            });
        }
        Ok(CmdMatch::Name(want))
    }

    /// Whether a record is of this cmd.
    pub fn matches(&self, r: &FrameRecord) -> bool {
        match self {
            CmdMatch::Number(n) => r.cmd.is_some_and(|c| {
                c == *n || (*n < RESPONSE_OFFSET && c == n.saturating_add(RESPONSE_OFFSET))
            }),
            CmdMatch::Name(want) => r.cmd_name.as_deref().is_some_and(|name| {
                let name = name.to_lowercase();
                name == *want || name.strip_suffix("_resp") == Some(want.as_str())
            }),
        }
    }
}

/// The names `--cmd` knows, by group.
fn known(registry: &Registry) -> Vec<(&'static str, Vec<String>)> {
    let names = |v: Vec<(u32, &str)>| {
        let mut seen = Vec::new();
        for (_, n) in v {
            if !seen.iter().any(|s: &String| s == n) {
                seen.push(n.to_owned());
            }
        }
        seen
    };
    vec![
        ("long link", names(registry.cmd_names())),
        ("short link (cgi)", names(registry.cgi_names())),
        (
            "web",
            Endpoint::ALL
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect(),
        ),
    ]
}

/// The records `frames` prints: every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub cmd: Option<CmdMatch>,
    /// A connection id, as `flows` numbers them.
    pub conn: Option<u64>,
    pub layer: Option<Layer>,
}

impl RecordFilter {
    pub fn keep(&self, r: &FrameRecord) -> bool {
        self.conn.is_none_or(|c| c == r.conn)
            && self.layer.is_none_or(|l| l == r.layer)
            && self.cmd.as_ref().is_none_or(|c| c.matches(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<CmdMatch, CmdError> {
        CmdMatch::parse(s, &Registry::builtin())
    }

    #[test]
    fn numbers_in_decimal_or_hex_and_names_in_any_case() {
        assert_eq!(parse("121"), Ok(CmdMatch::Number(121)));
        assert_eq!(parse("0x79"), Ok(CmdMatch::Number(121)));
        assert_eq!(parse("0XCD"), Ok(CmdMatch::Number(205)));
        assert_eq!(parse("NEWSYNC"), Ok(CmdMatch::Name("newsync".into())));
        assert_eq!(parse("Noop_Resp"), Ok(CmdMatch::Name("noop_resp".into())));
        // A cgi name, a web endpoint, the error frame.
        assert!(parse("getcdndns").is_ok());
        assert!(parse("SyncCheck").is_ok());
        assert!(parse("error").is_ok());
        assert!(matches!(parse("0xzz"), Err(CmdError::BadNumber { .. })));
        assert!(matches!(parse("12x"), Err(CmdError::BadNumber { .. })));
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones_within_80_columns() {
        let e = parse("bogus").unwrap_err().to_string();
        assert!(
            e.starts_with("--cmd bogus: no cmd, cgi or web endpoint"),
            "{e}"
        );
        for want in ["newsync", "noop", "error", "getcdndns", "webwxsync"] {
            assert!(e.split_whitespace().any(|w| w == want), "{want}: {e}");
        }
        // After the `syncscope: error: ` prefix too.
        for (i, line) in e.lines().enumerate() {
            let width = line.chars().count() + if i == 0 { 18 } else { 0 };
            assert!(width <= 80, "{width} columns: {line:?}");
        }
        // A profile's names are known.
        let mut r = Registry::builtin();
        r.apply_profile("[[command]]\ncmd = 4242\nname = \"Custom\"\n")
            .unwrap();
        assert_eq!(
            CmdMatch::parse("custom", &r),
            Ok(CmdMatch::Name("custom".into()))
        );
    }
}
