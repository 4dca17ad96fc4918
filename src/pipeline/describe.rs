//! Describe: read `metadata.xml` (namespace `urn:guidang:case:1`) into [`CaseMetadata`] and check
//! every field, collecting all problems rather than stopping at the first.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use super::xml::{self, Node};
use crate::codes;
use crate::problem::{Code, Problem, Problems};

pub const CASE_NS: &str = "urn:guidang:case:1";
pub const METADATA_PATH: &str = "metadata.xml";

pub const TASK_TYPES: [&str; 10] = ["XK", "QR", "CF", "QZ", "ZS", "JF", "JL", "CJ", "QT", "GG"];
pub const RESULTS: [&str; 5] = ["approved", "rejected", "not_accepted", "withdrawn", "other"];
pub const CLASSIFICATIONS: [&str; 4] = ["none", "internal", "secret", "confidential"];
pub const RETENTIONS: [&str; 3] = ["Y", "D30", "D10"];
pub const STEP_CODES: [&str; 7] = ["1", "2", "3", "4", "11", "12", "99"];
pub const APPLY_TYPES: [&str; 2] = ["person", "legal_person"];

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Partner {
    pub social_code: String,
    pub project_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub code: String,
    pub time: String,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opinion: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DeclaredFile {
    pub path: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct License {
    pub identifier: String,
    pub number: String,
    pub name: String,
    pub type_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_name: Option<String>,
    pub issuer_name: String,
    pub issuer_code: String,
    pub issue_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
    pub holder_name: String,
    pub holder_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_code_type: Option<String>,
    /// 关联事项: the service item the licence belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_item: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub path: String,
}

/// The case as the case system described it (DOMAIN.md §4).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CaseMetadata {
    pub project_id: String,
    pub task_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_code: Option<String>,
    pub task_name: String,
    pub task_type: String,
    pub project_name: String,
    pub region_code: String,
    pub lead_department: String,
    pub social_code: String,
    pub apply_name: String,
    pub apply_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_card_type: Option<String>,
    /// Personal information: never logged, masked for roles that do not need it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_card_no: Option<String>,
    pub receive_time: String,
    pub transact_time: String,
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_code: Option<String>,
    pub security_classification: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_period: Option<String>,
    /// The case has paper originals of this many pages (their digitised copies travel with the
    /// case at transfer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper_pages: Option<u32>,
    pub partners: Vec<Partner>,
    pub process: Vec<Step>,
    pub files: Vec<DeclaredFile>,
    pub licenses: Vec<License>,
}

impl CaseMetadata {
    /// Year of `transact_time` as written (its own offset): the case's archiving year.
    /// The archiving year: the year of `transact_time` in the filing time zone.
    pub fn year(&self, tz: chrono_tz::Tz) -> Option<i32> {
        use chrono::Datelike;
        parse_time(&self.transact_time).map(|t| t.with_timezone(&tz).year())
    }
}

pub fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

fn f(path: &str) -> String {
    path.to_string()
}

struct Reader<'a> {
    problems: &'a mut Problems,
}

impl Reader<'_> {
    fn required(&mut self, node: &Node, name: &str, field: &str) -> String {
        match node.text_of(name) {
            Some(v) => v,
            None => {
                self.problems.push(Problem::field(
                    Code::FieldMissing,
                    f(field),
                    format!("required element <{name}> is missing or empty"),
                ));
                String::new()
            }
        }
    }
    fn invalid(&mut self, field: impl Into<String>, msg: impl Into<String>) {
        self.problems
            .push(Problem::field(Code::FieldInvalid, field, msg));
    }
    fn length(&mut self, field: &str, v: &str, min: usize, max: usize) {
        let n = v.chars().count();
        if !v.is_empty() && (n < min || n > max) {
            self.invalid(field, format!("must be {min}–{max} characters, found {n}"));
        }
    }
    fn vocab(&mut self, field: &str, v: &str, allowed: &[&str]) {
        if !v.is_empty() && !allowed.contains(&v) {
            self.invalid(field, format!("{v:?} is not one of {}", allowed.join(", ")));
        }
    }
    fn time(&mut self, field: &str, v: &str) -> Option<DateTime<FixedOffset>> {
        if v.is_empty() {
            return None;
        }
        let t = parse_time(v);
        if t.is_none() {
            self.invalid(
                field,
                format!("{v:?} is not an ISO 8601 date-time with an offset, e.g. 2025-03-01T09:30:00+08:00"),
            );
        }
        t
    }
    fn date(&mut self, field: &str, v: &str) {
        if !v.is_empty() && chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_err() {
            self.invalid(field, format!("{v:?} is not a date of the form YYYY-MM-DD"));
        }
    }
}

/// Parses and checks `metadata.xml`. Returns the metadata read (possibly partial) whenever the
/// document was well-formed, so that file checks can still run and report their own problems.
pub fn describe(
    bytes: &[u8],
    check_license_char: bool,
    problems: &mut Problems,
) -> Option<CaseMetadata> {
    let root = match xml::parse(bytes) {
        Ok(r) => r,
        Err(e) => {
            problems.push(Problem::file(Code::MetadataInvalid, METADATA_PATH, e));
            return None;
        }
    };
    if root.name != "case" || xml::namespace_of(&root) != Some(CASE_NS) {
        problems.push(Problem::file(
            Code::MetadataInvalid,
            METADATA_PATH,
            format!("root element must be <case xmlns=\"{CASE_NS}\">"),
        ));
        return None;
    }
    let first = problems.errors.len();
    let mut r = Reader { problems };
    let mut m = CaseMetadata {
        project_id: r.required(&root, "project_id", "project_id"),
        task_code: r.required(&root, "task_code", "task_code"),
        catalog_code: root.text_of("catalog_code"),
        task_name: r.required(&root, "task_name", "task_name"),
        task_type: r.required(&root, "task_type", "task_type"),
        project_name: r.required(&root, "project_name", "project_name"),
        region_code: r.required(&root, "region_code", "region_code"),
        lead_department: r.required(&root, "lead_department", "lead_department"),
        social_code: r.required(&root, "social_code", "social_code"),
        apply_name: r.required(&root, "apply_name", "apply_name"),
        apply_type: r.required(&root, "apply_type", "apply_type"),
        apply_card_type: root.text_of("apply_card_type"),
        apply_card_no: root.text_of("apply_card_no"),
        receive_time: r.required(&root, "receive_time", "receive_time"),
        transact_time: r.required(&root, "transact_time", "transact_time"),
        result: r.required(&root, "result", "result"),
        result_code: root.text_of("result_code"),
        security_classification: root
            .text_of("security_classification")
            .unwrap_or_else(|| "none".into()),
        retention_period: root.text_of("retention_period"),
        paper_pages: root.text_of("paper_pages").and_then(|p| p.parse().ok()),
        ..Default::default()
    };
    r.length("project_id", &m.project_id.clone(), 1, 64);
    r.length("task_code", &m.task_code.clone(), 1, 36);
    if let Some(c) = m.catalog_code.clone() {
        r.length("catalog_code", &c, 1, 36);
    }
    r.vocab("task_type", &m.task_type.clone(), &TASK_TYPES);
    r.vocab("apply_type", &m.apply_type.clone(), &APPLY_TYPES);
    r.vocab("result", &m.result.clone(), &RESULTS);
    r.vocab(
        "security_classification",
        &m.security_classification.clone(),
        &CLASSIFICATIONS,
    );
    if let Some(rp) = m.retention_period.clone() {
        r.vocab("retention_period", &rp, &RETENTIONS);
    }
    if !m.social_code.is_empty()
        && let Some(e) = codes::uscc_problem(&m.social_code)
    {
        r.invalid(
            "social_code",
            format!("not a unified social credit code: {e}"),
        );
    }
    if !m.region_code.is_empty()
        && let Some(e) = codes::region_problem(&m.region_code)
    {
        r.invalid(
            "region_code",
            format!("not an administrative division code: {e}"),
        );
    }
    let rt = r.time("receive_time", &m.receive_time.clone());
    let tt = r.time("transact_time", &m.transact_time.clone());
    if let (Some(rt), Some(tt)) = (rt, tt)
        && tt < rt
    {
        r.invalid("transact_time", "transact_time is before receive_time");
    }

    if let Some(ps) = root.child("partners") {
        for (i, p) in ps.children_named("partner").enumerate() {
            let base = format!("partners/partner[{}]", i + 1);
            let partner = Partner {
                social_code: r.required(p, "social_code", &format!("{base}/social_code")),
                project_id: r.required(p, "project_id", &format!("{base}/project_id")),
            };
            if !partner.social_code.is_empty()
                && let Some(e) = codes::uscc_problem(&partner.social_code)
            {
                r.invalid(
                    format!("{base}/social_code"),
                    format!("not a unified social credit code: {e}"),
                );
            }
            m.partners.push(partner);
        }
    }

    match root.child("process") {
        Some(steps) if steps.children_named("step").next().is_some() => {
            for (i, s) in steps.children_named("step").enumerate() {
                let base = format!("process/step[{}]", i + 1);
                let step = Step {
                    code: r.required(s, "code", &format!("{base}/code")),
                    time: r.required(s, "time", &format!("{base}/time")),
                    actor: r.required(s, "actor", &format!("{base}/actor")),
                    opinion: s.text_of("opinion"),
                };
                r.vocab(&format!("{base}/code"), &step.code, &STEP_CODES);
                r.time(&format!("{base}/time"), &step.time);
                m.process.push(step);
            }
        }
        _ => r.problems.push(Problem::field(
            Code::FieldMissing,
            "process",
            "at least one <process><step> is required",
        )),
    }

    match root.child("files") {
        Some(files) if files.children_named("file").next().is_some() => {
            for (i, fnode) in files.children_named("file").enumerate() {
                let base = format!("files/file[{}]", i + 1);
                let df = DeclaredFile {
                    path: r.required(fnode, "path", &format!("{base}/path")),
                    name: r.required(fnode, "name", &format!("{base}/name")),
                    stage: fnode.text_of("stage"),
                    format: r.required(fnode, "format", &format!("{base}/format")),
                    sha256: fnode.text_of("sha256").map(|s| s.to_ascii_lowercase()),
                };
                if !df.path.is_empty() && !df.path.starts_with("files/") {
                    r.invalid(
                        format!("{base}/path"),
                        format!("{:?} must be under files/", df.path),
                    );
                }
                if let Some(s) = &df.stage {
                    r.vocab(&format!("{base}/stage"), s, &STEP_CODES);
                }
                if let Some(h) = &df.sha256
                    && (h.len() != 64 || !h.bytes().all(|c| c.is_ascii_hexdigit()))
                {
                    r.invalid(
                        format!("{base}/sha256"),
                        "must be 64 hexadecimal characters",
                    );
                }
                m.files.push(df);
            }
        }
        _ => r.problems.push(Problem::field(
            Code::FieldMissing,
            "files",
            "at least one <files><file> is required",
        )),
    }

    if let Some(ls) = root.child("licenses") {
        for (i, l) in ls.children_named("license").enumerate() {
            let base = format!("licenses/license[{}]", i + 1);
            let req = |r: &mut Reader, n: &str| r.required(l, n, &format!("{base}/{n}"));
            let lic = License {
                identifier: req(&mut r, "identifier"),
                number: req(&mut r, "number"),
                name: req(&mut r, "name"),
                type_code: req(&mut r, "type_code"),
                type_name: l.text_of("type_name"),
                issuer_name: req(&mut r, "issuer_name"),
                issuer_code: req(&mut r, "issuer_code"),
                issue_date: req(&mut r, "issue_date"),
                valid_from: l.text_of("valid_from"),
                valid_to: l.text_of("valid_to"),
                holder_name: req(&mut r, "holder_name"),
                holder_code: req(&mut r, "holder_code"),
                holder_code_type: l.text_of("holder_code_type"),
                related_item: l.text_of("related_item"),
                status: l.text_of("status"),
                path: req(&mut r, "path"),
            };
            if !lic.identifier.is_empty()
                && let Some(e) = codes::license_id_problem(&lic.identifier, check_license_char)
            {
                r.invalid(
                    format!("{base}/identifier"),
                    format!("not an e-licence identifier: {e}"),
                );
            }
            if !lic.issuer_code.is_empty()
                && let Some(e) = codes::uscc_problem(&lic.issuer_code)
            {
                r.invalid(
                    format!("{base}/issuer_code"),
                    format!("not a unified social credit code: {e}"),
                );
            }
            r.date(&format!("{base}/issue_date"), &lic.issue_date);
            if let Some(d) = &lic.valid_from {
                r.date(&format!("{base}/valid_from"), d);
            }
            if let Some(d) = &lic.valid_to {
                r.date(&format!("{base}/valid_to"), d);
            }
            if !lic.path.is_empty() && !lic.path.starts_with("licenses/") {
                r.invalid(
                    format!("{base}/path"),
                    format!("{:?} must be under licenses/", lic.path),
                );
            }
            m.licenses.push(lic);
        }
    }

    let mut seen = std::collections::HashSet::new();
    let all_paths: Vec<String> = m
        .files
        .iter()
        .map(|f| f.path.clone())
        .chain(m.licenses.iter().map(|l| l.path.clone()))
        .collect();
    for p in all_paths {
        if !p.is_empty() && !seen.insert(super::unpack::normalize_name(&p)) {
            r.invalid("files", format!("{p:?} is listed more than once"));
        }
    }
    // The schema's verdict, for what the reading above did not already name (an unknown or
    // repeated element, the order, lengths and patterns).
    let named: std::collections::HashSet<Option<String>> = r.problems.errors[first..]
        .iter()
        .map(|p| p.field.clone())
        .collect();
    for p in super::schema::validate(bytes) {
        if !named.contains(&p.field) {
            r.problems.push(p);
        }
    }
    Some(m)
}
