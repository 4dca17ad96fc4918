//! PostgreSQL advisory locks that serialise writers across servers sharing one database, by
//! name. SQLite needs none: its write transactions already run one at a time (`BEGIN IMMEDIATE`).

/// Every advisory lock guidang takes; the numbers are part of the deployment (another server
/// of the same deployment must use the same ones) and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvisoryLock {
    /// Migrations: one server migrates, the others wait.
    Migrations = 72150001,
    /// The transparency log: one appender at a time decides the next index.
    Log = 72150002,
    /// The audit trail: one appender at a time extends the hash chain.
    Trail = 72150003,
    /// Retention rule sets: one writer at a time decides the next version.
    Rules = 72150004,
}

impl AdvisoryLock {
    /// Takes the lock until the end of the transaction `conn` is in (no-op on SQLite).
    pub async fn hold_on(
        self,
        conn: &mut sqlx::AnyConnection,
        postgres: bool,
    ) -> Result<(), sqlx::Error> {
        if postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(self as i64)
                .execute(conn)
                .await?;
        }
        Ok(())
    }
}
