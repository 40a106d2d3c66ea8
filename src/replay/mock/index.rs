//! The mock's index of a recording, without sockets: each recorded
//! request under (scope, name, its decoded value minus the volatile
//! fields), with the answers it got in recorded order. A live request
//! that matches takes the next answer of its entry (the last one repeats
//! once they are used up); one that does not is answered by the policy
//! ([`Unmatched`]).
//!
//! Matching leaves the volatile fields out (SyncKeys, uins, tickets,
//! message ids, times; [`Volatile`]). That is what keeps a mocked session
//! consistent without rewriting bodies: the mock issues the recorded
//! SyncKeys in order, the client presents them back, and a request that
//! presents any key still matches its entry, whose next answer carries
//! the next recorded key.
//!
//! A scope keeps the sessions of different users apart: a request of a
//! long-link session whose user the recording names (manualauth,
//! identify) is indexed under `user/device`, `user` and `*`; a live
//! request looks in the most specific scope its connection knows first.

use std::collections::HashMap;

use serde_json::Value;

use crate::replay::diff::{compare, Volatile};

/// Request fields a client makes up afresh each time, left out of the
/// match besides the replay's volatile fields: the web's random
/// `DeviceID` and its `rr` counter.
pub const REQUEST_VOLATILE: &[&str] = &["DeviceID", "rr"];

/// The scope every request is indexed under.
pub const ANY: &str = "*";

/// What to do with a request the recording does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unmatched {
    /// An error (long link: an error frame; HTTP: 404 naming the request).
    #[default]
    Error,
    /// The answer of the recorded request of the same cmd or endpoint
    /// with the fewest differing fields.
    Nearest,
}

impl std::str::FromStr for Unmatched {
    type Err = String;
    fn from_str(s: &str) -> Result<Unmatched, String> {
        match s {
            "error" => Ok(Unmatched::Error),
            "nearest" => Ok(Unmatched::Nearest),
            _ => Err(format!(
                "'{s}' is not a policy for unmatched requests: error or nearest"
            )),
        }
    }
}

impl Unmatched {
    pub fn as_str(self) -> &'static str {
        match self {
            Unmatched::Error => "error",
            Unmatched::Nearest => "nearest",
        }
    }
}

/// `v` without its volatile fields (at any depth; a list keeps its items).
pub fn strip_volatile(v: &Value, volatile: &Volatile) -> Value {
    let mut path = Vec::new();
    strip(v, volatile, &mut path)
}

fn strip(v: &Value, vol: &Volatile, path: &mut Vec<String>) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                path.push(k.clone());
                if !vol.matches(path) {
                    out.insert(k.clone(), strip(x, vol, path));
                }
                path.pop();
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| {
                    path.push(format!("[{i}]"));
                    let s = strip(x, vol, path);
                    path.pop();
                    s
                })
                .collect(),
        ),
        leaf => leaf.clone(),
    }
}

/// The volatile fields of the mock's matching: the replay's and
/// [`REQUEST_VOLATILE`].
pub fn request_volatile() -> Volatile {
    let mut names = Volatile::default().names().to_vec();
    names.extend(REQUEST_VOLATILE.iter().map(|s| s.to_string()));
    Volatile::new(names)
}

/// One recorded request and its answers.
#[derive(Debug, Clone)]
struct Entry<A> {
    /// The request's value, volatile fields left out.
    request: Value,
    answers: Vec<A>,
    /// The next answer to give.
    next: usize,
}

/// How a live request was answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Found<A> {
    /// Its entry's next answer; `exhausted`: the entry had given all its
    /// answers, this is the last one again.
    Exact { answer: A, exhausted: bool },
    /// Unmatched, answered by [`Unmatched::Nearest`]: the nearest entry's
    /// next answer (`exhausted` as above) and the fields that differ from it.
    Nearest {
        answer: A,
        exhausted: bool,
        differing: Vec<String>,
    },
    /// Unmatched and not answered from the recording (the policy is
    /// [`Unmatched::Error`], or nothing of that name was recorded).
    None {
        /// Whether any request of that name was recorded.
        name_known: bool,
    },
}

/// The recorded requests by (scope, name).
#[derive(Debug, Clone)]
pub struct Index<A> {
    groups: HashMap<(String, String), Vec<Entry<A>>>,
    volatile: Volatile,
}

/// Where an answer was put: (scope, name, entry, answer), to attach
/// what followed it (pushes).
#[derive(Debug, Clone)]
pub struct Slot {
    key: (String, String),
    entry: usize,
    answer: usize,
}

impl<A: Clone> Index<A> {
    pub fn new(volatile: Volatile) -> Index<A> {
        Index {
            groups: HashMap::new(),
            volatile,
        }
    }

    /// Number of recorded requests (entries over all scopes).
    pub fn len(&self) -> usize {
        self.groups.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Records `answer` to `request` (named `name`) under each of
    /// `scopes`; where it went.
    pub fn insert(
        &mut self,
        scopes: &[String],
        name: &str,
        request: &Value,
        answer: A,
    ) -> Vec<Slot> {
        let stripped = strip_volatile(request, &self.volatile);
        let mut slots = Vec::new();
        for scope in scopes {
            let key = (scope.clone(), name.to_owned());
            let group = self.groups.entry(key.clone()).or_default();
            let entry = match group.iter().position(|e| e.request == stripped) {
                Some(i) => i,
                None => {
                    group.push(Entry {
                        request: stripped.clone(),
                        answers: Vec::new(),
                        next: 0,
                    });
                    group.len() - 1
                }
            };
            group[entry].answers.push(answer.clone());
            slots.push(Slot {
                key,
                entry,
                answer: group[entry].answers.len() - 1,
            });
        }
        slots
    }

    /// The answer recorded at `slot`, to change (attach pushes).
    pub fn at(&mut self, slot: &Slot) -> Option<&mut A> {
        self.groups
            .get_mut(&slot.key)?
            .get_mut(slot.entry)?
            .answers
            .get_mut(slot.answer)
    }

    /// Answers a live request named `name`, looking in `scopes` (most
    /// specific first): an exact match in the first scope that has one,
    /// else by `policy` in the first scope that recorded the name.
    pub fn answer(
        &mut self,
        scopes: &[String],
        name: &str,
        request: &Value,
        policy: Unmatched,
    ) -> Found<A> {
        let stripped = strip_volatile(request, &self.volatile);
        for scope in scopes {
            let key = (scope.clone(), name.to_owned());
            let Some(group) = self.groups.get_mut(&key) else {
                continue;
            };
            if let Some(e) = group.iter_mut().find(|e| e.request == stripped) {
                let (answer, exhausted) = take(e);
                return Found::Exact { answer, exhausted };
            }
        }
        let key = scopes
            .iter()
            .map(|s| (s.clone(), name.to_owned()))
            .find(|k| self.groups.contains_key(k));
        let Some(group) = key.and_then(|k| self.groups.get_mut(&k)) else {
            return Found::None { name_known: false };
        };
        if policy == Unmatched::Error {
            return Found::None { name_known: true };
        }
        // Fewest differing fields; the first recorded on a tie.
        let none = Volatile::new(Vec::new());
        let mut best: Option<(usize, Vec<String>)> = None;
        for (i, e) in group.iter().enumerate() {
            let (mut diffs, mut learned) = (Vec::new(), Vec::new());
            compare(&e.request, &stripped, &none, &mut diffs, &mut learned);
            if best.as_ref().is_none_or(|(_, d)| diffs.len() < d.len()) {
                best = Some((i, diffs.into_iter().map(|d| d.path).collect()));
            }
        }
        match best {
            Some((i, differing)) => {
                let (answer, exhausted) = take(&mut group[i]);
                Found::Nearest {
                    answer,
                    exhausted,
                    differing,
                }
            }
            None => Found::None { name_known: true },
        }
    }
}

/// The entry's next answer (the last again once used up), and whether it
/// was used up.
fn take<A: Clone>(e: &mut Entry<A>) -> (A, bool) {
    let exhausted = e.next >= e.answers.len();
    let i = e.next.min(e.answers.len().saturating_sub(1));
    e.next = (e.next + 1).min(e.answers.len());
    (e.answers[i].clone(), exhausted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scopes(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn volatile_fields_are_stripped_at_any_depth() {
        let v = json!({"BaseRequest": {"Sid": "x", "Uin": 2, "DeviceID": "e1"}, "rr": 5,
                       "List": [{"MsgId": 1, "Content": "hi"}], "Scene": 7});
        assert_eq!(
            strip_volatile(&v, &request_volatile()),
            json!({"BaseRequest": {}, "List": [{"Content": "hi"}], "Scene": 7})
        );
    }

    #[test]
    fn answers_come_in_order_and_the_last_repeats() {
        let mut ix = Index::new(request_volatile());
        let all = scopes(&[ANY]);
        for (key, answer) in [("k1", 1), ("k2", 2), ("k3", 3)] {
            ix.insert(&all, "newsync", &json!({"KeyBuf": key, "Scene": 7}), answer);
        }
        // Whatever key the client presents (volatile), the next answer.
        let req = json!({"KeyBuf": "anything", "Scene": 7});
        let got: Vec<_> = (0..4)
            .map(|_| ix.answer(&all, "newsync", &req, Unmatched::Error))
            .collect();
        assert_eq!(
            got,
            vec![
                Found::Exact {
                    answer: 1,
                    exhausted: false
                },
                Found::Exact {
                    answer: 2,
                    exhausted: false
                },
                Found::Exact {
                    answer: 3,
                    exhausted: false
                },
                Found::Exact {
                    answer: 3,
                    exhausted: true
                },
            ]
        );
    }

    #[test]
    fn the_most_specific_scope_answers_first() {
        let mut ix = Index::new(request_volatile());
        ix.insert(
            &scopes(&["bob/phone", "bob", ANY]),
            "auth",
            &json!({"D": "phone"}),
            "bob",
        );
        ix.insert(
            &scopes(&["alice/phone", "alice", ANY]),
            "auth",
            &json!({"D": "phone"}),
            "alice",
        );
        let got = ix.answer(
            &scopes(&["alice/phone", "alice", ANY]),
            "auth",
            &json!({"D": "phone"}),
            Unmatched::Error,
        );
        assert_eq!(
            got,
            Found::Exact {
                answer: "alice",
                exhausted: false
            }
        );
        // An unknown user falls back to every session, in recorded order.
        let got = ix.answer(
            &scopes(&["carol/phone", "carol", ANY]),
            "auth",
            &json!({"D": "phone"}),
            Unmatched::Error,
        );
        assert_eq!(
            got,
            Found::Exact {
                answer: "bob",
                exhausted: false
            }
        );
    }

    #[test]
    fn unmatched_requests_follow_the_policy() {
        let mut ix = Index::new(request_volatile());
        let all = scopes(&[ANY]);
        ix.insert(
            &all,
            "send",
            &json!({"To": "bob", "Content": "hello"}),
            "a1",
        );
        ix.insert(&all, "send", &json!({"To": "alice", "Content": "hi"}), "a2");
        let req = json!({"To": "alice", "Content": "something else"});
        assert_eq!(
            ix.answer(&all, "send", &req, Unmatched::Error),
            Found::None { name_known: true }
        );
        assert_eq!(
            ix.answer(&all, "send", &req, Unmatched::Nearest),
            Found::Nearest {
                answer: "a2",
                exhausted: false,
                differing: vec!["Content".to_string()]
            }
        );
        assert_eq!(
            ix.answer(&all, "other", &req, Unmatched::Nearest),
            Found::None { name_known: false }
        );
    }
}
