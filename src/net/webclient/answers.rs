//! The web client's reading of the server's answers, without I/O: the
//! JavaScript lines of jslogin, the login poll and synccheck, the ticket
//! page's XML, the JSON `BaseResponse` and AddMsgList items.

use serde_json::Value;

use super::MSG_TYPE_STATUS_NOTIFY;
use crate::net::client::ClientError;
use crate::net::messages::ChatMessage;
use crate::proto::web as wire;

/// A web user name: `@` + the syncscope name.
pub fn web_name(user: &str) -> String {
    if user.starts_with('@') {
        user.to_owned()
    } else {
        format!("@{user}")
    }
}

/// A syncscope user name from a web one (the `@` dropped).
pub fn plain_name(web: &str) -> &str {
    web.strip_prefix('@').unwrap_or(web)
}

/// The `window.QRLogin` answer of jslogin: the uuid when the code is 200.
pub fn parse_jslogin(text: &str) -> Result<String, ClientError> {
    let w = wire::window_assignments(text);
    let code = w.get("QRLogin.code").map(String::as_str);
    match (code, w.get("QRLogin.uuid")) {
        (Some("200"), Some(uuid)) if !uuid.is_empty() => Ok(uuid.clone()),
        (Some(code), _) => Err(ClientError::Refused {
            what: "jslogin",
            ret: code.trim().parse().unwrap_or(-1),
            message: format!("window.QRLogin.code = {code}"),
        }),
        (None, _) => Err(malformed("jslogin", "no window.QRLogin.code", text)),
    }
}

/// What one login poll said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginPoll {
    /// 408: nothing yet, poll again.
    Wait,
    /// 201: scanned, not yet confirmed.
    Scanned,
    /// 200: confirmed; the ticket page to fetch.
    Confirmed { redirect_uri: String },
}

/// The `window.code` answer of the login poll.
pub fn parse_login_poll(text: &str) -> Result<LoginPoll, ClientError> {
    let w = wire::window_assignments(text);
    let Some(code) = w.get("code") else {
        return Err(malformed("login", "no window.code", text));
    };
    match code.trim() {
        "408" => Ok(LoginPoll::Wait),
        "201" => Ok(LoginPoll::Scanned),
        "200" => match w.get("redirect_uri") {
            Some(uri) if !uri.is_empty() => Ok(LoginPoll::Confirmed {
                redirect_uri: uri.clone(),
            }),
            _ => Err(malformed("login", "code 200 without redirect_uri", text)),
        },
        other => Err(ClientError::Refused {
            what: "login",
            ret: other.parse().unwrap_or(-1),
            message: if other == "400" {
                "the server does not know this login uuid (expired?)".into()
            } else {
                format!("window.code={other}")
            },
        }),
    }
}

/// The path and query of a redirect_uri (`http://HOST/path?query`); the
/// client stays on the server it was given whatever HOST says.
pub fn redirect_target(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
        .unwrap_or(uri);
    let i = rest.find('/')?;
    Some(&rest[i..])
}

/// The ticket page's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub skey: String,
    pub sid: String,
    pub uin: u64,
    pub pass_ticket: String,
}

/// The ticket page's XML: `<error><ret>0</ret>...<skey>..`.
pub fn parse_ticket(text: &str) -> Result<Ticket, ClientError> {
    const WHAT: &str = "webwxnewloginpage";
    let tag = |t: &str| wire::xml_tag(text, t);
    let ret = tag("ret")
        .and_then(|r| r.trim().parse::<i32>().ok())
        .ok_or_else(|| malformed(WHAT, "no <ret>", text))?;
    if ret != 0 {
        return Err(ClientError::Refused {
            what: WHAT,
            ret,
            message: tag("message").unwrap_or_default(),
        });
    }
    let need = |t: &'static str| {
        tag(t)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| malformed(WHAT, &format!("no <{t}>"), text))
    };
    Ok(Ticket {
        skey: need("skey")?,
        sid: need("wxsid")?,
        uin: need("wxuin")?
            .trim()
            .parse()
            .map_err(|_| malformed(WHAT, "<wxuin> is not a number", text))?,
        pass_ticket: need("pass_ticket")?,
    })
}

/// The synccheck answer: `window.synccheck={retcode:"0",selector:"2"}`,
/// the selector when retcode is 0.
pub fn parse_synccheck(text: &str) -> Result<u32, ClientError> {
    let w = wire::window_assignments(text);
    let Some(obj) = w.get("synccheck").map(|s| wire::js_object(s)) else {
        return Err(malformed("synccheck", "no window.synccheck", text));
    };
    let num = |k: &str| obj.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    match (num("retcode"), num("selector")) {
        (Some(0), Some(sel)) => {
            u32::try_from(sel).map_err(|_| malformed("synccheck", "negative selector", text))
        }
        (Some(code), _) => Err(ClientError::Refused {
            what: "synccheck",
            ret: i32::try_from(code).unwrap_or(-1),
            message: format!("retcode {code}: the web session ended"),
        }),
        _ => Err(malformed("synccheck", "no retcode or selector", text)),
    }
}

fn malformed(what: &'static str, detail: &str, text: &str) -> ClientError {
    let mut excerpt: String = text.trim().chars().take(120).collect();
    if excerpt.len() < text.trim().len() {
        excerpt.push_str("...");
    }
    ClientError::Malformed {
        what,
        detail: format!("{detail} in {excerpt:?}"),
    }
}

/// The JSON body of a POST answer, its `BaseResponse.Ret` checked.
pub fn parse_json(what: &'static str, body: &[u8]) -> Result<Value, ClientError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ClientError::Malformed {
        what,
        detail: format!("not JSON: {e}"),
    })?;
    let base = &v["BaseResponse"];
    let Some(ret) = wire::as_i64(&base["Ret"]) else {
        return Err(ClientError::Malformed {
            what,
            detail: "no BaseResponse.Ret".into(),
        });
    };
    if ret != 0 {
        let msg = base["ErrMsg"].as_str().unwrap_or_default();
        return Err(ClientError::Refused {
            what,
            ret: i32::try_from(ret).unwrap_or(i32::MIN),
            message: if msg.is_empty() {
                "BaseResponse.Ret is not 0".into()
            } else {
                msg.to_owned()
            },
        });
    }
    Ok(v)
}

/// A message of an AddMsgList as the long-link client shows it; `None`
/// for a status notify.
pub fn chat_message(m: &Value) -> Option<ChatMessage> {
    if wire::as_u64(&m["MsgType"]) == Some(MSG_TYPE_STATUS_NOTIFY) {
        return None;
    }
    let id = |k: &str| wire::as_u64(&m[k]).filter(|&n| n != 0);
    let name = |k: &str| plain_name(m[k].as_str().unwrap_or_default()).to_owned();
    Some(ChatMessage {
        from: name("FromUserName"),
        to: name("ToUserName"),
        content: m["Content"].as_str().unwrap_or_default().to_owned(),
        msg_id: id("NewMsgId").or_else(|| id("MsgId")).unwrap_or(0),
        client_msg_id: Some(wire::id_string(&m["ClientMsgId"])).filter(|s| !s.is_empty()),
        seq: wire::as_u64(&m["MsgSeq"]),
        msg_type: wire::as_u64(&m["MsgType"]).map_or(crate::net::MSG_TYPE_TEXT, |t| t as u32),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{enc, session_gone};
    use super::*;
    use crate::proto::web::KeyMap;

    #[test]
    fn jslogin_line() {
        assert_eq!(
            parse_jslogin("window.QRLogin.code = 200; window.QRLogin.uuid = \"gZ9bX_Aq-w==\";")
                .unwrap(),
            "gZ9bX_Aq-w=="
        );
        assert!(matches!(
            parse_jslogin("window.QRLogin.code = 400; window.QRLogin.error = \"unknown user\";"),
            Err(ClientError::Refused {
                what: "jslogin",
                ret: 400,
                ..
            })
        ));
        assert!(matches!(
            parse_jslogin("<html>nope</html>"),
            Err(ClientError::Malformed {
                what: "jslogin",
                ..
            })
        ));
    }

    #[test]
    fn login_poll_lines() {
        assert_eq!(
            parse_login_poll("window.code=201;window.userAvatar = '';").unwrap(),
            LoginPoll::Scanned
        );
        assert_eq!(
            parse_login_poll("window.code=408;").unwrap(),
            LoginPoll::Wait
        );
        let ok = "window.code=200;\nwindow.redirect_uri=\"http://127.0.0.1:8080/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=T1&uuid=U1&lang=zh_CN&scan=1700000000\";";
        let LoginPoll::Confirmed { redirect_uri } = parse_login_poll(ok).unwrap() else {
            panic!("not confirmed")
        };
        assert_eq!(
            redirect_target(&redirect_uri),
            Some("/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=T1&uuid=U1&lang=zh_CN&scan=1700000000")
        );
        assert!(matches!(
            parse_login_poll("window.code=400;"),
            Err(ClientError::Refused {
                what: "login",
                ret: 400,
                ..
            })
        ));
        assert!(matches!(
            parse_login_poll("window.code=200;"),
            Err(ClientError::Malformed { .. })
        ));
        assert_eq!(redirect_target("https://wx.qq.com/p?q"), Some("/p?q"));
        assert_eq!(redirect_target("http://host-only"), None);
    }

    #[test]
    fn ticket_xml() {
        let xml = "<error><ret>0</ret><message></message><skey>@crypt_ab_12</skey>\
                   <wxsid>Sid+/=</wxsid><wxuin>4242</wxuin><pass_ticket>PT%2B1</pass_ticket>\
                   <isgrayscale>1</isgrayscale></error>";
        assert_eq!(
            parse_ticket(xml).unwrap(),
            Ticket {
                skey: "@crypt_ab_12".into(),
                sid: "Sid+/=".into(),
                uin: 4242,
                pass_ticket: "PT%2B1".into(),
            }
        );
        let refused = "<error><ret>1203</ret><message>too many logins</message></error>";
        match parse_ticket(refused) {
            Err(ClientError::Refused { ret, message, .. }) => {
                assert_eq!((ret, message.as_str()), (1203, "too many logins"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_ticket("<error><ret>0</ret><skey>k</skey></error>"),
            Err(ClientError::Malformed { detail, .. }) if detail.contains("<wxsid>")
        ));
    }

    #[test]
    fn synccheck_lines() {
        assert_eq!(
            parse_synccheck("window.synccheck={retcode:\"0\",selector:\"2\"}").unwrap(),
            2
        );
        assert_eq!(
            parse_synccheck("window.synccheck={retcode:\"0\",selector:\"0\"};").unwrap(),
            0
        );
        let gone = parse_synccheck("window.synccheck={retcode:\"1101\",selector:\"0\"}");
        assert!(matches!(&gone, Err(ClientError::Refused { ret: 1101, .. })));
        assert!(session_gone(&gone.unwrap_err()));
        assert!(parse_synccheck("window.synccheck={}").is_err());
    }

    #[test]
    fn synckeys_both_ways() {
        let key: KeyMap = [(1, 1), (2, 5), (3, 1)].into();
        assert_eq!(wire::synckey_to_param(&key), "1_1|2_5|3_1");
        assert_eq!(enc(&wire::synckey_to_param(&key)), "1_1%7C2_5%7C3_1");
        assert_eq!(
            wire::parse_synckey_param(&enc(&wire::synckey_to_param(&key))),
            Some(key.clone())
        );
        assert_eq!(wire::synckey_json(&wire::synckey_to_json(&key)), Some(key));
        assert_eq!(enc("@crypt_a+b/c=d"), "%40crypt_a%2Bb%2Fc%3Dd");
    }

    #[test]
    fn base_response_and_messages() {
        assert!(parse_json("webwxinit", br#"{"BaseResponse":{"Ret":0,"ErrMsg":""}}"#).is_ok());
        match parse_json(
            "webwxsync",
            br#"{"BaseResponse":{"Ret":1101,"ErrMsg":"session expired"}}"#,
        ) {
            Err(e @ ClientError::Refused { .. }) => {
                assert!(session_gone(&e));
                assert_eq!(
                    e.to_string(),
                    "the server refused webwxsync (ret 1101): session expired"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_json("webwxinit", b"{}"),
            Err(ClientError::Malformed { .. })
        ));
        let m = json!({"MsgId": "7001", "NewMsgId": 7001, "FromUserName": "@alice",
                       "ToUserName": "@bob", "MsgType": 1, "Content": "hi", "ClientMsgId": "55",
                       "MsgSeq": 12});
        assert_eq!(
            chat_message(&m),
            Some(ChatMessage {
                from: "alice".into(),
                to: "bob".into(),
                content: "hi".into(),
                msg_id: 7001,
                client_msg_id: Some("55".into()),
                seq: Some(12),
                msg_type: 1,
            })
        );
        let m = json!({"MsgId": "9", "FromUserName": "@bob", "ToUserName": "@bob", "MsgType": 51});
        assert_eq!(chat_message(&m), None);
        let m = json!({"MsgId": "9", "FromUserName": "@bob", "ToUserName": "@a", "MsgType": 1});
        assert_eq!(
            chat_message(&m).map(|m| (m.msg_id, m.client_msg_id)),
            Some((9, None))
        );
    }
}
