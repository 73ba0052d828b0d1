//! Statement tracing, in a test binary of its own.
//!
//! `tracing` caches per call site whether anyone listens. With a thread-scoped subscriber
//! (`set_default`) and other tests running on other threads, a call site first reached on
//! one of those threads can be cached as "never" for every thread, and the statement spans
//! vanish (CI saw exactly that once). Here the subscriber is the process's global default
//! and this is the binary's only test.
//!
//! The placement is recorded on the statement's span when the statement ends, so the check
//! reads the spans' close lines. sqlx's SQLite worker thread holds a clone of the caller's
//! span until it has finished the command, so a span may close (and its line be written)
//! a moment after the request has returned (CI saw that too): the check waits, boundedly,
//! for the lines.

mod common;

use axum::http::StatusCode;
use common::{customer, req, send, setup, teardown};
use smartseller::app;
use tenancy_core::http::Resolve;
use tenancy_tests::Backend;

/// A writer the fmt subscriber appends to, shared with the test.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn take(&self) -> String {
        let mut buf = self.0.lock().expect("lock");
        String::from_utf8(std::mem::take(&mut *buf)).expect("utf8")
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every statement is traced in a span with the storefront and its placement, inside the
/// request's span; the values bound to the SQL never appear.
#[tokio::test(flavor = "current_thread")]
async fn statements_are_traced_without_bound_values() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    let Some((test, state, storefronts)) = setup(Backend::Sqlite).await else {
        return;
    };
    let (shared_sf, database_sf) = (storefronts[0].0, storefronts[1].0);
    let app = app(state.clone(), Resolve::header("x-storefront")).expect("app");
    // Set-up ran outside any request; only what the requests do is checked.
    let _ = captured.take();
    for sf in [shared_sf, database_sf] {
        let (s, _) = send(
            &app,
            req(
                "POST",
                "/customers",
                Some(sf),
                Some(customer("secret-value")),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    // Both statement spans closed (each names its placement), within 10 s.
    let mut text = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        text.push_str(&captured.take());
        let closed = |sf: &tenancy_core::StorefrontId| {
            text.lines().any(|l| {
                l.contains("tenancy.statement")
                    && l.contains(&format!("storefront={sf}"))
                    && l.contains("placement=")
            })
        };
        if (closed(&shared_sf) && closed(&database_sf)) || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let statements: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("tenancy.statement"))
        .collect();
    assert!(
        statements
            .iter()
            .any(|l| l.contains(&format!("storefront={shared_sf}"))
                && l.contains("placement=\"shared\"")),
        "no statement span for the shared storefront:\n{text}"
    );
    assert!(
        statements
            .iter()
            .any(|l| l.contains(&format!("storefront={database_sf}"))
                && l.contains("placement=\"database\"")),
        "no statement span for the database storefront:\n{text}"
    );
    assert!(
        statements.iter().all(|l| l.contains("tenant.request")),
        "a statement span outside its request span:\n{text}"
    );
    assert!(
        !text.contains("secret-value"),
        "a bound value reached the trace:\n{text}"
    );
    teardown(test, state, &storefronts).await;
}
