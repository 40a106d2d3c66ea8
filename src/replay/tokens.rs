//! What a replay substitutes: values the recording carried that the live
//! server gave differently (SyncKeys, uins, session ids, tickets, message
//! ids), learned from the volatile fields of each answer as the replay
//! compares it with the recorded one, and the users the command line maps.
//! A request sent later presents the live value wherever the recording
//! had the recorded one, in a volatile field; a mapped user name is
//! replaced in any field.

use std::collections::HashMap;

use base64::Engine;
use prost_reflect::{DynamicMessage, ReflectMessage, Value as PValue};
use serde_json::Value;

use super::diff::Volatile;

/// Recorded value -> live value.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    learned: HashMap<String, Value>,
    users: HashMap<String, String>,
    /// Named live state shared by the connections of one session (the
    /// latest web SyncKey of a web session, by its recorded sid).
    slots: HashMap<String, Value>,
}

/// Strings are learned by value alone (session ids, tickets, keys in
/// base64 do not collide); numbers by the field they are in too (a uin 2
/// is not a MsgId 2), `field` normalized by [`field_kind`] ("" when not
/// known).
fn key(field: &str, v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(format!("s{s}")),
        Value::Number(n) if n.as_u64() != Some(0) => Some(format!("n{}:{n}", field_kind(field))),
        _ => None,
    }
}

/// A field name as numbers are learned under: lower case, the web's
/// `wxuin` cookie the same as `Uin`.
pub fn field_kind(field: &str) -> String {
    let f = field.to_ascii_lowercase();
    match f.as_str() {
        "wxuin" => "uin".into(),
        _ => f,
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Tokens {
    /// Maps recorded user `from` to live user `to` (also as `@from`, the
    /// web form).
    pub fn map_user(&mut self, from: &str, to: &str) {
        self.users.insert(from.to_owned(), to.to_owned());
        self.users.insert(format!("@{from}"), format!("@{to}"));
    }

    /// The live user recorded user `name` maps to (itself when unmapped).
    pub fn user<'a>(&'a self, name: &'a str) -> &'a str {
        self.users.get(name).map(String::as_str).unwrap_or(name)
    }

    /// The recording had `recorded` where the live server gave `live`
    /// (a number: in a field not known; see [`Tokens::learn_field`]).
    pub fn learn(&mut self, recorded: &Value, live: &Value) {
        self.learn_field("", recorded, live)
    }

    /// The recording had `recorded` in field `field` where the live server
    /// gave `live`.
    pub fn learn_field(&mut self, field: &str, recorded: &Value, live: &Value) {
        if let Some(k) = key(field, recorded) {
            if recorded != live {
                self.learned.insert(k, live.clone());
            }
        }
    }

    /// What [`diff::compare`](super::diff::compare) found.
    pub fn learn_all(&mut self, learned: &[super::diff::Learned]) {
        for l in learned {
            self.learn_field(&l.field, &l.recorded, &l.live);
        }
    }

    /// Keeps `v` under `slot` (the latest value wins).
    pub fn remember(&mut self, slot: impl Into<String>, v: Value) {
        self.slots.insert(slot.into(), v);
    }

    /// What was last kept under `slot`.
    pub fn recall(&self, slot: &str) -> Option<&Value> {
        self.slots.get(slot)
    }

    pub fn len(&self) -> usize {
        self.learned.len()
    }

    pub fn is_empty(&self) -> bool {
        self.learned.is_empty()
    }

    /// The live value for `recorded`, if one was learned (a number: in a
    /// field not known).
    pub fn get(&self, recorded: &Value) -> Option<&Value> {
        self.get_field("", recorded)
    }

    /// The live value for `recorded` in field `field` (a number learned in
    /// no known field will do).
    pub fn get_field(&self, field: &str, recorded: &Value) -> Option<&Value> {
        key(field, recorded)
            .and_then(|k| self.learned.get(&k))
            .or_else(|| key("", recorded).and_then(|k| self.learned.get(&k)))
    }

    pub fn get_str(&self, recorded: &str) -> Option<&str> {
        self.learned
            .get(&format!("s{recorded}"))
            .and_then(Value::as_str)
    }

    pub fn get_u64(&self, recorded: u64) -> Option<u64> {
        self.get(&Value::from(recorded)).and_then(Value::as_u64)
    }

    pub fn get_u64_field(&self, field: &str, recorded: u64) -> Option<u64> {
        self.get_field(field, &Value::from(recorded))
            .and_then(Value::as_u64)
    }

    /// Bytes are learned in their JSON form, base64.
    pub fn get_bytes(&self, recorded: &[u8]) -> Option<Vec<u8>> {
        let live = self.get_str(&b64(recorded))?;
        base64::engine::general_purpose::STANDARD.decode(live).ok()
    }

    /// Whether `live` is what `recorded` becomes here (a learned value or
    /// a mapped user): not a difference.
    pub fn explains(&self, recorded: &Value, live: &Value) -> bool {
        if self.get(recorded) == Some(live) {
            return true;
        }
        match (recorded, live) {
            (Value::String(r), Value::String(l)) => self.user(r) == l,
            _ => false,
        }
    }

    /// Substitutes in a JSON body: learned values in volatile fields,
    /// users anywhere. Returns how many values changed.
    pub fn substitute_json(&self, v: &mut Value, volatile: &Volatile) -> usize {
        let mut path = Vec::new();
        self.json_walk(v, volatile, &mut path)
    }

    fn json_walk(&self, v: &mut Value, vol: &Volatile, path: &mut Vec<String>) -> usize {
        match v {
            Value::Object(m) => m
                .iter_mut()
                .map(|(k, x)| {
                    path.push(k.clone());
                    let n = self.json_walk(x, vol, path);
                    path.pop();
                    n
                })
                .sum(),
            Value::Array(a) => a
                .iter_mut()
                .map(|x| {
                    path.push("[]".into());
                    let n = self.json_walk(x, vol, path);
                    path.pop();
                    n
                })
                .sum(),
            leaf => {
                let new = match leaf {
                    Value::String(s) if self.users.contains_key(s.as_str()) => {
                        Some(Value::String(self.users[s.as_str()].clone()))
                    }
                    _ if vol.matches(path) => {
                        let field = path
                            .iter()
                            .rev()
                            .find(|p| !p.starts_with('['))
                            .map_or("", |s| s.as_str());
                        self.get_field(field, leaf).cloned()
                    }
                    _ => None,
                };
                match new {
                    Some(n) if n != *leaf => {
                        *leaf = n;
                        1
                    }
                    _ => 0,
                }
            }
        }
    }

    /// Substitutes in a decoded protobuf message, in place (unknown fields
    /// kept): learned values in volatile fields (bytes by their base64
    /// form), users in string fields anywhere. Returns how many changed.
    pub fn substitute_message(&self, m: &mut DynamicMessage, volatile: &Volatile) -> usize {
        let mut path = Vec::new();
        self.message_walk(m, volatile, &mut path)
    }

    fn message_walk(
        &self,
        m: &mut DynamicMessage,
        vol: &Volatile,
        path: &mut Vec<String>,
    ) -> usize {
        let mut n = 0;
        let fields: Vec<_> = m.descriptor().fields().collect();
        for f in fields {
            if !m.has_field(&f) {
                continue;
            }
            path.push(f.name().to_owned());
            let is_vol = vol.matches(path);
            let v = m.get_field_mut(&f);
            n += self.value_walk(v, vol, path, is_vol);
            path.pop();
        }
        n
    }

    fn value_walk(
        &self,
        v: &mut PValue,
        vol: &Volatile,
        path: &mut Vec<String>,
        is_vol: bool,
    ) -> usize {
        let field = path.last().cloned().unwrap_or_default();
        let field = field.as_str();
        let new = match v {
            PValue::Message(m) => return self.message_walk(m, vol, path),
            PValue::List(items) => {
                return items
                    .iter_mut()
                    .map(|x| self.value_walk(x, vol, path, is_vol))
                    .sum()
            }
            PValue::String(s) => match self.users.get(s.as_str()) {
                Some(u) => Some(PValue::String(u.clone())),
                None if is_vol => self.get_str(s).map(|l| PValue::String(l.to_owned())),
                None => None,
            },
            PValue::Bytes(b) if is_vol => self.get_bytes(b).map(|l| PValue::Bytes(l.into())),
            PValue::U32(x) if is_vol => self
                .get_u64_field(field, u64::from(*x))
                .and_then(|l| u32::try_from(l).ok())
                .map(PValue::U32),
            PValue::U64(x) if is_vol => self.get_u64_field(field, *x).map(PValue::U64),
            PValue::I32(x) if is_vol && *x > 0 => self
                .get_u64_field(field, *x as u64)
                .and_then(|l| i32::try_from(l).ok())
                .map(PValue::I32),
            PValue::I64(x) if is_vol && *x > 0 => self
                .get_u64_field(field, *x as u64)
                .and_then(|l| i64::try_from(l).ok())
                .map(PValue::I64),
            _ => None,
        };
        match new {
            Some(n) if n != *v => {
                *v = n;
                1
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn learned_values_replace_volatile_fields_only() {
        let mut t = Tokens::default();
        t.learn(&json!(7), &json!(9));
        t.learn(&json!("sid-old"), &json!("sid-new"));
        let mut body =
            json!({"BaseRequest": {"Sid": "sid-old", "Uin": 7}, "Scene": 7, "Text": "sid-old"});
        let n = t.substitute_json(&mut body, &Volatile::new(["Sid".into(), "Uin".into()]));
        assert_eq!(n, 2);
        assert_eq!(
            body,
            json!({"BaseRequest": {"Sid": "sid-new", "Uin": 9}, "Scene": 7, "Text": "sid-old"})
        );
    }

    #[test]
    fn users_are_mapped_anywhere_and_in_web_form() {
        let mut t = Tokens::default();
        t.map_user("bob", "carol");
        let mut body = json!({"Msg": {"ToUserName": "@bob", "FromUserName": "alice"}, "x": "bob"});
        assert_eq!(t.substitute_json(&mut body, &Volatile::default()), 2);
        assert_eq!(body["Msg"]["ToUserName"], "@carol");
        assert_eq!(body["x"], "carol");
        assert!(t.explains(&json!("@bob"), &json!("@carol")));
    }

    #[test]
    fn numbers_are_learned_per_field() {
        let mut t = Tokens::default();
        t.learn_field("Uin", &json!(2), &json!(7));
        t.learn_field("MsgId", &json!(2), &json!(108));
        assert_eq!(t.get_u64_field("uin", 2), Some(7));
        assert_eq!(t.get_u64_field("wxuin", 2), Some(7));
        assert_eq!(t.get_u64_field("MsgId", 2), Some(108));
        let mut body = json!({"BaseRequest": {"Uin": 2}, "MsgId": 2});
        t.substitute_json(&mut body, &Volatile::default());
        assert_eq!(body, json!({"BaseRequest": {"Uin": 7}, "MsgId": 108}));
    }

    #[test]
    fn zero_and_empty_values_are_never_learned() {
        let mut t = Tokens::default();
        t.learn(&json!(0), &json!(5));
        t.learn(&json!(""), &json!("x"));
        assert!(t.is_empty());
    }

    #[test]
    fn bytes_are_looked_up_by_their_base64() {
        let mut t = Tokens::default();
        t.learn(&json!(b64(b"old key")), &json!(b64(b"new key")));
        assert_eq!(t.get_bytes(b"old key").as_deref(), Some(&b"new key"[..]));
        assert_eq!(t.get_bytes(b"other"), None);
    }
}
