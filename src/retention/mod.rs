//! Retention (保管期限): which of `Y` (permanent), `D30` or `D10` each case is kept for, from
//! versioned rules keyed on the service item, never below a configured floor (article 42); and
//! disposal once a fixed term has run ([`disposal`]).

use serde::{Deserialize, Serialize};

use crate::config::RetentionSettings;
use crate::db::{Db, DbError};

pub use crate::config::Retention;

/// One rule: every field given must match (`*` at the end of a value matches a prefix).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_code: Option<String>,
    pub retention: String,
    /// The legal basis (e.g. the article of the records-retention schedule).
    pub basis: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleSet {
    /// 0: no rules were ever set (every case gets the configured default).
    pub version: i64,
    pub rules: Vec<Rule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// The retention given to a case and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Assigned {
    pub retention: Retention,
    pub rule_version: i64,
    /// Index of the rule in its version; `None`: the configured default.
    pub rule: Option<usize>,
    pub basis: String,
    /// The submitter's proposal, and whether it was kept (it is kept only when not shorter).
    pub proposed: Option<String>,
    pub proposal_kept: bool,
    /// The configured floor raised the rule's retention.
    pub floor_applied: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rule {0}: retention must be Y, D30 or D10, not {1:?}")]
    Retention(usize, String),
    #[error("rule {0}: the legal basis must not be empty")]
    Basis(usize),
    #[error("rule {0}: task_type must be a 2-letter code")]
    TaskType(usize),
    #[error("rule {0}: a pattern may have `*` only at its end")]
    Pattern(usize),
    #[error("at most 10000 rules")]
    TooMany,
}

pub fn validate(rules: &[Rule]) -> Result<(), RuleError> {
    if rules.len() > 10_000 {
        return Err(RuleError::TooMany);
    }
    for (i, r) in rules.iter().enumerate() {
        if Retention::parse(&r.retention).is_none() {
            return Err(RuleError::Retention(i, r.retention.clone()));
        }
        if r.basis.trim().is_empty() {
            return Err(RuleError::Basis(i));
        }
        if let Some(t) = &r.task_type
            && !(t.len() == 2 && t.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(RuleError::TaskType(i));
        }
        for p in [&r.catalog_code, &r.task_code].into_iter().flatten() {
            if p.trim_end_matches('*').contains('*') || p.is_empty() {
                return Err(RuleError::Pattern(i));
            }
        }
    }
    Ok(())
}

/// How specifically `pattern` matches `value`: `None` if not at all; exact beats any prefix, a
/// longer prefix beats a shorter one.
fn specificity(pattern: &str, value: Option<&str>) -> Option<i64> {
    let value = value?;
    match pattern.strip_suffix('*') {
        Some(prefix) => value
            .starts_with(prefix)
            .then_some(prefix.chars().count() as i64),
        None => (value == pattern).then_some(1000),
    }
}

impl RuleSet {
    /// The retention for a case of this service item: the most specific matching rule (task code
    /// before catalogue code before task type; ties go to the longer retention, then the earlier
    /// rule), raised to the floor, and replaced by the submitter's proposal when that is longer.
    pub fn assign(
        &self,
        task_type: &str,
        catalog_code: Option<&str>,
        task_code: &str,
        proposed: Option<&str>,
        settings: &RetentionSettings,
    ) -> Assigned {
        let mut best: Option<(i64, i64, usize)> = None;
        for (i, r) in self.rules.iter().enumerate() {
            let mut score = 0;
            let parts = [
                (&r.task_code, Some(task_code), 1_000_000),
                (&r.catalog_code, catalog_code, 10_000),
                (&r.task_type, Some(task_type), 1),
            ];
            let mut matched = true;
            for (pat, value, weight) in parts {
                if let Some(p) = pat {
                    match specificity(p, value) {
                        Some(s) => score += weight * (1 + s),
                        None => matched = false,
                    }
                }
            }
            let Some(ret) = Retention::parse(&r.retention) else {
                continue;
            };
            if !matched {
                continue;
            }
            let key = (score, ret.rank(), i);
            if best.is_none_or(|b| (key.0, key.1) > (b.0, b.1)) {
                best = Some(key);
            }
        }
        let (retention, rule, basis) = match best {
            Some((_, _, i)) => {
                let r = &self.rules[i];
                (
                    Retention::parse(&r.retention).unwrap_or(Retention::Y),
                    Some(i),
                    r.basis.clone(),
                )
            }
            None => (settings.default, None, settings.default_basis.clone()),
        };
        let floored = retention.at_least(settings.floor_years as i64);
        let mut out = Assigned {
            retention: floored,
            rule_version: self.version,
            rule,
            basis,
            proposed: proposed.map(str::to_string),
            proposal_kept: false,
            floor_applied: floored != retention,
        };
        if out.floor_applied {
            out.basis = format!(
                "{} (raised to the floor of {} years)",
                out.basis, settings.floor_years
            );
        }
        if let Some(p) = proposed.and_then(Retention::parse)
            && p.rank() >= floored.rank()
        {
            out.proposal_kept = true;
            if p != floored {
                out.retention = p;
                out.basis = format!(
                    "the submitter's proposal {}, longer than the rule's {} ({})",
                    p.as_str(),
                    floored.as_str(),
                    out.basis
                );
            }
        }
        out
    }
}

/// The newest rule set (version 0 and no rules if none was ever set).
async fn current(db: &Db) -> Result<RuleSet, DbError> {
    Ok(db
        .latest_rule_set()
        .await?
        .map(RuleSet::from)
        .unwrap_or(RuleSet {
            version: 0,
            rules: vec![],
            created_at: None,
            created_by: None,
        }))
}

async fn version(db: &Db, version: i64) -> Result<Option<RuleSet>, DbError> {
    Ok(db.rule_set(version).await?.map(RuleSet::from))
}

impl From<crate::db::rules::RuleSetRow> for RuleSet {
    fn from(r: crate::db::rules::RuleSetRow) -> RuleSet {
        RuleSet {
            version: r.version,
            rules: serde_json::from_str(&r.rules_json).unwrap_or_default(),
            created_at: Some(r.created_at),
            created_by: Some(r.created_by),
        }
    }
}

/// Stores `rules` as the next version. Existing cases keep what they have.
async fn put(db: &Db, rules: &[Rule], by: &str) -> Result<RuleSet, DbError> {
    let now = crate::db::now_rfc3339();
    let json = serde_json::to_string(rules).map_err(|e| DbError::Failed(e.to_string()))?;
    let version = db.insert_rule_set(&json, by, &now).await?;
    Ok(RuleSet {
        version,
        rules: rules.to_vec(),
        created_at: Some(now),
        created_by: Some(by.to_string()),
    })
}

#[derive(Debug, Serialize)]
pub struct Change {
    pub archive_id: String,
    pub from: Option<String>,
    pub to: String,
    pub basis: String,
}

#[derive(Debug, Serialize)]
pub struct Reevaluation {
    pub rule_version: i64,
    pub dry_run: bool,
    pub examined: u64,
    pub changed: u64,
    /// The first changes (all are in each case's events).
    pub changes: Vec<Change>,
}

/// Applies the current rules to every case not yet disposed. Archival codes already given are
/// kept: a code is a permanent identifier, and the case's events record the change.
async fn reevaluate(
    db: &Db,
    rules: &RuleSet,
    settings: &RetentionSettings,
    actor: &str,
    dry_run: bool,
) -> Result<Reevaluation, DbError> {
    let mut out = Reevaluation {
        rule_version: rules.version,
        dry_run,
        examined: 0,
        changed: 0,
        changes: vec![],
    };
    let mut after = String::new();
    loop {
        let rows = db.retention_inputs(&after, 1000).await?;
        let Some(last) = rows.last() else { break };
        after = last.archive_id.clone();
        let mut page = vec![];
        for r in rows {
            out.examined += 1;
            let a = rules.assign(
                &r.task_type,
                r.catalog_code.as_deref(),
                &r.task_code,
                r.retention_proposed.as_deref(),
                settings,
            );
            if r.retention.as_deref() != Some(a.retention.as_str()) {
                page.push((r.archive_id, r.retention, a));
            }
        }
        if page.is_empty() {
            continue;
        }
        if !dry_run {
            let changes: Vec<crate::db::rules::RetentionChange> = page
                .iter()
                .map(|(id, from, a)| crate::db::rules::RetentionChange {
                    archive_id: id,
                    retention: a.retention.as_str(),
                    rule_version: a.rule_version,
                    basis: &a.basis,
                    event_detail: format!(
                        "{} → {} by rule version {}: {}",
                        from.as_deref().unwrap_or("-"),
                        a.retention.as_str(),
                        a.rule_version,
                        a.basis
                    ),
                })
                .collect();
            db.record_retentions(&changes, actor, &crate::db::now_rfc3339())
                .await?;
        }
        for (id, from, a) in page {
            out.changed += 1;
            if out.changes.len() < 1000 {
                out.changes.push(Change {
                    archive_id: id,
                    from,
                    to: a.retention.as_str().into(),
                    basis: a.basis,
                });
            }
        }
    }
    Ok(out)
}

/// The retention-rule service: the rules in force (cached; another server's change is seen
/// within [`RULES_TTL`]), their versions, and re-evaluation of existing cases.
pub struct Rules {
    db: Db,
    evidence: crate::evidence::Evidence,
    settings: RetentionSettings,
    cache: std::sync::RwLock<(std::sync::Arc<RuleSet>, std::time::Instant)>,
}

/// How stale the cached rules may be on a server that did not change them itself.
const RULES_TTL: std::time::Duration = std::time::Duration::from_secs(2);

impl Rules {
    pub async fn open(
        db: Db,
        evidence: crate::evidence::Evidence,
        settings: RetentionSettings,
    ) -> Result<Rules, DbError> {
        let set = current(&db).await?;
        Ok(Rules {
            db,
            evidence,
            settings,
            cache: std::sync::RwLock::new((std::sync::Arc::new(set), std::time::Instant::now())),
        })
    }

    pub fn settings(&self) -> &RetentionSettings {
        &self.settings
    }

    /// The rules in force.
    pub async fn current(&self) -> Result<std::sync::Arc<RuleSet>, DbError> {
        if let Ok(g) = self.cache.read()
            && g.1.elapsed() < RULES_TTL
        {
            return Ok(g.0.clone());
        }
        let fresh = std::sync::Arc::new(current(&self.db).await?);
        if let Ok(mut g) = self.cache.write() {
            *g = (fresh.clone(), std::time::Instant::now());
        }
        Ok(fresh)
    }

    pub async fn version(&self, v: i64) -> Result<Option<RuleSet>, DbError> {
        version(&self.db, v).await
    }

    /// Stores a new version of the rules; it applies to cases archived from now on.
    pub async fn put(
        &self,
        rules: &[Rule],
        by: &crate::auth::Principal,
    ) -> Result<std::sync::Arc<RuleSet>, DbError> {
        let set = std::sync::Arc::new(put(&self.db, rules, &by.id).await?);
        if let Ok(mut g) = self.cache.write() {
            *g = (set.clone(), std::time::Instant::now());
        }
        self.evidence
            .audit(
                by,
                "retention_rules",
                &format!("version {}", set.version),
                "200",
            )
            .await;
        Ok(set)
    }

    /// Applies the rules in force to every case not yet disposed.
    pub async fn reevaluate(
        &self,
        by: &crate::auth::Principal,
        dry_run: bool,
    ) -> Result<Reevaluation, DbError> {
        let rules = self.current().await?;
        let r = reevaluate(&self.db, &rules, &self.settings, &by.id, dry_run).await?;
        self.evidence
            .audit(
                by,
                "retention_reevaluate",
                &format!("version {}", rules.version),
                &format!(
                    "{} changed{}",
                    r.changed,
                    if dry_run { " (dry run)" } else { "" }
                ),
            )
            .await;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(tt: Option<&str>, cat: Option<&str>, tc: Option<&str>, ret: &str) -> Rule {
        Rule {
            task_type: tt.map(Into::into),
            catalog_code: cat.map(Into::into),
            task_code: tc.map(Into::into),
            retention: ret.into(),
            basis: format!("basis {ret}"),
        }
    }

    fn set(rules: Vec<Rule>) -> RuleSet {
        RuleSet {
            version: 7,
            rules,
            created_at: None,
            created_by: None,
        }
    }

    #[test]
    fn most_specific_rule_wins() {
        let s = RetentionSettings {
            floor_years: 10,
            ..Default::default()
        };
        let rs = set(vec![
            rule(Some("XK"), None, None, "D30"),
            rule(None, Some("XK0000*"), None, "D10"),
            rule(None, None, Some("11370100*"), "Y"),
            rule(None, None, Some("113701000000001"), "D10"),
        ]);
        let a = rs.assign("XK", Some("XK00001000"), "113701000000001", None, &s);
        assert_eq!((a.retention, a.rule), (Retention::D10, Some(3)));
        let a = rs.assign("XK", Some("XK00001000"), "113701000000002", None, &s);
        assert_eq!((a.retention, a.rule), (Retention::Y, Some(2)));
        let a = rs.assign("XK", Some("XK00001000"), "99", None, &s);
        assert_eq!((a.retention, a.rule), (Retention::D10, Some(1)));
        let a = rs.assign("XK", None, "99", None, &s);
        assert_eq!((a.retention, a.rule), (Retention::D30, Some(0)));
        let a = rs.assign("CF", None, "99", None, &s);
        assert_eq!(
            (a.retention, a.rule, a.rule_version),
            (Retention::D30, None, 7)
        );
    }

    #[test]
    fn floor_and_proposal() {
        let s = RetentionSettings {
            floor_years: 30,
            ..Default::default()
        };
        let rs = set(vec![rule(Some("XK"), None, None, "D10")]);
        let a = rs.assign("XK", None, "1", Some("D10"), &s);
        assert_eq!(a.retention, Retention::D30);
        assert!(a.floor_applied && !a.proposal_kept);
        let a = rs.assign("XK", None, "1", Some("Y"), &s);
        assert_eq!(a.retention, Retention::Y);
        assert!(a.proposal_kept);
    }

    #[test]
    fn bad_rules_are_named() {
        let mut r = rule(Some("XK"), None, None, "D20");
        assert!(matches!(
            validate(&[r.clone()]),
            Err(RuleError::Retention(0, _))
        ));
        r.retention = "D10".into();
        r.task_code = Some("1*2".into());
        assert!(matches!(validate(&[r]), Err(RuleError::Pattern(0))));
    }
}
