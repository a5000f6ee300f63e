//! Tenant administration: create a tenant (with its first token), list tenants with their
//! usage against their caps, change caps and weights, issue and revoke tokens, delete a
//! tenant.
//!
//! Tokens are drawn here, from a cryptographic generator seeded by the operating system, as `<tenant>.<64 hex
//! digits>`; only a salted SHA-256 of the secret is proposed to the log. A token is shown
//! once, in the answer that creates it.

use super::auth::Principal;
use super::errors::{ApiError, Reply};
use super::kv::write;
use super::{Api, Scoped, routes::Route};
use rafting_core::replica::Numbered;
use rafting_core::store::tenants::{
    TENANT_WEIGHT_DEFAULT, validate_tenant_name, validate_tenant_weight,
};
use rafting_core::store::{
    Caps, Operation, Query, ReadAnswer, TenantCommand, TenantView, TokenRecord,
};
use rafting_net::runtime::Consistency;
use serde::Deserialize;
use serde_json::{Value, json};

/// The body of `POST /v1/tenants`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    /// Absent: the defaults for new tenants ([`Caps::new_tenant_default`]); present: each
    /// absent field is unlimited.
    #[serde(default)]
    caps: Option<Caps>,
    /// Absent: the default weight (every tenant alike).
    #[serde(default)]
    weight: Option<i64>,
}

/// The body of `PUT /v1/tenants/<name>/weight`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBody {
    weight: i64,
}

/// A weight from a request body, checked before anything is proposed: `400
/// invalid_request` for 0, a negative or an absurd weight.
fn checked_weight(weight: i64) -> Result<u32, ApiError> {
    validate_tenant_weight(weight)
        .map_err(|error| ApiError::new(400, error.code(), error.to_string()))
}

fn decode<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("invalid {what} body: {error}")))
}

/// A fresh secret and salt, and the token the client is given.
fn draw_token(name: &str) -> (String, TokenRecord) {
    use rand::RngCore;
    let mut secret = [0u8; 32];
    let mut salt = [0u8; 16];
    // ThreadRng: a ChaCha-based cryptographic generator seeded from the operating system.
    let mut generator = rand::rng();
    generator.fill_bytes(&mut secret);
    generator.fill_bytes(&mut salt);
    let secret = hex(&secret);
    let record = TokenRecord::new(&salt, &secret);
    (format!("{name}.{secret}"), record)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A tenant as JSON: its caps, its usage of the stored caps (the same on every node), and what
/// it holds of the node-local ones on the node that answers (`on_this_node`).
pub fn view_json(api: &Api, view: &TenantView) -> Value {
    let watches = api.watches_open.held(view.id);
    json!({
        "id": view.id.get(),
        "name": view.name,
        "caps": view.caps,
        "weight": view.weight,
        "usage": view.usage,
        "on_this_node": {
            "connections": api.tenant_connections.held(&view.name),
            "watches": watches,
        },
        "tokens": view.tokens,
    })
}

/// Serves every `/v1/tenants` route.
pub fn serve(
    api: &Scoped,
    url: &str,
    route: &Route,
    numbered: Option<Numbered>,
    body: &[u8],
) -> Result<Reply, ApiError> {
    match route {
        Route::Tenants { name: None, stale } => {
            let ReadAnswer::Tenants(views) = read(api, url, Query::Tenants, *stale)? else {
                return Err(unexpected());
            };
            let tenants: Vec<Value> = views.iter().map(|view| view_json(api, view)).collect();
            Ok(Reply::json(&json!({ "tenants": tenants })))
        }
        Route::Tenants {
            name: Some(name),
            stale,
        } => {
            if let Principal::Tenant { name: own, .. } = &api.principal
                && own != name
            {
                return Err(ApiError::new(
                    403,
                    "forbidden",
                    format!("tenant {own} may only see itself"),
                ));
            }
            let query = Query::Tenant { name: name.clone() };
            let ReadAnswer::Tenant(view) = read(api, url, query, *stale)? else {
                return Err(unexpected());
            };
            Ok(Reply::json(&view_json(api, &view)))
        }
        Route::TenantCreate => {
            let create: CreateBody = decode(body, "tenant")?;
            validate_tenant_name(&create.name)
                .map_err(|error| ApiError::new(400, error.code(), error.to_string()))?;
            let weight = create.weight.map(checked_weight).transpose()?;
            let caps = create.caps.unwrap_or_else(Caps::new_tenant_default);
            let (token, record) = draw_token(&create.name);
            let command = TenantCommand::Create {
                name: create.name.clone(),
                caps,
                token: record,
            };
            write(api, url, numbered, Operation::Tenant(Box::new(command)))?;
            if let Some(weight) = weight.filter(|&weight| weight != TENANT_WEIGHT_DEFAULT) {
                // A second entry: the tenant exists already, so a failure here leaves it at
                // the default weight, which the answer's error says to set again.
                let command = TenantCommand::SetWeight {
                    name: create.name.clone(),
                    weight,
                };
                write(api, url, None, Operation::Tenant(Box::new(command)))?;
            }
            let view = show(api, url, &create.name)?;
            let answer = json!({"tenant": view_json(api, &view), "token": token, "token_id": 1});
            Ok(Reply::json_with_status(201, &answer))
        }
        Route::TenantCaps { name } => {
            let caps: Caps = decode(body, "caps")?;
            let command = TenantCommand::SetCaps {
                name: name.clone(),
                caps,
            };
            write(api, url, numbered, Operation::Tenant(Box::new(command)))?;
            Ok(Reply::json(&view_json(api, &show(api, url, name)?)))
        }
        Route::TenantWeight { name } => {
            let body: WeightBody = decode(body, "weight")?;
            let command = TenantCommand::SetWeight {
                name: name.clone(),
                weight: checked_weight(body.weight)?,
            };
            write(api, url, numbered, Operation::Tenant(Box::new(command)))?;
            Ok(Reply::json(&view_json(api, &show(api, url, name)?)))
        }
        Route::TenantDelete { name, purge } => {
            let command = TenantCommand::Delete {
                name: name.clone(),
                purge: *purge,
            };
            write(api, url, numbered, Operation::Tenant(Box::new(command)))
        }
        Route::TokenIssue { name } => {
            let (token, record) = draw_token(name);
            let command = TenantCommand::IssueToken {
                name: name.clone(),
                token: record,
            };
            let reply = write(api, url, numbered, Operation::Tenant(Box::new(command)))?;
            let issued: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
            let answer = json!({"token": token, "token_id": issued["token_id"]});
            Ok(Reply::json_with_status(201, &answer))
        }
        Route::TokenRevoke { name, token } => {
            let command = TenantCommand::RevokeToken {
                name: name.clone(),
                token: *token,
            };
            write(api, url, numbered, Operation::Tenant(Box::new(command)))
        }
        _ => Err(unexpected()),
    }
}

fn show(api: &Scoped, url: &str, name: &str) -> Result<TenantView, ApiError> {
    let query = Query::Tenant {
        name: name.to_owned(),
    };
    match read(api, url, query, false)? {
        ReadAnswer::Tenant(view) => Ok(*view),
        _ => Err(unexpected()),
    }
}

fn read(api: &Scoped, url: &str, query: Query, stale: bool) -> Result<ReadAnswer, ApiError> {
    let consistency = if stale {
        Consistency::Stale
    } else {
        Consistency::Linearizable
    };
    api.handle
        .read(query, consistency, api.request_timeout)
        .map_err(|error| api.client_error(error, url))
}

fn unexpected() -> ApiError {
    ApiError::new(
        500,
        "internal",
        "the node answered a tenant request unexpectedly",
    )
}
