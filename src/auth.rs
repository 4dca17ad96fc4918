//! Tokens and roles (CONTRACT.md §3). Tokens are random, shown once, and stored as SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::db::{Db, DbError, TokenRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Submitter,
    Archivist,
    Auditor,
    Admin,
    /// A sending unit delivering transfer volumes to this archive (the archive authority gives
    /// each unit one); it may use the `/api/v1/incoming` routes only.
    Transferor,
    /// guidang itself (the filing scheduler); no token has it.
    System,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "submitter" => Role::Submitter,
            "archivist" => Role::Archivist,
            "auditor" => Role::Auditor,
            "admin" => Role::Admin,
            "transferor" => Role::Transferor,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submitter => "submitter",
            Role::Archivist => "archivist",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Transferor => "transferor",
            Role::System => "system",
        }
    }
    /// Whether personal information (applicant name, ID number) is shown in clear.
    pub fn sees_personal_data(self) -> bool {
        matches!(self, Role::Submitter | Role::Archivist)
    }
}

/// Through which door an action came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// HTTP, with a token.
    Online,
    /// The command line on the server (`guidang import`, `guidang filing run`).
    Offline,
    /// guidang's own background work.
    System,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Online => "online",
            Channel::Offline => "offline",
            Channel::System => "system",
        }
    }
}

/// Who acts: a token holder over HTTP, an operator at the command line, or guidang itself. The
/// one type every service takes for "who did it" (audit trail, events, four eyes).
#[derive(Debug, Clone)]
pub struct Principal {
    /// Token id, `cli:{user}` at the command line, `guidang` for the system.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The organisation a submitter token is bound to.
    pub org: Option<String>,
    pub channel: Channel,
    /// An auditor token created with `--content`: may read files and whole packages.
    pub content: bool,
}

impl Principal {
    /// An operator at the command line of the server, acting as an archivist.
    pub fn operator(user: &str) -> Principal {
        Self::operator_as(user, Role::Archivist)
    }

    /// An operator at the command line acting in `role` (an administrator creating tokens).
    pub fn operator_as(user: &str, role: Role) -> Principal {
        Principal {
            id: format!("cli:{user}"),
            name: user.to_string(),
            role,
            org: None,
            channel: Channel::Offline,
            content: true,
        }
    }

    /// The filing scheduler.
    pub fn scheduler() -> Principal {
        Principal {
            id: "guidang".into(),
            name: "scheduler".into(),
            role: Role::System,
            org: None,
            channel: Channel::System,
            content: false,
        }
    }

    /// Whether this caller may read what a package holds (its files, the whole package), which
    /// carries personal data: archivists and operators always, auditors only with a token made
    /// for it (`--content`). Everyone else proves packages from their evidence.
    pub fn reads_content(&self) -> bool {
        match self.role {
            Role::Archivist => true,
            Role::Auditor => self.content,
            _ => false,
        }
    }

    /// `name (role, channel)`, for case events.
    pub fn label(&self) -> String {
        format!(
            "{} ({}, {})",
            self.name,
            self.role.as_str(),
            self.channel.as_str()
        )
    }
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("unknown role {0:?}: use submitter, archivist, auditor, admin or transferor")]
    Role(String),
    #[error("a submitter token needs --org (the organisation's unified social credit code)")]
    OrgRequired,
    #[error("--org is not a unified social credit code: {0}")]
    Org(String),
    #[error("cannot get randomness: {0}")]
    Random(String),
    #[error("--expires {0:?} is not a date (YYYY-MM-DD) or an RFC 3339 time")]
    Expiry(String),
    #[error(
        "--content is for auditor tokens (an archivist reads content anyway; a {0} never does)"
    )]
    Content(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Creates a token and returns it in clear; only its hash is stored.
pub async fn create_token(
    db: &Db,
    role: &str,
    org: Option<&str>,
    name: Option<&str>,
) -> Result<(String, TokenRow), TokenError> {
    create_token_until(db, role, org, name, None, false).await
}

/// An expiry given as `YYYY-MM-DD` (its start, UTC) or an RFC 3339 time, in the stored form
/// (UTC, milliseconds) so that it compares with the clock as text.
pub fn parse_expiry(s: &str) -> Result<String, TokenError> {
    let t = chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| TokenError::Expiry(s.to_string()))?;
    Ok(crate::db::rfc3339(&t))
}

/// [`create_token`] that stops working at `expires_at` (stored form, see [`parse_expiry`]).
pub async fn create_token_until(
    db: &Db,
    role: &str,
    org: Option<&str>,
    name: Option<&str>,
    expires_at: Option<String>,
    content: bool,
) -> Result<(String, TokenRow), TokenError> {
    let r = Role::parse(role).ok_or_else(|| TokenError::Role(role.into()))?;
    if r == Role::Submitter && org.is_none() {
        return Err(TokenError::OrgRequired);
    }
    if content && r != Role::Auditor {
        return Err(TokenError::Content(r.as_str()));
    }
    if let Some(o) = org
        && let Some(e) = crate::codes::uscc_problem(o)
    {
        return Err(TokenError::Org(e));
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| TokenError::Random(e.to_string()))?;
    let token = format!("gd_{}", URL_SAFE_NO_PAD.encode(raw));
    let row = TokenRow {
        token_id: uuid::Uuid::now_v7().to_string(),
        role: r.as_str().into(),
        org: org.map(str::to_string),
        name: name.map(str::to_string),
        created_at: crate::db::now_rfc3339(),
        expires_at,
        last_used_at: None,
        revoked_at: None,
        content: content as i64,
    };
    db.insert_token(&row, &hash_token(&token)).await?;
    Ok((token, row))
}

pub async fn authenticate(db: &Db, token: &str) -> Result<Option<Principal>, DbError> {
    let now = chrono::Utc::now();
    let Some(row) = db
        .token_by_hash(&hash_token(token), &crate::db::rfc3339(&now))
        .await?
    else {
        return Ok(None);
    };
    if row
        .last_used_at
        .as_deref()
        .is_none_or(|t| t < crate::db::rfc3339(&(now - chrono::Duration::seconds(60))).as_str())
    {
        // Off the request's path: the use is noted within a minute; a failure only costs the note.
        let (db, id) = (db.clone(), row.token_id.clone());
        tokio::spawn(async move {
            let now = chrono::Utc::now();
            let minute_ago = crate::db::rfc3339(&(now - chrono::Duration::seconds(60)));
            if let Err(e) = db
                .token_used(&id, &crate::db::rfc3339(&now), &minute_ago)
                .await
            {
                tracing::warn!(error = %e, "cannot note a token's use");
            }
        });
    }
    Ok(principal_of(row))
}

/// The holder of token `token_id` if it is still valid (not revoked, not expired): a console
/// session is worth only as much as the token it was opened with.
pub async fn authenticate_id(db: &Db, token_id: &str) -> Result<Option<Principal>, DbError> {
    let now = crate::db::rfc3339(&chrono::Utc::now());
    Ok(db.token_by_id(token_id, &now).await?.and_then(principal_of))
}

fn principal_of(row: crate::db::TokenRow) -> Option<Principal> {
    let role = Role::parse(&row.role)?;
    Some(Principal {
        name: row
            .name
            .clone()
            .unwrap_or_else(|| format!("token {}", &row.token_id)),
        id: row.token_id,
        role,
        org: row.org,
        channel: Channel::Online,
        content: row.content != 0,
    })
}
