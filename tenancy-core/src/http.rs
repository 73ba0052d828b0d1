//! Tenant resolution for axum services (cargo feature `axum`).
//!
//! [`StorefrontLayer`] wraps a service (an axum `Router`, usually the API part of an app):
//! it finds the storefront a request is for by one [`Resolve`] strategy, checks it in the
//! directory, and hands the handlers a [`Tenant`]: a [`TenantConnection`] confined to that
//! storefront. Handlers take `Tenant` as an extractor and contain no tenant logic at all.
//!
//! A request that names no storefront, a malformed one, or one the directory does not know
//! is answered with a 4xx before any handler runs, so no statement can reach the database
//! without a storefront. A handler that asks for a [`Tenant`] behind no layer gets a 500:
//! a wiring mistake fails closed too.
//!
//! ```no_run
//! use axum::{routing::get, Json, Router};
//! use tenancy_core::http::{Layer, Resolve, StorefrontLayer, Tenant};
//!
//! async fn customers(tenant: Tenant) -> Json<u64> {
//!     // `tenant` derefs to a TenantConnection: plain SeaORM code from here on.
//!     Json(tenant.storefront().as_uuid().get_version_num() as u64)
//! }
//!
//! # async fn run(tenancy: std::sync::Arc<tenancy_core::Tenancy>) -> Result<(), Box<dyn std::error::Error>> {
//! let api: Router = Router::new().route("/customers", get(customers));
//! let layer = StorefrontLayer::new(tenancy, Resolve::header("x-storefront"))?;
//! let app: Router = Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .fallback_service(layer.layer(api));
//! # let _ = app; Ok(()) }
//! ```
//!
//! The layer wraps the router from outside (`layer.layer(api)`) rather than being added
//! with `Router::layer`, so that the path-prefix strategy can strip `/s/<id>` before the
//! router matches routes.

use std::{
    convert::Infallible,
    future::Future,
    ops::Deref,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    body::Body,
    extract::FromRequestParts,
    http::{request::Parts, HeaderMap, HeaderName, Request, StatusCode, Uri},
    response::{IntoResponse, Response},
    Json,
};

use crate::{StorefrontId, Tenancy, TenancyError, TenantConnection, TenantState};

/// tower's `Layer` trait, re-exported so that `layer.layer(router)` needs no other import.
pub use tower_layer::Layer;

/// How a request names its storefront.
///
/// Configuration text parses into a strategy: `header:<name>`, `subdomain:<base>` or
/// `path:<prefix>`.
///
/// ```
/// use tenancy_core::http::Resolve;
/// let header: Resolve = "header:x-storefront".parse()?;
/// assert_eq!(header, Resolve::header("x-storefront"));
/// assert_eq!("path:/s".parse::<Resolve>()?, Resolve::path_prefix("/s"));
/// assert!("cookie:sf".parse::<Resolve>().is_err());
/// # Ok::<(), tenancy_core::TenancyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolve {
    /// A header carries the storefront id, e.g. `X-Storefront: 0c5e…`.
    Header(HeaderName),
    /// The first label of the host, under `base`: `0c5e….shops.example.com` with base
    /// `shops.example.com`. A port in the `Host` header is ignored.
    Subdomain {
        /// The domain every storefront is a subdomain of.
        base: String,
    },
    /// The path starts with `prefix` and the id: `/s/0c5e…/customers` with prefix `/s`.
    /// Both are stripped before routing, so routes are written as `/customers`.
    PathPrefix {
        /// The path segment(s) before the id, starting with `/` (`/` alone for none).
        prefix: String,
    },
}

impl Resolve {
    /// The header strategy. Header names are case-insensitive.
    ///
    /// # Panics
    /// When `name` is not a valid header name; it is a constant of the application.
    pub fn header(name: &'static str) -> Self {
        Resolve::Header(HeaderName::from_static(name))
    }

    /// The subdomain strategy under `base`.
    pub fn subdomain(base: impl Into<String>) -> Self {
        Resolve::Subdomain {
            base: base.into().trim_matches('.').to_ascii_lowercase(),
        }
    }

    /// The path-prefix strategy: `/s` gives `/s/<id>/...`.
    pub fn path_prefix(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let trimmed = prefix.trim_end_matches('/');
        Resolve::PathPrefix {
            prefix: if trimmed.is_empty() {
                String::new()
            } else if trimmed.starts_with('/') {
                trimmed.to_owned()
            } else {
                format!("/{trimmed}")
            },
        }
    }

    /// The strategy as configuration text (what [`str::parse`] reads back).
    pub fn describe(&self) -> String {
        match self {
            Resolve::Header(name) => format!("header:{name}"),
            Resolve::Subdomain { base } => format!("subdomain:{base}"),
            Resolve::PathPrefix { prefix } => format!("path:{prefix}"),
        }
    }

    /// Finds the storefront id in a request; the new URI when the strategy strips a prefix.
    ///
    /// A request that could be read as naming two storefronts, or two hosts, is refused
    /// whatever the strategy: two headers of the strategy's name, two `Host` headers, or an
    /// absolute-form target whose authority is not the `Host` (a proxy in front may route
    /// or filter on the other one).
    fn find(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<(StorefrontId, Option<Uri>), Rejection> {
        let host = request_host(headers, uri)?;
        match self {
            Resolve::Header(name) => {
                let mut values = headers.get_all(name).iter();
                let value = values.next().ok_or_else(|| {
                    Rejection::bad(format!(
                        "the request has no `{name}` header naming its storefront"
                    ))
                })?;
                if values.next().is_some() {
                    return Err(Rejection::bad(format!(
                        "the request has more than one `{name}` header: name one storefront"
                    )));
                }
                let text = value
                    .to_str()
                    .map_err(|_| Rejection::bad(format!("the `{name}` header is not text")))?;
                Ok((parse_id(text, &format!("the `{name}` header"))?, None))
            }
            Resolve::Subdomain { base } => {
                let host = host
                    .as_deref()
                    .ok_or_else(|| Rejection::bad("the request has no Host header"))?;
                let host = host.rsplit_once(':').map_or(host, |(h, port)| {
                    if port.chars().all(|c| c.is_ascii_digit()) {
                        h
                    } else {
                        host
                    }
                });
                // The base is matched without case (host names have none); the storefront's
                // label must be spelled canonically, as the header and the path must.
                let lower = host.to_ascii_lowercase();
                let label = lower
                    .strip_suffix(base.as_str())
                    .and_then(|rest| rest.strip_suffix('.'))
                    .filter(|label| !label.is_empty() && !label.contains('.'))
                    .map(|label| &host[..label.len()])
                    .ok_or_else(|| {
                        Rejection::bad(format!(
                            "the host `{lower}` is not a storefront subdomain of `{base}`"
                        ))
                    })?;
                Ok((
                    parse_id(label, &format!("the subdomain of `{lower}`"))?,
                    None,
                ))
            }
            Resolve::PathPrefix { prefix } => {
                let path = uri.path();
                refuse_ambiguous_path(path)?;
                let rest = path
                    .strip_prefix(prefix.as_str())
                    .and_then(|r| r.strip_prefix('/'))
                    .ok_or_else(|| {
                        Rejection::bad(format!(
                            "the path `{path}` does not start with `{prefix}/<storefront id>`"
                        ))
                    })?;
                let (id, tail) = rest.split_once('/').map_or((rest, ""), |(id, t)| (id, t));
                let storefront = parse_id(id, "the path's storefront segment")?;
                let new_path = format!("/{tail}");
                let path_and_query = match uri.query() {
                    Some(q) => format!("{new_path}?{q}"),
                    None => new_path,
                };
                let mut parts = uri.clone().into_parts();
                parts.path_and_query = Some(
                    path_and_query
                        .parse()
                        .map_err(|_| Rejection::bad(format!("the path `{path}` is malformed")))?,
                );
                let uri = Uri::from_parts(parts)
                    .map_err(|_| Rejection::bad(format!("the path `{path}` is malformed")))?;
                Ok((storefront, Some(uri)))
            }
        }
    }
}

impl std::str::FromStr for Resolve {
    type Err = TenancyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| TenancyError::Config {
            key: "resolve".into(),
            message: format!("`{s}`: {reason}"),
        };
        let (kind, arg) = s
            .split_once(':')
            .ok_or_else(|| bad("expected header:<name>, subdomain:<base> or path:<prefix>"))?;
        match kind {
            "header" => HeaderName::try_from(arg.trim())
                .map(Resolve::Header)
                .map_err(|_| bad("not a valid header name")),
            "subdomain" if !arg.trim().trim_matches('.').is_empty() => {
                Ok(Resolve::subdomain(arg.trim()))
            }
            "subdomain" => Err(bad("the base domain is empty")),
            "path" => Ok(Resolve::path_prefix(arg.trim())),
            _ => Err(bad(
                "expected header:<name>, subdomain:<base> or path:<prefix>",
            )),
        }
    }
}

/// The storefront id in `text`, spelled canonically: the 36-character lowercase hyphenated
/// form and nothing else (no braces, `urn:uuid:`, upper case, simple form or padding), so
/// that a proxy that allows or blocks storefronts by their text sees the id the service
/// acts on.
fn parse_id(text: &str, what: &str) -> Result<StorefrontId, Rejection> {
    let shown = || text.chars().take(64).collect::<String>();
    let id = text
        .parse::<StorefrontId>()
        .map_err(|_| Rejection::bad(format!("{what} (`{}`) is not a storefront id", shown())))?;
    if id.to_string() != text {
        return Err(Rejection::bad(format!(
            "{what} (`{}`) is not spelled canonically: write storefront ids as `{id}`",
            shown()
        )));
    }
    Ok(id)
}

/// Refuses a path that a proxy in front may read otherwise than the router: a `.` or
/// `..` segment (`/s/<blocked>/../<allowed>/...` is `/s/<allowed>/...` to a proxy that
/// normalises, and `<blocked>` here), an empty segment, or an encoded dot, slash or
/// backslash.
fn refuse_ambiguous_path(path: &str) -> Result<(), Rejection> {
    let lower = path.to_ascii_lowercase();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let odd_segment = segments
        .iter()
        .enumerate()
        .any(|(i, s)| *s == "." || *s == ".." || (s.is_empty() && i != last));
    if odd_segment || ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) {
        let shown: String = path.chars().take(128).collect();
        return Err(Rejection::bad(format!(
            "the path `{shown}` has dot or empty segments or an encoded dot or slash: name the storefront plainly"
        )));
    }
    Ok(())
}

/// The request's host: its one `Host` header, or the authority of an absolute-form target
/// (`None` when it names neither); refused when there are two `Host` headers or the two
/// disagree. The storefront layer reads the host this way, and so should a guard of the
/// application's own that checks it (an operator side answering to some hosts only).
pub fn request_host(headers: &HeaderMap, uri: &Uri) -> Result<Option<String>, Rejection> {
    let mut hosts = headers.get_all(axum::http::header::HOST).iter();
    let header = match (hosts.next(), hosts.next()) {
        (_, Some(_)) => {
            return Err(Rejection::bad(
                "the request has more than one Host header: name one host",
            ))
        }
        (Some(h), None) => Some(
            h.to_str()
                .map_err(|_| Rejection::bad("the Host header is not text"))?
                .to_owned(),
        ),
        (None, None) => None,
    };
    let authority = uri.authority().map(|a| a.as_str().to_owned());
    match (header, authority) {
        (Some(h), Some(a)) if !h.eq_ignore_ascii_case(&a) => Err(Rejection::bad(format!(
            "the request's target names host `{a}` and its Host header `{h}`: name one host"
        ))),
        (Some(h), _) => Ok(Some(h)),
        (None, a) => Ok(a),
    }
}

/// A refused request: status and a one-line reason, answered as JSON
/// `{"error": "..."}`.
#[derive(Clone, Debug)]
pub struct Rejection {
    /// The HTTP status.
    pub status: StatusCode,
    /// Why.
    pub reason: String,
}

impl Rejection {
    fn bad(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.reason })),
        )
            .into_response()
    }
}

/// The storefront a request is for, with a connection confined to it.
///
/// Extract it in a handler; it derefs to [`TenantConnection`], so it goes wherever SeaORM
/// takes a connection (`&*tenant`). It is cheap to clone and `'static`: a task spawned with
/// [`Tenant::spawn`] (or given a clone) keeps the storefront it was spawned for, whatever
/// request runs next.
#[derive(Clone, Debug)]
pub struct Tenant {
    conn: TenantConnection,
}

impl Tenant {
    /// A tenant for `storefront` outside a request (jobs, tests).
    pub fn new(tenancy: &Tenancy, storefront: StorefrontId) -> Self {
        Self {
            conn: tenancy.connection(storefront),
        }
    }

    /// The connection.
    pub fn db(&self) -> &TenantConnection {
        &self.conn
    }

    /// Runs `work` on a background task bound to this storefront: it gets its own clone of
    /// the connection and runs inside a tracing span naming the storefront.
    pub fn spawn<F, Fut>(&self, work: F) -> tokio::task::JoinHandle<Fut::Output>
    where
        F: FnOnce(TenantConnection) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        use tracing::Instrument;
        let span = tracing::info_span!("tenant.task", storefront = %self.conn.storefront());
        tokio::spawn(work(self.conn.clone()).instrument(span))
    }
}

impl Deref for Tenant {
    type Target = TenantConnection;

    fn deref(&self) -> &TenantConnection {
        &self.conn
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Tenant>()
            .cloned()
            .ok_or_else(|| Rejection {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                reason:
                    "this route is not behind a StorefrontLayer: refusing to guess a storefront"
                        .into(),
            })
    }
}

/// A tower layer that resolves the storefront of every request (see the module docs).
#[derive(Clone)]
pub struct StorefrontLayer {
    tenancy: Arc<Tenancy>,
    resolve: Arc<Resolve>,
}

impl std::fmt::Debug for StorefrontLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorefrontLayer")
            .field("resolve", &self.resolve)
            .finish_non_exhaustive()
    }
}

impl StorefrontLayer {
    /// A layer resolving by `resolve`. The tenancy must have a directory: it is what tells a
    /// storefront that exists from one that does not.
    pub fn new(tenancy: Arc<Tenancy>, resolve: Resolve) -> Result<Self, TenancyError> {
        if tenancy.directory().is_none() {
            return Err(TenancyError::Unsupported {
                placement: "HTTP resolution".into(),
                backend: "this Tenancy".into(),
                reason: "it has no directory, so unknown storefronts could not be refused \
                         (build it with TenancyOptions::new().directory(..))"
                    .into(),
            });
        }
        Ok(Self {
            tenancy,
            resolve: Arc::new(resolve),
        })
    }

    /// Resolves one request: the tenant, and the URI to route on.
    pub async fn resolve(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<(Tenant, Option<Uri>), Rejection> {
        let (storefront, uri) = self.resolve.find(headers, uri)?;
        let directory = self.tenancy.directory().ok_or_else(|| Rejection {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            reason: "no directory".into(),
        })?;
        let record = directory.record(storefront).await.map_err(|e| {
            tracing::error!(storefront = %storefront, "directory lookup failed: {e}");
            Rejection {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: format!("the directory could not be read for storefront {storefront}"),
            }
        })?;
        match record.as_deref() {
            None => Err(Rejection {
                status: StatusCode::NOT_FOUND,
                reason: format!("no storefront {storefront}"),
            }),
            Some(r) if r.state == TenantState::Provisioning => Err(Rejection {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: format!("storefront {storefront} is still being provisioned"),
            }),
            Some(_) => Ok((Tenant::new(&self.tenancy, storefront), uri)),
        }
    }
}

impl<S> Layer<S> for StorefrontLayer {
    type Service = StorefrontService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StorefrontService {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service [`StorefrontLayer`] wraps around an inner one.
#[derive(Clone, Debug)]
pub struct StorefrontService<S> {
    layer: StorefrontLayer,
    inner: S,
}

impl<S> tower_service::Service<Request<Body>> for StorefrontService<S>
where
    S: tower_service::Service<Request<Body>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let resolved = layer.resolve(req.headers(), req.uri()).await;
            match resolved {
                Ok((tenant, uri)) => {
                    if let Some(uri) = uri {
                        *req.uri_mut() = uri;
                    }
                    let span = tracing::info_span!(
                        "tenant.request",
                        storefront = %tenant.storefront(),
                        method = %req.method(),
                        path = %req.uri().path(),
                    );
                    req.extensions_mut().insert(tenant);
                    use tracing::Instrument;
                    inner.call(req).instrument(span).await
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}
