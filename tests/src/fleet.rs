//! The test fleet's servers beyond the first of each backend (`scripts/servers` starts
//! them): `TENANCY_TEST_POSTGRES2_URL`, `TENANCY_TEST_POSTGRES3_URL`,
//! `TENANCY_TEST_MYSQL2_URL`.

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::{require_servers, with_database};

/// One server of the fleet, named by the variable that holds its URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// `TENANCY_TEST_POSTGRES_URL` (127.0.0.1:5432).
    Postgres1,
    /// `TENANCY_TEST_POSTGRES2_URL` (127.0.0.1:5433).
    Postgres2,
    /// `TENANCY_TEST_POSTGRES3_URL` (127.0.0.1:5434).
    Postgres3,
    /// `TENANCY_TEST_MYSQL_URL` (127.0.0.1:3306).
    MySql1,
    /// `TENANCY_TEST_MYSQL2_URL` (127.0.0.1:3307).
    MySql2,
}

impl Server {
    /// The variable naming the server's URL.
    pub fn var(self) -> &'static str {
        match self {
            Server::Postgres1 => "TENANCY_TEST_POSTGRES_URL",
            Server::Postgres2 => "TENANCY_TEST_POSTGRES2_URL",
            Server::Postgres3 => "TENANCY_TEST_POSTGRES3_URL",
            Server::MySql1 => "TENANCY_TEST_MYSQL_URL",
            Server::MySql2 => "TENANCY_TEST_MYSQL2_URL",
        }
    }

    /// The server's URL, or `None` (the test is skipped) when it is not configured and
    /// servers are not required.
    pub fn url(self) -> Option<String> {
        let var = self.var();
        match std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
            Some(url) => Some(url),
            None if require_servers() => {
                panic!("{var} is not set and TENANCY_TEST_REQUIRE_SERVERS=1 (scripts/servers up starts the fleet)")
            }
            None => {
                eprintln!("SKIPPED: {var} is empty or not set");
                None
            }
        }
    }

    /// The URL of a new, uniquely named database on this server (not created).
    pub fn database_url(self, prefix: &str) -> Option<String> {
        let url = self.url()?;
        Some(with_database(
            &url,
            &format!("{prefix}{}", Uuid::new_v4().simple()),
        ))
    }
}

/// Whether every server in `servers` is configured (a required one that is not panics).
pub fn all_configured(servers: &[Server]) -> bool {
    servers.iter().all(|s| s.url().is_some())
}

/// A TCP proxy to a server: "another server" with its own address, which a test can take
/// down (every open connection cut, new ones refused) and bring back on the same port.
pub struct Proxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    /// A proxy on a free port forwarding to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        Self::listen(upstream, 0).await
    }

    async fn listen(upstream: &str, port: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let to = upstream.to_owned();
        let inner = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let to = to.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                inner.lock().expect("tasks").push(task);
            }
        });
        tasks.lock().expect("tasks").push(accept);
        Proxy {
            port,
            upstream: upstream.to_owned(),
            tasks,
        }
    }

    /// The server goes down: no new connections, and every open one is cut.
    pub fn stop(&self) {
        for t in self.tasks.lock().expect("tasks").drain(..) {
            t.abort();
        }
    }

    /// The server comes back, on the same port.
    pub async fn restart(&self) -> Proxy {
        self.stop();
        for _ in 0..50 {
            if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", self.port)) {
                drop(listener);
                return Self::listen(&self.upstream, self.port).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("port {} stayed taken", self.port);
    }

    /// `url` (a server URL) reached through this proxy instead.
    pub fn url(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).expect("a URL");
        parsed.set_host(Some("127.0.0.1")).expect("a host");
        parsed.set_port(Some(self.port)).expect("a port");
        parsed.to_string()
    }
}
