//! Transfer batches before transfer: drafts, their cases and exclusions, classification decisions
//! and access opinions, approval. Written to run unchanged on SQLite and PostgreSQL.

use serde::Serialize;
use sqlx::Row;

use super::cases::value_rows;
use super::{Bind, Db, DbError, bind_all};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TransferRow {
    pub transfer_id: String,
    pub year: i64,
    #[serde(skip)]
    pub filters_json: String,
    pub state: String,
    pub prepared_by: String,
    pub prepared_by_name: Option<String>,
    pub created_at: String,
    pub approved_by: Option<String>,
    pub approved_by_name: Option<String>,
    pub approved_at: Option<String>,
    pub approved_digest: Option<String>,
    pub reopened: i64,
    #[serde(skip)]
    pub rules_json: String,
    pub volume_size: Option<i64>,
    pub volumes_planned: Option<i64>,
    pub built_at: Option<String>,
    #[serde(skip)]
    pub build_warnings: Option<String>,
    /// Why the last attempt to build stopped (cleared when a build finishes).
    pub build_error: Option<String>,
    /// Online delivery: `sending` (asked for, running or waiting for its next attempt), `failed`
    /// (stopped for a reason a retry cannot mend; `POST …/send` starts it again), or none.
    pub send_state: Option<String>,
    pub send_error: Option<String>,
    pub send_attempts: i64,
    #[serde(skip)]
    pub send_next_ms: i64,
    /// Bytes the receiver acknowledged so far, over every file of the batch.
    pub sent_bytes: i64,
}

const COLUMNS: &str = "transfer_id, year, filters_json, state, prepared_by, prepared_by_name, created_at, \
    approved_by, approved_by_name, approved_at, approved_digest, reopened, rules_json, volume_size, \
    volumes_planned, built_at, build_warnings, build_error, send_state, send_error, send_attempts, \
    send_next_ms, sent_bytes";

/// A built volume.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct VolumeRow {
    pub n: i64,
    pub name: String,
    #[serde(skip)]
    pub package_key: String,
    pub size: i64,
    pub cases: i64,
    pub bytes: i64,
    pub tagmanifest_sha256: String,
    pub tagmanifest_sm3: String,
    pub built_at: String,
}

// PostgreSQL's SUM of BIGINT is NUMERIC: sums are cast back so both backends read an i64.

/// A case as a transfer batch sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BatchCase {
    pub archive_id: String,
    pub archival_code: Option<String>,
    pub project_name: String,
    pub task_name: String,
    pub task_type: String,
    pub task_code: String,
    pub result: String,
    pub retention: Option<String>,
    pub lead_department: String,
    pub transact_time: String,
    /// The classification the case's metadata gives: the starting point of the decision.
    pub security_classification: String,
    /// Bytes of every version of the package (a transfer carries them all).
    pub package_size: i64,
    pub file_count: Option<i64>,
    pub version: i64,
    pub paper_pages: Option<i64>,
    pub digitised_pages: i64,
    pub filing_batch: Option<String>,
    pub sealed_filing: Option<String>,
}

const CASE_COLUMNS: &str = "c.archive_id, c.archival_code, c.project_name, c.task_name, c.task_type, \
    c.task_code, c.result, c.retention, c.lead_department, c.transact_time, c.security_classification, \
    CAST((SELECT SUM(v.package_size) FROM package_versions v WHERE v.archive_id = c.archive_id) AS BIGINT) \
    AS package_size, \
    c.file_count, c.version, c.paper_pages, c.digitised_pages, c.filing_batch, c.sealed_filing";

/// A candidate for a new batch, with what may keep it out.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    pub archive_id: String,
    pub status: String,
    pub archival_code: Option<String>,
    pub on_hold: i64,
    pub open_batch: Option<String>,
    pub transferred_in: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DecisionRow {
    pub archive_id: String,
    /// `keep`, `change` or `release`.
    pub classification: String,
    /// The level after the decision (`none` when released).
    pub level: String,
    pub basis: String,
    /// `open` or `restricted`.
    pub access: String,
    pub access_reason: Option<String>,
    pub access_until: Option<i64>,
    pub access_note: Option<String>,
    /// `rule N` or `manual`.
    pub source: String,
    pub decided_by: String,
    pub decided_at: String,
}

const DECISION_COLUMNS: &str = "archive_id, classification, level, basis, access, access_reason, \
    access_until, access_note, source, decided_by, decided_at";

/// The filters a draft selects by; SQL conditions on `cases c` with their binds.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Filters {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retention: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_codes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archival_code_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archival_code_to: Option<String>,
}

impl Db {
    /// Cases of `year` (not yet filed) that keep the year from being transferred.
    pub async fn unfiled_count(&self, year: i64) -> Result<i64, DbError> {
        Ok(
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM cases WHERE year = $1 AND status = 'archived'",
            )
            .bind(year)
            .fetch_one(&self.pool)
            .await?,
        )
    }

    /// Filed or disposed cases of `year` matching `f`, each with what may keep it out of a batch.
    pub async fn transfer_candidates(
        &self,
        year: i64,
        f: &Filters,
    ) -> Result<Vec<Candidate>, DbError> {
        let mut sql = String::from(
            "SELECT c.archive_id, c.status, c.archival_code, \
             (SELECT COUNT(*) FROM holds h WHERE h.archive_id = c.archive_id AND h.released_at IS NULL) AS on_hold, \
             (SELECT t.transfer_id FROM transfer_cases t WHERE t.open_key = c.archive_id) AS open_batch, \
             (SELECT MIN(t.transfer_id) FROM transfer_cases t JOIN transfers x ON x.transfer_id = t.transfer_id \
                 WHERE t.archive_id = c.archive_id AND x.state = 'transferred') AS transferred_in \
             FROM cases c WHERE c.year = $1 AND c.status IN ('filed', 'disposed')",
        );
        let mut binds = vec![Bind::I(year)];
        let list = |sql: &mut String, col: &str, vals: &[String], binds: &mut Vec<Bind>| {
            if vals.is_empty() {
                return;
            }
            let ps: Vec<String> = vals
                .iter()
                .map(|v| {
                    binds.push(Bind::S(v.clone()));
                    format!("${}", binds.len())
                })
                .collect();
            sql.push_str(&format!(" AND {col} IN ({})", ps.join(", ")));
        };
        list(&mut sql, "c.retention", &f.retention, &mut binds);
        list(&mut sql, "c.task_code", &f.task_codes, &mut binds);
        if let Some(from) = &f.archival_code_from {
            binds.push(Bind::S(from.clone()));
            sql.push_str(&format!(" AND c.archival_code >= ${}", binds.len()));
        }
        if let Some(to) = &f.archival_code_to {
            binds.push(Bind::S(to.clone()));
            sql.push_str(&format!(" AND c.archival_code <= ${}", binds.len()));
        }
        sql.push_str(" ORDER BY c.archival_code, c.archive_id");
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| <Candidate as sqlx::FromRow<_>>::from_row(r).map_err(Into::into))
            .collect()
    }

    pub async fn transfer(&self, id: &str) -> Result<Option<TransferRow>, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM transfers WHERE transfer_id = $1");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn transfers(&self) -> Result<Vec<TransferRow>, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM transfers ORDER BY created_at DESC, transfer_id");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn batch_cases(&self, id: &str) -> Result<Vec<BatchCase>, DbError> {
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM transfer_cases t JOIN cases c ON c.archive_id = t.archive_id \
             WHERE t.transfer_id = $1 ORDER BY c.archival_code, c.archive_id"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn batch_excluded(&self, id: &str) -> Result<Vec<(String, String)>, DbError> {
        let rows = sqlx::query(
            "SELECT archive_id, reason FROM transfer_excluded WHERE transfer_id = $1 ORDER BY archive_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn decisions(&self, id: &str) -> Result<Vec<DecisionRow>, DbError> {
        let sql = format!(
            "SELECT {DECISION_COLUMNS} FROM transfer_decisions WHERE transfer_id = $1 ORDER BY archive_id"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn volumes(&self, id: &str) -> Result<Vec<VolumeRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT n, name, package_key, size, cases, bytes, tagmanifest_sha256, tagmanifest_sm3, built_at \
             FROM transfer_volumes WHERE transfer_id = $1 ORDER BY n",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn insert_volume(&self, id: &str, v: &VolumeRow) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO transfer_volumes (transfer_id, n, name, package_key, size, cases, bytes, \
             tagmanifest_sha256, tagmanifest_sm3, built_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(v.n)
        .bind(&v.name)
        .bind(&v.package_key)
        .bind(v.size)
        .bind(v.cases)
        .bind(v.bytes)
        .bind(&v.tagmanifest_sha256)
        .bind(&v.tagmanifest_sm3)
        .bind(&v.built_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Starts (or restarts) a build: approved → building, with the plan's size.
    pub async fn start_build(
        &self,
        id: &str,
        volume_size: i64,
        planned: i64,
        warnings: &str,
    ) -> Result<bool, DbError> {
        let n = sqlx::query(
            "UPDATE transfers SET state = 'building', volume_size = $1, volumes_planned = $2, build_warnings = $3 \
             WHERE transfer_id = $4 AND state = 'approved'",
        )
        .bind(volume_size)
        .bind(planned)
        .bind(warnings)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn finish_build(&self, id: &str, at: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE transfers SET state = 'built', built_at = $1, build_error = NULL \
             WHERE transfer_id = $2 AND state = 'building'",
        )
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Batches whose build was started, not finished and not stopped by an error (a build
    /// that failed waits for `POST …/build`, which clears the error).
    pub async fn building(&self) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT transfer_id FROM transfers WHERE state = 'building' AND build_error IS NULL",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn set_build_error(&self, id: &str, error: Option<&str>) -> Result<(), DbError> {
        sqlx::query("UPDATE transfers SET build_error = $1 WHERE transfer_id = $2")
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Asks for delivery of a built batch: `sending`, due now, no error. `false` if the batch is
    /// not built.
    pub async fn request_send(&self, id: &str) -> Result<bool, DbError> {
        let n = sqlx::query(
            "UPDATE transfers SET send_state = 'sending', send_error = NULL, send_attempts = 0, \
             send_next_ms = 0 WHERE transfer_id = $1 AND state = 'built'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Built batches whose delivery is asked for and due by `now_ms`.
    pub async fn sends_due(&self, now_ms: i64) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT transfer_id FROM transfers WHERE state = 'built' AND send_state = 'sending' \
             AND send_next_ms <= $1 ORDER BY transfer_id",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn set_sent_bytes(&self, id: &str, bytes: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE transfers SET sent_bytes = $1 WHERE transfer_id = $2")
            .bind(bytes)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// An attempt failed: with `retry_at_ms`, it stays `sending` until then; without, `failed`.
    pub async fn send_failed(
        &self,
        id: &str,
        error: &str,
        retry_at_ms: Option<i64>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE transfers SET send_state = $1, send_error = $2, send_attempts = send_attempts + 1, \
             send_next_ms = $3 WHERE transfer_id = $4 AND send_state = 'sending'",
        )
        .bind(if retry_at_ms.is_some() { "sending" } else { "failed" })
        .bind(error)
        .bind(retry_at_ms.unwrap_or(0))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Cases of a batch whose newest fixity audit failed.
    pub async fn batch_fixity_failed(&self, id: &str) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT a.archive_id FROM fixity_audits a JOIN transfer_cases t ON t.archive_id = a.archive_id \
             WHERE t.transfer_id = $1 AND a.ok = 0 \
             AND a.at = (SELECT MAX(b.at) FROM fixity_audits b WHERE b.archive_id = a.archive_id) \
             ORDER BY a.archive_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Creates a draft with its cases (each claimed: a case is in one open batch at most) and the
/// cases left out, on the caller's transaction.
pub async fn insert_draft_on(
    conn: &mut sqlx::AnyConnection,
    t: &TransferRow,
    cases: &[String],
    excluded: &[(String, String)],
) -> Result<(), DbError> {
    let sql = format!(
        "INSERT INTO transfers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&t.transfer_id)
        .bind(t.year)
        .bind(&t.filters_json)
        .bind(&t.state)
        .bind(&t.prepared_by)
        .bind(&t.prepared_by_name)
        .bind(&t.created_at)
        .bind(&t.approved_by)
        .bind(&t.approved_by_name)
        .bind(&t.approved_at)
        .bind(&t.approved_digest)
        .bind(t.reopened)
        .bind(&t.rules_json)
        .execute(&mut *conn)
        .await?;
    for chunk in cases.chunks(100) {
        let mut binds = Vec::with_capacity(chunk.len() * 3);
        for id in chunk {
            binds.extend([
                Bind::S(t.transfer_id.clone()),
                Bind::S(id.clone()),
                Bind::S(id.clone()),
            ]);
        }
        let sql = format!(
            "INSERT INTO transfer_cases (transfer_id, archive_id, open_key) VALUES {}",
            value_rows(chunk.len(), 3)
        );
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .execute(&mut *conn)
            .await?;
    }
    for chunk in excluded.chunks(100) {
        let mut binds = Vec::with_capacity(chunk.len() * 3);
        for (id, why) in chunk {
            binds.extend([
                Bind::S(t.transfer_id.clone()),
                Bind::S(id.clone()),
                Bind::S(why.clone()),
            ]);
        }
        let sql = format!(
            "INSERT INTO transfer_excluded (transfer_id, archive_id, reason) VALUES {}",
            value_rows(chunk.len(), 3)
        );
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Writes decisions (replacing a case's earlier one) on the caller's transaction.
pub async fn upsert_decisions_on(
    conn: &mut sqlx::AnyConnection,
    transfer_id: &str,
    rows: &[DecisionRow],
) -> Result<(), DbError> {
    for chunk in rows.chunks(100) {
        let ids: Vec<Bind> = chunk
            .iter()
            .map(|d| Bind::S(d.archive_id.clone()))
            .collect();
        let ps: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "DELETE FROM transfer_decisions WHERE transfer_id = $1 AND archive_id IN ({})",
            ps.join(", ")
        );
        let mut binds = vec![Bind::S(transfer_id.to_string())];
        binds.extend(ids);
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .execute(&mut *conn)
            .await?;
        let mut binds = Vec::with_capacity(chunk.len() * 12);
        for d in chunk {
            binds.extend([
                Bind::S(transfer_id.to_string()),
                Bind::S(d.archive_id.clone()),
                Bind::S(d.classification.clone()),
                Bind::S(d.level.clone()),
                Bind::S(d.basis.clone()),
                Bind::S(d.access.clone()),
                Bind::OptS(d.access_reason.clone()),
                Bind::OptI(d.access_until),
                Bind::OptS(d.access_note.clone()),
                Bind::S(d.source.clone()),
                Bind::S(d.decided_by.clone()),
                Bind::S(d.decided_at.clone()),
            ]);
        }
        let sql = format!(
            "INSERT INTO transfer_decisions (transfer_id, {DECISION_COLUMNS}) VALUES {}",
            value_rows(chunk.len(), 12)
        );
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Removes rule-made decisions (a new rule set replaces them; manual ones stay).
pub async fn clear_rule_decisions_on(
    conn: &mut sqlx::AnyConnection,
    transfer_id: &str,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM transfer_decisions WHERE transfer_id = $1 AND source <> 'manual'")
        .bind(transfer_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets a batch's state and approval fields; `from` guards against a concurrent change.
#[allow(clippy::too_many_arguments)]
pub async fn set_state_on(
    conn: &mut sqlx::AnyConnection,
    transfer_id: &str,
    from: &str,
    to: &str,
    approved_by: Option<&str>,
    approved_by_name: Option<&str>,
    approved_at: Option<&str>,
    approved_digest: Option<&str>,
) -> Result<(), DbError> {
    let n = sqlx::query(
        "UPDATE transfers SET state = $1, approved_by = $2, approved_by_name = $3, approved_at = $4, \
         approved_digest = $5, reopened = reopened + (CASE WHEN $6 = 'approved' AND $7 = 'draft' THEN 1 ELSE 0 END) \
         WHERE transfer_id = $8 AND state = $9",
    )
    .bind(to)
    .bind(approved_by)
    .bind(approved_by_name)
    .bind(approved_at)
    .bind(approved_digest)
    .bind(from)
    .bind(to)
    .bind(transfer_id)
    .bind(from)
    .execute(conn)
    .await?
    .rows_affected();
    if n != 1 {
        return Err(DbError::Conflict(format!(
            "transfer {transfer_id} is no longer {from}"
        )));
    }
    Ok(())
}

pub async fn set_rules_on(
    conn: &mut sqlx::AnyConnection,
    transfer_id: &str,
    rules_json: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE transfers SET rules_json = $1 WHERE transfer_id = $2")
        .bind(rules_json)
        .bind(transfer_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A case the archive authority received.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ReceivedRow {
    pub transfer_id: String,
    pub archive_id: String,
    pub archival_code: String,
    pub sender_key_id: String,
    pub volume: String,
    pub versions: i64,
    pub newest_sha256: String,
    pub keys_json: String,
    pub received_at: String,
}

impl Db {
    pub async fn received(
        &self,
        transfer_id: &str,
        archive_id: &str,
    ) -> Result<Option<ReceivedRow>, DbError> {
        Ok(sqlx::query_as(
            "SELECT transfer_id, archive_id, archival_code, sender_key_id, volume, versions, newest_sha256, \
             keys_json, received_at FROM received_cases WHERE transfer_id = $1 AND archive_id = $2",
        )
        .bind(transfer_id)
        .bind(archive_id)
        .fetch_optional(&self.pool)
        .await?)
    }
}

impl Db {
    /// Received cases, by archival code (prefix, `*` at the end) and/or transfer, newest first.
    pub async fn received_list(
        &self,
        archival_code: Option<&str>,
        transfer_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ReceivedRow>, DbError> {
        let code = archival_code.map(|c| match c.strip_suffix('*') {
            Some(p) => format!("{}%", p.replace('%', "\\%").replace('_', "\\_")),
            None => c.replace('%', "\\%").replace('_', "\\_"),
        });
        Ok(sqlx::query_as(
            "SELECT transfer_id, archive_id, archival_code, sender_key_id, volume, versions, newest_sha256, \
             keys_json, received_at FROM received_cases \
             WHERE ($1 IS NULL OR archival_code LIKE $1 ESCAPE '\\') AND ($2 IS NULL OR transfer_id = $2) \
             ORDER BY received_at DESC, archival_code LIMIT $3",
        )
        .bind(code)
        .bind(transfer_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

pub async fn insert_received_on(
    conn: &mut sqlx::AnyConnection,
    r: &ReceivedRow,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO received_cases (transfer_id, archive_id, archival_code, sender_key_id, volume, versions, \
         newest_sha256, keys_json, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&r.transfer_id)
    .bind(&r.archive_id)
    .bind(&r.archival_code)
    .bind(&r.sender_key_id)
    .bind(&r.volume)
    .bind(r.versions)
    .bind(&r.newest_sha256)
    .bind(&r.keys_json)
    .bind(&r.received_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// At the sender: the batch transferred, its accepted cases marked, their open claims released.
pub async fn record_receipt_on(
    conn: &mut sqlx::AnyConnection,
    transfer_id: &str,
    receipt_key: &str,
    received_at: &str,
    accepted: &[String],
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE transfers SET state = 'transferred', receipt_key = $1, received_at = $2, \
         send_state = NULL, send_error = NULL WHERE transfer_id = $3",
    )
    .bind(receipt_key)
    .bind(received_at)
    .bind(transfer_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE transfer_cases SET open_key = NULL WHERE transfer_id = $1")
        .bind(transfer_id)
        .execute(&mut *conn)
        .await?;
    for id in accepted {
        sqlx::query(
            "UPDATE cases SET transferred_in = $1, transferred_at = $2 WHERE archive_id = $3",
        )
        .bind(transfer_id)
        .bind(received_at)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
