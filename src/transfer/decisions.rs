//! Classification decisions (keep / change to a level / release, with the basis) and access
//! opinions (open / restricted with a reason and until which year), set by rule or by hand.

use serde::{Deserialize, Serialize};

use crate::db::transfers::{BatchCase, DecisionRow};

pub const LEVELS: [&str; 4] = ["none", "internal", "secret", "confidential"];
pub const REASONS: [&str; 4] = [
    "personal_information",
    "trade_secret",
    "state_secret",
    "other",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Classification {
    /// `keep` (confirm the case's level), `change` (to `level`) or `release` (to `none`).
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// `open` or `restricted`.
    pub opinion: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last year the restriction lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    pub classification: Classification,
    pub access: Access,
}

/// Which cases a rule decides: every given field must match (none given: every case).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, rename = "match")]
    pub when: Match,
    #[serde(flatten)]
    pub decision: Decision,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CaseDecision {
    pub archive_id: String,
    #[serde(flatten)]
    pub decision: Decision,
}

/// `PUT /api/v1/transfers/{id}/decisions`: rules (replacing the batch's rule set), per-case
/// decisions, or both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    #[serde(default)]
    pub rules: Option<Vec<Rule>>,
    #[serde(default)]
    pub cases: Vec<CaseDecision>,
}

impl Rule {
    pub fn matches(&self, c: &BatchCase) -> bool {
        let m = &self.when;
        m.task_type.as_ref().is_none_or(|v| *v == c.task_type)
            && m.task_code.as_ref().is_none_or(|v| *v == c.task_code)
            && m.result.as_ref().is_none_or(|v| *v == c.result)
            && m.retention
                .as_ref()
                .is_none_or(|v| Some(v) == c.retention.as_ref())
    }
}

fn problem(at: &str, field: &str, message: String) -> serde_json::Value {
    serde_json::json!({"code": "field_invalid", "field": format!("{at}.{field}"), "message": message})
}

impl Decision {
    pub fn validate(&self, at: &str, year: i64, problems: &mut Vec<serde_json::Value>) {
        let c = &self.classification;
        let basis_ok = c
            .basis
            .as_deref()
            .is_some_and(|b| !b.trim().is_empty() && b.chars().count() <= 500);
        match c.action.as_str() {
            "keep" => {}
            "change" => match c.level.as_deref() {
                Some(l) if LEVELS.contains(&l) => {}
                other => problems.push(problem(
                    at,
                    "classification.level",
                    format!(
                        "{other:?}: a change names the new level, one of {}",
                        LEVELS.join(", ")
                    ),
                )),
            },
            "release" => {
                if c.level.as_deref().is_some_and(|l| l != "none") {
                    problems.push(problem(
                        at,
                        "classification.level",
                        "a release leaves the case unclassified (level none)".into(),
                    ));
                }
            }
            other => problems.push(problem(
                at,
                "classification.action",
                format!("{other:?} is not keep, change or release"),
            )),
        }
        if c.action != "keep" && !basis_ok {
            problems.push(problem(
                at,
                "classification.basis",
                "a change or release states its basis (1 to 500 characters)".into(),
            ));
        }
        let a = &self.access;
        match a.opinion.as_str() {
            "open" => {
                if a.reason.is_some() || a.until.is_some() {
                    problems.push(problem(
                        at,
                        "access",
                        "an open case has no restriction reason or end year".into(),
                    ));
                }
            }
            "restricted" => {
                match a.reason.as_deref() {
                    Some(r) if REASONS.contains(&r) => {}
                    other => problems.push(problem(
                        at,
                        "access.reason",
                        format!(
                            "{other:?}: a restriction names its reason, one of {}",
                            REASONS.join(", ")
                        ),
                    )),
                }
                match a.until {
                    Some(u) if u > year && u <= year + 100 => {}
                    other => problems.push(problem(
                        at,
                        "access.until",
                        format!(
                            "{other:?}: a restriction lasts until a year after {year} (at most {})",
                            year + 100
                        ),
                    )),
                }
                if a.reason.as_deref() == Some("other")
                    && a.note.as_deref().is_none_or(|n| n.trim().is_empty())
                {
                    problems.push(problem(
                        at,
                        "access.note",
                        "a restriction for another reason says which in a note".into(),
                    ));
                }
            }
            other => problems.push(problem(
                at,
                "access.opinion",
                format!("{other:?} is not open or restricted"),
            )),
        }
        if a.note.as_deref().is_some_and(|n| n.chars().count() > 500) {
            problems.push(problem(at, "access.note", "at most 500 characters".into()));
        }
    }

    /// The decision as recorded for case `c` (validated before).
    pub fn row(&self, c: &BatchCase, source: &str, by: &str, at: &str) -> DecisionRow {
        let cl = &self.classification;
        let level = match cl.action.as_str() {
            "change" => cl.level.clone().unwrap_or_default(),
            "release" => "none".into(),
            _ => c.security_classification.clone(),
        };
        let basis = cl.basis.clone().unwrap_or_else(|| {
            format!("classification confirmed as {}", c.security_classification)
        });
        DecisionRow {
            archive_id: c.archive_id.clone(),
            classification: cl.action.clone(),
            level,
            basis,
            access: self.access.opinion.clone(),
            access_reason: self.access.reason.clone(),
            access_until: self.access.until,
            access_note: self.access.note.clone(),
            source: source.into(),
            decided_by: by.into(),
            decided_at: at.into(),
        }
    }
}
