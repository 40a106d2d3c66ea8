//! The short link on the long link's port: plain HTTP/1.1
//! `POST /cgi-bin/micromsg-bin/newsync`, `.../newsendmsg`, `.../manualauth`
//! and `.../autoauth` with the same protobuf bodies as cmds 121, 237, 253
//! and 254, and the media cgis `uploadmsgimg`, `getmsgimg`, `uploadvoice`
//! and `downloadvoice` (server/media.rs), the read report `statusnotify`
//! (server/receipts.rs), answered `200` with
//! `application/octet-stream` bodies.
//!
//! Requests are independent, so each carries its session: an accepted
//! manualauth or autoauth answers with the cookie [`SESSION_COOKIE`]
//! (`mmsid`, the autoauth key in hex), and later requests send it back
//! (Cookie header, or `?mmsid=` in the query string); it names the uin and
//! device. In test mode ([`Access`](super::Access)) a request may instead
//! name its user in the query string: `?user=NAME` (or `?uin=N`) and
//! `&device=ID` (default `shortlink`). Query strings are percent-decoded.
//! The HTTP around them (reading requests, writing responses, errors) is
//! [`super::http`]'s.

use std::net::SocketAddr;

use super::conn::Close;
use super::http::{http, Reply, Request};
use super::service::{Failure, Service};
use super::web::cookies;
use crate::net::messages::ret;
use crate::net::messages::IdentifyExt;
use crate::proto::web::parse_query;

/// Path prefix of the cgi endpoints.
pub const CGI_PREFIX: &str = "/cgi-bin/micromsg-bin/";
/// Device id of short-link requests that name none.
pub const DEFAULT_DEVICE: &str = "shortlink";
/// The cookie (and query parameter) that carries a short-link session.
pub const SESSION_COOKIE: &str = "mmsid";

/// A query parameter, percent-decoded (`+` is a space); the first of
/// that name.
pub(super) fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Serves one short-link (cgi) request from `peer`.
pub(super) async fn route(
    service: &Service,
    req: &Request,
    peer: SocketAddr,
) -> Result<Reply, Close> {
    let Some(cgi) = req.path.strip_prefix(CGI_PREFIX) else {
        return Err(http(
            404,
            ret::UNKNOWN_CMD,
            format!(
                "no such path {:?} (served: {CGI_PREFIX}newsync, newsendmsg; web: {})",
                req.path,
                super::web::SERVED,
            ),
        ));
    };
    if !matches!(
        cgi,
        "newsync"
            | "newsendmsg"
            | "manualauth"
            | "autoauth"
            | "uploadmsgimg"
            | "getmsgimg"
            | "uploadvoice"
            | "downloadvoice"
            | "statusnotify"
    ) {
        return Err(http(
            404,
            ret::UNKNOWN_CMD,
            format!(
                "unknown cgi {cgi:?} (served: newsync, newsendmsg, manualauth, autoauth, \
                 uploadmsgimg, getmsgimg, uploadvoice, downloadvoice, statusnotify)"
            ),
        ));
    }
    if req.method != "POST" {
        return Err(http(
            405,
            ret::UNKNOWN_CMD,
            format!("{} {}: use POST", req.method, req.path),
        ));
    }
    // The auth requests name their user in the body; an accepted one
    // gives the session cookie.
    if matches!(cgi, "manualauth" | "autoauth") {
        let (body, accepted) = service
            .auth(peer, cgi == "autoauth", &req.body)
            .await
            .map_err(|f| http(400, f.ret, f.error))?;
        let mut reply = Reply::protobuf(body, None);
        if let Some((_, _, key)) = accepted {
            reply.cookies.push(format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly",
                hex::encode(key)
            ));
        }
        return Ok(reply);
    }
    let status = |ret: i32| match ret {
        ret::UNKNOWN_USER => 403,
        ret::NOT_AUTHENTICATED => 401,
        ret::STORE => 500,
        ret::OVERSIZE => 413,
        ret::NO_SUCH_MEDIA => 404,
        _ => 400,
    };
    let fail = |f: Failure| http(status(f.ret), f.ret, f.error);
    let (name, uin, device) = who(service, req).map_err(fail)?;
    let (user, _, _) = service.identify(name, uin, &device).await.map_err(fail)?;
    let media = match cgi {
        "uploadmsgimg" => Some(service.uploadmsgimg(user, &device, &req.body).await),
        "uploadvoice" => Some(service.uploadvoice(user, &device, &req.body).await),
        "getmsgimg" => Some(service.getmsgimg(user, &req.body).await.map(|b| (b, None))),
        "downloadvoice" => Some(
            service
                .downloadvoice(user, &req.body)
                .await
                .map(|b| (b, None)),
        ),
        "statusnotify" => Some(
            service
                .statusnotify(user, &device, &req.body)
                .await
                .map(|b| (b, None)),
        ),
        _ => None,
    };
    if let Some(answer) = media {
        let (body, wake) = answer.map_err(fail)?;
        return Ok(Reply::protobuf(body, wake));
    }
    if cgi == "newsync" {
        let body = service
            .newsync(user, &device, &req.body)
            .await
            .map_err(fail)?;
        Ok(Reply::protobuf(body, None))
    } else {
        let (body, wake) = service
            .newsendmsg(user, &device, &req.body)
            .await
            .map_err(fail)?;
        Ok(Reply::protobuf(body, Some(wake)))
    }
}

/// Who a newsync or newsendmsg is from: (user name, uin, device). Its
/// session when it carries one; in test mode else the query's `user` or
/// `uin` and `device`.
fn who(service: &Service, req: &Request) -> Result<(Option<String>, u32, String), Failure> {
    let q = parse_query(&req.query);
    let presented = q
        .get(SESSION_COOKIE)
        .cloned()
        .or_else(|| cookies(&req.cookie).remove(SESSION_COOKIE));
    if let Some(sid) = presented {
        let owner = hex::decode(&sid)
            .ok()
            .and_then(|key| service.auth_key_owner(&key));
        let Some((uin, device)) = owner else {
            return Err(Failure::new(
                ret::NOT_AUTHENTICATED,
                "unknown short-link session (the server restarted?): \
                 POST .../manualauth again and send its mmsid cookie",
            ));
        };
        return Ok((None, uin, device));
    }
    if service.config.access.enforced_mode() {
        return Err(Failure::new(
            ret::NOT_AUTHENTICATED,
            "authenticate first: POST /cgi-bin/micromsg-bin/manualauth (or autoauth) and \
             send the mmsid cookie it answers with",
        ));
    }
    let user = param(&req.query, "user");
    let uin = match param(&req.query, "uin") {
        Some(u) => u
            .parse::<u32>()
            .map_err(|_| Failure::new(ret::NOT_IDENTIFIED, format!("uin {u:?} is not a number")))?,
        None => 0,
    };
    if user.is_none() && uin == 0 {
        return Err(Failure::new(
            ret::NOT_IDENTIFIED,
            "name the user in the query string: ?user=NAME (or ?uin=N), optionally &device=ID \
             (or send the mmsid cookie of a manualauth)",
        ));
    }
    if user.as_deref().is_some_and(|u| !IdentifyExt::valid_user(u)) {
        return Err(Failure::new(ret::NOT_IDENTIFIED, "invalid user name"));
    }
    let device = param(&req.query, "device").unwrap_or_else(|| DEFAULT_DEVICE.to_owned());
    if !IdentifyExt::valid_device(&device) {
        return Err(Failure::new(ret::NOT_IDENTIFIED, "invalid device id"));
    }
    Ok((user, uin, device))
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::body::messages::NewSendMsgResponse;
    use crate::net::server::service::tests::{page, peer, send_body, service, sync_body};

    #[test]
    fn query_parameters() {
        let p = |q: &str, name: &str| param(q, name);
        assert_eq!(p("user=alice&device=web", "user").as_deref(), Some("alice"));
        assert_eq!(p("user=alice&device=web", "device").as_deref(), Some("web"));
        assert_eq!(p("user=alice", "uin"), None);
        assert_eq!(p("", "user"), None);
        // Percent-decoded.
        assert_eq!(p("user=b%6Fb", "user").as_deref(), Some("bob"));
        assert_eq!(p("user=a%20b", "user").as_deref(), Some("a b"));
    }

    /// The (Ret, MsgId) of each item of a NewSendMsgResponse.
    fn sent(reply: &Reply) -> Vec<(i32, u64)> {
        let r = NewSendMsgResponse::decode(reply.body.as_slice()).expect("NewSendMsgResponse");
        assert_eq!(r.base_response.and_then(|b| b.ret), Some(0));
        r.list
            .iter()
            .map(|i| (i.ret.unwrap_or(-1), i.new_msg_id.unwrap_or(0)))
            .collect()
    }

    #[tokio::test]
    async fn newsendmsg_resent_with_its_client_msg_id_is_stored_once() {
        let (s, _) = service(|_| {});
        let send = Request::test(
            "POST",
            "/cgi-bin/micromsg-bin/newsendmsg?user=bob&device=phone",
            &send_body("alice", "hi", 7),
        );
        let first = route(&s, &send, peer()).await.expect("newsendmsg");
        assert_eq!(first.content_type, "application/octet-stream");
        assert!(first.wake.is_some(), "a send is pushed once answered");
        let again = route(&s, &send, peer()).await.expect("newsendmsg again");
        let (first, again) = (sent(&first), sent(&again));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].0, 0);
        assert_ne!(first[0].1, 0, "a server MsgId");
        assert_eq!(again, first, "the resend gets the original message");
        let sync = Request::test(
            "POST",
            "/cgi-bin/micromsg-bin/newsync?user=alice",
            &sync_body(0, None),
        );
        let reply = route(&s, &sync, peer()).await.expect("newsync");
        let (texts, more, _) = page(&reply.body);
        assert_eq!((texts, more), (vec!["hi".to_owned()], 0));
    }

    #[tokio::test]
    async fn refusals_are_http_errors() {
        let (s, _) = service(|c| c.auto_register = false);
        let status = |r: Result<Reply, Close>| match r {
            Err(Close::Http { status, ret, .. }) => (status, ret),
            other => panic!("not an HTTP error: {other:?}"),
        };
        let body = sync_body(0, None);
        let req = |target: &str| Request::test("POST", target, &body);
        assert_eq!(
            status(route(&s, &req("/cgi-bin/micromsg-bin/newsync"), peer()).await),
            (400, ret::NOT_IDENTIFIED)
        );
        assert_eq!(
            status(
                route(
                    &s,
                    &req("/cgi-bin/micromsg-bin/newsync?user=nobody"),
                    peer()
                )
                .await
            ),
            (403, ret::UNKNOWN_USER)
        );
        assert_eq!(
            status(route(&s, &req("/cgi-bin/micromsg-bin/getprofile?user=a"), peer()).await),
            (404, ret::UNKNOWN_CMD)
        );
        assert_eq!(
            status(route(&s, &req("/other"), peer()).await),
            (404, ret::UNKNOWN_CMD)
        );
        let get = Request::test("GET", "/cgi-bin/micromsg-bin/newsync?user=a", b"");
        assert_eq!(
            status(route(&s, &get, peer()).await),
            (405, ret::UNKNOWN_CMD)
        );
    }
}
