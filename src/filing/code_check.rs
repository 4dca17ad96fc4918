//! The DA/T 70 items about archival codes that software can check, made at the end of every
//! filing batch over the whole year (every batch so far): each code has the configured form for
//! its case (fonds, category, year, retention, organisation, task type), and within each class the
//! item numbers run 1, 2, 3 … with no gap and no repeat. The year is read a page at a time and
//! each class keeps one bit per item number, so a million cases cost a few hundred kilobytes.

use std::collections::HashMap;

use super::{Filing, FilingError};

/// What the check found; `pass` when nothing.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct CodeCheck {
    pub cases: u64,
    pub malformed: u64,
    pub classes: usize,
    pub gaps: u64,
    pub duplicates: u64,
}

impl CodeCheck {
    pub fn form_ok(&self) -> bool {
        self.malformed == 0
    }
    pub fn continuity_ok(&self) -> bool {
        self.gaps == 0 && self.duplicates == 0
    }
}

#[derive(sqlx::FromRow)]
struct Coded {
    archive_id: String,
    archival_code: String,
    social_code: String,
    retention: Option<String>,
    task_type: String,
}

const PAGE: i64 = 10_000;

pub(super) async fn check_year(filing: &Filing, year: i64) -> Result<CodeCheck, FilingError> {
    let settings = &filing.settings;
    let mut classes: HashMap<String, Vec<u64>> = HashMap::new();
    let mut out = CodeCheck::default();
    let mut after = String::new();
    loop {
        let rows: Vec<Coded> = sqlx::query_as(
            "SELECT archive_id, archival_code, social_code, retention, task_type FROM cases \
             WHERE year = $1 AND archival_code IS NOT NULL AND archive_id > $2 \
             ORDER BY archive_id LIMIT $3",
        )
        .bind(year)
        .bind(&after)
        .bind(PAGE)
        .fetch_all(&filing.db.pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.archive_id.clone();
        for c in &rows {
            out.cases += 1;
            let v = crate::config::CodeValues {
                fonds: &filing.fonds_code,
                category: &settings.category,
                year,
                retention: c
                    .retention
                    .as_deref()
                    .unwrap_or(filing.default_retention.as_str()),
                org: settings
                    .org_codes
                    .get(&c.social_code)
                    .map(String::as_str)
                    .unwrap_or(&c.social_code),
                task_type: &c.task_type,
            };
            let class = settings.code_pattern.class(&v);
            match item_of(&class, &c.archival_code) {
                Some(n) => {
                    let bits = classes.entry(class).or_default();
                    let (word, bit) = ((n / 64) as usize, n % 64);
                    if bits.len() <= word {
                        bits.resize(word + 1, 0);
                    }
                    if bits[word] & (1 << bit) != 0 {
                        out.duplicates += 1;
                    }
                    bits[word] |= 1 << bit;
                }
                None => out.malformed += 1,
            }
        }
    }
    out.classes = classes.len();
    for bits in classes.values() {
        let seen: u64 = bits.iter().map(|w| w.count_ones() as u64).sum();
        let max = bits
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i as u64 * 64 + 63 - w.leading_zeros() as u64)
            .unwrap_or(0);
        out.gaps += max.saturating_sub(seen);
    }
    Ok(out)
}

/// The item number of `code` if it is `class` with `{item}` replaced by a positive number.
fn item_of(class: &str, code: &str) -> Option<u64> {
    let (prefix, suffix) = class.split_once("{item}")?;
    let digits = code.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 12 {
        return None;
    }
    digits.parse::<u64>().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn item_numbers_are_read_from_codes_of_their_class() {
        let class = "GD01-ZY·2025-D30-LXSP-{item}";
        assert_eq!(super::item_of(class, "GD01-ZY·2025-D30-LXSP-0007"), Some(7));
        assert_eq!(
            super::item_of(class, "GD01-ZY·2025-D30-LXSP-12345"),
            Some(12345)
        );
        assert_eq!(super::item_of(class, "GD01-ZY·2025-D10-LXSP-0007"), None);
        assert_eq!(super::item_of(class, "GD01-ZY·2025-D30-LXSP-00x7"), None);
        assert_eq!(super::item_of(class, "GD01-ZY·2025-D30-LXSP-0000"), None);
    }
}
