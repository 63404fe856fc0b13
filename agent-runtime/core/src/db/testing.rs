//! Test support: a fresh, empty database per test, on either backend.
//!
//! With `INFT_TEST_DATABASE_URL=postgres://…` set (e.g. by `scripts/postgres.sh url`), each
//! [`TestDb`] is a new database with a random name on that server (created through the URL's
//! own database, which the user must be allowed to `CREATE DATABASE` from; the server is a
//! throw-away one, so databases are not dropped). Without it, each is an SQLite file in a
//! temporary directory removed on drop. `scripts/test.sh` runs the database tests both ways.
//!
//! Not part of the runtime's API (hidden from the docs).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tempfile::TempDir;

use super::{Backend, Db, DbError, DbPool};

/// The environment variable naming the PostgreSQL server tests run against.
pub const TEST_DATABASE_URL: &str = "INFT_TEST_DATABASE_URL";

/// A fresh empty database for one test. [`open`](Self::open) it as often as needed (a reopen
/// is a restart: a new pool on the same data). Keep it alive while its handles are used:
/// dropping it deletes an SQLite database's directory.
#[derive(Debug)]
pub struct TestDb {
    url: String,
    backend: Backend,
    /// The SQLite file and the directory holding it.
    sqlite: Option<(TempDir, PathBuf)>,
}

impl TestDb {
    /// Creates the database: on the server of `INFT_TEST_DATABASE_URL` when it is set, else an
    /// SQLite file in a new temporary directory.
    pub async fn new() -> Result<Self, DbError> {
        match std::env::var(TEST_DATABASE_URL) {
            Ok(server) if !server.trim().is_empty() => Self::postgres(server.trim()).await,
            _ => Self::sqlite(),
        }
    }

    /// An SQLite file in a new temporary directory, whatever the environment says.
    pub fn sqlite() -> Result<Self, DbError> {
        let dir = tempfile::tempdir().map_err(sqlx::Error::Io)?;
        let path = dir.path().join("inft.db");
        Ok(Self {
            url: format!("sqlite://{}", path.display()),
            backend: Backend::Sqlite,
            sqlite: Some((dir, path)),
        })
    }

    /// A new database with a random name on the PostgreSQL server of `server_url`.
    pub async fn postgres(server_url: &str) -> Result<Self, DbError> {
        Ok(Self {
            url: create_database(server_url).await?,
            backend: Backend::Postgres,
            sqlite: None,
        })
    }

    /// The database's URL (for [`Db::connect`], or a program under test).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which backend it is on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Opens a new handle on it (migrations applied).
    pub async fn open(&self) -> Result<Db, DbError> {
        match &self.sqlite {
            Some((_, path)) => Db::open(path).await,
            None => Db::connect(&self.url).await,
        }
    }
}

/// Creates a new empty database with a random name on the PostgreSQL server of `server_url`
/// (through the database the URL names) and returns its URL. Nothing is migrated yet: the first
/// [`Db::connect`] does that.
pub async fn create_database(server_url: &str) -> Result<String, DbError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "inft_test_{}_{}_{nanos:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = PgConnection::connect_with(&PgConnectOptions::from_str(server_url)?).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(with_database(server_url, &name))
}

/// `url` with its database name (the path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Runs raw SQL (one or several statements, no parameters) on `db`, for tests that reach under
/// the API (corrupting a row, adding a failing trigger).
pub async fn execute(db: &Db, sql: &str) -> Result<(), DbError> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match db.pool() {
        DbPool::Sqlite(pool) => {
            sqlx::raw_sql(sql).execute(pool).await?;
        }
        DbPool::Postgres(pool) => {
            sqlx::raw_sql(sql).execute(pool).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_test_database_is_fresh_and_on_the_backend_the_environment_names() {
        let on_postgres = std::env::var(TEST_DATABASE_URL).is_ok_and(|url| !url.trim().is_empty());
        let expected = if on_postgres {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let (a, b) = (TestDb::new().await.unwrap(), TestDb::new().await.unwrap());
        assert_ne!(a.url(), b.url());
        let db = a.open().await.unwrap();
        assert_eq!((a.backend(), db.backend()), (expected, expected));
        assert!(db.agents().await.unwrap().is_empty());
        assert!(db.leases().await.unwrap().is_empty());
        execute(&db, "DELETE FROM leases; DELETE FROM fleet_nodes")
            .await
            .unwrap();
    }

    #[test]
    fn the_database_name_is_replaced_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5433/postgres?sslmode=disable", "t1"),
            "postgres://u@127.0.0.1:5433/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@localhost:5433", "t2"),
            "postgres://u@localhost:5433/t2"
        );
        assert_eq!(
            with_database("postgresql:///postgres?host=/tmp/pg", "t3"),
            "postgresql:///t3?host=/tmp/pg"
        );
    }
}
