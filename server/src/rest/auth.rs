//! Who is asking: the bearer token of a request, resolved to the administrator or a tenant.
//!
//! A node started without an admin token runs open: every request acts in the default
//! tenant, as before tenants existed. With one (`rafting node --admin-token-file`), every
//! route but `/v1/health` and `/metrics` needs `Authorization: Bearer <token>`: the admin
//! token (compared here, in constant time; it never enters the log) or a tenant's token
//! (`<tenant>.<secret>`, checked against the salted hashes in the replicated store, so any
//! node checks it). The tenant a request acts in comes from its token alone, never from
//! the request's content: that is what keeps tenants apart. The administrator acts in the
//! default tenant, or in the tenant named by `X-Rafting-Tenant`.

use super::errors::ApiError;
use super::routes::Route;
use super::{Api, Scoped};
use rafting_core::store::{Query, ReadAnswer, TenantId};
use rafting_net::runtime::Consistency;

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The administrator, or anyone on an open cluster.
    Admin,
    /// A tenant (its id and caps are in the request's [`Scoped`]).
    Tenant { name: String },
}

/// Resolves the caller of `route` and the tenant it acts in.
pub fn scope<'a>(
    api: &'a Api,
    route: &Route,
    headers: &[(String, Vec<u8>)],
) -> Result<Scoped<'a>, ApiError> {
    let open = |principal| Scoped {
        api,
        tenant: TenantId::DEFAULT,
        caps: None,
        principal,
    };
    let Some(admin_token) = api.admin_token.as_deref() else {
        if matches!(route, Route::Tenants { .. }) {
            return Err(ApiError::new(
                400,
                "auth_disabled",
                "this cluster runs open (started without --admin-token-file): it has no tenants",
            ));
        }
        return Ok(open(Principal::Admin));
    };
    // Probes, scrapers and the dashboard's own files (which hold no data: its calls to the
    // API carry a token like any other) stay open.
    if matches!(route, Route::Health | Route::Metrics | Route::Ui { .. }) {
        return Ok(open(Principal::Admin));
    }
    let token = bearer(headers)?;
    if constant_time_equal(token.as_bytes(), admin_token.as_bytes()) {
        return admin_scope(api, headers);
    }
    let answer = api
        .handle
        .read(
            Query::Authenticate {
                token: token.to_owned(),
            },
            Consistency::Stale,
            api.request_timeout,
        )
        .map_err(|error| api.client_error(error, ""))?;
    let ReadAnswer::Authenticated(Some(view)) = answer else {
        return Err(unauthenticated("the bearer token is unknown or revoked"));
    };
    if admin_only(route) {
        return Err(ApiError::new(
            403,
            "forbidden",
            format!(
                "tenant {} may not use this route: it is the administrator's",
                view.name
            ),
        ));
    }
    Ok(Scoped {
        api,
        tenant: view.id,
        caps: Some(view.caps),
        principal: Principal::Tenant { name: view.name },
    })
}

/// The administrator, acting in the default tenant or in the one `X-Rafting-Tenant` names.
fn admin_scope<'a>(api: &'a Api, headers: &[(String, Vec<u8>)]) -> Result<Scoped<'a>, ApiError> {
    let mut scoped = Scoped {
        api,
        tenant: TenantId::DEFAULT,
        caps: None,
        principal: Principal::Admin,
    };
    let Some(name) = header(headers, "X-Rafting-Tenant") else {
        return Ok(scoped);
    };
    let name = std::str::from_utf8(name)
        .map_err(|_| ApiError::bad_request("X-Rafting-Tenant is not UTF-8"))?;
    if name == rafting_core::store::tenants::DEFAULT_TENANT_NAME {
        return Ok(scoped);
    }
    let answer = api
        .handle
        .read(
            Query::Tenant {
                name: name.to_owned(),
            },
            Consistency::Stale,
            api.request_timeout,
        )
        .map_err(|error| api.client_error(error, ""))?;
    if let ReadAnswer::Tenant(view) = answer {
        scoped.tenant = view.id;
        scoped.caps = Some(view.caps);
    }
    Ok(scoped)
}

/// Routes only the administrator may use.
fn admin_only(route: &Route) -> bool {
    match route {
        Route::Tenants { name, .. } => name.is_none(),
        Route::TenantCreate
        | Route::TenantCaps { .. }
        | Route::TenantWeight { .. }
        | Route::TenantDelete { .. }
        | Route::TokenIssue { .. }
        | Route::TokenRevoke { .. }
        | Route::TransferLeader { .. }
        | Route::MemberAdd
        | Route::MemberPromote { .. }
        | Route::MemberRemove { .. }
        | Route::DebugPanic => true,
        _ => false,
    }
}

fn header<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(header, _)| header.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_slice())
}

/// The bearer token of a request, if it carries a well-formed one.
pub fn bearer_token(headers: &[(String, Vec<u8>)]) -> Option<&str> {
    bearer(headers).ok()
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &[(String, Vec<u8>)]) -> Result<&str, ApiError> {
    let value = header(headers, "Authorization")
        .ok_or_else(|| unauthenticated("send Authorization: Bearer <token>"))?;
    let value = std::str::from_utf8(value)
        .map_err(|_| unauthenticated("the Authorization header is not UTF-8"))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| unauthenticated("the Authorization header is not `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthenticated(
            "the Authorization header is not `Bearer <token>`",
        ));
    }
    Ok(token.trim())
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(401, "unauthenticated", message)
}

/// Equality that takes as long whatever the first differing byte.
pub fn constant_time_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_bearer_header_carries_a_token() {
        let with = |value: &str| vec![("authorization".to_owned(), value.as_bytes().to_vec())];
        assert_eq!(bearer(&with("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(&with("bearer  abc ")).unwrap(), "abc");
        for bad in ["Basic abc", "Bearer", "Bearer ", "abc"] {
            assert_eq!(bearer(&with(bad)).unwrap_err().status, 401, "{bad:?}");
        }
        assert_eq!(bearer(&[]).unwrap_err().code, "unauthenticated");
        assert!(constant_time_equal(b"same", b"same"));
        assert!(!constant_time_equal(b"same", b"sane"));
        assert!(!constant_time_equal(b"same", b"sam"));
    }
}
