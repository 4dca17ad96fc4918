//! Leases: an exclusive claim, shared by every server on the database, that expires unless
//! renewed — so exactly one server runs the yearly filing, and a crashed one does not block it for
//! longer than the lease. Real time, not the calendar clock.

use super::{Db, DbError};

pub struct Lease {
    db: Db,
    name: String,
    owner: String,
    /// Length in milliseconds.
    secs: i64,
}

/// Milliseconds: a lease of a second must not last two because of rounding.
fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Lease {
    /// Takes `name` for `owner` if it is free, expired, or already `owner`'s. `Err(holder)` when
    /// another owner holds it.
    pub async fn acquire(
        db: &Db,
        name: &str,
        owner: &str,
        secs: u64,
    ) -> Result<Result<Lease, String>, DbError> {
        Self::acquire_ms(db, name, owner, secs.max(1) * 1000).await
    }

    /// [`Lease::acquire`] for `ms` milliseconds.
    pub async fn acquire_ms(
        db: &Db,
        name: &str,
        owner: &str,
        ms: u64,
    ) -> Result<Result<Lease, String>, DbError> {
        let secs = ms.max(1) as i64;
        sqlx::query("INSERT INTO leases (name, owner, until_ms) VALUES ($1, '', 0) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .execute(&db.pool)
            .await?;
        let taken = sqlx::query(
            "UPDATE leases SET owner = $1, until_ms = $2 WHERE name = $3 AND (owner = $1 OR until_ms < $4)",
        )
        .bind(owner)
        .bind(now() + secs)
        .bind(name)
        .bind(now())
        .execute(&db.pool)
        .await?
        .rows_affected();
        if taken == 1 {
            return Ok(Ok(Lease {
                db: db.clone(),
                name: name.into(),
                owner: owner.into(),
                secs,
            }));
        }
        let holder: Option<String> = sqlx::query_scalar("SELECT owner FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(&db.pool)
            .await?;
        Ok(Err(holder.unwrap_or_default()))
    }

    /// Extends the lease; `false` if it was lost (expired and taken by another owner).
    pub async fn renew(&self) -> Result<bool, DbError> {
        Ok(
            sqlx::query("UPDATE leases SET until_ms = $1 WHERE name = $2 AND owner = $3")
                .bind(now() + self.secs)
                .bind(&self.name)
                .bind(&self.owner)
                .execute(&self.db.pool)
                .await?
                .rows_affected()
                == 1,
        )
    }

    pub async fn release(self) -> Result<(), DbError> {
        sqlx::query("UPDATE leases SET until_ms = 0 WHERE name = $1 AND owner = $2")
            .bind(&self.name)
            .bind(&self.owner)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }
}
