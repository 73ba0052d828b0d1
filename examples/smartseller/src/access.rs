//! Who may use the operator side (`/admin`, its API and `/metrics`): these routes see and
//! move every storefront, so each request must
//!
//! - name an allowed host in `Host` (a page on another domain that rebinds its DNS name to
//!   this service is same-origin with it, but sends its own name as `Host`);
//! - carry the operator token, as `Authorization: Bearer <token>` (scripts, Prometheus'
//!   `bearer_token`) or the cookie `/admin/login?token=<token>` sets (the dashboard in a
//!   browser; `HttpOnly`, `SameSite=Strict`); tokens are compared in constant time;
//! - for a `POST`, come as `application/json` and, if the browser names its origin, from an
//!   allowed host: a cross-site form or a `text/plain` request (which a browser sends to
//!   any site without asking) is refused before anything runs.

use std::sync::Arc;

use axum::{
    extract::{Query, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// The cookie the login sets.
pub const COOKIE: &str = "smartseller_admin";

/// The operator token and the hosts the operator side answers to.
#[derive(Clone)]
pub struct AdminAccess {
    token: Arc<str>,
    hosts: Arc<[String]>,
}

impl std::fmt::Debug for AdminAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccess")
            .field("token", &"***")
            .field("hosts", &self.hosts)
            .finish()
    }
}

impl AdminAccess {
    /// Access with `token` (at least 32 characters) for requests whose `Host` is one of
    /// `hosts` (`host` or `host:port`, compared without case).
    pub fn new(
        token: &str,
        hosts: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, String> {
        if token.chars().count() < 32 {
            return Err("the admin token must have at least 32 characters".into());
        }
        // It goes into a cookie: visible ASCII without the cookie's own separators.
        if !token
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, ';' | ',' | '"' | '\\'))
        {
            return Err(
                "the admin token may hold visible ASCII characters except ; , \" and \\".into(),
            );
        }
        let hosts: Vec<String> = hosts
            .into_iter()
            .map(|h| h.into().to_ascii_lowercase())
            .collect();
        if hosts.is_empty() {
            return Err("the admin side needs at least one allowed host".into());
        }
        Ok(Self {
            token: token.into(),
            hosts: hosts.into(),
        })
    }

    /// A random token (two v4 UUIDs: 244 random bits), for a service started without one.
    pub fn random_token() -> String {
        format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )
    }

    /// The hosts a service listening on `addr` answers to: `localhost`, `127.0.0.1` and
    /// `[::1]` with its port, and the address as given unless it is unspecified.
    pub fn local_hosts(addr: &std::net::SocketAddr) -> Vec<String> {
        let port = addr.port();
        let mut hosts = vec![
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ];
        // Not `0.0.0.0` or `[::]`: some browsers let public pages address them.
        if !addr.ip().is_unspecified() {
            hosts.push(addr.to_string());
        }
        if port == 80 {
            hosts.extend(["localhost", "127.0.0.1", "[::1]"].map(String::from));
        }
        hosts
    }

    /// The answer to a request whose host is not an allowed one (421), if it is not.
    fn foreign_host(&self, req: &Request) -> Option<Response> {
        // One host, read as the storefront layer reads it (two, or two that differ: none).
        match tenancy_core::http::request_host(req.headers(), req.uri())
            .ok()
            .flatten()
        {
            Some(host) if self.host_allowed(&host) => None,
            _ => Some(refuse(
                StatusCode::MISDIRECTED_REQUEST,
                "this host does not serve the operator side",
            )),
        }
    }

    fn token_matches(&self, given: &str) -> bool {
        bool::from(given.as_bytes().ct_eq(self.token.as_bytes()))
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// The token the request carries: the bearer token, or the login cookie.
    fn presented(headers: &HeaderMap) -> Option<String> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        if bearer.is_some() {
            return bearer;
        }
        // (Another scheme, such as a proxy's Basic, leaves the cookie to decide.)
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value.to_owned())
    }

    /// Whether a browser says the request comes from a page of another site: its `Origin`
    /// is not an allowed host, or `Sec-Fetch-Site` says `cross-site`.
    fn cross_site(&self, headers: &HeaderMap) -> bool {
        if headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
        {
            return true;
        }
        match headers.get(header::ORIGIN).map(|v| v.to_str()) {
            None => false,
            Some(Err(_)) => true,
            Some(Ok(origin)) => {
                let host = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"));
                !host.is_some_and(|h| self.host_allowed(h))
            }
        }
    }
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": why }))).into_response()
}

/// The guard in front of every operator route but the login.
pub async fn guard(State(access): State<AdminAccess>, req: Request, next: Next) -> Response {
    if let Some(refused) = access.foreign_host(&req) {
        return refused;
    }
    match AdminAccess::presented(req.headers()) {
        Some(token) if access.token_matches(&token) => {}
        _ => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(serde_json::json!({
                    "error": "the operator side needs the admin token (Authorization: Bearer, or /admin/login?token=...)"
                })),
            )
                .into_response()
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if access.cross_site(req.headers()) {
            return refuse(
                StatusCode::FORBIDDEN,
                "a request from another site is refused",
            );
        }
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "operator actions take a JSON body (content-type: application/json)",
            );
        }
    }
    let mut response = next.run(req).await;
    // The operator side is never framed (a same-site page could frame the dashboard and
    // have its buttons clicked) and never cached.
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `?token=` of the login.
#[derive(Deserialize)]
pub struct Login {
    token: String,
}

/// `GET /admin/login?token=...`: with the right token (and an allowed host), sets the login
/// cookie and sends the browser to the dashboard.
pub async fn login(
    State(access): State<AdminAccess>,
    Query(login): Query<Login>,
    req: Request,
) -> Response {
    if let Some(refused) = access.foreign_host(&req) {
        return refused;
    }
    if !access.token_matches(&login.token) {
        return refuse(StatusCode::UNAUTHORIZED, "wrong admin token");
    }
    (
        [(
            header::SET_COOKIE,
            format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200",
                login.token
            ),
        )],
        Redirect::to("/admin"),
    )
        .into_response()
}
