//! Record: the database behind the archive. One SQL dialect that runs on both SQLite (default)
//! and PostgreSQL (`DATABASE_URL=postgres://…`), through sqlx's `Any` driver; `$n` placeholders
//! work on both. Migrations are embedded and run at start.

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor, Row};

pub mod cases;
pub use cases::value_rows;
pub mod disposal;
pub mod filing;
pub mod fixity;
pub mod holds;
pub mod lease;
pub mod locks;
pub mod log;
pub mod rules;
pub mod sessions;
pub mod trail;
pub mod transfers;
pub mod versions;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database: {0}")]
    Failed(String),
    /// A row changed under a conditional update: the caller's view is stale.
    #[error("{0}")]
    Conflict(String),
    #[error("migration {0} failed: {1}")]
    Migration(String, #[source] sqlx::Error),
    /// The first connection failed: where to, why, and what to do, without driver internals.
    #[error("cannot connect to the database {target}: {cause}; {hint}")]
    Connect {
        target: String,
        cause: String,
        hint: &'static str,
    },
}

impl DbError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Sqlx(sqlx::Error::Database(e)) if e.is_unique_violation())
    }

    /// A lock or connection wait ran out (SQLite busy or locked, PostgreSQL lock timeout,
    /// serialisation failure or deadlock, no free connection): the request may be retried and is
    /// answered 503, not 500.
    pub fn is_busy(&self) -> bool {
        match self {
            DbError::Sqlx(e) | DbError::Migration(_, e) => sqlx_busy(e),
            _ => false,
        }
    }
}

/// [`DbError::is_busy`] for a driver error.
pub fn sqlx_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(e) => {
            let code = e.code().map(|c| c.to_string()).unwrap_or_default();
            if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLite primary codes 5 (BUSY) and 6 (LOCKED), with their extended codes. Only
                // SQLite's: a PostgreSQL SQLSTATE can be all digits too (22021 & 0xff is 5).
                code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
            } else {
                matches!(code.as_str(), "40001" | "40P01" | "55P03")
            }
        }
        _ => false,
    }
}

/// Whether the database refused a text the client sent: PostgreSQL stores no NUL character
/// (22021) and nothing outside the database's encoding (22P05); SQLite stores both. The request
/// is at fault (400), not the server.
pub fn unstorable_text_in(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        let sqlx =
            err.downcast_ref::<sqlx::Error>()
                .or_else(|| match err.downcast_ref::<DbError>() {
                    Some(DbError::Sqlx(e)) => Some(e),
                    _ => None,
                });
        if let Some(sqlx::Error::Database(d)) = sqlx
            && matches!(d.code().as_deref(), Some("22021" | "22P05"))
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Whether a database lock or connection wait ran out anywhere in `e`'s chain of causes.
pub fn busy_in(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<DbError>().is_some_and(DbError::is_busy)
            || err.downcast_ref::<sqlx::Error>().is_some_and(sqlx_busy)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// How long the first connection may take before the server says the database is unreachable.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One connection before the pool is built, so that a wrong port, role or database name is told
/// in a line within seconds (the pool would retry for its whole acquire timeout and then report
/// only that it timed out).
async fn probe_postgres(url: &str) -> Result<(), DbError> {
    use sqlx::Connection;
    let target = match url::Url::parse(url) {
        Ok(u) => format!(
            "postgres://{}:{}/{} as {}",
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path().trim_start_matches('/'),
            if u.username().is_empty() {
                "(default role)"
            } else {
                u.username()
            }
        ),
        Err(_) => {
            return Err(DbError::Connect {
                target: "(DATABASE_URL)".into(),
                cause: "not a valid URL".into(),
                hint: "write it as postgres://ROLE:PASSWORD@HOST:PORT/DATABASE",
            });
        }
    };
    let fail = |cause: String, hint: &'static str| DbError::Connect {
        target: target.clone(),
        cause,
        hint,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::AnyConnection::connect(url)).await {
        Err(_) => Err(fail(
            format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            "check host, port and firewall in DATABASE_URL",
        )),
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(sqlx::Error::Io(e))) => Err(match e.kind() {
            std::io::ErrorKind::ConnectionRefused => fail(
                "connection refused (nothing listens there)".into(),
                "start PostgreSQL or correct the host and port in DATABASE_URL",
            ),
            _ => fail(e.to_string(), "check host and port in DATABASE_URL"),
        }),
        Ok(Err(sqlx::Error::Database(e))) => {
            // SQLSTATE classes: 28 = authorisation, 3D = no such database.
            let code = e.code().map(|c| c.to_string()).unwrap_or_default();
            let (cause, hint) = match code.as_str() {
                "28P01" => (
                    "password authentication failed",
                    "check the role's password in DATABASE_URL",
                ),
                "28000" => (
                    "the role does not exist or may not log in from here",
                    "create the role (CREATE ROLE … LOGIN) or correct it in DATABASE_URL",
                ),
                "3D000" => (
                    "no such database",
                    "create it (createdb) or correct its name in DATABASE_URL",
                ),
                _ => ("refused by the server", "see PostgreSQL's log"),
            };
            Err(fail(format!("{cause} ({})", e.message()), hint))
        }
        Ok(Err(sqlx::Error::Tls(e))) => Err(fail(
            format!("TLS: {e}"),
            "this build speaks to PostgreSQL without TLS: use sslmode=disable or prefer",
        )),
        Ok(Err(e)) => Err(fail(e.to_string(), "check DATABASE_URL")),
    }
}

#[rustfmt::skip]
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (2, "log", include_str!("../../migrations/0002_log.sql")),
    (3, "checks", include_str!("../../migrations/0003_checks.sql")),
    (4, "fixity", include_str!("../../migrations/0004_fixity.sql")),
    (5, "audit_trail", include_str!("../../migrations/0005_audit_trail.sql")),
    (6, "retention_filing", include_str!("../../migrations/0006_retention_filing.sql")),
    (7, "token_lifecycle", include_str!("../../migrations/0007_token_lifecycle.sql")),
    (8, "token_content", include_str!("../../migrations/0008_token_content.sql")),
    (9, "versions_transfer", include_str!("../../migrations/0009_versions_transfer.sql")),
    (10, "transfer_volumes", include_str!("../../migrations/0010_transfer_volumes.sql")),
    (11, "transfer_receipts", include_str!("../../migrations/0011_transfer_receipts.sql")),
    (12, "transfer_delivery", include_str!("../../migrations/0012_transfer_delivery.sql")),
    (13, "console_sessions", include_str!("../../migrations/0013_console_sessions.sql")),
    (14, "case_search", include_str!("../../migrations/0014_case_search.sql")),
];

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub postgres: bool,
}

#[derive(Debug, Clone)]
pub enum Bind {
    S(String),
    OptS(Option<String>),
    I(i64),
    OptI(Option<i64>),
}

pub fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for b in binds {
        q = match b {
            Bind::S(s) => q.bind(s.as_str()),
            Bind::OptS(s) => q.bind(s.as_deref()),
            Bind::I(i) => q.bind(*i),
            Bind::OptI(i) => q.bind(*i),
        };
    }
    q
}

impl Db {
    pub async fn connect(
        url: &str,
        max_connections: u32,
        lock_wait_ms: u64,
    ) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        if postgres {
            probe_postgres(url).await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if postgres {
                max_connections
            } else {
                max_connections.min(8)
            })
            .acquire_timeout(std::time::Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if postgres {
                        // A lock waited for longer than this ends the statement (55P03), which
                        // the request answers 503 with Retry-After.
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "SET lock_timeout = {lock_wait_ms}"
                        )))
                        .await?;
                    } else {
                        // WAL lets `guidang import` and `guidang serve` share the file; FULL makes a
                        // commit durable before the case system is told its case exists.
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                             PRAGMA busy_timeout={lock_wait_ms}; PRAGMA foreign_keys=ON;"
                        )))
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let db = Db { pool, postgres };
        db.migrate().await?;
        Ok(db)
    }

    /// The embedded migrations, as sqlx's migrator runs them (it records each with its checksum
    /// in `_sqlx_migrations` and, on PostgreSQL, takes an advisory lock so one of several servers
    /// starting at once migrates while the others wait).
    fn migrator() -> sqlx::migrate::Migrator {
        use sqlx::migrate::{Migration, MigrationType, Migrator};
        Migrator::with_migrations(
            MIGRATIONS
                .iter()
                .map(|(v, name, sql)| {
                    Migration::new(
                        *v,
                        std::borrow::Cow::Borrowed(*name),
                        MigrationType::Simple,
                        sqlx::SqlSafeStr::into_sql_str(*sql),
                        false,
                    )
                })
                .collect(),
        )
    }

    async fn migrate(&self) -> Result<(), DbError> {
        self.adopt_schema_migrations().await?;
        Self::migrator()
            .run(&self.pool)
            .await
            .map_err(|e| DbError::Migration("embedded migrations".into(), e.into()))
    }

    /// A data directory made before migrations ran through sqlx kept its own table,
    /// `schema_migrations (version, name, applied_at)`. Once, its rows move into sqlx's table
    /// (with the checksums of the same embedded files) and the old table goes, so that an
    /// existing database starts without re-running anything.
    async fn adopt_schema_migrations(&self) -> Result<(), DbError> {
        use sqlx::migrate::Migrate;
        let exists_sql = if self.postgres {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
        } else {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        };
        let old: i64 = sqlx::query_scalar(exists_sql).fetch_one(&self.pool).await?;
        if old == 0 {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        locks::AdvisoryLock::Migrations
            .hold_on(&mut tx, self.postgres)
            .await?;
        // Another server may have moved it while this one waited for the lock.
        let still: i64 = sqlx::query_scalar(exists_sql).fetch_one(&mut *tx).await?;
        if still == 0 {
            return Ok(());
        }
        tx.ensure_migrations_table("_sqlx_migrations")
            .await
            .map_err(|e| DbError::Migration("adopting schema_migrations".into(), e.into()))?;
        let applied: Vec<(i64, String)> =
            sqlx::query_as("SELECT version, applied_at FROM schema_migrations ORDER BY version")
                .fetch_all(&mut *tx)
                .await?;
        let known = Self::migrator();
        for (version, _) in &applied {
            let Some(m) = known.iter().find(|m| m.version == *version) else {
                return Err(DbError::Failed(format!(
                    "the database has migration {version}, which this build does not know: it was \
                     written by a newer guidang"
                )));
            };
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES ($1, $2, TRUE, $3, 0) ON CONFLICT (version) DO NOTHING",
            )
            .bind(*version)
            .bind(m.description.as_ref())
            .bind(m.checksum.to_vec())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DROP TABLE schema_migrations")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(
            migrations = applied.len(),
            "moved the migration history into sqlx's table"
        );
        Ok(())
    }

    /// A transaction that will write. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads first cannot upgrade once another process
    /// (an import beside the server) has written, and would fail instead of waiting.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, DbError> {
        Ok(if self.postgres {
            self.pool.begin().await?
        } else {
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        })
    }

    pub async fn record_rejection(
        &self,
        k: &crate::problem::CaseKey,
        codes: &str,
    ) -> Result<(), DbError> {
        sqlx::query("INSERT INTO rejections (rejection_id, year, social_code, task_code, project_id, codes, at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(k.year)
            .bind(&k.social_code)
            .bind(&k.task_code)
            .bind(&k.project_id)
            .bind(codes)
            .bind(now_rfc3339())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    // ---- tokens ----

    pub async fn insert_token(&self, t: &TokenRow, hash: &str) -> Result<(), DbError> {
        sqlx::query("INSERT INTO tokens (token_id, token_hash, role, org, name, created_at, expires_at, content) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&t.token_id)
            .bind(hash)
            .bind(&t.role)
            .bind(t.org.as_deref())
            .bind(t.name.as_deref())
            .bind(&t.created_at)
            .bind(t.expires_at.as_deref())
            .bind(t.content)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The token with this hash if it is neither revoked nor expired at `now`.
    pub async fn token_by_hash(&self, hash: &str, now: &str) -> Result<Option<TokenRow>, DbError> {
        self.live_token("token_hash", hash, now).await
    }

    pub async fn token_by_id(
        &self,
        token_id: &str,
        now: &str,
    ) -> Result<Option<TokenRow>, DbError> {
        self.live_token("token_id", token_id, now).await
    }

    /// The token whose `column` is `value`, if it is neither revoked nor expired at `now`.
    async fn live_token(
        &self,
        column: &'static str,
        value: &str,
        now: &str,
    ) -> Result<Option<TokenRow>, DbError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE {column} = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)"
        )))
        .bind(value)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records a use, at most once a minute per token (a write per request would cost an fsync
    /// each on SQLite).
    pub async fn token_used(
        &self,
        token_id: &str,
        now: &str,
        minute_ago: &str,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE token_id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
            .bind(now)
            .bind(token_id)
            .bind(minute_ago)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every token, newest first (never the hash).
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, DbError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at DESC, token_id DESC"
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes a token; `false` if there is no such token or it was revoked already.
    pub async fn revoke_token(&self, token_id: &str, at: &str) -> Result<bool, DbError> {
        Ok(sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE token_id = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(token_id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    // ---- keys ----

    pub async fn publish_key(&self, k: &crate::signing::PublicKeyInfo) -> Result<(), DbError> {
        sqlx::query("INSERT INTO signing_keys (key_id, algorithm, public_key, created_at, purpose) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id) DO NOTHING")
            .bind(&k.key_id)
            .bind(&k.algorithm)
            .bind(&k.public_key)
            .bind(&k.created_at)
            .bind(&k.purpose)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn retire_key(&self, key_id: &str, at: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $1 WHERE key_id = $2 AND retired_at IS NULL",
        )
        .bind(at)
        .bind(key_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn keys(&self) -> Result<Vec<crate::signing::PublicKeyInfo>, DbError> {
        let rows = sqlx::query("SELECT key_id, algorithm, public_key, created_at, retired_at, purpose FROM signing_keys ORDER BY created_at, key_id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| crate::signing::PublicKeyInfo {
                key_id: r.get("key_id"),
                algorithm: r.get("algorithm"),
                public_key: r.get("public_key"),
                created_at: r.get("created_at"),
                retired_at: r.get("retired_at"),
                purpose: r.get("purpose"),
                vkey: None,
            })
            .collect())
    }

    // ---- ingest intents ----

    /// Records, on the recorder's transaction, that a package is about to be stored under
    /// `object_key` (a crash before its case is recorded leaves an orphan the next start removes).
    pub async fn insert_intent_on(
        conn: &mut sqlx::AnyConnection,
        archive_id: &str,
        object_key: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO ingest_intents (archive_id, object_key, created_epoch) VALUES ($1, $2, $3)",
        )
        .bind(archive_id)
        .bind(object_key)
        .bind(chrono::Utc::now().timestamp())
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn delete_intent(&self, archive_id: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM ingest_intents WHERE archive_id = $1")
            .bind(archive_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Intents older than `before_epoch` whose case was never recorded.
    pub async fn stale_intents(&self, before_epoch: i64) -> Result<Vec<(String, String)>, DbError> {
        let rows = sqlx::query(
            "SELECT i.archive_id, i.object_key FROM ingest_intents i WHERE i.created_epoch <= $1 \
             AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.archive_id = i.archive_id)",
        )
        .bind(before_epoch)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

/// A token as stored (its hash is never read back).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct TokenRow {
    pub token_id: String,
    pub role: String,
    pub org: Option<String>,
    pub name: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// An auditor token that may read package content (1), not only evidence (0).
    pub content: i64,
}

const TOKEN_COLUMNS: &str =
    "token_id, role, org, name, created_at, expires_at, last_used_at, revoked_at, content";

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn rfc3339(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let files = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
            })
            .count();
        assert_eq!(files, super::MIGRATIONS.len());
        for (i, (v, _, _)) in super::MIGRATIONS.iter().enumerate() {
            assert_eq!(*v, i as i64 + 1, "versions are consecutive");
        }
    }
}
