//! What the in-process tests of the service share: a migrated database with storefronts in
//! every placement, and one-request helpers.

#![allow(dead_code)]

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use smartseller::{access::AdminAccess, config_for, AppState};
use tenancy_core::{Placement, StorefrontId};
use tenancy_tests::{Backend, TestDb};
use tower::ServiceExt;

/// A migrated test database, the app state over it, and storefronts in each placement the
/// backend supports.
pub async fn setup(backend: Backend) -> Option<(TestDb, AppState, Vec<(StorefrontId, Placement)>)> {
    let test = TestDb::migrated(backend).await?;
    let state = AppState::connect(config_for(&test.url).expect("config"), admin_access())
        .await
        .expect("connect");
    let mut placements = vec![Placement::Shared];
    if backend != Backend::Sqlite {
        placements.push(Placement::Schema {
            schema: test.schema_name(),
        });
    }
    placements.push(Placement::Database {
        url: test.sibling_url("tenancy_test_"),
    });
    placements.push(Placement::Shared);
    let mut storefronts = Vec::new();
    for p in placements {
        let sf = StorefrontId::new_random();
        state
            .provision(sf, Some(p.clone()))
            .await
            .expect("provision");
        storefronts.push((sf, p));
    }
    Some((test, state, storefronts))
}

pub async fn teardown(test: TestDb, state: AppState, storefronts: &[(StorefrontId, Placement)]) {
    for (sf, _) in storefronts {
        let _ = state.tenancy.drop_storefront(*sf, &sf.to_string()).await;
    }
    test.teardown().await;
}

/// Sends one request; the status and the JSON body (`null` when empty).
pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, body)
}

pub fn req(
    method: &str,
    uri: &str,
    sf: Option<StorefrontId>,
    body: Option<Value>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(sf) = sf {
        b = b.header("x-storefront", sf.to_string());
    }
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string())),
        None => b.body(Body::empty()),
    }
    .expect("request")
}

pub fn customer(name: &str) -> Value {
    json!({ "email": format!("{name}@example.com"), "first_name": name, "last_name": "Test" })
}

/// The operator token of the tests' service.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdefghij";

/// The host the tests' operator side answers to.
pub const ADMIN_HOST: &str = "localhost:3000";

pub fn admin_access() -> AdminAccess {
    AdminAccess::new(ADMIN_TOKEN, [ADMIN_HOST]).expect("admin access")
}

/// A request to the operator side with the token and the allowed host.
pub fn admin_req(method: &str, uri: &str, body: Option<Value>) -> Request<Body> {
    let mut r = req(method, uri, None, body);
    let headers = r.headers_mut();
    headers.insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().expect("header"),
    );
    headers.insert("host", ADMIN_HOST.parse().expect("header"));
    r
}
