//! The SmartSeller service in process: each resolution strategy, the 4xx answers, and
//! cross-storefront attempts through every route, in every placement, on every backend.

use std::time::Duration;

use axum::{
    body::Body,
    http::{Request, StatusCode},
    routing::get,
    Router,
};
use serde_json::json;
use smartseller::app;
use tenancy_core::{
    http::{Resolve, Tenant},
    Placement, StorefrontId, TenantState,
};
use tenancy_tests::Backend;

mod common;
use common::{admin_req, customer, req, send, setup, teardown, ADMIN_HOST, ADMIN_TOKEN};

/// Everything one storefront creates through the API.
struct Made {
    customer: String,
    order: String,
    cart: String,
}

async fn make(app: &Router, sf: StorefrontId, name: &str) -> Made {
    let (s, c) = send(
        app,
        req("POST", "/customers", Some(sf), Some(customer(name))),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let customer = c["id"].as_str().expect("id").to_owned();
    assert_eq!(c["storefront_id"], sf.to_string());
    let (s, o) = send(
        app,
        req(
            "POST",
            "/orders",
            Some(sf),
            Some(json!({ "customer_id": customer, "currency": "EUR",
                         "items": [{ "sku": "A-1", "quantity": 2, "unit_price_cents": 1250 }] })),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["total_cents"], 2500);
    let (s, cart) = send(
        app,
        req(
            "POST",
            "/carts",
            Some(sf),
            Some(json!({ "customer_id": customer })),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{cart}");
    Made {
        customer,
        order: o["id"].as_str().expect("order id").to_owned(),
        cart: cart["id"].as_str().expect("cart id").to_owned(),
    }
}

/// Every storefront attacks every other through every route that takes an id: each is
/// answered 404, and the victim's rows are unchanged afterwards.
async fn cross_storefront(backend: Backend) {
    let Some((test, state, storefronts)) = setup(backend).await else {
        return;
    };
    let app = app(state.clone(), Resolve::header("x-storefront")).expect("app");
    let mut made = Vec::new();
    for (i, (sf, _)) in storefronts.iter().enumerate() {
        made.push(make(&app, *sf, &format!("shopper{i}")).await);
    }
    for (a, (attacker, pa)) in storefronts.iter().enumerate() {
        for (v, (_, pv)) in storefronts.iter().enumerate() {
            if a == v {
                continue;
            }
            let m = &made[v];
            let who = format!("{backend}: {pa} attacking {pv}");
            let attempts = [
                req(
                    "GET",
                    &format!("/customers/{}", m.customer),
                    Some(*attacker),
                    None,
                ),
                req(
                    "PATCH",
                    &format!("/customers/{}", m.customer),
                    Some(*attacker),
                    Some(json!({ "first_name": "pwned", "last_name": "x" })),
                ),
                req(
                    "DELETE",
                    &format!("/customers/{}", m.customer),
                    Some(*attacker),
                    None,
                ),
                req(
                    "POST",
                    &format!("/customers/{}/addresses", m.customer),
                    Some(*attacker),
                    Some(
                        json!({ "line1": "1 Main St", "city": "X", "postal_code": "1", "country_code": "US" }),
                    ),
                ),
                req(
                    "GET",
                    &format!("/customers/{}/addresses", m.customer),
                    Some(*attacker),
                    None,
                ),
                req(
                    "POST",
                    "/orders",
                    Some(*attacker),
                    Some(json!({ "customer_id": m.customer, "currency": "EUR",
                                 "items": [{ "sku": "B", "quantity": 1, "unit_price_cents": 1 }] })),
                ),
                req(
                    "GET",
                    &format!("/orders/{}", m.order),
                    Some(*attacker),
                    None,
                ),
                req(
                    "POST",
                    "/carts",
                    Some(*attacker),
                    Some(json!({ "customer_id": m.customer })),
                ),
                req("GET", &format!("/carts/{}", m.cart), Some(*attacker), None),
                req(
                    "POST",
                    &format!("/carts/{}/items", m.cart),
                    Some(*attacker),
                    Some(json!({ "sku": "C", "quantity": 1 })),
                ),
            ];
            for attempt in attempts {
                let what = format!("{} {}", attempt.method(), attempt.uri());
                let (status, body) = send(&app, attempt).await;
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{who}: {what} answered {body}"
                );
            }
            // Lists never show the victim's rows.
            let (_, list) = send(&app, req("GET", "/customers", Some(*attacker), None)).await;
            assert_eq!(list["total"], 1, "{who}: {list}");
            assert_eq!(list["customers"][0]["id"], made[a].customer, "{who}");
            let (_, orders) = send(&app, req("GET", "/orders", Some(*attacker), None)).await;
            assert_eq!(orders.as_array().map(Vec::len), Some(1), "{who}: {orders}");
        }
    }
    // The victims are untouched: names as created, not deleted, one order, no addresses.
    for (i, ((sf, p), m)) in storefronts.iter().zip(&made).enumerate() {
        let (s, c) = send(
            &app,
            req(
                "GET",
                &format!("/customers/{}", m.customer),
                Some(*sf),
                None,
            ),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{backend} {p}: {c}");
        assert_eq!(c["first_name"], format!("shopper{i}"), "{backend} {p}");
        assert!(c["deleted_at"].is_null(), "{backend} {p}");
        let (_, a) = send(
            &app,
            req(
                "GET",
                &format!("/customers/{}/addresses", m.customer),
                Some(*sf),
                None,
            ),
        )
        .await;
        assert_eq!(a, json!([]), "{backend} {p}");
        let (_, cart) = send(
            &app,
            req("GET", &format!("/carts/{}", m.cart), Some(*sf), None),
        )
        .await;
        assert_eq!(cart["items"], json!([]), "{backend} {p}");
        let (_, o) = send(
            &app,
            req("GET", &format!("/orders/{}", m.order), Some(*sf), None),
        )
        .await;
        assert_eq!(
            o["items"].as_array().map(Vec::len),
            Some(1),
            "{backend} {p}: {o}"
        );
    }
    teardown(test, state, &storefronts).await;
}

#[tokio::test]
async fn sqlite_cross_storefront_attempts_are_404() {
    cross_storefront(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_cross_storefront_attempts_are_404() {
    cross_storefront(Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_cross_storefront_attempts_are_404() {
    cross_storefront(Backend::MySql).await;
}

/// The same storefronts through each strategy: the header, the subdomain (with a port),
/// and the path prefix (stripped before routing, query string kept).
#[tokio::test]
async fn each_strategy_resolves_the_same_storefront() {
    let Some((test, state, storefronts)) = setup(Backend::Sqlite).await else {
        return;
    };
    let (a, b) = (storefronts[0].0, storefronts[1].0);
    let by_header = app(state.clone(), Resolve::header("x-storefront")).expect("app");
    let by_host = app(state.clone(), Resolve::subdomain("shops.example.com")).expect("app");
    let by_path = app(state.clone(), "path:/s".parse().expect("strategy")).expect("app");
    send(
        &by_header,
        req("POST", "/customers", Some(a), Some(customer("ada"))),
    )
    .await;
    send(
        &by_header,
        req("POST", "/customers", Some(b), Some(customer("bob"))),
    )
    .await;

    for (sf, name) in [(a, "ada"), (b, "bob")] {
        let host = Request::builder()
            .uri("/customers?per_page=5")
            .header("host", format!("{sf}.shops.example.com:8080"))
            .body(Body::empty())
            .expect("request");
        let (s, list) = send(&by_host, host).await;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(list["customers"][0]["first_name"], name);
        assert_eq!(list["total"], 1);

        let path = Request::builder()
            .uri(format!("/s/{sf}/customers?per_page=5"))
            .body(Body::empty())
            .expect("request");
        let (s, list) = send(&by_path, path).await;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(list["customers"][0]["first_name"], name);

        // A write through the path strategy lands in the right storefront too.
        let post = Request::builder()
            .method("POST")
            .uri(format!("/s/{sf}/customers"))
            .header("content-type", "application/json")
            .body(Body::from(customer(&format!("{name}2")).to_string()))
            .expect("request");
        let (s, c) = send(&by_path, post).await;
        assert_eq!(
            (s, c["storefront_id"].clone()),
            (StatusCode::CREATED, json!(sf.to_string()))
        );
    }
    // Operator routes are outside the layer: no storefront needed.
    let (s, _) = send(&by_path, admin_req("GET", "/metrics", None)).await;
    assert_eq!(s, StatusCode::OK);
    teardown(test, state, &storefronts).await;
}

/// Requests that name no storefront, a malformed one, an unknown one or one still being
/// provisioned are refused before any handler runs; a handler outside the layer fails closed.
#[tokio::test]
async fn bad_storefronts_get_4xx() {
    let Some((test, state, storefronts)) = setup(Backend::Sqlite).await else {
        return;
    };
    let known = storefronts[0].0;
    let by_header = app(state.clone(), Resolve::header("x-storefront")).expect("app");
    let by_host = app(state.clone(), Resolve::subdomain("shops.example.com")).expect("app");
    let by_path = app(state.clone(), Resolve::path_prefix("/s")).expect("app");
    let raw = |uri: &str, header: Option<(&str, &str)>| {
        let mut b = Request::builder().uri(uri);
        if let Some((k, v)) = header {
            b = b.header(k, v);
        }
        b.body(Body::empty()).expect("request")
    };
    let unknown = StorefrontId::new_random().to_string();
    let cases: Vec<(&Router, Request<Body>, StatusCode, &str)> = vec![
        (
            &by_header,
            raw("/customers", None),
            StatusCode::BAD_REQUEST,
            "no `x-storefront` header",
        ),
        (
            &by_header,
            raw("/customers", Some(("x-storefront", "42"))),
            StatusCode::BAD_REQUEST,
            "not a storefront id",
        ),
        (
            &by_header,
            raw("/customers", Some(("x-storefront", "' OR 1=1 --"))),
            StatusCode::BAD_REQUEST,
            "not a storefront id",
        ),
        (
            &by_header,
            raw(
                "/customers",
                Some(("x-storefront", "00000000-0000-0000-0000-000000000000")),
            ),
            StatusCode::BAD_REQUEST,
            "not a storefront id",
        ),
        (
            &by_header,
            raw("/customers", Some(("x-storefront", &unknown))),
            StatusCode::NOT_FOUND,
            "no storefront",
        ),
        (
            &by_host,
            raw("/customers", Some(("host", "shops.example.com"))),
            StatusCode::BAD_REQUEST,
            "not a storefront subdomain",
        ),
        (
            &by_host,
            raw("/customers", Some(("host", "evil.com"))),
            StatusCode::BAD_REQUEST,
            "not a storefront subdomain",
        ),
        (
            &by_host,
            raw(
                "/customers",
                Some(("host", &format!("x.{known}.shops.example.com"))),
            ),
            StatusCode::BAD_REQUEST,
            "not a storefront subdomain",
        ),
        (
            &by_host,
            raw("/customers", Some(("host", "nope.shops.example.com"))),
            StatusCode::BAD_REQUEST,
            "not a storefront id",
        ),
        (
            &by_host,
            raw(
                "/customers",
                Some(("host", &format!("{unknown}.shops.example.com"))),
            ),
            StatusCode::NOT_FOUND,
            "no storefront",
        ),
        (
            &by_path,
            raw("/customers", None),
            StatusCode::BAD_REQUEST,
            "does not start with `/s/<storefront id>`",
        ),
        (
            &by_path,
            raw("/s/not-an-id/customers", None),
            StatusCode::BAD_REQUEST,
            "not a storefront id",
        ),
        (
            &by_path,
            raw(&format!("/s/{unknown}/customers"), None),
            StatusCode::NOT_FOUND,
            "no storefront",
        ),
    ];
    let before = state.tenancy.stats().all().len();
    for (app, request, status, text) in cases {
        let what = format!("{} {:?}", request.uri(), request.headers());
        let (s, body) = send(app, request).await;
        assert_eq!(s, status, "{what}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(text),
            "{what}: `{error}` should say `{text}`"
        );
    }
    // No refused request ran a statement for any storefront.
    assert_eq!(state.tenancy.stats().all().len(), before);

    // A storefront still being provisioned is not served yet.
    let directory = state.tenancy.directory().expect("directory");
    let pending = StorefrontId::new_random();
    directory
        .put(pending, &Placement::Shared, TenantState::Provisioning)
        .await
        .expect("put");
    let (s, body) = send(&by_header, req("GET", "/customers", Some(pending), None)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    directory.remove(pending).await.expect("remove");

    // A handler that wants a Tenant but sits behind no layer refuses to guess.
    let naked = Router::new().route(
        "/x",
        get(|t: Tenant| async move { t.storefront().to_string() }),
    );
    let (s, body) = send(&naked, req("GET", "/x", Some(known), None)).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{body}");

    // A malformed strategy in configuration names itself.
    let e = "cookie:sf"
        .parse::<Resolve>()
        .expect_err("cookie is not a strategy");
    assert!(e.to_string().contains("cookie:sf"), "{e}");
    teardown(test, state, &storefronts).await;
}

/// A task spawned for a storefront keeps it, whatever the request that spawned it does next.
#[tokio::test]
async fn background_tasks_keep_their_storefront() {
    let Some((test, state, storefronts)) = setup(Backend::Sqlite).await else {
        return;
    };
    let (a, b) = (storefronts[0].0, storefronts[1].0);
    let tenant_a = Tenant::new(&state.tenancy, a);
    let tenant_b = Tenant::new(&state.tenancy, b);
    let mut tasks = Vec::new();
    for i in 0..10 {
        for (t, name) in [(&tenant_a, "a"), (&tenant_b, "b")] {
            tasks.push(t.spawn(move |db| async move {
                tokio::time::sleep(Duration::from_millis(5 * (i % 3))).await;
                entities::repository::CustomerRepository::new(&db)
                    .create(entities::repository::NewCustomer {
                        email: format!("{name}{i}@example.com"),
                        first_name: name.into(),
                        last_name: "job".into(),
                        phone: None,
                    })
                    .await
                    .map(|c| (c.storefront_id, db.storefront()))
            }));
        }
    }
    for task in tasks {
        let (row, conn) = task.await.expect("join").expect("insert");
        assert_eq!(row, *conn.as_uuid());
    }
    for (t, name) in [(&tenant_a, "a"), (&tenant_b, "b")] {
        let (all, total) = entities::repository::CustomerRepository::new(t.db())
            .list(0, 100)
            .await
            .expect("list");
        assert_eq!(total, 10);
        assert!(all.iter().all(|c| c.first_name == name));
    }
    teardown(test, state, &storefronts).await;
}

/// `/metrics` reports per-storefront counters with the placement, and a move started from
/// the admin API shows its progress there and in `/admin/api/state` until it has cut over.
#[tokio::test]
async fn metrics_and_admin_move() {
    let Some((test, state, storefronts)) = setup(Backend::Sqlite).await else {
        return;
    };
    let app = app(state.clone(), Resolve::header("x-storefront")).expect("app");
    let (sf, _) = storefronts[0];
    for i in 0..5 {
        make(&app, sf, &format!("m{i}")).await;
    }
    let (s, text) = send(&app, admin_req("GET", "/metrics", None)).await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().expect("text").to_owned();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "tenancy_queries_total{{storefront=\"{sf}\",placement=\"shared\"}}"
            ))
        })
        .unwrap_or_else(|| panic!("no query counter for {sf} in\n{text}"));
    let n: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("value");
    assert!(n >= 15, "{line}");
    assert!(text.contains(&format!(
        "tenancy_query_duration_seconds_count{{storefront=\"{sf}\",placement=\"shared\"}} {n}"
    )));
    assert!(
        text.contains("tenancy_storefronts{placement=\"database\"} 1"),
        "{text}"
    );

    // Move it to its own database from the admin API, and watch it to the cutover.
    let (s, body) = send(
        &app,
        admin_req(
            "POST",
            "/admin/api/moves",
            Some(json!({ "storefront": sf, "to": "database" })),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let (s, body) = send(
        &app,
        admin_req(
            "POST",
            "/admin/api/moves",
            Some(json!({ "storefront": sf, "to": "shared" })),
        ),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "already shared: {body}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, st) = send(&app, admin_req("GET", "/admin/api/state", None)).await;
        let mv = st["moves"].as_array().and_then(|m| {
            m.iter()
                .find(|m| m["storefront"] == sf.to_string())
                .cloned()
        });
        if let Some(mv) = mv {
            assert!(mv["error"].is_null(), "{mv}");
            // Switched, and the cutover has returned (every process has the new placement;
            // until then the background mover holds the move).
            if mv["phase"] == "switched" && !mv["progress"]["acknowledged_ms"].is_null() {
                let customers = mv["progress"]["tables"]
                    .as_array()
                    .and_then(|t| t.iter().find(|t| t["table"] == "customers").cloned())
                    .expect("customers progress");
                assert_eq!(
                    (customers["rows"].clone(), customers["copied"].clone()),
                    (json!(5), json!(5)),
                    "{mv}"
                );
                let row = st["storefronts"]
                    .as_array()
                    .and_then(|r| {
                        r.iter()
                            .find(|r| r["storefront"] == sf.to_string())
                            .cloned()
                    })
                    .expect("row");
                assert_eq!(row["placement"], "database", "{row}");
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the move did not cut over: {st}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, text) = send(&app, admin_req("GET", "/metrics", None)).await;
    let text = text.as_str().expect("text").to_owned();
    assert!(
        text.contains(&format!(
            "tenancy_move_phase{{storefront=\"{sf}\",phase=\"switched\",target=\"database\"}} 1"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "tenancy_move_rows_copied{{storefront=\"{sf}\",table=\"customers\"}} 5"
        )),
        "{text}"
    );
    // The API keeps serving the storefront from its new placement.
    let (_, list) = send(&app, req("GET", "/customers", Some(sf), None)).await;
    assert_eq!(list["total"], 5, "{list}");
    let (s, done) = send(
        &app,
        admin_req(
            "POST",
            &format!("/admin/api/moves/{sf}/complete"),
            Some(json!({})),
        ),
    )
    .await;
    assert_eq!(
        (s, done["phase"].clone()),
        (StatusCode::OK, json!("completed")),
        "{done}"
    );
    teardown(test, state, &storefronts).await;
}

/// A request's headers, as name and value.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// The operator side is closed to anyone without the token, to a foreign `Host` (a DNS
/// rebinding page), and to requests a browser sends across sites without asking (a form,
/// a `text/plain` POST): each is refused before anything runs, and a switched move stays
/// switched through every such attempt on rollback and complete.
#[tokio::test]
async fn the_operator_side_needs_the_token_the_host_and_json() {
    let Some((test, state, storefronts)) = setup(Backend::Sqlite).await else {
        return;
    };
    let app = app(state.clone(), Resolve::header("x-storefront")).expect("app");
    let build = |method: &str, uri: &str, headers: &[(&str, &str)], body: &str| {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::from(body.to_owned())).expect("request")
    };
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let cookie = format!("smartseller_admin={ADMIN_TOKEN}");
    for uri in ["/admin", "/admin/api/state", "/metrics"] {
        let cases: [(Headers, StatusCode, &str); 6] = [
            (
                &[("host", ADMIN_HOST)],
                StatusCode::UNAUTHORIZED,
                "no token",
            ),
            (
                &[
                    ("host", ADMIN_HOST),
                    ("authorization", "Bearer not-the-token-at-all"),
                ],
                StatusCode::UNAUTHORIZED,
                "a wrong token",
            ),
            (
                &[
                    ("host", ADMIN_HOST),
                    ("authorization", &format!("Bearer {ADMIN_TOKEN}x")),
                ],
                StatusCode::UNAUTHORIZED,
                "the token and more",
            ),
            (
                &[("host", "evil.example"), ("authorization", &bearer)],
                StatusCode::MISDIRECTED_REQUEST,
                "a foreign host",
            ),
            (
                &[("host", ADMIN_HOST), ("authorization", &bearer)],
                StatusCode::OK,
                "the bearer token",
            ),
            (
                &[("host", ADMIN_HOST), ("cookie", &cookie)],
                StatusCode::OK,
                "the login cookie",
            ),
        ];
        for (headers, expected, what) in cases {
            let (s, body) = send(&app, build("GET", uri, headers, "")).await;
            assert_eq!(s, expected, "GET {uri} with {what}: {body}");
        }
        // Never framed, never cached.
        let res = tower::ServiceExt::oneshot(
            app.clone(),
            build(
                "GET",
                uri,
                &[("host", ADMIN_HOST), ("authorization", &bearer)],
                "",
            ),
        )
        .await
        .expect("answer");
        assert_eq!(res.headers()["x-frame-options"], "DENY", "{uri}");
        assert_eq!(res.headers()["cache-control"], "no-store", "{uri}");
    }
    // The login sets the cookie only for the right token, on an allowed host.
    let (s, _) = send(
        &app,
        build(
            "GET",
            "/admin/login?token=wrong-token-0000000",
            &[("host", ADMIN_HOST)],
            "",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let login = format!("/admin/login?token={ADMIN_TOKEN}");
    let (s, _) = send(&app, build("GET", &login, &[("host", "evil.example")], "")).await;
    assert_eq!(s, StatusCode::MISDIRECTED_REQUEST);
    let res = tower::ServiceExt::oneshot(
        app.clone(),
        build("GET", &login, &[("host", ADMIN_HOST)], ""),
    )
    .await
    .expect("login");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a cookie")
        .to_owned();
    assert!(
        set.starts_with(&cookie) && set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );

    // A switched move, and what a page of another site could send its way.
    let (sf, _) = storefronts[0];
    let (other, _) = storefronts[1];
    let mover = state.mover();
    let target = state
        .config
        .placement_for(sf, Some(tenancy_core::TenantType::Database))
        .expect("target");
    let moved = async {
        mover.start::<migration::Migrator>(sf, target).await?;
        mover.cutover::<migration::Migrator>(sf).await
    };
    tokio::time::timeout(Duration::from_secs(120), moved)
        .await
        .expect("the move finished within 120 s")
        .expect("move");
    let attempts: [(Headers, &str, StatusCode, &str); 5] = [
        (
            &[("content-type", "application/x-www-form-urlencoded")],
            "",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a cross-site form",
        ),
        (
            &[("content-type", "text/plain")],
            "{}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a text/plain POST",
        ),
        (
            &[],
            "",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a POST with no body",
        ),
        (
            &[
                ("content-type", "application/json"),
                ("origin", "https://evil.example"),
            ],
            "{}",
            StatusCode::FORBIDDEN,
            "JSON from another origin",
        ),
        (
            &[
                ("content-type", "application/json"),
                ("sec-fetch-site", "cross-site"),
            ],
            "{}",
            StatusCode::FORBIDDEN,
            "JSON the browser calls cross-site",
        ),
    ];
    for action in ["rollback", "complete"] {
        let uri = format!("/admin/api/moves/{sf}/{action}");
        for (extra, body, expected, what) in &attempts {
            let mut headers: Vec<(&str, &str)> = vec![("host", ADMIN_HOST), ("cookie", &cookie)];
            headers.extend_from_slice(extra);
            let (s, answer) = send(&app, build("POST", &uri, &headers, body)).await;
            assert_eq!(s, *expected, "{action} with {what}: {answer}");
            let record = mover.status(sf).await.expect("status").expect("record");
            assert_eq!(
                record.phase,
                tenancy_core::mover::Phase::Switched,
                "{action} with {what} changed the move"
            );
        }
    }
    let form = build(
        "POST",
        "/admin/api/moves",
        &[
            ("host", ADMIN_HOST),
            ("cookie", &cookie),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &format!("storefront={other}&to=database"),
    );
    let (s, _) = send(&app, form).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        mover.status(other).await.expect("status").is_none(),
        "no move was started"
    );
    // The operator's own JSON request goes through (a rollback: bounded like the move).
    let (s, back) = tokio::time::timeout(
        Duration::from_secs(120),
        send(
            &app,
            admin_req(
                "POST",
                &format!("/admin/api/moves/{sf}/rollback"),
                Some(json!({})),
            ),
        ),
    )
    .await
    .expect("the rollback finished within 120 s");
    assert_eq!(
        (s, back["phase"].clone()),
        (StatusCode::OK, json!("rolled-back")),
        "{back}"
    );
    // A move record in an answer names its database without the password (none here, but
    // the placement is redacted all the same).
    teardown(test, state, &storefronts).await;
}

/// Statements run for `sf` so far in this process.
fn statements(state: &smartseller::AppState, sf: StorefrontId) -> u64 {
    state.tenancy.stats().summary(sf).map_or(0, |s| s.count)
}

/// A request that could be read as naming two storefronts (or two hosts), or that spells
/// its storefront other than canonically, is answered 400 and runs no statement; parameters
/// and fields out of range get a 4xx naming them, and the service keeps answering.
#[tokio::test]
async fn the_edge_refuses_ambiguous_and_oversize_requests() {
    let Some((test, state, storefronts)) = setup(Backend::Sqlite).await else {
        return;
    };
    let (sf, _) = storefronts[0];
    let (other, _) = storefronts[1];
    let by_header = app(state.clone(), Resolve::header("x-storefront")).expect("app");
    let by_host = app(state.clone(), Resolve::subdomain("shops.example.com")).expect("app");
    let by_path = app(state.clone(), Resolve::path_prefix("/s")).expect("app");
    let upper = sf.to_string().to_uppercase();
    let simple = sf.as_uuid().simple().to_string();
    let build = |uri: &str, headers: &[(&str, String)]| {
        let mut b = Request::builder().method("GET").uri(uri);
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        b.body(Body::empty()).expect("request")
    };
    let id = sf.to_string();
    let ambiguous: Vec<(&Router, Request<Body>, &str)> = vec![
        (
            &by_header,
            build(
                "/customers",
                &[
                    ("x-storefront", id.clone()),
                    ("x-storefront", other.to_string()),
                ],
            ),
            "two storefront headers",
        ),
        (
            &by_header,
            build(
                "/customers",
                &[("x-storefront", id.clone()), ("x-storefront", id.clone())],
            ),
            "the same storefront header twice",
        ),
        (
            &by_header,
            build(
                "/customers",
                &[
                    ("x-storefront", id.clone()),
                    ("host", "a.example".into()),
                    ("host", "b.example".into()),
                ],
            ),
            "two Host headers",
        ),
        (
            &by_host,
            build(
                "http://evil.shops.example.com/customers",
                &[("host", format!("{sf}.shops.example.com"))],
            ),
            "a target whose authority is not the Host",
        ),
        (
            &by_header,
            build("/customers", &[("x-storefront", upper.clone())]),
            "upper case",
        ),
        (
            &by_header,
            build("/customers", &[("x-storefront", format!("{{{id}}}"))]),
            "braces",
        ),
        (
            &by_header,
            build("/customers", &[("x-storefront", format!("urn:uuid:{id}"))]),
            "a URN",
        ),
        (
            &by_header,
            build("/customers", &[("x-storefront", simple.clone())]),
            "the simple form",
        ),
        (
            &by_header,
            build("/customers", &[("x-storefront", format!(" {id}"))]),
            "padding",
        ),
        (
            &by_host,
            build(
                "/customers",
                &[("host", format!("{upper}.shops.example.com"))],
            ),
            "an upper-case subdomain",
        ),
        (
            &by_path,
            build(&format!("/s/{upper}/customers"), &[]),
            "an upper-case path segment",
        ),
        (
            &by_path,
            build(&format!("/s/{simple}/customers"), &[]),
            "a simple-form path segment",
        ),
        (
            &by_path,
            build(&format!("/s/{id}/../{other}/customers"), &[]),
            "a dot-dot segment",
        ),
        (
            &by_path,
            build(&format!("/s/{id}/%2e%2e/{other}/customers"), &[]),
            "an encoded dot-dot",
        ),
        (
            &by_path,
            build(&format!("/s/{id}//customers"), &[]),
            "an empty segment",
        ),
    ];
    let before = statements(&state, sf) + statements(&state, other);
    for (app, request, what) in ambiguous {
        let (s, body) = send(app, request).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {body}");
    }
    assert_eq!(
        statements(&state, sf) + statements(&state, other),
        before,
        "a refused request ran statements"
    );
    // The canonical spelling still works, by every strategy.
    let (s, _) = send(
        &by_header,
        build("/customers", &[("x-storefront", id.clone())]),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = send(
        &by_host,
        build("/customers", &[("host", format!("{sf}.shops.example.com"))]),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Out-of-range parameters and oversize fields: a 4xx naming the field.
    let get = |uri: &str| req("GET", uri, Some(sf), None);
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            get("/customers?page=9223372036854775808"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "page",
        ),
        (
            get("/orders?page=9223372036854775808&per_page=200"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "page",
        ),
        (
            get("/customers?page=18446744073709551616"),
            StatusCode::BAD_REQUEST,
            "page",
        ),
        (
            get("/customers?per_page=0"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "per_page",
        ),
        (
            get("/orders?per_page=100000"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "per_page",
        ),
        (
            req(
                "POST",
                "/customers",
                Some(sf),
                Some(json!({
                "email": "long@example.com", "first_name": "x".repeat(300), "last_name": "y" })),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "first_name",
        ),
        (
            req(
                "POST",
                "/customers",
                Some(sf),
                Some(json!({
                "email": format!("{}@example.com", "e".repeat(300)), "first_name": "x", "last_name": "y" })),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            // PostgreSQL's text holds no NUL: it was a 500 there.
            req(
                "POST",
                "/customers",
                Some(sf),
                Some(
                    json!({ "email": "nul@example.com", "first_name": "a\u{0}b", "last_name": "y" }),
                ),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "first_name",
        ),
    ];
    for (request, expected, field) in cases {
        let (s, body) = send(&by_header, request).await;
        assert_eq!(s, expected, "{field}: {body}");
        assert!(
            body.to_string().contains(field),
            "the answer names `{field}`: {body}"
        );
    }
    let made = make(&by_header, sf, "edge").await;
    let items: Vec<serde_json::Value> = (0..25_000)
        .map(|_| json!({ "sku": "A-1", "quantity": 1, "unit_price_cents": 1 }))
        .collect();
    let orders: Vec<(serde_json::Value, &str)> = vec![
        (
            json!({ "customer_id": made.customer, "currency": "EUR", "items": items }),
            "items",
        ),
        (
            json!({ "customer_id": made.customer, "currency": "EURO",
                    "items": [{ "sku": "A-1", "quantity": 1, "unit_price_cents": 1 }] }),
            "currency",
        ),
        (
            json!({ "customer_id": made.customer, "currency": "EUR",
                    "items": [{ "sku": "S".repeat(65), "quantity": 1, "unit_price_cents": 1 }] }),
            "sku",
        ),
        (
            json!({ "customer_id": made.customer, "currency": "EUR",
                    "items": [{ "sku": "A-1", "quantity": 2_000_000_000, "unit_price_cents": 1 }] }),
            "quantity",
        ),
        (
            // A total past i64: it panicked (debug) or wrapped (release).
            json!({ "customer_id": made.customer, "currency": "EUR",
                    "items": [{ "sku": "a", "quantity": 1, "unit_price_cents": i64::MAX },
                              { "sku": "b", "quantity": 1, "unit_price_cents": 1 }] }),
            "unit_price_cents",
        ),
    ];
    for (order, field) in orders {
        let (s, body) = send(&by_header, req("POST", "/orders", Some(sf), Some(order))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        assert!(
            body.to_string().contains(field),
            "the answer names `{field}`: {body}"
        );
    }
    // Still serving.
    let (s, list) = send(&by_header, get("/customers")).await;
    assert_eq!(
        (s, list["total"].clone()),
        (StatusCode::OK, json!(1)),
        "{list}"
    );
    teardown(test, state, &storefronts).await;
}

/// A client that sends half its request head and waits is disconnected once the header
/// timeout passes, and one that sends half its body is answered 408 once the request
/// timeout passes; a whole request on another connection is answered meanwhile.
#[tokio::test]
async fn a_stalled_request_head_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some((test, state, storefronts)) = setup(Backend::Sqlite).await else {
        return;
    };
    let router = app(state.clone(), Resolve::header("x-storefront")).expect("app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let timeouts = smartseller::Timeouts {
        head: Duration::from_millis(500),
        request: Duration::from_secs(1),
    };
    let server = tokio::spawn(smartseller::serve(listener, router, timeouts, async {
        let _ = stopped.await;
    }));
    let mut stalled = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stalled
        .write_all(b"GET /customers HTTP/1.1\r\nHost: localhost\r\nx-storef")
        .await
        .expect("half a head");
    // A whole request meanwhile.
    let mut whole = tokio::net::TcpStream::connect(addr).await.expect("connect");
    whole
        .write_all(
            format!(
                "GET /customers HTTP/1.1\r\nHost: localhost\r\nx-storefront: {}\r\nConnection: close\r\n\r\n",
                storefronts[0].0
            )
            .as_bytes(),
        )
        .await
        .expect("request");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), whole.read_to_end(&mut answer))
        .await
        .expect("the whole request is answered")
        .expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // The stalled one is closed by the server (its answer, if any, then end of stream).
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(20), stalled.read_to_end(&mut rest)).await;
    assert!(
        ended.is_ok(),
        "a connection that stalled in its head was still open 20 s later"
    );
    // A whole head, then half the body it announced: answered 408 once the request
    // timeout passes.
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(
        format!(
            "POST /customers HTTP/1.1\r\nHost: localhost\r\nx-storefront: {}\r\n\
             content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"email\"",
            storefronts[0].0
        )
        .as_bytes(),
    )
    .await
    .expect("half a body");
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(20), slow.read(&mut answer))
        .await
        .expect("a stalled body is answered within 20 s")
        .expect("read");
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let _ = stop.send(());
    server.await.expect("server task").expect("server");
    teardown(test, state, &storefronts).await;
}
