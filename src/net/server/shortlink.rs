//! The short link on the long link's port: plain HTTP/1.1
//! `POST /cgi-bin/micromsg-bin/newsync`, `.../newsendmsg`, `.../manualauth`
//! and `.../autoauth` with the same protobuf bodies as cmds 121, 237, 253
//! and 254, answered `200` with
//! `application/octet-stream` bodies. Requests are independent, so each
//! names its user and device in the query string:
//! `?user=NAME` (or `?uin=N`) and `&device=ID` (default `shortlink`).
//! The HTTP around them (reading requests, writing responses, errors) is
//! [`super::http`]'s.

use std::net::SocketAddr;

use super::conn::Close;
use super::http::{http, Reply, Request};
use super::service::{Failure, Service};
use crate::net::messages::ret;
use crate::net::messages::IdentifyExt;

/// Path prefix of the cgi endpoints.
pub const CGI_PREFIX: &str = "/cgi-bin/micromsg-bin/";
/// Device id of short-link requests that name none.
pub const DEFAULT_DEVICE: &str = "shortlink";

/// A query parameter, not percent-decoded (short-link names and ids have
/// no spaces).
pub(super) fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
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
    if !matches!(cgi, "newsync" | "newsendmsg" | "manualauth" | "autoauth") {
        return Err(http(
            404,
            ret::UNKNOWN_CMD,
            format!("unknown cgi {cgi:?} (served: newsync, newsendmsg, manualauth, autoauth)"),
        ));
    }
    if req.method != "POST" {
        return Err(http(
            405,
            ret::UNKNOWN_CMD,
            format!("{} {}: use POST", req.method, req.path),
        ));
    }
    // The auth requests name their user in the body.
    if matches!(cgi, "manualauth" | "autoauth") {
        let body = service
            .auth(peer, cgi == "autoauth", &req.body)
            .await
            .map_err(|f| http(400, f.ret, f.error))?;
        return Ok(Reply::protobuf(body, None));
    }
    let user = param(&req.query, "user").map(str::to_owned);
    let uin = match param(&req.query, "uin") {
        Some(u) => u.parse::<u32>().map_err(|_| {
            http(
                400,
                ret::NOT_IDENTIFIED,
                format!("uin {u:?} is not a number"),
            )
        })?,
        None => 0,
    };
    if user.is_none() && uin == 0 {
        return Err(http(
            400,
            ret::NOT_IDENTIFIED,
            "name the user in the query string: ?user=NAME (or ?uin=N), optionally &device=ID",
        ));
    }
    if user.as_deref().is_some_and(|u| !IdentifyExt::valid_user(u)) {
        return Err(http(400, ret::NOT_IDENTIFIED, "invalid user name"));
    }
    let device = param(&req.query, "device").unwrap_or(DEFAULT_DEVICE);
    if !IdentifyExt::valid_device(device) {
        return Err(http(400, ret::NOT_IDENTIFIED, "invalid device id"));
    }
    let status = |ret: i32| match ret {
        ret::UNKNOWN_USER => 403,
        ret::STORE => 500,
        _ => 400,
    };
    let fail = |f: Failure| http(status(f.ret), f.ret, f.error);
    let (user, _, _) = service.identify(user, uin, device).await.map_err(fail)?;
    if cgi == "newsync" {
        let body = service
            .newsync(user, device, &req.body)
            .await
            .map_err(fail)?;
        Ok(Reply::protobuf(body, None))
    } else {
        let (body, wake) = service
            .newsendmsg(user, device, &req.body)
            .await
            .map_err(fail)?;
        Ok(Reply::protobuf(body, Some(wake)))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::body::messages::NewSendMsgResponse;
    use crate::net::server::service::tests::{page, peer, send_body, service, sync_body};

    #[test]
    fn query_parameters() {
        assert_eq!(param("user=alice&device=web", "user"), Some("alice"));
        assert_eq!(param("user=alice&device=web", "device"), Some("web"));
        assert_eq!(param("user=alice", "uin"), None);
        assert_eq!(param("", "user"), None);
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
