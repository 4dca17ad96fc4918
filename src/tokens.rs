//! The token service: tokens created (at the command line), checked on every request, and the
//! creation entered in the audit trail.

use crate::auth::{Principal, TokenError, authenticate, create_token};
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
        by: &Principal,
    ) -> Result<(String, TokenRow), TokenError> {
        let (token, row) = create_token(&self.db, role, org, name).await?;
        self.evidence
            .audit(
                by,
                "token_create",
                &row.token_id,
                &format!("role {}", row.role),
            )
            .await;
        Ok((token, row))
    }

    /// Who holds `token`, if it is a valid token.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, DbError> {
        authenticate(&self.db, token).await
    }
}
