//! `guidang filing run|status --year Y`: the yearly filing from the command line.

use std::process::ExitCode;

use crate::app::App;
use crate::auth::Principal;
use crate::filing::FilingError;

pub async fn run(app: &App, year: i64, json: bool, who: &Principal) -> ExitCode {
    match app.filing().run(year, "manual", who).await {
        Ok(b) if json => {
            println!("{}", serde_json::to_string_pretty(&b).unwrap_or_default());
            if b.refused > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Ok(b) => {
            println!(
                "filed     {} batch {} of {}: {} cases, {} files, {} bytes ({} online, {} offline, {} late); {} refused",
                b.kind,
                b.batch_id,
                b.year,
                b.cases,
                b.files,
                b.bytes,
                b.online,
                b.offline,
                b.late,
                b.refused
            );
            for d in b
                .documents
                .as_ref()
                .and_then(|d| d.as_array())
                .into_iter()
                .flatten()
            {
                println!(
                    "document  {} sha256 {} sm3 {}",
                    d["key"].as_str().unwrap_or(""),
                    d["sha256"].as_str().unwrap_or(""),
                    d["sm3"].as_str().unwrap_or("")
                );
            }
            if b.refused > 0 {
                println!("see `guidang filing status --year {year}` for the refused cases");
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e @ (FilingError::Nothing(_) | FilingError::NotYet(_) | FilingError::Busy(_))) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

pub async fn status(app: &App, year: i64, json: bool) -> ExitCode {
    let s = match app.filing().status(year).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    let c = &s.counts;
    println!(
        "year {year}: deadline {} ({}, {} days left)",
        s.deadline, s.time_zone, s.days_left
    );
    println!(
        "archived {}  filed {}  pending {}  refused {}  late {}  rejected {}  disposed {}",
        c.archived, c.filed, c.pending, c.refused, c.late, c.rejected, c.disposed
    );
    for b in &s.batches {
        println!(
            "batch {} {} {}: {} cases, {} refused, {} late",
            b.batch_id, b.kind, b.state, b.cases, b.refused, b.late
        );
    }
    for r in &s.refused {
        println!("refused {}: {}", r.archive_id, r.problem);
    }
    let comp = &s.completeness;
    if comp["declared"] == true {
        println!(
            "declared by the case systems: {} missing, {} unexpected",
            comp["missing_count"], comp["unexpected_count"]
        );
        for m in comp["missing"].as_array().into_iter().flatten() {
            println!(
                "missing {} {} {}",
                m["social_code"].as_str().unwrap_or(""),
                m["task_code"].as_str().unwrap_or(""),
                m["project_id"].as_str().unwrap_or("")
            );
        }
    }
    ExitCode::SUCCESS
}
