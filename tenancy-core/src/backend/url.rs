//! Database URLs, parsed once: which backend, which database, which server, and a form
//! without the password for messages.

use std::fmt;

use sea_orm::DbBackend;

use crate::TenancyError;

/// A database URL, parsed: `postgres://user:pw@host:5432/shop`, `mysql://root@host/shop`,
/// `sqlite://shops/alpine.sqlite?mode=rwc`, `sqlite::memory:`.
///
/// Server URLs are parsed by the [`url`](https://docs.rs/url) crate, as the drivers parse
/// them; a SQLite URL names a file path, which is kept as written (as sqlx does).
/// [`Display`](fmt::Display) hides the password, so a `DatabaseUrl` can go into any
/// message or log.
///
/// ```
/// use tenancy_core::DatabaseUrl;
///
/// let url = DatabaseUrl::parse("postgres://app:s3cret@db.internal:5432/shop?sslmode=require")?;
/// assert_eq!(url.database().as_deref(), Some("shop"));
/// assert_eq!(url.server().as_deref(), Some("db.internal:5432"));
/// assert_eq!(url.to_string(), "postgres://app:***@db.internal:5432/shop?sslmode=require");
/// assert_eq!(
///     url.with_database("storefront_1").as_str(),
///     "postgres://app:s3cret@db.internal:5432/storefront_1?sslmode=require"
/// );
/// assert!(DatabaseUrl::parse("oracle://x/y").is_err());
/// # Ok::<(), tenancy_core::TenancyError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    backend: DbBackend,
    /// Server URLs only.
    parsed: Option<url::Url>,
}

impl DatabaseUrl {
    /// Parses `url`. The scheme names the backend: `postgres`/`postgresql`,
    /// `mysql`/`mariadb`, or `sqlite`; anything else is an error naming the URL.
    pub fn parse(url: &str) -> Result<Self, TenancyError> {
        let bad = |reason: &str| TenancyError::InvalidName {
            name: redact_text(url),
            reason: reason.to_owned(),
        };
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        let backend = match scheme.as_deref() {
            Some("postgres" | "postgresql") => DbBackend::Postgres,
            Some("mysql" | "mariadb") => DbBackend::MySql,
            Some("sqlite") => DbBackend::Sqlite,
            _ => {
                return Err(bad(
                    "not a database URL: use postgres://, mysql://, mariadb:// or sqlite:",
                ))
            }
        };
        let parsed = if backend == DbBackend::Sqlite {
            None
        } else {
            let parsed = url::Url::parse(url).map_err(|e| bad(&format!("not a valid URL: {e}")))?;
            if !parsed.has_host() {
                return Err(bad("the URL names no server"));
            }
            Some(parsed)
        };
        Ok(Self {
            raw: url.to_owned(),
            backend,
            parsed,
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The backend its scheme names.
    pub fn backend(&self) -> DbBackend {
        self.backend
    }

    /// The database (the path of a server URL, percent-decoded as the drivers decode
    /// it), if the URL names one.
    pub fn database(&self) -> Option<String> {
        let path = self.parsed.as_ref()?.path().trim_start_matches('/');
        let name = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        (!name.is_empty()).then(|| name.into_owned())
    }

    /// `host:port` of a server URL with the backend's default port when the URL gives
    /// none (5432 for PostgreSQL, 3306 for MySQL/MariaDB): `db1` and `db1:5432` are one
    /// address. `None` for a URL with no host (SQLite).
    pub fn address(&self) -> Option<String> {
        let url = self.parsed.as_ref()?;
        let host = url.host_str()?;
        let port = url.port().or(match self.backend() {
            sea_orm::DbBackend::Postgres => Some(5432),
            sea_orm::DbBackend::MySql => Some(3306),
            _ => None,
        });
        Some(match port {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        })
    }

    /// `host:port` of a server URL (the port only when the URL gives one).
    pub fn server(&self) -> Option<String> {
        let url = self.parsed.as_ref()?;
        let host = url.host_str()?;
        Some(match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        })
    }

    /// The same server URL naming database `name` instead (query string kept); an empty
    /// `name` names none (the server's default). `name` is spliced in as written, so a
    /// pattern such as `shop_{storefront_id}` keeps its braces for
    /// [`StorefrontId::fill`](crate::StorefrontId::fill). A SQLite URL is returned
    /// unchanged: its database is its file.
    pub fn with_database(&self, name: &str) -> DatabaseUrl {
        let Some(url) = &self.parsed else {
            return self.clone();
        };
        // Percent-encoded only where the text would otherwise end the path (drivers decode
        // the name again): braces and the rest stay as written.
        const ENDS_PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
            .add(b' ')
            .add(b'/')
            .add(b'?')
            .add(b'#')
            .add(b'%');
        let name = percent_encoding::utf8_percent_encode(name, ENDS_PATH).to_string();
        let raw = format!(
            "{}/{name}{}",
            &url[..url::Position::BeforePath],
            &url[url::Position::AfterPath..]
        );
        let mut parsed = url.clone();
        parsed.set_path(&format!("/{name}"));
        DatabaseUrl {
            raw,
            backend: self.backend,
            parsed: Some(parsed),
        }
    }

    /// The file of a SQLite URL (`None` for `sqlite::memory:` and server URLs).
    pub fn sqlite_file(&self) -> Option<&str> {
        if self.backend != DbBackend::Sqlite {
            return None;
        }
        let rest = self
            .raw
            .strip_prefix("sqlite://")
            .or_else(|| self.raw.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next()?;
        (!path.is_empty() && path != ":memory:").then_some(path)
    }
}

impl fmt::Debug for DatabaseUrl {
    /// The URL without its password, like `Display`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&redact_text(&self.raw))
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    /// The URL as given, with `***` for its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_text(&self.raw))
    }
}

/// `url` without its password, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    redact_text(url)
}

/// Hides, in any text that may be a URL, the password of its user info and the value of
/// a `password=` parameter. Read from the text alone, never from how a parser splits it:
/// an unencoded `/`, `?` or `#` in a password (`mysql://root:12/ab@db/shop`) makes a URL
/// parser take part of it for a port or a path, and it must still not be shown. So the
/// user info ends at the last `@`, and when in doubt more is hidden, never less.
fn redact_text(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(start) = out.find("://").map(|i| i + 3) {
        if let Some(at) = out[start..].rfind('@').map(|i| start + i) {
            if let Some(colon) = out[start..at].find(':').map(|i| start + i) {
                out.replace_range(colon + 1..at, "***");
            }
        }
    }
    let lower = out.to_ascii_lowercase();
    let mut hidden = String::with_capacity(out.len());
    let mut rest = 0;
    for (i, _) in lower.match_indices("password=") {
        let value = i + "password=".len();
        if value < rest {
            continue;
        }
        let end = out[value..].find('&').map_or(out.len(), |e| value + e);
        hidden.push_str(&out[rest..value]);
        hidden.push_str("***");
        rest = end;
    }
    hidden.push_str(&out[rest..]);
    hidden
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_with_an_at_sign_is_hidden_whole() {
        let url = DatabaseUrl::parse("postgres://app:p%40ss@db:5432/shop").expect("parses");
        assert_eq!(url.to_string(), "postgres://app:***@db:5432/shop");
        assert_eq!(url.server().as_deref(), Some("db:5432"));
        assert_eq!(
            redact("postgres://app:p@ss@db/shop"),
            "postgres://app:***@db/shop"
        );
        assert_eq!(redact("nonsense://a:b@c"), "nonsense://a:***@c");
    }

    #[test]
    fn a_password_a_parser_would_split_is_still_hidden() {
        for (url, shown) in [
            ("mysql://root:1234/abc@h/db", "mysql://root:***@h/db"),
            ("postgres://u:12#x@db/shop", "postgres://u:***@db/shop"),
            ("postgres://u:12?x@db/shop", "postgres://u:***@db/shop"),
            (
                "postgres://db/shop?user=u&password=s3cret&sslmode=require",
                "postgres://db/shop?user=u&password=***&sslmode=require",
            ),
            ("postgres://db:5432/shop", "postgres://db:5432/shop"),
            (
                "sqlite://shops/a.sqlite?mode=rwc",
                "sqlite://shops/a.sqlite?mode=rwc",
            ),
        ] {
            assert_eq!(redact(url), shown, "{url}");
            if let Ok(parsed) = DatabaseUrl::parse(url) {
                assert_eq!(parsed.to_string(), shown, "{url}");
            }
        }
    }

    #[test]
    fn with_database_escapes_what_would_end_the_path() {
        let url = DatabaseUrl::parse("postgres://db/shop?sslmode=require").expect("parses");
        let odd = url.with_database("a#b?c/d");
        assert_eq!(odd.as_str(), "postgres://db/a%23b%3Fc%2Fd?sslmode=require");
        assert_eq!(odd.database().as_deref(), Some("a#b?c/d"));
    }

    #[test]
    fn with_database_keeps_the_query_and_can_name_no_database() {
        let url = DatabaseUrl::parse("mysql://root@127.0.0.1:3306/shop?ssl-mode=disabled")
            .expect("parses");
        assert_eq!(
            url.with_database("other").as_str(),
            "mysql://root@127.0.0.1:3306/other?ssl-mode=disabled"
        );
        assert_eq!(
            url.with_database("").as_str(),
            "mysql://root@127.0.0.1:3306/?ssl-mode=disabled"
        );
        assert_eq!(url.with_database("").database(), None);
    }

    #[test]
    fn with_database_keeps_a_pattern_as_written() {
        let url = DatabaseUrl::parse("postgres://app:pw@db:5432/shop?sslmode=disable")
            .expect("parses")
            .with_database("shop_{storefront_id}");
        assert_eq!(
            url.as_str(),
            "postgres://app:pw@db:5432/shop_{storefront_id}?sslmode=disable"
        );
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db:5432/shop_{storefront_id}?sslmode=disable"
        );
        assert_eq!(url.database().as_deref(), Some("shop_{storefront_id}"));
        let spaced = DatabaseUrl::parse("postgres://db/my%20shop").expect("parses");
        assert_eq!(spaced.database().as_deref(), Some("my shop"));
    }

    #[test]
    fn sqlite_files() {
        let file = |u: &str| {
            DatabaseUrl::parse(u)
                .expect("parses")
                .sqlite_file()
                .map(str::to_owned)
        };
        assert_eq!(
            file("sqlite://shops/a.sqlite?mode=rwc").as_deref(),
            Some("shops/a.sqlite")
        );
        assert_eq!(
            file("sqlite:///tmp/a.sqlite").as_deref(),
            Some("/tmp/a.sqlite")
        );
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("postgres://h/db"), None);
    }

    #[test]
    fn bad_urls_are_named_without_their_password() {
        let err = DatabaseUrl::parse("oracle://u:secret@h/db").expect_err("refused");
        assert!(err.to_string().contains("oracle://u:***@h/db"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(DatabaseUrl::parse("postgres://").is_err());
    }
}
