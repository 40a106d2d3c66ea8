//! The body fields the `frames` table has as columns of their own
//! (docs/parquet.md): each is looked up at a short list of places in the
//! record's decoded body (the analyzer's summaries first, then the decoded
//! request or response), the first that holds a value wins. Everything
//! else stays in the `body` column as JSON text.

use serde_json::Value;

/// Where each field is looked for, in order (`.` separates object keys).
const UIN: &[&str] = &[
    "uin",
    "info.uin",
    "identify.uin",
    "request.BaseRequest.Uin",
    "request.base_request.uin",
];
const SID: &[&str] = &["info.sid", "request.BaseRequest.Sid"];
const RET: &[&str] = &[
    "info.ret",
    "response.BaseResponse.Ret",
    "response.base_response.ret",
    "base_response.ret",
];
const CLIENT_MSG_ID: &[&str] = &[
    "info.client_msg_id",
    "client_msg_id",
    "request.client_msg_id",
    "response.client_msg_id",
    "request.Msg.ClientMsgId",
];
const MSG_ID: &[&str] = &[
    "info.msg_id",
    "new_msg_id",
    "response.new_msg_id",
    "response.MsgID",
];
const MSG_COUNT: &[&str] = &["info.add_msg_count", "response.AddMsgCount"];
const SYNCKEY: &[&str] = &[
    "info.synckey_issued",
    "info.synckey_presented",
    "info.synccheck_key",
];
const SERVER_NAME: &[&str] = &["server_name"];

/// The known fields of one body.
#[derive(Debug, Default, PartialEq)]
pub struct Known {
    pub uin: Option<i64>,
    pub sid: Option<String>,
    pub ret: Option<i64>,
    pub client_msg_id: Option<String>,
    pub msg_id: Option<String>,
    pub msg_count: Option<i64>,
    /// A SyncKey as JSON text (`{"1": 700, ...}`): the one issued, else the
    /// one presented.
    pub synckey: Option<String>,
    pub server_name: Option<String>,
}

fn at<'a>(body: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(body, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

fn first<'a>(body: &'a Value, paths: &[&str]) -> Option<&'a Value> {
    paths.iter().find_map(|p| at(body, p))
}

/// An integer, also from a string of digits (web bodies send uins both ways).
fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_u64().and_then(|u| i64::try_from(u).ok()))
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A string, numbers written in decimal (message ids come both ways).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Known {
    pub fn of(body: &Value) -> Known {
        Known {
            uin: first(body, UIN).and_then(int),
            sid: first(body, SID).and_then(text),
            ret: first(body, RET).and_then(int),
            client_msg_id: first(body, CLIENT_MSG_ID).and_then(text),
            msg_id: first(body, MSG_ID).and_then(text),
            msg_count: first(body, MSG_COUNT).and_then(int),
            synckey: first(body, SYNCKEY)
                .filter(|v| v.is_object())
                .and_then(|v| crate::report::json::to_string(v).ok()),
            server_name: first(body, SERVER_NAME).and_then(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_found_in_the_summaries_before_the_bodies() {
        let k = Known::of(&json!({
            "info": {"uin": 42, "sid": "s1", "ret": 0, "synckey_issued": {"1": 7},
                     "synckey_presented": {"1": 6}, "add_msg_count": 2, "msg_id": "9"},
            "request": {"BaseRequest": {"Uin": 1, "Sid": "other"}},
            "response": {"BaseResponse": {"Ret": -1}, "MsgID": "8"},
        }));
        assert_eq!(k.uin, Some(42));
        assert_eq!(k.sid.as_deref(), Some("s1"));
        assert_eq!(k.ret, Some(0));
        assert_eq!(k.msg_id.as_deref(), Some("9"));
        assert_eq!(k.msg_count, Some(2));
        assert_eq!(k.synckey.as_deref(), Some(r#"{"1":7}"#));
    }

    #[test]
    fn fields_come_from_the_bodies_when_no_summary_has_them() {
        let k = Known::of(&json!({
            "request": {"BaseRequest": {"Uin": "1234", "Sid": "abc"}},
            "response": {"BaseResponse": {"Ret": -14}, "MsgID": 5566},
        }));
        assert_eq!(k.uin, Some(1234), "a uin written as a string");
        assert_eq!(k.sid.as_deref(), Some("abc"));
        assert_eq!(k.ret, Some(-14));
        assert_eq!(k.msg_id.as_deref(), Some("5566"), "a number as text");
        assert_eq!(Known::of(&json!({"identify": {"uin": 7}})).uin, Some(7));
        assert_eq!(
            Known::of(&json!({"server_name": "wx.qq.com"}))
                .server_name
                .as_deref(),
            Some("wx.qq.com")
        );
    }

    #[test]
    fn a_body_without_them_has_none() {
        assert_eq!(Known::of(&json!({"protobuf": {"1": 2}})), Known::default());
        assert_eq!(Known::of(&json!("text")), Known::default());
        assert_eq!(
            Known::of(&json!({"info": {"uin": null, "sid": ""}})),
            Known::default()
        );
    }
}
