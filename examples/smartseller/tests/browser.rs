//! End to end in headless Chromium: an operator opens `/admin`, starts a move of a
//! storefront from the dashboard while a client keeps writing through the API, and watches
//! it reach the cutover. No request may fail and no acknowledged write may be lost.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them
//! the test is skipped locally and fails under `TENANCY_TEST_REQUIRE_SERVERS=1`.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use fantoccini::{wd::Capabilities, Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use smartseller::{app, config_for, AppState};
use tenancy_core::{http::Resolve, Placement, StorefrontId};
use tenancy_tests::{Backend, TestDb};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn require() -> bool {
    std::env::var("TENANCY_TEST_REQUIRE_SERVERS").is_ok_and(|v| v == "1" || v == "true")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// chromedriver, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser() -> Option<(Driver, Client)> {
    if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
        assert!(
            !require(),
            "{CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium chromium-driver)"
        );
        eprintln!("SKIPPED browser test: chromium or chromedriver is not installed");
        return None;
    }
    let port = free_port();
    let driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let profile =
        std::env::temp_dir().join(format!("smartseller-e2e-{}", uuid::Uuid::new_v4().simple()));
    let mut caps = Capabilities::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--window-size=1500,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connected =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await;
        match connected {
            Ok(client) => return Some((driver, client)),
            Err(e) if Instant::now() > deadline => panic!("chromium did not start: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// What the writers saw.
#[derive(Default)]
struct Written {
    customers: BTreeSet<String>,
    orders: BTreeSet<String>,
    failures: Vec<String>,
    requests: u64,
}

/// A client that keeps creating customers, renaming them and placing orders.
async fn writer(base: String, sf: StorefrontId, n: usize, stop: Arc<AtomicBool>) -> Written {
    let http = reqwest::Client::new();
    let mut w = Written::default();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        w.requests += 1;
        let res = http
            .post(format!("{base}/customers"))
            .header("x-storefront", sf.to_string())
            .json(&json!({ "email": format!("w{n}-{i}@example.com"), "first_name": "w", "last_name": format!("{i}") }))
            .send()
            .await;
        let customer = match res {
            Ok(r) if r.status() == 201 => {
                let v: Value = r.json().await.unwrap_or_default();
                let id = v["id"].as_str().unwrap_or_default().to_owned();
                w.customers.insert(id.clone());
                id
            }
            Ok(r) => {
                let status = r.status();
                w.failures.push(format!(
                    "POST /customers: {status} {}",
                    r.text().await.unwrap_or_default()
                ));
                continue;
            }
            Err(e) => {
                w.failures.push(format!("POST /customers: {e}"));
                continue;
            }
        };
        if i.is_multiple_of(3) {
            w.requests += 1;
            let res = http
                .post(format!("{base}/orders"))
                .header("x-storefront", sf.to_string())
                .json(&json!({ "customer_id": customer, "currency": "EUR",
                               "items": [{ "sku": "S", "quantity": 1, "unit_price_cents": 100 }] }))
                .send()
                .await;
            match res {
                Ok(r) if r.status() == 201 => {
                    let v: Value = r.json().await.unwrap_or_default();
                    w.orders
                        .insert(v["id"].as_str().unwrap_or_default().to_owned());
                }
                Ok(r) => w.failures.push(format!("POST /orders: {}", r.status())),
                Err(e) => w.failures.push(format!("POST /orders: {e}")),
            }
        }
    }
    w
}

async fn all_ids(http: &reqwest::Client, base: &str, sf: StorefrontId) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for page in 0.. {
        let v: Value = http
            .get(format!("{base}/customers?page={page}&per_page=200"))
            .header("x-storefront", sf.to_string())
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let batch = v["customers"].as_array().cloned().unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        ids.extend(
            batch
                .iter()
                .filter_map(|c| c["id"].as_str().map(str::to_owned)),
        );
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_moves_a_storefront_under_writes() {
    let Some((_driver, client)) = browser().await else {
        return;
    };
    let Some(test) = TestDb::migrated(Backend::Postgres).await else {
        let _ = client.close().await;
        return;
    };
    // The operator side answers to this address, with this token (the browser logs in).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let token = smartseller::access::AdminAccess::random_token();
    let access = smartseller::access::AdminAccess::new(
        &token,
        smartseller::access::AdminAccess::local_hosts(&addr),
    )
    .expect("access");
    let state = AppState::connect(config_for(&test.url).expect("config"), access)
        .await
        .expect("connect");
    let moving = StorefrontId::new_random();
    let bystander = StorefrontId::new_random();
    state
        .provision(moving, Some(Placement::Shared))
        .await
        .expect("provision");
    state
        .provision(bystander, Some(Placement::Shared))
        .await
        .expect("provision");
    let router = app(state.clone(), Resolve::header("x-storefront")).expect("app");
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let base = format!("http://{addr}");

    // Some rows to copy, so that the dashboard has progress to show.
    let http = reqwest::Client::new();
    for i in 0..300 {
        let r = http
            .post(format!("{base}/customers"))
            .header("x-storefront", moving.to_string())
            .json(&json!({ "email": format!("seed{i}@example.com"), "first_name": "seed", "last_name": "x" }))
            .send()
            .await
            .expect("seed");
        assert_eq!(r.status(), 201);
    }
    let seeded = all_ids(&http, &base, moving).await;
    assert_eq!(seeded.len(), 300);

    // The client keeps writing through the API from here on.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|n| tokio::spawn(writer(base.clone(), moving, n, Arc::clone(&stop))))
        .collect();

    // The operator opens the dashboard and asks for a move to a schema of its own.
    // Without logging in, the dashboard's API refuses it.
    let refused = http
        .get(format!("{base}/admin/api/state"))
        .send()
        .await
        .expect("state");
    assert_eq!(refused.status(), 401);
    client
        .goto(&format!("{base}/admin/login?token={token}"))
        .await
        .expect("log in");
    assert_eq!(
        client.current_url().await.expect("url").path(),
        "/admin",
        "the login leads to the dashboard"
    );
    let row = format!("tr[data-storefront=\"{moving}\"]");
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&row))
        .await
        .expect("the storefront's row");
    let mut clicked = false;
    for _ in 0..20 {
        // The table re-renders every second (unless a form has focus): retry a stale element.
        let attempt = async {
            let select = client
                .find(Locator::Css(&format!(
                    "form[data-storefront=\"{moving}\"] select"
                )))
                .await?;
            select.select_by_value("schema").await?;
            client
                .find(Locator::Css(&format!(
                    "form[data-storefront=\"{moving}\"] button"
                )))
                .await?
                .click()
                .await
        };
        if attempt.await.is_ok() {
            clicked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(clicked, "could not click Move");

    // Watch the move on the page until it has cut over.
    let card = format!(".move[data-storefront=\"{moving}\"]");
    let mut phases = Vec::<String>::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(el) = client.find(Locator::Css(&card)).await {
            if let Ok(Some(phase)) = el.attr("data-phase").await {
                if phases.last() != Some(&phase) {
                    phases.push(phase.clone());
                }
                if phase == "switched" {
                    break;
                }
                assert!(phase != "rolled-back", "the move rolled back: {phases:?}");
            }
        }
        assert!(
            Instant::now() < deadline,
            "no cutover on the page; phases seen {phases:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The directory table follows: the row now says schema.
    let badge = format!("tr[data-storefront=\"{moving}\"] .badge");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let shown = match client.find(Locator::Css(&badge)).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if shown == "schema" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the row still says `{shown}` after the cutover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Writes go on after the cutover, on the new placement.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let text = client
        .find(Locator::Css(&card))
        .await
        .expect("card")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("phase switched") && text.contains("customers"),
        "{text}"
    );
    let shot = client.screenshot().await.expect("screenshot");
    let dir = std::env::var("SMARTSELLER_SCREENSHOT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::write(dir.join("admin-dashboard.png"), &shot).expect("save screenshot");
    assert!(shot.len() > 10_000, "screenshot is {} bytes", shot.len());

    stop.store(true, Ordering::Relaxed);
    let mut written = Written::default();
    for w in writers {
        let w = w.await.expect("writer");
        written.requests += w.requests;
        written.customers.extend(w.customers);
        written.orders.extend(w.orders);
        written.failures.extend(w.failures);
    }
    assert!(
        written.failures.is_empty(),
        "failed requests: {:?}",
        written.failures
    );
    assert!(
        written.customers.len() > 20,
        "too few writes to mean anything: {}",
        written.customers.len()
    );

    // Every acknowledged write is there, exactly once, on the new placement.
    let now = all_ids(&http, &base, moving).await;
    let expected: BTreeSet<String> = seeded.union(&written.customers).cloned().collect();
    assert_eq!(
        now.len(),
        expected.len(),
        "customers: {} now, {} acknowledged",
        now.len(),
        expected.len()
    );
    assert_eq!(now, expected);
    let orders: Value = http
        .get(format!("{base}/orders?per_page=200"))
        .header("x-storefront", moving.to_string())
        .send()
        .await
        .expect("orders")
        .json()
        .await
        .expect("json");
    let placement = state.tenancy.placement(moving).await.expect("placement");
    assert!(
        matches!(placement, Placement::Schema { .. }),
        "{placement:?}"
    );
    assert!(
        orders.as_array().map_or(0, Vec::len) >= written.orders.len().min(200),
        "orders: {orders}"
    );
    // The bystander saw nothing of it.
    assert!(all_ids(&http, &base, bystander).await.is_empty());
    eprintln!(
        "e2e: {} requests, {} customers written during the move, phases seen on the page: {phases:?}",
        written.requests,
        written.customers.len()
    );
    let _ = client.close().await;
    server.abort();
    test.teardown().await;
}
