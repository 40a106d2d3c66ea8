//! The one command table of the long link: numbers, names, and the
//! request / response / push rules (protocol.md sections 2 and 3), plus
//! the short link's cgi numbers. The analyzer, the server, the clients and
//! the examples take their numbers from here.
//!
//! [`Registry`] adds a user profile on top: names and which protobuf
//! message the request and response bodies of a long-link command or a
//! short-link cgi hold.
//!
//! ```toml
//! [[command]]                          # a long-link cmd
//! cmd = 121
//! name = "newsync"
//! request = "micromsg.NewSyncRequest"    # optional: message of the request body
//! response = "micromsg.NewSyncResponse"  # optional: message of the response body
//!
//! [[cgi]]                              # a short-link cgi (business header)
//! cgi = 138
//! name = "newsync"
//! request = "NewSyncRequest"           # the package may be left out when unique
//! response = "NewSyncResponse"
//! ```
//!
//! The message names are strings here; the analyzer resolves them against
//! the compiled `.proto` files at start-up ([`Registry::resolve_messages`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// A response's cmd is the request's plus this.
pub const RESPONSE_OFFSET: u32 = 1_000_000_000;
/// Seq of server pushes.
pub const SEQ_PUSH: u32 = 0;
/// Seq of heartbeats (noop).
pub const SEQ_HEARTBEAT: u32 = 0xFFFF_FFFF;
/// Seq of the identify message sent right after connecting.
pub const SEQ_IDENTIFY: u32 = 0xFFFF_FFFE;

/// Heartbeat (noop), client to server.
pub const NOOP: u32 = 6;
/// Server push "new data, sync now".
pub const NEWNOTIFY: u32 = 24;
/// newinit.
pub const NEWINIT: u32 = 27;
/// getprofile.
pub const GETPROFILE: u32 = 118;
/// newsync over the long link.
pub const NEWSYNC: u32 = 121;
/// Server push with data.
pub const PUSHDATA: u32 = 122;
/// Identify, the first frame after connecting.
pub const IDENTIFY: u32 = 205;
/// newsendmsg.
pub const NEWSENDMSG: u32 = 237;
/// heartbeat (cmd 238).
pub const HEARTBEAT: u32 = 238;
/// signalkeep.
pub const SIGNALKEEP: u32 = 243;
/// manualauth: a user name (and device) for a uin and an autoauth key.
pub const MANUALAUTH: u32 = 253;
/// autoauth: the uin and key of an earlier manualauth.
pub const AUTOAUTH: u32 = 254;
/// uploadmsgimg over the long link (one part of an image; the cgi is 110).
/// The long-link cmd ids of the media cgis are the ones WeChat's clients
/// are said to use; no capture here confirms them.
pub const UPLOADMSGIMG: u32 = 9;
/// getmsgimg over the long link (cgi 109).
pub const GETMSGIMG: u32 = 10;
/// uploadvoice over the long link (one chunk of a recording; cgi 127).
pub const UPLOADVOICE: u32 = 19;
/// downloadvoice over the long link (cgi 128).
pub const DOWNLOADVOICE: u32 = 20;
/// syncscope's own (not the real service's): an authenticated device
/// confirms a pending web login by its uuid, as the phone does by scanning
/// the QR code (`WebLoginConfirmRequest`).
pub const WEBLOGIN_CONFIRM: u32 = 900_001;
/// The error frame a server sends before closing a connection on bad
/// input: "the response to cmd 0" (10^9), seq of the offending request or 0.
pub const ERROR: u32 = RESPONSE_OFFSET;

/// The response cmd for a request cmd.
pub const fn response(cmd: u32) -> u32 {
    cmd + RESPONSE_OFFSET
}

/// Short-link cgi number of newsync (business packets, `POST .../newsync`).
pub const CGI_NEWSYNC: u32 = 138;
/// Short-link cgi number of newsendmsg.
pub const CGI_NEWSENDMSG: u32 = 522;
/// Short-link cgi numbers of the media cgis (betteray/WeChat
/// `WeChat/Services/*.m`).
pub const CGI_GETMSGIMG: u32 = 109;
pub const CGI_UPLOADMSGIMG: u32 = 110;
pub const CGI_UPLOADVOICE: u32 = 127;
pub const CGI_DOWNLOADVOICE: u32 = 128;

/// Short-link cgi numbers (the business header's cgi field) and their
/// names: those seen in the real capture and the seed documents.
const CGIS: &[(u32, &str)] = &[
    (CGI_GETMSGIMG, "getmsgimg"),
    (CGI_UPLOADMSGIMG, "uploadmsgimg"),
    (CGI_UPLOADVOICE, "uploadvoice"),
    (CGI_DOWNLOADVOICE, "downloadvoice"),
    (CGI_NEWSYNC, "newsync"),
    (139, "newinit"),
    (216, "androidfcmreg"),
    (251, "statusnotify"),
    (302, "getprofile"),
    (379, "getcdndns"),
    (518, "heartbeat"),
    (CGI_NEWSENDMSG, "newsendmsg"),
    (701, "manualauth"),
    (702, "autoauth"),
    (721, "checkresupdate"),
    (763, "secautoauth"),
    (3565, "findersync"),
    (3673, "bypsync"),
    (3930, "finderinit"),
    (6238, "getnetworkinfo"),
];

/// The name of a short-link cgi number, if known.
pub fn cgi_name(cgi: u32) -> Option<&'static str> {
    CGIS.iter().find(|&&(c, _)| c == cgi).map(|&(_, n)| n)
}

/// Built-in request commands (a response is the request + 10^9 and is
/// named `<name>_resp` unless named on its own), and the error frame,
/// which is named on its own.
const BUILTIN: &[(u32, &str)] = &[
    (NOOP, "noop"),
    (UPLOADMSGIMG, "uploadmsgimg"),
    (GETMSGIMG, "getmsgimg"),
    (UPLOADVOICE, "uploadvoice"),
    (DOWNLOADVOICE, "downloadvoice"),
    (NEWNOTIFY, "newnotify"),
    (NEWINIT, "newinit"),
    (GETPROFILE, "getprofile"),
    (NEWSYNC, "newsync"),
    (PUSHDATA, "pushdata"),
    (IDENTIFY, "longlink_identify"),
    (NEWSENDMSG, "newsendmsg"),
    (HEARTBEAT, "heartbeat"),
    (SIGNALKEEP, "signalkeep"),
    (MANUALAUTH, "manualauth"),
    (AUTOAUTH, "autoauth"),
    (WEBLOGIN_CONFIRM, "webloginconfirm"),
    (ERROR, "error"),
];

/// Errors in a profile file.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("not valid TOML")]
    Toml(#[from] toml::de::Error),
    /// `table` is `command` or `cgi`, `index` counts from 0 in that table.
    #[error("profile {table} {index}: {reason}")]
    Entry {
        table: &'static str,
        index: usize,
        reason: String,
    },
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    #[serde(default)]
    command: Vec<Entry>,
    #[serde(default)]
    cgi: Vec<CgiEntry>,
    mars: Option<MarsEntry>,
    replay: Option<ReplayEntry>,
}

/// `[replay]`: fields whose values change from run to run, added to the
/// built-in list (`volatile`) or taken out of it (`not_volatile`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayEntry {
    #[serde(default)]
    volatile: Vec<String>,
    #[serde(default)]
    not_volatile: Vec<String>,
}

/// `[mars]`: the Tencent Mars framing's client version (its unpacker
/// accepts only frames that carry its own).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MarsEntry {
    client_version: Option<u32>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    cmd: u32,
    name: Option<String>,
    request: Option<String>,
    response: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CgiEntry {
    cgi: u32,
    name: Option<String>,
    request: Option<String>,
    response: Option<String>,
}

/// Which link a profile mapping is for: a long-link request cmd or a
/// short-link cgi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Cmd(u32),
    Cgi(u32),
}

/// One message mapping of a profile: which body, which message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mapping {
    pub target: Target,
    pub is_response: bool,
}

impl std::fmt::Display for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dir = if self.is_response {
            "response"
        } else {
            "request"
        };
        match self.target {
            Target::Cmd(c) => write!(f, "cmd {c} {dir}"),
            Target::Cgi(c) => write!(f, "cgi {c} {dir}"),
        }
    }
}

/// Command names, cgi names and body message types.
#[derive(Debug, Clone)]
pub struct Registry {
    names: HashMap<u32, String>,
    cgi_names: HashMap<u32, String>,
    /// Message names by mapping (ordered: errors name the first bad one).
    messages: BTreeMap<Mapping, String>,
    /// `[mars] client_version`: Mars frames must carry it.
    mars_client_version: Option<u32>,
    /// `[replay] volatile` and `not_volatile`.
    volatile: (Vec<String>, Vec<String>),
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl Registry {
    /// The names from protocol.md.
    pub fn builtin() -> Self {
        Registry {
            names: BUILTIN.iter().map(|&(c, n)| (c, n.to_owned())).collect(),
            cgi_names: HashMap::new(),
            messages: BTreeMap::new(),
            mars_client_version: None,
            volatile: (Vec::new(), Vec::new()),
        }
    }

    /// Applies a TOML profile on top of what is there.
    pub fn apply_profile(&mut self, text: &str) -> Result<(), ProfileError> {
        let p: Profile = toml::from_str(text)?;
        let empty = |table, index, what: String| ProfileError::Entry {
            table,
            index,
            reason: format!("{what} sets neither name, request nor response"),
        };
        for (index, e) in p.command.into_iter().enumerate() {
            if e.name.is_none() && e.request.is_none() && e.response.is_none() {
                return Err(empty("command", index, format!("cmd {}", e.cmd)));
            }
            if let Some(n) = e.name {
                self.names.insert(e.cmd, n);
            }
            self.map(Target::Cmd(e.cmd % RESPONSE_OFFSET), e.request, e.response);
        }
        if let Some(v) = p.mars.and_then(|m| m.client_version) {
            self.mars_client_version = Some(v);
        }
        if let Some(r) = p.replay {
            self.volatile.0.extend(r.volatile);
            self.volatile.1.extend(r.not_volatile);
        }
        for (index, e) in p.cgi.into_iter().enumerate() {
            if e.name.is_none() && e.request.is_none() && e.response.is_none() {
                return Err(empty("cgi", index, format!("cgi {}", e.cgi)));
            }
            if let Some(n) = e.name {
                self.cgi_names.insert(e.cgi, n);
            }
            self.map(Target::Cgi(e.cgi), e.request, e.response);
        }
        Ok(())
    }

    fn map(&mut self, target: Target, request: Option<String>, response: Option<String>) {
        for (is_response, m) in [(false, request), (true, response)] {
            if let Some(m) = m {
                self.messages.insert(
                    Mapping {
                        target,
                        is_response,
                    },
                    m,
                );
            }
        }
    }

    /// The Mars client version a profile set (`[mars] client_version`):
    /// Mars frames that carry another are not taken for frames.
    pub fn mars_client_version(&self) -> Option<u32> {
        self.mars_client_version
    }

    /// The profile's `[replay]` fields: (added to the volatile ones,
    /// taken out of them).
    pub fn volatile(&self) -> (&[String], &[String]) {
        (&self.volatile.0, &self.volatile.1)
    }

    /// Every message mapping of the profile, in order (cmds, then cgis).
    pub fn mappings(&self) -> impl Iterator<Item = (Mapping, &str)> {
        self.messages.iter().map(|(&k, v)| (k, v.as_str()))
    }

    /// Replaces every mapped message name by what `resolve` makes of it
    /// (the full name of the message it finds), stopping at the first
    /// error, which comes back with the mapping it is about.
    pub fn resolve_messages<E>(
        &mut self,
        mut resolve: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<(), (Mapping, E)> {
        for (k, v) in self.messages.iter_mut() {
            *v = resolve(v).map_err(|e| (*k, e))?;
        }
        Ok(())
    }

    /// The name of a cmd, if known.
    pub fn name(&self, cmd: u32) -> Option<Cow<'_, str>> {
        if let Some(n) = self.names.get(&cmd) {
            return Some(Cow::Borrowed(n));
        }
        if cmd >= RESPONSE_OFFSET {
            if let Some(n) = self.names.get(&(cmd - RESPONSE_OFFSET)) {
                return Some(Cow::Owned(format!("{n}_resp")));
            }
        }
        None
    }

    /// The protobuf message of a frame body, when the profile maps it.
    pub fn message(&self, cmd: u32) -> Option<&str> {
        let mapping = Mapping {
            target: Target::Cmd(if cmd >= RESPONSE_OFFSET {
                cmd - RESPONSE_OFFSET
            } else {
                cmd
            }),
            is_response: cmd >= RESPONSE_OFFSET,
        };
        self.messages.get(&mapping).map(String::as_str)
    }

    /// Every named cmd, the profile's included, by number (responses
    /// named `<request>_resp` are not listed: only names set on their own).
    pub fn cmd_names(&self) -> Vec<(u32, &str)> {
        let mut v: Vec<(u32, &str)> = self.names.iter().map(|(&c, n)| (c, n.as_str())).collect();
        v.sort_unstable();
        v
    }

    /// Every named short-link cgi (built-in and the profile's), by number.
    pub fn cgi_names(&self) -> Vec<(u32, &str)> {
        let mut v: Vec<(u32, &str)> = CGIS
            .iter()
            .filter(|(c, _)| !self.cgi_names.contains_key(c))
            .map(|&(c, n)| (c, n))
            .chain(self.cgi_names.iter().map(|(&c, n)| (c, n.as_str())))
            .collect();
        v.sort_unstable();
        v
    }

    /// The name of a short-link cgi: the profile's, else the built-in one.
    pub fn cgi_name(&self, cgi: u32) -> Option<&str> {
        self.cgi_names
            .get(&cgi)
            .map(String::as_str)
            .or_else(|| cgi_name(cgi))
    }

    /// The protobuf message of a business packet's body with this cgi,
    /// when the profile maps it.
    pub fn cgi_message(&self, cgi: u32, is_response: bool) -> Option<&str> {
        let mapping = Mapping {
            target: Target::Cgi(cgi),
            is_response,
        };
        self.messages.get(&mapping).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_and_response_names() {
        let r = Registry::builtin();
        assert_eq!(r.name(205).as_deref(), Some("longlink_identify"));
        assert_eq!(
            r.name(1_000_000_205).as_deref(),
            Some("longlink_identify_resp")
        );
        assert_eq!(r.name(121).as_deref(), Some("newsync"));
        assert_eq!(r.name(4242), None);
        assert_eq!(r.message(121), None);
        // The error frame has a name of its own, not `<cmd 0>_resp`.
        assert_eq!(r.name(ERROR).as_deref(), Some("error"));
        assert_eq!(r.name(NOOP).as_deref(), Some("noop"));
        assert_eq!(
            (cgi_name(CGI_NEWSYNC), cgi_name(763), cgi_name(1)),
            (Some("newsync"), Some("secautoauth"), None)
        );
    }

    #[test]
    fn profile_renames_adds_and_maps_messages() {
        let mut r = Registry::builtin();
        r.apply_profile(
            r#"
            [[command]]
            cmd = 121
            request = "wechat.NewSyncRequest"
            response = "wechat.NewSyncResponse"
            [[command]]
            cmd = 4242
            name = "custom"
            [[command]]
            cmd = 1000000190
            name = "sync_done"
            "#,
        )
        .unwrap();
        assert_eq!(r.name(4242).as_deref(), Some("custom"));
        assert_eq!(r.name(1_000_004_242).as_deref(), Some("custom_resp"));
        assert_eq!(r.name(1_000_000_190).as_deref(), Some("sync_done"));
        let names = r.cmd_names();
        assert!(names.contains(&(4242, "custom")) && names.contains(&(121, "newsync")));
        assert_eq!(r.message(121), Some("wechat.NewSyncRequest"));
        assert_eq!(r.message(1_000_000_121), Some("wechat.NewSyncResponse"));
    }

    #[test]
    fn bad_profiles_are_reported() {
        let mut r = Registry::builtin();
        assert!(matches!(
            r.apply_profile("[[command]]\ncmd = 'x'"),
            Err(ProfileError::Toml(_))
        ));
        assert!(matches!(
            r.apply_profile("[[command]]\ncmd = 5"),
            Err(ProfileError::Entry { index: 0, .. })
        ));
        assert!(r
            .apply_profile("[[command]]\ncmd = 5\nnmae = 'typo'")
            .is_err());
        let e = r.apply_profile("[[cgi]]\ncgi = 138\n").unwrap_err();
        assert!(matches!(
            e,
            ProfileError::Entry {
                table: "cgi",
                index: 0,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "profile cgi 0: cgi 138 sets neither name, request nor response"
        );
        assert!(r.apply_profile("[[cgi]]\ncmd = 138\nname = 'x'").is_err());
    }

    /// `[[cgi]]` tables name short-link cgis and map their bodies; the
    /// mappings come out in order and can be resolved in place.
    #[test]
    fn profile_maps_cgis() {
        let mut r = Registry::builtin();
        r.apply_profile(
            r#"
            [[command]]
            cmd = 1000000121
            response = "NewSyncResponse"
            [[cgi]]
            cgi = 138
            request = "NewSyncRequest"
            response = "NewSyncResponse"
            [[cgi]]
            cgi = 4242
            name = "mycgi"
            "#,
        )
        .unwrap();
        assert_eq!(r.cgi_name(138), Some("newsync"));
        assert_eq!(r.cgi_name(4242), Some("mycgi"));
        assert_eq!(r.cgi_name(4243), None);
        assert_eq!(r.cgi_message(138, false), Some("NewSyncRequest"));
        assert_eq!(r.cgi_message(138, true), Some("NewSyncResponse"));
        assert_eq!(r.cgi_message(4242, false), None);
        let cgis = r.cgi_names();
        assert!(cgis.contains(&(4242, "mycgi")) && cgis.contains(&(138, "newsync")));
        assert!(cgis.windows(2).all(|w| w[0].0 < w[1].0), "{cgis:?}");
        // A response cmd in [[command]] maps the response of its request.
        assert_eq!(r.message(1_000_000_121), Some("NewSyncResponse"));
        assert_eq!(r.message(121), None);
        let listed: Vec<String> = r.mappings().map(|(m, n)| format!("{m}: {n}")).collect();
        assert_eq!(
            listed,
            [
                "cmd 121 response: NewSyncResponse",
                "cgi 138 request: NewSyncRequest",
                "cgi 138 response: NewSyncResponse",
            ]
        );
        r.resolve_messages(|n| Ok::<_, ()>(format!("mm.{n}")))
            .unwrap();
        assert_eq!(r.cgi_message(138, true), Some("mm.NewSyncResponse"));
        let err = r
            .resolve_messages(|n| {
                if n.ends_with("Request") {
                    Err(n.to_owned())
                } else {
                    Ok(n.to_owned())
                }
            })
            .unwrap_err();
        assert_eq!(err.0.to_string(), "cgi 138 request");
        assert_eq!(err.1, "mm.NewSyncRequest");
    }
}
