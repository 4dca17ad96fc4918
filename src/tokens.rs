//! The token service: tokens created (at the command line), checked on every request, and the
//! creation entered in the audit trail.

use crate::auth::{Principal, TokenError, authenticate, create_token_until};
use crate::db::{Db, DbError, TokenRow};
use crate::evidence::Evidence;

pub struct Tokens {
    db: Db,
    evidence: Evidence,
}

impl Tokens {
    pub fn new(db: Db, evidence: Evidence) -> Tokens {
        Tokens { db, evidence }
    }

    /// Creates a token and returns it in clear; only its hash is stored.
    pub async fn create(
        &self,
        role: &str,
        org: Option<&str>,
        name: Option<&str>,
        expires_at: Option<String>,
        content: bool,
        by: &Principal,
    ) -> Result<(String, TokenRow), TokenError> {
        let (token, row) =
            create_token_until(&self.db, role, org, name, expires_at, content).await?;
        self.evidence
            .audit(
                by,
                "token_create",
                &row.token_id,
                &if content {
                    format!("role {}, content", row.role)
                } else {
                    format!("role {}", row.role)
                },
            )
            .await;
        Ok((token, row))
    }

    /// Every token with its state (never the token or its hash).
    pub async fn list(&self) -> Result<Vec<TokenRow>, DbError> {
        self.db.tokens().await
    }

    /// Revokes a token at once, on every server (each request reads the token's row); `false` if
    /// there is no such live token.
    pub async fn revoke(&self, token_id: &str, by: &Principal) -> Result<bool, DbError> {
        let done = self
            .db
            .revoke_token(token_id, &crate::db::now_rfc3339())
            .await?;
        if done {
            self.evidence
                .audit(by, "token_revoke", token_id, "revoked")
                .await;
        }
        Ok(done)
    }

    /// Who holds `token`, if it is a valid token.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, DbError> {
        authenticate(&self.db, token).await
    }
}
