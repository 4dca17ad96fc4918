//! The four-property checks of DA/T 70-2018 (authenticity, integrity, usability, security) as a
//! report: one line per item code with its result and detail. The archiving stage (`GD`) runs at
//! ingest; the transfer (`YJ`) and preservation (`BC`) stages will add their own items to the same
//! report shape.
//!
//! Items that are the ingest's own gates pass for every archived case, because a failure rejects
//! the submission with its problem code; the report records that and how. Nothing is reported as
//! `pass` that was not checked: a check that cannot run here says `not_configured`, one that needs
//! a person says `manual`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    Manual,
    NotConfigured,
    NotApplicable,
    /// The item names something this build does not examine; the detail says what and why.
    NotChecked,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Manual => "manual",
            Outcome::NotConfigured => "not_configured",
            Outcome::NotApplicable => "not_applicable",
            Outcome::NotChecked => "not_checked",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckItem {
    pub code: String,
    pub property: String,
    pub item: String,
    pub result: Outcome,
    pub detail: String,
}

/// What the archiving stage knows about one accepted submission.
pub struct GdFacts<'a> {
    pub files: usize,
    pub bytes: u64,
    pub declared_digests: usize,
    pub licences: usize,
    pub process_steps: usize,
    pub warnings: usize,
    pub formats: Vec<String>,
    pub channel: &'a str,
    /// `None`: no scanner configured; `Some(engine)`: every file scanned clean by it.
    pub virus_scan: Option<String>,
    pub signed_by: &'a str,
    /// Files carrying electronic signatures or seals of their own.
    pub signed_files: usize,
    /// Who submitted, as `name (role, channel)`.
    pub agent: &'a str,
    /// Software and platform, as recorded in archive.xml.
    pub environment: &'a str,
}

fn item(
    code: &str,
    property: &str,
    item: &str,
    result: Outcome,
    detail: impl Into<String>,
) -> CheckItem {
    CheckItem {
        code: code.into(),
        property: property.into(),
        item: item.into(),
        result,
        detail: detail.into(),
    }
}

/// The `GD` (archiving) items for a submission that passed every ingest gate.
pub fn archiving(f: &GdFacts<'_>) -> Vec<CheckItem> {
    use Outcome::*;
    let a = "authenticity";
    let i = "integrity";
    let u = "usability";
    let s = "security";
    vec![
        item(
            "GD-1-1",
            a,
            "fixed evidence: digests and signature",
            Pass,
            format!(
                "SHA-256 and SM3 of all {} files computed while receiving; tag manifest signed with Ed25519 key {}",
                f.files, f.signed_by
            ),
        ),
        item(
            "GD-1-2",
            a,
            "declared digests match the received bytes",
            if f.declared_digests > 0 {
                Pass
            } else {
                NotApplicable
            },
            if f.declared_digests > 0 {
                format!(
                    "{} declared SHA-256 digests match (a mismatch is rejected as digest_mismatch)",
                    f.declared_digests
                )
            } else {
                "metadata.xml declares no digests".to_string()
            },
        ),
        item(
            "GD-1-3",
            a,
            "metadata accurate: length, type, value range, check characters",
            Pass,
            "metadata.xml held to schemas/case.xsd (element order, occurrences, lengths, patterns, vocabularies: the same verdict as xmllint), GB 32100 and ISO 7064 check characters, times with offsets (field_invalid or metadata_invalid otherwise)",
        ),
        item(
            "GD-1-4",
            a,
            "file attributes match the metadata",
            Pass,
            "each file's format identified from its content agrees with its declared format and extension (format_mismatch otherwise)",
        ),
        item(
            "GD-1-5",
            a,
            "package structure as specified",
            Pass,
            "only metadata.xml, files/ and licenses/; every file listed and every listed file present; one unambiguous ZIP (no duplicate, colliding or unsafe names, no bytes outside the entries)",
        ),
        if f.signed_files > 0 {
            item(
                "GD-1-6",
                a,
                "electronic signatures and seals in the records",
                NotChecked,
                format!(
                    "{} file(s) carry electronic signatures or seals (OFD Signatures.xml, PDF signature dictionaries); their validity needs the signers' SM2 certificates and is not checked by this build",
                    f.signed_files
                ),
            )
        } else {
            item(
                "GD-1-6",
                a,
                "electronic signatures and seals in the records",
                NotApplicable,
                "no file carries an electronic signature or seal (looked for OFD Signatures.xml and PDF /ByteRange)",
            )
        },
        item(
            "GD-1-7",
            a,
            "no special characters in the metadata",
            Pass,
            "metadata.xml is well-formed XML 1.0 with namespaces and holds no character outside XML's Char production (metadata_invalid otherwise)",
        ),
        item(
            "GD-2-1",
            i,
            "counts match",
            Pass,
            format!(
                "{} files received, each listed in metadata.xml, and every listed file present (file_unlisted, file_missing otherwise); {} bytes counted while receiving (metadata.xml declares no sizes to compare)",
                f.files, f.bytes
            ),
        ),
        item(
            "GD-2-2",
            i,
            "required metadata elements present",
            Pass,
            "every element schemas/case.xsd requires is present (field_missing otherwise)",
        ),
        item(
            "GD-2-3",
            i,
            "process records present",
            Pass,
            format!("{} process steps", f.process_steps),
        ),
        item(
            "GD-2-4",
            i,
            "e-licences archived with their metadata",
            if f.licences > 0 { Pass } else { NotApplicable },
            if f.licences > 0 {
                format!("{} e-licences with catalogue metadata and file", f.licences)
            } else {
                "no e-licence issued".to_string()
            },
        ),
        item(
            "GD-3-1",
            u,
            "metadata readable",
            Pass,
            "metadata.xml is well-formed UTF-8 XML 1.0 in namespace urn:guidang:case:1",
        ),
        item(
            "GD-3-2",
            u,
            "content formats allowed and readable",
            NotChecked,
            format!(
                "formats identified from content and allowed by the format policy: {} ({} warning(s)); whether each file opens and renders is not checked by this build (identification reads structure, not pages)",
                f.formats.join(", "),
                f.warnings
            ),
        ),
        item(
            "GD-3-3",
            u,
            "no encryption, no non-public compression",
            Pass,
            "no encrypted file (PDF /Encrypt, encrypted ZIP members, OLE-encrypted OOXML, ODF or OFD encryption) and no archive inside; the package is stored uncompressed",
        ),
        match &f.virus_scan {
            Some(engine) => item(
                "GD-4-1",
                s,
                "virus scan",
                Pass,
                format!("every file scanned clean by {engine}"),
            ),
            None => item(
                "GD-4-1",
                s,
                "virus scan",
                NotConfigured,
                "no virus scanner configured ([antivirus] in the configuration)",
            ),
        },
        if f.channel == "offline" {
            item(
                "GD-4-2",
                s,
                "carrier (media) check",
                Manual,
                "offline import: the archivist checks the carrier's appearance and readability",
            )
        } else {
            item(
                "GD-4-2",
                s,
                "carrier (media) check",
                NotApplicable,
                "received online: no carrier",
            )
        },
        item(
            "GD-4-3",
            s,
            "process security",
            Manual,
            format!(
                "whether the archiving ran in a secure, controlled environment is for a person to confirm; recorded: received {} from {}, an authenticated agent",
                f.channel, f.agent
            ),
        ),
        item(
            "GD-2-5",
            i,
            "no duplicate record",
            Pass,
            "the case key (social_code, task_code, project_id) is archived once: an identical resubmission returns the existing case, other content under the key is refused (case_exists)",
        ),
        item(
            "GD-2-6",
            i,
            "archiving environment recorded",
            Pass,
            format!("archive.xml records {}", f.environment),
        ),
    ]
}
