//! Describe, first step: `metadata.xml` held to `schemas/case.xsd`, element by element, so that
//! the service and any XSD validator (`xmllint --schema schemas/case.xsd`) give one verdict. The
//! table below is the schema's content model written out; a differential test
//! (`tests/it/schema.rs`) generates variants and compares this check with xmllint's on each.
//!
//! Text types are `xs:token` in the schema (whitespace collapsed before lengths and patterns are
//! checked, as a pretty-printed document expects); `opinion` is free `xs:string`.

use crate::problem::{Code, Problem};

use super::describe::CASE_NS;

/// A pattern facet: the test, and what it asks for in words.
type Pattern = (fn(&str) -> bool, &'static str);

/// A simple type: what the text of an element may be.
#[derive(Clone, Copy)]
enum Ty {
    /// `xs:token` with length facets and an optional pattern.
    Token {
        min: usize,
        max: usize,
        pattern: Option<Pattern>,
    },
    Enum(&'static [&'static str]),
    /// `xs:dateTime` whose value carries an offset.
    DateTime,
    /// `xs:date` written as `YYYY-MM-DD`.
    Date,
    /// `xs:string`, at most this many characters.
    Text {
        max: usize,
    },
}

enum Kind {
    Simple(Ty),
    Seq(&'static [El]),
}

struct El {
    name: &'static str,
    min: u32,
    max: u32,
    kind: Kind,
}

const UNBOUNDED: u32 = u32::MAX;

const fn tok(min: usize, max: usize) -> Ty {
    Ty::Token {
        min,
        max,
        pattern: None,
    }
}
const fn pat(max: usize, f: fn(&str) -> bool, what: &'static str) -> Ty {
    Ty::Token {
        min: 1,
        max,
        pattern: Some((f, what)),
    }
}
const fn one(name: &'static str, ty: Ty) -> El {
    El {
        name,
        min: 1,
        max: 1,
        kind: Kind::Simple(ty),
    }
}
const fn opt(name: &'static str, ty: Ty) -> El {
    El {
        name,
        min: 0,
        max: 1,
        kind: Kind::Simple(ty),
    }
}

fn social_code(s: &str) -> bool {
    const OK: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    let b = s.as_bytes();
    b.len() == 18
        && b[2..8].iter().all(u8::is_ascii_digit)
        && b[..2].iter().chain(&b[8..]).all(|c| OK.contains(c))
}
fn region_code(s: &str) -> bool {
    s.len() == 6 && s.bytes().all(|c| c.is_ascii_digit())
}
fn page_count(s: &str) -> bool {
    (1..=6).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit()) && !s.starts_with('0')
}
fn sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit())
}
fn file_path(s: &str) -> bool {
    s.strip_prefix("files/").is_some_and(|r| !r.is_empty())
}
fn license_path(s: &str) -> bool {
    s.strip_prefix("licenses/").is_some_and(|r| !r.is_empty())
}
/// `1\.2\.156\.3005\.2\.[0-9A-Z]{18}[0-9]{3}\.[0-9A-Z]{18}\.[0-9A-Z]{1,32}\.[0-9]{3}\.[0-9A-Z]`
fn license_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("1.2.156.3005.2.") else {
        return false;
    };
    let up = |p: &str| {
        p.bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    };
    let digits = |p: &str| p.bytes().all(|c| c.is_ascii_digit());
    let parts: Vec<&str> = rest.split('.').collect();
    matches!(parts.as_slice(), [ty, issuer, serial, version, check]
        if ty.len() == 21 && up(&ty[..18]) && digits(&ty[18..])
            && issuer.len() == 18 && up(issuer)
            && (1..=32).contains(&serial.len()) && up(serial)
            && version.len() == 3 && digits(version)
            && check.len() == 1 && up(check))
}

const TASK_TYPES: &[&str] = &super::describe::TASK_TYPES;
const APPLY_TYPES: &[&str] = &super::describe::APPLY_TYPES;
const RESULTS: &[&str] = &super::describe::RESULTS;
const CLASSIFICATIONS: &[&str] = &super::describe::CLASSIFICATIONS;
const RETENTIONS: &[&str] = &super::describe::RETENTIONS;
const STEP_CODES: &[&str] = &super::describe::STEP_CODES;

const SOCIAL: Ty = pat(
    18,
    social_code,
    "a unified social credit code (18 characters)",
);

const PARTNER: &[El] = &[one("social_code", SOCIAL), one("project_id", tok(1, 64))];
const STEP: &[El] = &[
    one("code", Ty::Enum(STEP_CODES)),
    one("time", Ty::DateTime),
    one("actor", tok(1, 100)),
    opt("opinion", Ty::Text { max: 4000 }),
];
const FILE: &[El] = &[
    one("path", pat(1024, file_path, "a path under files/")),
    one("name", tok(1, 255)),
    opt("stage", Ty::Enum(STEP_CODES)),
    one("format", tok(1, 32)),
    opt("sha256", pat(64, sha256, "64 hexadecimal characters")),
];
const LICENSE: &[El] = &[
    one(
        "identifier",
        pat(100, license_id, "an e-licence identifier 1.2.156.3005.2.…"),
    ),
    one("number", tok(1, 64)),
    one("name", tok(1, 200)),
    one("type_code", tok(1, 64)),
    opt("type_name", tok(1, 200)),
    one("issuer_name", tok(1, 200)),
    one("issuer_code", SOCIAL),
    one("issue_date", Ty::Date),
    opt("valid_from", Ty::Date),
    opt("valid_to", Ty::Date),
    one("holder_name", tok(1, 200)),
    one("holder_code", tok(1, 64)),
    opt("holder_code_type", tok(1, 64)),
    opt("related_item", tok(1, 64)),
    opt("status", tok(1, 32)),
    one("path", pat(1024, license_path, "a path under licenses/")),
];

const CASE: &[El] = &[
    one("project_id", tok(1, 64)),
    one("task_code", tok(1, 36)),
    opt("catalog_code", tok(1, 36)),
    one("task_name", tok(1, 200)),
    one("task_type", Ty::Enum(TASK_TYPES)),
    one("project_name", tok(1, 500)),
    one(
        "region_code",
        pat(
            6,
            region_code,
            "six digits (an administrative division code)",
        ),
    ),
    one("lead_department", tok(1, 200)),
    one("social_code", SOCIAL),
    one("apply_name", tok(1, 200)),
    one("apply_type", Ty::Enum(APPLY_TYPES)),
    opt("apply_card_type", tok(1, 32)),
    opt("apply_card_no", tok(1, 64)),
    one("receive_time", Ty::DateTime),
    one("transact_time", Ty::DateTime),
    one("result", Ty::Enum(RESULTS)),
    opt("result_code", tok(1, 64)),
    opt("security_classification", Ty::Enum(CLASSIFICATIONS)),
    opt("retention_period", Ty::Enum(RETENTIONS)),
    opt(
        "paper_pages",
        pat(6, page_count, "a page count 1 to 999999"),
    ),
    El {
        name: "partners",
        min: 0,
        max: 1,
        kind: Kind::Seq(&[El {
            name: "partner",
            min: 1,
            max: UNBOUNDED,
            kind: Kind::Seq(PARTNER),
        }]),
    },
    El {
        name: "process",
        min: 1,
        max: 1,
        kind: Kind::Seq(&[El {
            name: "step",
            min: 1,
            max: UNBOUNDED,
            kind: Kind::Seq(STEP),
        }]),
    },
    El {
        name: "files",
        min: 1,
        max: 1,
        kind: Kind::Seq(&[El {
            name: "file",
            min: 1,
            max: UNBOUNDED,
            kind: Kind::Seq(FILE),
        }]),
    },
    El {
        name: "licenses",
        min: 0,
        max: 1,
        kind: Kind::Seq(&[El {
            name: "license",
            min: 1,
            max: UNBOUNDED,
            kind: Kind::Seq(LICENSE),
        }]),
    },
];

/// Every way `bytes` (already well-formed, see [`super::xml::conformance`]) departs from
/// `schemas/case.xsd`, each naming its element. Empty when the document is valid.
pub fn validate(bytes: &[u8]) -> Vec<Problem> {
    let mut out = Vec::new();
    let Ok(text) = std::str::from_utf8(bytes) else {
        return out; // reported by the well-formedness check
    };
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..Default::default()
    };
    let Ok(doc) = roxmltree::Document::parse_with_options(text, opts) else {
        return out;
    };
    let root = doc.root_element();
    if root.tag_name().name() != "case" || root.tag_name().namespace() != Some(CASE_NS) {
        out.push(structure(
            "case",
            format!("the root element must be <case xmlns=\"{CASE_NS}\">"),
        ));
        return out;
    }
    for a in root.attributes() {
        if a.name() != "version" || a.namespace().is_some() {
            out.push(structure(
                "case",
                format!("attribute {} is not allowed on <case>", a.name()),
            ));
        }
    }
    sequence(root, "", CASE, &mut out);
    out
}

fn structure(field: impl Into<String>, msg: impl Into<String>) -> Problem {
    Problem::field(Code::MetadataInvalid, field, msg).in_file(super::describe::METADATA_PATH)
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

/// Children of `node` against the sequence `seq`: order, occurrences, no strangers, no text.
fn sequence(node: roxmltree::Node, base: &str, seq: &[El], out: &mut Vec<Problem>) {
    let here = if base.is_empty() { "case" } else { base };
    let mut i = 0usize;
    let mut count = 0u32;
    let mut index: std::collections::HashMap<&str, usize> = Default::default();
    for child in node.children() {
        if child.is_text() {
            if child.text().is_some_and(|t| !t.trim().is_empty()) {
                out.push(structure(
                    here,
                    format!("<{}> holds elements only, not text", node.tag_name().name()),
                ));
                return;
            }
            continue;
        }
        if !child.is_element() {
            continue;
        }
        let name = child.tag_name().name();
        if child.tag_name().namespace() != Some(CASE_NS) {
            out.push(structure(
                join(base, name),
                format!("<{name}> in another namespace than {CASE_NS} is not allowed here"),
            ));
            return;
        }
        // Advance through the sequence: the schema is deterministic, so the first particle that
        // can take this element is the only one.
        loop {
            match seq.get(i) {
                Some(el) if el.name == name && count < el.max => break,
                Some(el) if count >= el.min => {
                    i += 1;
                    count = 0;
                }
                Some(el) => {
                    out.push(structure(
                        join(base, name),
                        if seq.iter().any(|e| e.name == name) {
                            format!(
                                "<{name}> is out of order or repeated: <{}> is expected here",
                                el.name
                            )
                        } else {
                            format!(
                                "<{name}> is not an element of <{}>; <{}> is expected here",
                                node.tag_name().name(),
                                el.name
                            )
                        },
                    ));
                    return;
                }
                None => {
                    out.push(structure(
                        join(base, name),
                        if seq.iter().any(|e| e.name == name) {
                            format!(
                                "<{name}> occurs more often than the schema allows or out of order"
                            )
                        } else {
                            format!("<{name}> is not an element of <{}>", node.tag_name().name())
                        },
                    ));
                    return;
                }
            }
        }
        count += 1;
        let el = &seq[i];
        let n = index.entry(el.name).or_insert(0);
        *n += 1;
        let path = if el.max > 1 {
            format!("{}[{n}]", join(base, name))
        } else {
            join(base, name)
        };
        element(child, &path, el, out);
    }
    // What the sequence still needs.
    loop {
        match seq.get(i) {
            None => break,
            Some(el) if count >= el.min => {
                i += 1;
                count = 0;
            }
            Some(el) => {
                out.push(
                    Problem::field(
                        Code::FieldMissing,
                        join(base, el.name),
                        format!("required element <{}> is missing", el.name),
                    )
                    .in_file(super::describe::METADATA_PATH),
                );
                i += 1;
                count = 0;
            }
        }
    }
}

fn element(node: roxmltree::Node, path: &str, el: &El, out: &mut Vec<Problem>) {
    if let Some(a) = node.attributes().next() {
        out.push(structure(
            path,
            format!("attribute {} is not allowed on <{}>", a.name(), el.name),
        ));
        return;
    }
    match &el.kind {
        Kind::Seq(seq) => sequence(node, path, seq, out),
        Kind::Simple(ty) => {
            if node.children().any(|c| c.is_element()) {
                out.push(structure(
                    path,
                    format!("<{}> holds text only, not elements", el.name),
                ));
                return;
            }
            let raw: String = node.children().filter_map(|c| c.text()).collect();
            if let Some(msg) = simple(ty, &raw) {
                out.push(
                    Problem::field(Code::FieldInvalid, path, msg)
                        .in_file(super::describe::METADATA_PATH),
                );
            }
        }
    }
}

/// XSD whitespace collapse: runs of tab, newline, carriage return and space become one space,
/// and leading and trailing space go.
fn collapse(s: &str) -> String {
    s.split([' ', '\t', '\n', '\r'])
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn simple(ty: &Ty, raw: &str) -> Option<String> {
    match ty {
        Ty::Text { max } => {
            let n = raw.chars().count();
            (n > *max).then(|| format!("at most {max} characters, found {n}"))
        }
        Ty::Token { min, max, pattern } => {
            let v = collapse(raw);
            let n = v.chars().count();
            if n < *min || n > *max {
                return Some(if n == 0 {
                    "must not be empty".to_string()
                } else {
                    format!("must be {min}–{max} characters, found {n}")
                });
            }
            match pattern {
                Some((ok, what)) if !ok(&v) => Some(format!("must be {what}")),
                _ => None,
            }
        }
        Ty::Enum(allowed) => {
            let v = collapse(raw);
            (!allowed.contains(&v.as_str()))
                .then(|| format!("{v:?} is not one of {}", allowed.join(", ")))
        }
        Ty::DateTime => {
            let v = collapse(raw);
            (!date_time(&v)).then(|| {
                format!("{v:?} is not a date-time with an offset, e.g. 2025-03-01T09:30:00+08:00")
            })
        }
        Ty::Date => {
            let v = collapse(raw);
            (!date(&v)).then(|| format!("{v:?} is not a date of the form YYYY-MM-DD"))
        }
    }
}

/// `YYYY-MM-DD` naming a day of the Gregorian calendar (years 0001–9999).
fn date(v: &str) -> bool {
    v.len() == 10
        && v.as_bytes()[4] == b'-'
        && v.as_bytes()[7] == b'-'
        && v[..4] != *"0000"
        && chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()
}

/// `xs:dateTime` with a mandatory offset: `YYYY-MM-DDThh:mm:ss(.s+)?(Z|±hh:mm)`, as XSD 1.0
/// reads it (24:00:00 is left out: the archive's own times never use it).
fn date_time(v: &str) -> bool {
    let Some((d, t)) = v.split_once('T') else {
        return false;
    };
    if !date(d) {
        return false;
    }
    let (clock, offset) = if let Some(c) = t.strip_suffix('Z') {
        (c, "+00:00")
    } else if t.len() > 6 {
        t.split_at(t.len() - 6)
    } else {
        return false;
    };
    let ob = offset.as_bytes();
    let two = |s: &str| s.len() == 2 && s.bytes().all(|c| c.is_ascii_digit());
    let offset_ok = (ob[0] == b'+' || ob[0] == b'-')
        && ob[3] == b':'
        && two(&offset[1..3])
        && two(&offset[4..6])
        && offset[1..3].parse::<u32>().is_ok_and(|h| h <= 14)
        && offset[4..6].parse::<u32>().is_ok_and(|m| m <= 59)
        && (offset[1..3] != *"14" || offset[4..6] == *"00");
    let (hms, frac) = match clock.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (clock, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let clock_ok = matches!(parts.as_slice(), [h, m, s]
        if two(h) && two(m) && two(s)
            && h.parse::<u32>().is_ok_and(|h| h < 24)
            && m.parse::<u32>().is_ok_and(|m| m < 60)
            && s.parse::<u32>().is_ok_and(|s| s < 60))
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()));
    offset_ok && clock_ok
}
