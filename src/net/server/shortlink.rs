//! The short link on the long link's port: plain HTTP/1.1
//! `POST /cgi-bin/micromsg-bin/newsync`, `.../newsendmsg`, `.../manualauth`
//! and `.../autoauth` with the same protobuf bodies as cmds 121, 237, 253
//! and 254, answered `200` with
//! `application/octet-stream` bodies. Requests are independent, so each
//! names its user and device in the query string:
//! `?user=NAME` (or `?uin=N`) and `&device=ID` (default `shortlink`).
//! The HTTP around them (reading requests, writing responses, errors) is
//! [`super::http`]'s.

use super::conn::{Close, Handler};
use super::http::{http, Reply, Request};
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

impl Handler {
    /// Serves one short-link (cgi) request.
    pub(super) async fn route_cgi(&mut self, req: &Request) -> Result<Reply, Close> {
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
            let body = self
                .auth(cgi == "autoauth", &req.body)
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
        let fail = |f: super::service::Failure| http(status(f.ret), f.ret, f.error);
        let (user, _, _) = self
            .shared
            .identify(user, uin, device)
            .await
            .map_err(fail)?;
        if cgi == "newsync" {
            let body = self
                .shared
                .newsync(user, device, &req.body)
                .await
                .map_err(fail)?;
            Ok(Reply::protobuf(body, None))
        } else {
            let (body, wake) = self
                .shared
                .newsendmsg(user, device, &req.body)
                .await
                .map_err(fail)?;
            Ok(Reply::protobuf(body, Some(wake)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        assert_eq!(param("user=alice&device=web", "user"), Some("alice"));
        assert_eq!(param("user=alice&device=web", "device"), Some("web"));
        assert_eq!(param("user=alice", "uin"), None);
        assert_eq!(param("", "user"), None);
    }
}
