//! Structural comparison of a recorded answer with a live one: decoded
//! bodies (protobuf or JSON) walked field by field, volatile fields
//! (times, SyncKeys, message ids, tickets) left out. The pairs of
//! volatile values found on the way are what the replay learns to
//! substitute (see [`super::tokens`]).

use serde::Serialize;
use serde_json::Value;

/// Field names whose values change from run to run. A name matches a
/// field of that name at any depth (and everything under it); a dotted
/// entry (`BaseResponse.ErrMsg`) matches a path that ends with it.
pub const DEFAULT_VOLATILE: &[&str] = &[
    // long link and short link (proto/wechat.proto names)
    "KeyBuf",
    "SyncKey",
    "synckey",
    "synckey_count",
    "MsgId",
    "NewMsgId",
    "MsgSeq",
    "CreateTime",
    "ServerTime",
    "AutoAuthKey",
    "Uin",
    "uin",
    // web
    "SyncCheckKey",
    "MsgID",
    "LocalID",
    "ClientMsgId",
    "Sid",
    "Skey",
    "SKey",
    "PassTicket",
    "pass_ticket",
    "wxsid",
    "wxuin",
    "skey",
    "uuid",
    "ticket",
    "Ticket",
    "redirect_uri",
    "UserName",
    "Uuid",
    "SystemTime",
    "ClientVersion",
    // bodies shown as hex (undecoded): their entropy varies with the bytes
    "entropy",
];

/// The volatile fields of a replay.
#[derive(Debug, Clone)]
pub struct Volatile {
    names: Vec<String>,
}

impl Default for Volatile {
    fn default() -> Self {
        Volatile::new(DEFAULT_VOLATILE.iter().map(|s| s.to_string()))
    }
}

impl Volatile {
    pub fn new(names: impl IntoIterator<Item = String>) -> Volatile {
        Volatile {
            names: names.into_iter().collect(),
        }
    }

    /// The entries, as given.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether the field at `path` (segments: names, `[i]` for list items)
    /// or anything above it is volatile.
    pub fn matches(&self, path: &[String]) -> bool {
        let names: Vec<&str> = path
            .iter()
            .map(String::as_str)
            .filter(|s| !s.starts_with('['))
            .collect();
        self.names.iter().any(|v| {
            if v.contains('.') {
                let want: Vec<&str> = v.split('.').collect();
                (want.len()..=names.len()).any(|end| names[..end].ends_with(&want))
            } else {
                names.contains(&v.as_str())
            }
        })
    }
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDiff {
    /// `a.b[2].c` (`$` for the body itself).
    pub path: String,
    /// Absent: the live answer has a field the recorded one does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Value>,
    /// Absent: the live answer lacks the field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<Value>,
}

/// A volatile leaf that differs: what the replay may substitute later.
#[derive(Debug, Clone, PartialEq)]
pub struct Learned {
    /// The leaf's field name (the last name of its path).
    pub field: String,
    pub recorded: Value,
    pub live: Value,
}

/// Compares `recorded` with `live`: the differing fields outside
/// `volatile` go to `diffs`, the differing volatile leaves to `learned`.
pub fn compare(
    recorded: &Value,
    live: &Value,
    volatile: &Volatile,
    diffs: &mut Vec<FieldDiff>,
    learned: &mut Vec<Learned>,
) {
    let mut path = Vec::new();
    walk(recorded, live, volatile, &mut path, diffs, learned);
}

fn render(path: &[String]) -> String {
    if path.is_empty() {
        return "$".into();
    }
    let mut s = String::new();
    for p in path {
        if !p.starts_with('[') && !s.is_empty() {
            s.push('.');
        }
        s.push_str(p);
    }
    s
}

fn walk(
    a: &Value,
    b: &Value,
    vol: &Volatile,
    path: &mut Vec<String>,
    diffs: &mut Vec<FieldDiff>,
    learned: &mut Vec<Learned>,
) {
    let volatile = vol.matches(path);
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                path.push(k.clone());
                match y.get(k) {
                    Some(vb) => walk(va, vb, vol, path, diffs, learned),
                    None if vol.matches(path) => {}
                    None => diffs.push(FieldDiff {
                        path: render(path),
                        recorded: Some(va.clone()),
                        live: None,
                    }),
                }
                path.pop();
            }
            for (k, vb) in y {
                if x.contains_key(k) {
                    continue;
                }
                path.push(k.clone());
                if !vol.matches(path) {
                    diffs.push(FieldDiff {
                        path: render(path),
                        recorded: None,
                        live: Some(vb.clone()),
                    });
                }
                path.pop();
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                path.push(format!("[{i}]"));
                match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => walk(va, vb, vol, path, diffs, learned),
                    (va, vb) if !volatile => diffs.push(FieldDiff {
                        path: render(path),
                        recorded: va.cloned(),
                        live: vb.cloned(),
                    }),
                    _ => {}
                }
                path.pop();
            }
        }
        _ if a == b => {}
        _ if volatile => learned.push(Learned {
            field: path
                .iter()
                .rev()
                .find(|p| !p.starts_with('['))
                .cloned()
                .unwrap_or_default(),
            recorded: a.clone(),
            live: b.clone(),
        }),
        _ => diffs.push(FieldDiff {
            path: render(path),
            recorded: Some(a.clone()),
            live: Some(b.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(a: Value, b: Value) -> (Vec<FieldDiff>, Vec<Learned>) {
        let (mut d, mut l) = (Vec::new(), Vec::new());
        compare(&a, &b, &Volatile::default(), &mut d, &mut l);
        (d, l)
    }

    #[test]
    fn equal_bodies_have_no_differences() {
        let v = json!({"Ret": 0, "List": [{"Content": "hi"}]});
        assert_eq!(run(v.clone(), v), (vec![], vec![]));
    }

    #[test]
    fn differing_fields_are_named_with_both_values() {
        let (d, _) = run(
            json!({"BaseResponse": {"Ret": 0}, "List": [{"Content": "hi"}]}),
            json!({"BaseResponse": {"Ret": -1}, "List": [{"Content": "ho"}, {"Content": "x"}]}),
        );
        let paths: Vec<&str> = d.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["BaseResponse.Ret", "List[0].Content", "List[1]"]);
        assert_eq!(d[0].recorded, Some(json!(0)));
        assert_eq!(d[0].live, Some(json!(-1)));
        assert_eq!(d[2].recorded, None);
    }

    #[test]
    fn volatile_fields_are_learned_not_reported() {
        let (d, l) = run(
            json!({"KeyBuf": {"Buffer": "AAA", "iLen": 3}, "List": [{"MsgId": 7, "Content": "a"}]}),
            json!({"KeyBuf": {"Buffer": "BBB", "iLen": 3}, "List": [{"MsgId": 9, "Content": "a"}]}),
        );
        assert!(d.is_empty(), "{d:?}");
        let pairs: Vec<_> = l
            .iter()
            .map(|x| (x.field.as_str(), &x.recorded, &x.live))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("Buffer", &json!("AAA"), &json!("BBB")),
                ("MsgId", &json!(7), &json!(9))
            ]
        );
    }

    #[test]
    fn missing_and_extra_fields() {
        let (d, _) = run(json!({"a": 1}), json!({"b": 2}));
        assert_eq!(
            d,
            vec![
                FieldDiff {
                    path: "a".into(),
                    recorded: Some(json!(1)),
                    live: None
                },
                FieldDiff {
                    path: "b".into(),
                    recorded: None,
                    live: Some(json!(2))
                },
            ]
        );
        // A volatile field may come and go.
        assert!(run(json!({"MsgId": 1}), json!({})).0.is_empty());
    }

    #[test]
    fn dotted_entries_match_the_end_of_a_path() {
        let v = Volatile::new(["BaseResponse.ErrMsg".to_string()]);
        let p = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert!(v.matches(&p("BaseResponse.ErrMsg")));
        assert!(v.matches(&p("x.BaseResponse.ErrMsg.String")));
        assert!(!v.matches(&p("ErrMsg")));
        assert!(!v.matches(&p("BaseResponse.Ret")));
    }

    #[test]
    fn a_type_change_is_a_difference() {
        let (d, _) = run(json!({"a": "1"}), json!({"a": 1}));
        assert_eq!(d.len(), 1);
        let (d, _) = run(json!(null), json!({"a": 1}));
        assert_eq!(d[0].path, "$");
    }
}
