//! Cross-origin requests between the cluster's own dashboards.
//!
//! The dashboard served by one node must reach the others: a write sent to a follower is
//! redirected (307) to the leader, another origin, and when the node the page came from dies
//! the page polls the survivors. Browsers allow that only with CORS headers. They are sent to
//! the origins of the members' own HTTP addresses and to no one else, so a page from
//! elsewhere cannot read or write the cluster through a visitor's browser.

use super::NodeAddresses;
use crate::http::Response;
use rafting_core::NodeId;
use std::collections::BTreeMap;

/// Methods and headers a member's page may use across origins.
const ALLOW_METHODS: &str = "GET, HEAD, PUT, POST, DELETE";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, X-Rafting-Client, X-Rafting-Sequence, \
     X-Rafting-Acknowledged-Below";
/// The key metadata a `GET /v1/kv/<key>` answers in headers, readable by the page.
const EXPOSE_HEADERS: &str = "X-Rafting-Version, X-Rafting-Create-Revision, \
     X-Rafting-Modify-Revision, X-Rafting-Session";

/// The request's `Origin` when it is one of the members' own (`http://<member http>`, or
/// `http://localhost:<port>` for a member on loopback).
pub fn member_origin(
    headers: &[(String, Vec<u8>)],
    members: &BTreeMap<NodeId, NodeAddresses>,
) -> Option<String> {
    let (_, origin) = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("Origin"))?;
    let origin = std::str::from_utf8(origin).ok()?.trim();
    let is_member = members.values().any(|addresses| {
        let http = addresses.http;
        origin == format!("http://{http}")
            || (http.ip().is_loopback() && origin == format!("http://localhost:{}", http.port()))
    });
    is_member.then(|| origin.to_owned())
}

/// The answer to a preflight (`OPTIONS`) from a member's page.
pub fn preflight(origin: &str) -> Response {
    let mut response = Response {
        status: 204,
        headers: vec![
            ("Access-Control-Allow-Methods".into(), ALLOW_METHODS.into()),
            ("Access-Control-Allow-Headers".into(), ALLOW_HEADERS.into()),
            ("Access-Control-Max-Age".into(), "600".into()),
        ],
        body: Vec::new(),
    };
    allow(&mut response, origin);
    response
}

/// Lets a member's page read `response`.
pub fn allow(response: &mut Response, origin: &str) {
    response
        .headers
        .push(("Access-Control-Allow-Origin".into(), origin.to_owned()));
    response.headers.push((
        "Access-Control-Expose-Headers".into(),
        EXPOSE_HEADERS.into(),
    ));
    response.headers.push(("Vary".into(), "Origin".into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> BTreeMap<NodeId, NodeAddresses> {
        let addresses = |port: u16| NodeAddresses {
            udp: format!("127.0.0.1:{}", port + 100).parse().unwrap(),
            http: format!("127.0.0.1:{port}").parse().unwrap(),
        };
        BTreeMap::from([(NodeId(1), addresses(8001)), (NodeId(2), addresses(8002))])
    }

    fn origin(value: &str) -> Vec<(String, Vec<u8>)> {
        vec![("origin".to_owned(), value.as_bytes().to_vec())]
    }

    #[test]
    fn only_the_members_own_pages_are_allowed() {
        let members = members();
        for allowed in ["http://127.0.0.1:8002", "http://localhost:8001"] {
            assert_eq!(
                member_origin(&origin(allowed), &members).as_deref(),
                Some(allowed)
            );
        }
        for refused in ["http://evil.example", "http://127.0.0.1:9000", "null"] {
            assert_eq!(member_origin(&origin(refused), &members), None, "{refused}");
        }
        assert_eq!(member_origin(&[], &members), None);
    }
}
