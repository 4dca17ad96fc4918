//! The deadline: a scheduler inside `guidang serve` looks at the calendar (the injectable
//! [`crate::clock::Clock`]) and, for last year: reports its state daily from a configured day,
//! warns at configured offsets before 30 June while cases are unfiled, says so once the deadline
//! has passed, and runs the filing itself on a configured day if nobody has. Every notice is given
//! once, whichever of several servers gives it (a row in `filing_notices`); the filing itself is
//! run by one server at a time (its lease).

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use super::Filing;
use super::FilingError;
use crate::auth::Principal;

/// The instant year `year`'s filing is late: the start of 1 July of `year + 1` in `tz`.
pub fn deadline(year: i64, tz: chrono_tz::Tz) -> DateTime<Utc> {
    let day = NaiveDate::from_ymd_opt(year as i32 + 1, 7, 1).unwrap_or_default();
    tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// What the scheduler said.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    /// `report`, `warning`, `overdue` or `filed`.
    pub kind: String,
    pub year: i64,
    pub deadline: String,
    pub days_left: i64,
    pub counts: super::status::Counts,
    pub message: String,
}

/// One look at the calendar; returns the notices given now.
pub(super) async fn tick(filing: &Filing) -> Result<Vec<Notice>, FilingError> {
    let f = &filing.settings;
    let tz = f.tz();
    let today = filing.clock.now().with_timezone(&tz).date_naive();
    let year = today.year() as i64 - 1;
    let deadline_day = NaiveDate::from_ymd_opt(year as i32 + 1, 6, 30).unwrap_or_default();
    let days_left = (deadline_day - today).num_days();
    let mut counts = super::status::counts(filing, year).await?;
    filing
        .metrics
        .filing_pending
        .store(counts.pending as u64, std::sync::atomic::Ordering::Relaxed);
    filing
        .metrics
        .filing_days_left
        .store(days_left, std::sync::atomic::Ordering::Relaxed);
    let mut out = vec![];
    let notice = |kind: &str, counts: &super::status::Counts, message: String| Notice {
        kind: kind.into(),
        year,
        deadline: deadline_day.to_string(),
        days_left,
        counts: counts.clone(),
        message,
    };

    // Run the filing on the configured day (and, after it, file late arrivals) if nobody has.
    if let Some(md) = f.auto_run_on.0
        && md.in_year(year + 1).is_some_and(|d| today >= d)
        && waiting_unrefused(filing, year).await? > 0
    {
        match super::run(filing, year, "scheduled", &Principal::scheduler()).await {
            Ok(b) => {
                counts = super::status::counts(filing, year).await?;
                let n = notice(
                    "filed",
                    &counts,
                    format!(
                        "the {} filing batch {} of {year} ran by itself: {} cases filed, {} refused",
                        b.kind, b.batch_id, b.cases, b.refused
                    ),
                );
                if give(filing, year, &format!("filed-{}", b.batch_id), &n).await? {
                    out.push(n);
                }
            }
            Err(FilingError::Busy(_)) | Err(FilingError::Nothing(_)) => {}
            Err(e) => tracing::error!(error = %e, year, "the scheduled filing failed"),
        }
    }

    if f.report_from.in_year(year + 1).is_some_and(|d| today >= d)
        && (today <= deadline_day || counts.pending > 0)
    {
        let n = notice(
            "report",
            &counts,
            format!(
                "filing of {year}: {} filed, {} pending ({} refused by the filing check), {} rejected at submission; deadline {deadline_day}, {days_left} days left",
                counts.filed, counts.pending, counts.refused, counts.rejected
            ),
        );
        if give(filing, year, &format!("report-{today}"), &n).await? {
            out.push(n);
        }
    }
    if counts.pending > 0 && days_left >= 0 {
        // The most urgent offset passed; offsets missed while no server ran are not given late.
        let mut passed: Vec<i64> = f
            .warn_days
            .iter()
            .copied()
            .filter(|d| days_left <= *d)
            .collect();
        passed.sort();
        if let Some(most) = passed.first() {
            let n = notice(
                "warning",
                &counts,
                format!(
                    "{} cases of {year} are not filed; the deadline is {deadline_day} ({days_left} days left)",
                    counts.pending
                ),
            );
            if give(filing, year, &format!("warn-{most}"), &n).await? {
                out.push(n);
            }
            for d in &passed[1..] {
                mark(filing, year, &format!("warn-{d}")).await?;
            }
        }
    }
    if counts.pending > 0 && days_left < 0 {
        let n = notice(
            "overdue",
            &counts,
            format!(
                "the filing of {year} is overdue: {} cases were not filed by {deadline_day}",
                counts.pending
            ),
        );
        if give(filing, year, "overdue", &n).await? {
            out.push(n);
        }
    }
    Ok(out)
}

async fn waiting_unrefused(filing: &Filing, year: i64) -> Result<i64, FilingError> {
    Ok(filing.db.waiting_unrefused(year).await?)
}

/// Records a notice as given; `false` if it had been given already (by any server).
async fn mark(filing: &Filing, year: i64, key: &str) -> Result<bool, FilingError> {
    Ok(filing
        .db
        .mark_notice(year, key, &crate::db::rfc3339(&filing.clock.now()))
        .await?)
}

/// Gives a notice once: log, metric, webhook.
async fn give(filing: &Filing, year: i64, key: &str, n: &Notice) -> Result<bool, FilingError> {
    if !mark(filing, year, key).await? {
        return Ok(false);
    }
    filing
        .metrics
        .filing_notices
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match n.kind.as_str() {
        "warning" | "overdue" => {
            tracing::warn!(kind = %n.kind, year, days_left = n.days_left, pending = n.counts.pending, "{}", n.message)
        }
        _ => {
            tracing::info!(kind = %n.kind, year, days_left = n.days_left, pending = n.counts.pending, "{}", n.message)
        }
    }
    if let Some(url) = &filing.settings.webhook {
        let body = serde_json::to_vec(n).unwrap_or_default();
        let r = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .timeout(std::time::Duration::from_secs(10))
            .body(body)
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(
                status = r.status().as_u16(),
                "the filing webhook refused a notice"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot deliver a notice to the filing webhook"),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::deadline;

    #[test]
    fn year_y_is_late_from_the_first_instant_of_1_july_of_y_plus_1_in_its_zone() {
        let d = deadline(2025, chrono_tz::Asia::Shanghai);
        assert_eq!(d.to_rfc3339(), "2026-06-30T16:00:00+00:00");
        let d = deadline(2025, chrono_tz::Asia::Urumqi);
        assert_eq!(d.to_rfc3339(), "2026-06-30T18:00:00+00:00");
    }
}
