//! The web WeChat protocol (HTTP + JSON): which endpoint an exchange is,
//! and what it says about the session (ids, SyncKeys, selectors, messages).
//! Facts: `docs/protocol.md` section 6. Sans-IO: it looks at one request
//! and its response, already reassembled and decoded by the HTTP layer.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// SyncKey as key -> value.
pub use crate::body::synckey::KeyMap;

/// Known web endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Jslogin,
    Login,
    Newloginpage,
    Webwxinit,
    Webwxstatusnotify,
    Synccheck,
    Webwxsync,
    Webwxsendmsg,
    Webwxgetcontact,
    Webwxlogout,
    /// An upload chunk (multipart/form-data).
    Webwxuploadmedia,
    /// An image message naming a whole upload by MediaId.
    Webwxsendmsgimg,
    /// An image (or its thumbnail) read back.
    Webwxgetmsgimg,
}

impl Endpoint {
    /// Every endpoint (the names `frames --cmd` knows).
    pub const ALL: [Endpoint; 13] = [
        Endpoint::Jslogin,
        Endpoint::Login,
        Endpoint::Newloginpage,
        Endpoint::Webwxinit,
        Endpoint::Webwxstatusnotify,
        Endpoint::Synccheck,
        Endpoint::Webwxsync,
        Endpoint::Webwxsendmsg,
        Endpoint::Webwxgetcontact,
        Endpoint::Webwxlogout,
        Endpoint::Webwxuploadmedia,
        Endpoint::Webwxsendmsgimg,
        Endpoint::Webwxgetmsgimg,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Jslogin => "jslogin",
            Endpoint::Login => "login",
            Endpoint::Newloginpage => "webwxnewloginpage",
            Endpoint::Webwxinit => "webwxinit",
            Endpoint::Webwxstatusnotify => "webwxstatusnotify",
            Endpoint::Synccheck => "synccheck",
            Endpoint::Webwxsync => "webwxsync",
            Endpoint::Webwxsendmsg => "webwxsendmsg",
            Endpoint::Webwxgetcontact => "webwxgetcontact",
            Endpoint::Webwxlogout => "webwxlogout",
            Endpoint::Webwxuploadmedia => "webwxuploadmedia",
            Endpoint::Webwxsendmsgimg => "webwxsendmsgimg",
            Endpoint::Webwxgetmsgimg => "webwxgetmsgimg",
        }
    }

    /// The endpoint a request path names (query excluded or not).
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let p = path.split('?').next().unwrap_or(path);
        let last = p.rsplit('/').next().unwrap_or(p);
        Some(match last {
            "jslogin" => Endpoint::Jslogin,
            "login" if p.contains("mmwebwx-bin") => Endpoint::Login,
            "webwxnewloginpage" => Endpoint::Newloginpage,
            "webwxinit" => Endpoint::Webwxinit,
            "webwxstatusnotify" => Endpoint::Webwxstatusnotify,
            "synccheck" => Endpoint::Synccheck,
            "webwxsync" => Endpoint::Webwxsync,
            "webwxsendmsg" => Endpoint::Webwxsendmsg,
            "webwxgetcontact" => Endpoint::Webwxgetcontact,
            "webwxlogout" => Endpoint::Webwxlogout,
            "webwxuploadmedia" => Endpoint::Webwxuploadmedia,
            "webwxsendmsgimg" => Endpoint::Webwxsendmsgimg,
            "webwxgetmsgimg" => Endpoint::Webwxgetmsgimg,
            _ => return None,
        })
    }
}

mod media;
pub use media::WebMedia;

/// A message listed in a webwxsync response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddMsg {
    pub msg_id: String,
    pub from: String,
    pub to: String,
    pub msg_type: u64,
}

/// What one web exchange tells.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WebInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Login poll: window.code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skey: Option<String>,
    /// wxsid / Sid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// wxuin / Uin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uin: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_ticket: Option<String>,
    /// The SyncKey the client presented (webwxsync request body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synckey_presented: Option<KeyMap>,
    /// The `synckey` parameter of a synccheck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synccheck_key: Option<KeyMap>,
    /// SyncKey issued by the server (webwxinit, webwxsync response).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synckey_issued: Option<KeyMap>,
    /// SyncCheckKey issued by the server (webwxsync response).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synccheckkey_issued: Option<KeyMap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retcode: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<i64>,
    /// webwxsync response: AddMsgCount, ModContactCount, ContinueFlag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_msg_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mod_contact_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continue_flag: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add_msgs: Vec<AddMsg>,
    /// webwxsendmsg: the client's ids and the server's MsgID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// BaseResponse.Ret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// webwxuploadmedia, webwxsendmsgimg, webwxgetmsgimg: the media.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<media::WebMedia>,
}

/// A decoded web exchange.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebExchange {
    pub endpoint: Endpoint,
    /// Decoded request body (JSON) when there is one.
    pub request: Value,
    /// Decoded response body: JSON, the `window.*` assignments as an
    /// object, or the ticket XML's fields.
    pub response: Value,
    pub info: WebInfo,
}

/// Decodes one exchange. `path` includes the query string; bodies are
/// already de-chunked and decompressed. `None` when the path is not a
/// web endpoint.
pub fn decode(path: &str, req_body: &[u8], resp_body: Option<&[u8]>) -> Option<WebExchange> {
    let endpoint = Endpoint::from_path(path)?;
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params = parse_query(query);
    let (request, upload) = if endpoint == Endpoint::Webwxuploadmedia {
        match media::upload_form(req_body) {
            Some((meta, m)) => (meta, Some(m)),
            None => (Value::Null, None),
        }
    } else {
        (
            serde_json::from_slice(req_body).unwrap_or(Value::Null),
            None,
        )
    };
    let resp_text = resp_body.map(|b| String::from_utf8_lossy(b).into_owned());
    let mut info = WebInfo::default();
    let mut response = Value::Null;

    // Session ids from the query and the BaseRequest, whatever the endpoint.
    if let Some(s) = params.get("sid") {
        info.sid = Some(s.clone());
    }
    if let Some(u) = params.get("uin").and_then(|u| u.parse().ok()) {
        info.uin = Some(u);
    }
    if let Some(s) = params.get("skey") {
        info.skey = Some(s.clone());
    }
    let base = &request["BaseRequest"];
    if let Some(s) = base["Sid"].as_str() {
        info.sid = Some(s.to_owned());
    }
    if let Some(u) = as_u64(&base["Uin"]) {
        info.uin = Some(u);
    }

    match endpoint {
        Endpoint::Jslogin | Endpoint::Login | Endpoint::Synccheck => {
            if let Some(t) = &resp_text {
                let w = window_assignments(t);
                info.code = w
                    .get("QRLogin.code")
                    .or_else(|| w.get("code"))
                    .and_then(|v| v.parse().ok());
                info.uuid = w.get("QRLogin.uuid").cloned();
                info.redirect_uri = w.get("redirect_uri").cloned();
                if let Some(sc) = w.get("synccheck") {
                    let obj = js_object(sc);
                    info.retcode = obj.get("retcode").and_then(|v| v.parse().ok());
                    info.selector = obj.get("selector").and_then(|v| v.parse().ok());
                }
                response = serde_json::to_value(&w).unwrap_or(Value::Null);
            }
            if endpoint == Endpoint::Synccheck {
                info.synccheck_key = params.get("synckey").and_then(|k| parse_synckey_param(k));
            }
        }
        Endpoint::Newloginpage => {
            if let Some(t) = &resp_text {
                let get = |tag: &str| xml_tag(t, tag);
                info.skey = get("skey");
                info.sid = get("wxsid");
                info.uin = get("wxuin").and_then(|u| u.parse().ok());
                info.pass_ticket = get("pass_ticket");
                info.ret = get("ret").and_then(|r| r.parse().ok());
                response = serde_json::json!({
                    "ret": info.ret, "skey": info.skey, "wxsid": info.sid,
                    "wxuin": info.uin, "pass_ticket": info.pass_ticket,
                });
            }
        }
        // Ends the session; its answer says nothing (a redirect or a blank page).
        Endpoint::Webwxlogout => {}
        // The answer is the image itself.
        Endpoint::Webwxgetmsgimg => {
            let m = media::WebMedia::read_back(&params, resp_body);
            info.msg_id = m.msg_id.clone();
            info.media = Some(m);
        }
        Endpoint::Webwxinit
        | Endpoint::Webwxsync
        | Endpoint::Webwxstatusnotify
        | Endpoint::Webwxsendmsg
        | Endpoint::Webwxsendmsgimg
        | Endpoint::Webwxuploadmedia
        | Endpoint::Webwxgetcontact => {
            response = resp_body
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            info.ret = as_i64(&response["BaseResponse"]["Ret"]);
            if endpoint == Endpoint::Webwxsync {
                info.synckey_presented = synckey_json(&request["SyncKey"]);
                info.synccheckkey_issued = synckey_json(&response["SyncCheckKey"]);
                info.add_msg_count = as_u64(&response["AddMsgCount"]);
                info.mod_contact_count = as_u64(&response["ModContactCount"]);
                info.continue_flag = as_u64(&response["ContinueFlag"]);
                if let Some(list) = response["AddMsgList"].as_array() {
                    info.add_msgs = list
                        .iter()
                        .map(|m| AddMsg {
                            msg_id: id_string(&m["MsgId"]),
                            from: m["FromUserName"].as_str().unwrap_or("").to_owned(),
                            to: m["ToUserName"].as_str().unwrap_or("").to_owned(),
                            msg_type: as_u64(&m["MsgType"]).unwrap_or(0),
                        })
                        .collect();
                }
            }
            if matches!(endpoint, Endpoint::Webwxinit | Endpoint::Webwxsync) {
                info.synckey_issued = synckey_json(&response["SyncKey"]);
                if let Some(s) = response["SKey"].as_str().filter(|s| !s.is_empty()) {
                    info.skey = Some(s.to_owned());
                }
            }
            if endpoint == Endpoint::Webwxuploadmedia {
                info.media = upload.map(|m| m.answered(&response));
            }
            if endpoint == Endpoint::Webwxsendmsgimg {
                info.media = Some(media::WebMedia::sent(&request["Msg"]));
            }
            if matches!(endpoint, Endpoint::Webwxsendmsg | Endpoint::Webwxsendmsgimg) {
                let msg = &request["Msg"];
                info.client_msg_id = Some(id_string(&msg["ClientMsgId"])).filter(|s| !s.is_empty());
                info.local_id = Some(id_string(&msg["LocalID"])).filter(|s| !s.is_empty());
                info.msg_id = Some(id_string(&response["MsgID"])).filter(|s| !s.is_empty());
            }
        }
    }
    Some(WebExchange {
        endpoint,
        request,
        response,
        info,
    })
}

/// A number, or a string holding one.
pub fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A signed number, or a string holding one.
pub fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The value of cookie `name` in a Cookie header (`a=1; b=2`).
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim())
}

/// Ids are numbers or strings depending on the client: keep them as text.
pub fn id_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// `{"Count": n, "List": [{"Key": k, "Val": v}, ...]}` as a map.
pub fn synckey_json(v: &Value) -> Option<KeyMap> {
    let list = v["List"].as_array()?;
    Some(
        list.iter()
            .filter_map(|kv| Some((as_u64(&kv["Key"])? as u32, as_u64(&kv["Val"])?)))
            .collect(),
    )
}

/// A SyncKey as the JSON of webwxinit / webwxsync: `{"Count", "List": [{"Key", "Val"}]}`
/// (what [`synckey_json`] reads).
pub fn synckey_to_json(key: &KeyMap) -> Value {
    serde_json::json!({
        "Count": key.len(),
        "List": key
            .iter()
            .map(|(k, v)| serde_json::json!({"Key": k, "Val": v}))
            .collect::<Vec<_>>(),
    })
}

/// A SyncKey as the synccheck `synckey` parameter before percent-encoding:
/// `1_1|2_5|3_1` (what [`parse_synckey_param`] reads).
pub fn synckey_to_param(key: &KeyMap) -> String {
    key.iter()
        .map(|(k, v)| format!("{k}_{v}"))
        .collect::<Vec<_>>()
        .join("|")
}

/// The synccheck `synckey` parameter: `k_v|k_v|...`, the pipe possibly
/// percent-encoded (`%7C`).
pub fn parse_synckey_param(s: &str) -> Option<KeyMap> {
    let decoded = percent_decode(s);
    let mut map = KeyMap::new();
    for part in decoded.split('|').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('_')?;
        map.insert(k.trim().parse().ok()?, v.trim().parse().ok()?);
    }
    Some(map)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Query parameters, percent-decoded (`+` is a space).
pub fn parse_query(q: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `window.a = 1; window.b.c = "x";` -> {"a": "1", "b.c": "x"} (quotes removed).
pub fn window_assignments(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stmt in text.split(';') {
        let stmt = stmt.trim();
        let Some(rest) = stmt.strip_prefix("window.") else {
            continue;
        };
        let Some((name, value)) = rest.split_once('=') else {
            continue;
        };
        let v = value.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        out.insert(name.trim().to_owned(), v.to_owned());
    }
    out
}

/// `{retcode:"0",selector:"2"}` -> {"retcode": "0", "selector": "2"}.
pub fn js_object(text: &str) -> BTreeMap<String, String> {
    let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
    inner
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once(':')?;
            let unq = |s: &str| s.trim().trim_matches('"').trim_matches('\'').to_owned();
            Some((unq(k), unq(v)))
        })
        .collect()
}

/// The text of the first `<tag>...</tag>`.
pub fn xml_tag(text: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&close)? + start;
    Some(text[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ALL` lists each endpoint once, and every one is found by its path.
    #[test]
    fn all_endpoints_listed() {
        for (i, e) in Endpoint::ALL.iter().enumerate() {
            assert!(!Endpoint::ALL[..i].contains(e), "{e:?} twice");
            let path = format!("/cgi-bin/mmwebwx-bin/{}", e.as_str());
            assert_eq!(Endpoint::from_path(&path), Some(*e), "{path}");
        }
    }

    #[test]
    fn endpoints_by_path() {
        assert_eq!(
            Endpoint::from_path("/jslogin?appid=wx782c26e4c19acffb&fun=new"),
            Some(Endpoint::Jslogin)
        );
        assert_eq!(
            Endpoint::from_path("/cgi-bin/mmwebwx-bin/login?uuid=x&tip=1"),
            Some(Endpoint::Login)
        );
        assert_eq!(
            Endpoint::from_path("/cgi-bin/mmwebwx-bin/synccheck?r=1"),
            Some(Endpoint::Synccheck)
        );
        assert_eq!(
            Endpoint::from_path("/cgi-bin/mmwebwx-bin/webwxsync?sid=a"),
            Some(Endpoint::Webwxsync)
        );
        assert_eq!(Endpoint::from_path("/cgi-bin/micromsg-bin/newgetdns"), None);
    }

    #[test]
    fn synccheck_with_encoded_pipes_and_its_answer() {
        let ex = decode(
            "/cgi-bin/mmwebwx-bin/synccheck?r=1&skey=%40crypt_1&sid=S1&uin=42&deviceid=e1&synckey=1_100%7C2_200%7C3_300&_=5",
            b"",
            Some(b"window.synccheck={retcode:\"0\",selector:\"2\"}"),
        )
        .unwrap();
        assert_eq!(ex.endpoint, Endpoint::Synccheck);
        assert_eq!(
            ex.info.synccheck_key,
            Some(KeyMap::from([(1, 100), (2, 200), (3, 300)]))
        );
        assert_eq!((ex.info.retcode, ex.info.selector), (Some(0), Some(2)));
        assert_eq!(ex.info.sid.as_deref(), Some("S1"));
        assert_eq!(ex.info.uin, Some(42));
        assert_eq!(ex.info.skey.as_deref(), Some("@crypt_1"));
        let plain = parse_synckey_param("1_5|2_6").unwrap();
        assert_eq!(plain, KeyMap::from([(1, 5), (2, 6)]));
        assert_eq!(parse_synckey_param("1_x"), None);
    }

    #[test]
    fn contact_list_and_logout() {
        let c = decode(
            "/cgi-bin/mmwebwx-bin/webwxgetcontact?r=1&seq=0&skey=%40crypt_1",
            b"",
            Some(br#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"MemberCount":0,"MemberList":[]}"#),
        )
        .unwrap();
        assert_eq!(c.endpoint, Endpoint::Webwxgetcontact);
        assert_eq!(c.info.ret, Some(0));
        assert_eq!(c.response["MemberCount"], 0);
        let l = decode(
            "/cgi-bin/mmwebwx-bin/webwxlogout?redirect=1&type=1&skey=%40crypt_1&sid=S1&uin=42",
            b"",
            Some(b""),
        )
        .unwrap();
        assert_eq!(l.endpoint, Endpoint::Webwxlogout);
        assert_eq!(l.endpoint.as_str(), "webwxlogout");
        assert_eq!((l.info.sid.as_deref(), l.info.uin), (Some("S1"), Some(42)));
        assert_eq!(l.response, Value::Null);
    }

    #[test]
    fn login_flow_texts() {
        let j = decode(
            "/jslogin?appid=a",
            b"",
            Some(b"window.QRLogin.code = 200; window.QRLogin.uuid = \"gYmgd1grLg==\";"),
        )
        .unwrap();
        assert_eq!(
            (j.info.code, j.info.uuid.as_deref()),
            (Some(200), Some("gYmgd1grLg=="))
        );
        let l = decode(
            "/cgi-bin/mmwebwx-bin/login?uuid=u&tip=0",
            b"",
            Some(b"window.code=200;\nwindow.redirect_uri=\"https://wx.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=T&uuid=u\";"),
        )
        .unwrap();
        assert_eq!(l.info.code, Some(200));
        assert!(l
            .info
            .redirect_uri
            .unwrap()
            .contains("webwxnewloginpage?ticket=T"));
        let t = decode(
            "/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=T",
            b"",
            Some(b"<error><ret>0</ret><message></message><skey>@crypt_k</skey><wxsid>SID</wxsid><wxuin>12345</wxuin><pass_ticket>PT</pass_ticket><isgrayscale>1</isgrayscale></error>"),
        )
        .unwrap();
        assert_eq!(t.info.sid.as_deref(), Some("SID"));
        assert_eq!(t.info.uin, Some(12345));
        assert_eq!(t.info.skey.as_deref(), Some("@crypt_k"));
        assert_eq!(t.info.pass_ticket.as_deref(), Some("PT"));
    }

    #[test]
    fn webwxsync_keys_and_messages() {
        let req = br#"{"BaseRequest":{"Uin":12345,"Sid":"SID","Skey":"@crypt_k","DeviceID":"e1"},"SyncKey":{"Count":2,"List":[{"Key":1,"Val":10},{"Key":2,"Val":20}]},"rr":-1}"#;
        let resp = br#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"AddMsgCount":1,"AddMsgList":[{"MsgId":"777","FromUserName":"@a","ToUserName":"@b","MsgType":1,"Content":"hi"}],"ModContactCount":0,"ContinueFlag":0,"SyncKey":{"Count":2,"List":[{"Key":1,"Val":11},{"Key":2,"Val":21}]},"SyncCheckKey":{"Count":2,"List":[{"Key":1,"Val":11},{"Key":2,"Val":22}]},"SKey":""}"#;
        let ex = decode(
            "/cgi-bin/mmwebwx-bin/webwxsync?sid=SID&skey=k",
            req,
            Some(resp),
        )
        .unwrap();
        let i = &ex.info;
        assert_eq!(i.synckey_presented, Some(KeyMap::from([(1, 10), (2, 20)])));
        assert_eq!(i.synckey_issued, Some(KeyMap::from([(1, 11), (2, 21)])));
        assert_eq!(
            i.synccheckkey_issued,
            Some(KeyMap::from([(1, 11), (2, 22)]))
        );
        assert_eq!(
            (i.add_msg_count, i.continue_flag, i.ret),
            (Some(1), Some(0), Some(0))
        );
        assert_eq!(i.add_msgs[0].msg_id, "777");
        assert_eq!((i.uin, i.sid.as_deref()), (Some(12345), Some("SID")));
    }

    #[test]
    fn sendmsg_ids() {
        let req = br#"{"BaseRequest":{"Uin":1,"Sid":"S"},"Msg":{"Type":1,"Content":"x","FromUserName":"@a","ToUserName":"@b","LocalID":"1700000000123","ClientMsgId":"1700000000123"},"Scene":0}"#;
        let resp = br#"{"BaseResponse":{"Ret":0},"MsgID":"555","LocalID":"1700000000123"}"#;
        let ex = decode("/cgi-bin/mmwebwx-bin/webwxsendmsg", req, Some(resp)).unwrap();
        assert_eq!(ex.info.client_msg_id.as_deref(), Some("1700000000123"));
        assert_eq!(ex.info.msg_id.as_deref(), Some("555"));
    }

    #[test]
    fn garbage_never_panics() {
        for b in [
            &b""[..],
            b"{",
            b"window.",
            b"window.synccheck={",
            b"<wxuin>",
            b"\xff\xfe",
        ] {
            for p in [
                "/jslogin",
                "/cgi-bin/mmwebwx-bin/synccheck?synckey=%7",
                "/cgi-bin/mmwebwx-bin/webwxsync",
                "/webwxnewloginpage",
            ] {
                let _ = decode(p, b, Some(b));
            }
        }
        assert_eq!(percent_decode("%7"), "%7");
        assert_eq!(percent_decode("a%7Cb%"), "a|b%");
        assert_eq!(percent_decode("%é%7C"), "%é|");
    }
}
