//! The OpenAPI 3.1 description of `/api/v1`, served at `/api/v1/openapi.json`.
//!
//! Built from [`OPERATIONS`], one entry per route of [`super::API_ROUTES`] (the table that also
//! registers them): a test fails when a route is added without its description or described
//! without existing, and another calls every route with every role to check the roles written
//! here against the ones the handlers enforce.

use serde_json::{Map, Value, json};

use crate::problem::Code;

/// What a request carries.
#[derive(Clone, Copy)]
pub enum Body {
    None,
    /// A JSON body of the named schema.
    Json(&'static str),
    /// A JSON body of the named schema, or none.
    OptionalJson(&'static str),
    /// A ZIP (submission, digitised copies).
    Zip,
    /// Raw bytes (a chunk of a transfer volume).
    Bytes,
}

/// What a success answer carries.
#[derive(Clone, Copy)]
pub enum Out {
    Json(&'static str),
    Zip,
    Xml,
    /// A document by name: XML, CSV or printable HTML.
    Document,
    Text,
    Bytes,
    Empty,
}

/// A query parameter: name, JSON type, what it does.
pub type Param = (&'static str, &'static str, &'static str);

pub struct Operation {
    pub method: &'static str,
    /// As registered (actix's `{path:.*}` form).
    pub path: &'static str,
    pub id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    /// The roles that may call it (empty: no token needed).
    pub roles: &'static [&'static str],
    pub query: &'static [Param],
    pub body: Body,
    pub ok: &'static [(u16, Out)],
    /// Error statuses beyond those every route may answer (400, 401, 403, 503; 404 with a
    /// path parameter).
    pub errors: &'static [u16],
}

const PAGING: [Param; 2] = [
    ("page", "integer", "page number, from 1 (default 1)"),
    ("per_page", "integer", "rows per page"),
];
const VERSION: Param = (
    "version",
    "integer",
    "package version (default: the newest)",
);

const ARCHIVIST: &[&str] = &["archivist"];
const ADMIN: &[&str] = &["admin"];
const KEEPERS: &[&str] = &["archivist", "admin"];
const RECORDS_READERS: &[&str] = &["archivist", "auditor", "admin"];
const CASE_READERS: &[&str] = &["submitter", "archivist", "auditor"];
const PACKAGE_READERS: &[&str] = &["archivist", "auditor"];
const OVERSEERS: &[&str] = &["auditor", "admin"];
const ANYONE: &[&str] = &["submitter", "archivist", "auditor", "admin"];
const TRANSFEROR: &[&str] = &["transferor"];

macro_rules! op {
    ($m:literal $p:literal, $id:literal, $tag:literal, $summary:literal, $roles:expr,
     query: $q:expr, body: $b:expr, ok: $ok:expr, errors: $e:expr) => {
        Operation {
            method: $m,
            path: $p,
            id: $id,
            tag: $tag,
            summary: $summary,
            roles: $roles,
            query: $q,
            body: $b,
            ok: $ok,
            errors: $e,
        }
    };
}

/// Every `/api/v1` operation.
pub const OPERATIONS: &[Operation] = &[
    op!("get" "/openapi.json", "openapi", "evidence", "This description (OpenAPI 3.1); no token needed.", &[],
        query: &[], body: Body::None, ok: &[(200, Out::Json("Object"))], errors: &[]),
    op!("get" "/keys", "listKeys", "evidence", "Public signing keys (Ed25519, SM2) with their validity; no token needed.", &[],
        query: &[], body: Body::None, ok: &[(200, Out::Json("Keys"))], errors: &[]),
    op!("get" "/tokens", "listTokens", "admin", "Every token with its state (never the token itself).", ADMIN,
        query: &[], body: Body::None, ok: &[(200, Out::Json("TokenList"))], errors: &[]),
    op!("post" "/tokens", "createToken", "admin", "Creates a token; the answer shows it in clear this once.", ADMIN,
        query: &[], body: Body::Json("NewToken"), ok: &[(201, Out::Json("CreatedToken"))], errors: &[]),
    op!("post" "/tokens/{token_id}/revoke", "revokeToken", "admin", "Revokes a token at once; its console sessions end.", ADMIN,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Revoked"))], errors: &[]),
    op!("post" "/cases", "submitCase", "cases", "Archives a case: the body is its submission ZIP (metadata.xml and files). 201 new, 200 the identical submission again, 422 with every problem.", &["submitter", "archivist"],
        query: &[], body: Body::Zip, ok: &[(201, Out::Json("Archived")), (200, Out::Json("Archived"))], errors: &[408, 409, 413, 415, 422]),
    op!("get" "/cases", "listCases", "cases", "Cases, newest first, by archival year, task code, status or text (archival code, task name, organisation, project id); a submitter sees its own organisation's.", CASE_READERS,
        query: &[("year", "integer", "archival year"), ("task_code", "string", "事项编码"), ("status", "string", "archived, disposed or transferred"), ("q", "string", "an archival code, archive id or project id (exact), or words of the task or project name"), ("social_code", "string", "the organisation's unified social credit code"), PAGING[0], PAGING[1]],
        body: Body::None, ok: &[(200, Out::Json("CaseList"))], errors: &[]),
    op!("get" "/cases/{archive_id}", "showCase", "cases", "A case: metadata (personal data masked for auditors without content), files, licences, retention, versions, archival code.", CASE_READERS,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Case"))], errors: &[]),
    op!("get" "/cases/{archive_id}/package", "getPackage", "cases", "The archival package (a signed BagIt ZIP), streamed.", PACKAGE_READERS,
        query: &[VERSION], body: Body::None, ok: &[(200, Out::Zip)], errors: &[410]),
    op!("get" "/cases/{archive_id}/evidence", "getEvidence", "evidence", "The package's evidence without its content: manifests, signatures, log proof — enough to verify offline.", PACKAGE_READERS,
        query: &[VERSION], body: Body::None, ok: &[(200, Out::Zip)], errors: &[410]),
    op!("get" "/cases/{archive_id}/files/{path:.*}", "getFile", "cases", "One file of the case, streamed, with its SHA-256 (ETag) and SM3 (X-Checksum-SM3).", PACKAGE_READERS,
        query: &[], body: Body::None, ok: &[(200, Out::Bytes)], errors: &[410]),
    op!("get" "/cases/{archive_id}/proof", "getProof", "evidence", "The case's transparency-log inclusion proof.", CASE_READERS,
        query: &[VERSION], body: Body::None, ok: &[(200, Out::Text)], errors: &[]),
    op!("post" "/cases/{archive_id}/digitised", "addDigitised", "digitised", "Adds digitised copies of paper originals (ZIP with digitisation.xml and the images) as a new package version; 422 with every QC problem.", ARCHIVIST,
        query: &[], body: Body::Zip, ok: &[(201, Out::Json("VersionAdded"))], errors: &[408, 409, 410, 413, 422]),
    op!("get" "/cases/{archive_id}/checks", "getChecks", "cases", "The four-property (GD) check report of the case.", CASE_READERS,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Object"))], errors: &[]),
    op!("post" "/cases/{archive_id}/verify", "verifyCase", "evidence", "Verifies the stored package now (fixity, signature, log) and records the audit.", PACKAGE_READERS,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Audit"))], errors: &[410]),
    op!("get" "/cases/{archive_id}/holds", "listHolds", "disposal", "The case's holds (a held case is never disposed).", RECORDS_READERS,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Items"))], errors: &[]),
    op!("post" "/cases/{archive_id}/holds", "placeHold", "disposal", "Places a hold with its reason.", KEEPERS,
        query: &[], body: Body::Json("Reason"), ok: &[(201, Out::Json("Object"))], errors: &[409]),
    op!("post" "/cases/{archive_id}/holds/{hold_id}/release", "releaseHold", "disposal", "Releases a hold with its reason.", KEEPERS,
        query: &[], body: Body::Json("Reason"), ok: &[(200, Out::Json("Items"))], errors: &[409]),
    op!("get" "/retention/rules", "getRetentionRules", "retention", "The retention rules (a version, or the current one) with the floor and the default.", RECORDS_READERS,
        query: &[("version", "integer", "rule-set version (default: current)")], body: Body::None, ok: &[(200, Out::Json("RuleSet"))], errors: &[404]),
    op!("put" "/retention/rules", "putRetentionRules", "retention", "Replaces the retention rules with a new version.", ADMIN,
        query: &[], body: Body::Json("RulesBody"), ok: &[(200, Out::Json("RuleSet"))], errors: &[]),
    op!("post" "/retention/reevaluate", "reevaluateRetention", "retention", "Applies the current rules to every case (raising only); `dry_run` reports without changing.", ADMIN,
        query: &[], body: Body::OptionalJson("Reevaluate"), ok: &[(200, Out::Json("Object"))], errors: &[409]),
    op!("post" "/filings", "runFiling", "filing", "Runs the yearly filing of a year: 201 with the batch when done in time, else 202 while it goes on.", KEEPERS,
        query: &[], body: Body::Json("FilingRun"), ok: &[(201, Out::Json("Object")), (202, Out::Json("Object"))], errors: &[409]),
    op!("get" "/filings/{year}", "filingStatus", "filing", "The filing state of a year: batches, completeness against declarations, days left to 30 June.", RECORDS_READERS,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Object"))], errors: &[]),
    op!("put" "/filings/{year}/expected", "putExpected", "filing", "A case system's completeness declaration for a year (the cases or counts per task code it completed).", &["submitter", "archivist", "admin"],
        query: &[], body: Body::Json("Expected"), ok: &[(200, Out::Json("Object"))], errors: &[]),
    op!("get" "/filings/{year}/batches/{batch_id}/{name}", "filingDocument", "filing", "A filing batch's register or registration form (XML, CSV or printable HTML).", RECORDS_READERS,
        query: &[], body: Body::None, ok: &[(200, Out::Document)], errors: &[]),
    op!("get" "/disposal/due", "disposalDue", "disposal", "Cases whose retention has run out and that may be appraised for disposal.", RECORDS_READERS,
        query: &PAGING, body: Body::None, ok: &[(200, Out::Json("Object"))], errors: &[]),
    op!("get" "/disposal/lists", "listDisposalLists", "disposal", "Disposal lists with their state.", RECORDS_READERS,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Object"))], errors: &[]),
    op!("post" "/disposal/lists", "proposeDisposal", "disposal", "Proposes a disposal list with appraisal opinions; 422 names every case that cannot be on it.", ARCHIVIST,
        query: &[], body: Body::Json("Proposal"), ok: &[(201, Out::Json("Object"))], errors: &[422]),
    op!("get" "/disposal/lists/{list_id}", "showDisposalList", "disposal", "A disposal list with its cases and decisions.", RECORDS_READERS,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Object"))], errors: &[]),
    op!("post" "/disposal/lists/{list_id}/decision", "decideDisposal", "disposal", "Approves or rejects a list; four eyes: the proposer may not decide (403).", ADMIN,
        query: &[], body: Body::Json("DisposalDecision"), ok: &[(200, Out::Json("Object"))], errors: &[409]),
    op!("post" "/disposal/lists/{list_id}/execute", "executeDisposal", "disposal", "Destroys the approved list's content, keeps the evidence, writes the destruction register.", KEEPERS,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Object"))], errors: &[409]),
    op!("get" "/disposal/lists/{list_id}/{name}", "disposalDocument", "disposal", "A disposal list's destruction register (XML or CSV).", RECORDS_READERS,
        query: &[], body: Body::None, ok: &[(200, Out::Document)], errors: &[]),
    op!("get" "/received", "listReceived", "transfer", "At an archive authority: the cases received, by archival code (`*` at the end for a prefix) or transfer.", RECORDS_READERS,
        query: &[("archival_code", "string", "archival code, `*` at the end for a prefix"), ("transfer_id", "string", "the transfer batch"), ("limit", "integer", "at most this many")],
        body: Body::None, ok: &[(200, Out::Json("Items"))], errors: &[]),
    op!("post" "/incoming/{transfer_id}/complete", "completeIncoming", "transfer", "At an archive authority: the sending unit says every volume is uploaded; the answer is the signed receipt.", TRANSFEROR,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Object"))], errors: &[409, 422]),
    op!("head" "/incoming/{transfer_id}/{file}", "incomingOffset", "transfer", "How much of an uploaded file the archive holds (`Upload-Offset`).", TRANSFEROR,
        query: &[], body: Body::None, ok: &[(200, Out::Empty)], errors: &[]),
    op!("put" "/incoming/{transfer_id}/{file}", "incomingPut", "transfer", "Appends a chunk at the offset held (`Content-Range: bytes START-END/TOTAL`); 409 with `Upload-Offset` otherwise.", TRANSFEROR,
        query: &[], body: Body::Bytes, ok: &[(204, Out::Empty)], errors: &[409, 413]),
    op!("post" "/transfers/{transfer_id}/send", "sendTransfer", "transfer", "Starts or resumes online delivery to the configured receiving archive (202; progress in the batch).", ARCHIVIST,
        query: &[], body: Body::None, ok: &[(202, Out::Json("Object"))], errors: &[409]),
    op!("post" "/transfers", "draftTransfer", "transfer", "Drafts a transfer batch of a filed year's cases, chosen by filters.", ARCHIVIST,
        query: &[], body: Body::Json("Draft"), ok: &[(201, Out::Json("Object"))], errors: &[409, 422]),
    op!("get" "/transfers", "listTransfers", "transfer", "Transfer batches with their state.", RECORDS_READERS,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Items"))], errors: &[]),
    op!("get" "/transfers/{transfer_id}", "showTransfer", "transfer", "A batch: state, cases, decisions, what still blocks it, delivery progress.", RECORDS_READERS,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Object"))], errors: &[]),
    op!("put" "/transfers/{transfer_id}/decisions", "decideTransfer", "transfer", "Classification decisions and access opinions, as rules for many cases and/or per case.", ARCHIVIST,
        query: &[], body: Body::Json("Decisions"), ok: &[(200, Out::Json("Object"))], errors: &[409, 422]),
    op!("post" "/transfers/{transfer_id}/approve", "approveTransfer", "transfer", "Approves a batch and its decisions; four eyes: not the preparer (403).", ADMIN,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Object"))], errors: &[409, 422]),
    op!("post" "/transfers/{transfer_id}/build", "buildTransfer", "transfer", "Builds the volumes in the background (202; progress in the batch).", ARCHIVIST,
        query: &[], body: Body::OptionalJson("Build"), ok: &[(202, Out::Json("Object"))], errors: &[409, 422]),
    op!("get" "/transfers/{transfer_id}/volumes/{which}", "getVolume", "transfer", "A built volume (`1`, `2`, …) as a ZIP, or `volumes.xml`, its signatures, `registration.xml` or `registration.html`.", PACKAGE_READERS,
        query: &[], body: Body::None, ok: &[(200, Out::Document)], errors: &[]),
    op!("get" "/audits", "listAudits", "evidence", "Fixity audits, newest first.", PACKAGE_READERS,
        query: &[("failed", "boolean", "only failed audits"), ("limit", "integer", "at most this many (1–1000, default 100)")],
        body: Body::None, ok: &[(200, Out::Json("Items"))], errors: &[]),
    op!("get" "/audit", "auditTrail", "evidence", "The audit trail with its hash chain checked.", OVERSEERS,
        query: &[("actor", "string", "who"), ("action", "string", "what (e.g. token_create)"), ("target", "string", "on what"), ("since", "string", "from this RFC 3339 time"), ("until", "string", "before this RFC 3339 time"), ("limit", "integer", "at most this many")],
        body: Body::None, ok: &[(200, Out::Json("Trail"))], errors: &[]),
    op!("post" "/log/reconcile", "reconcileLog", "evidence", "Checks that every package version is in the log and every log entry has its package.", OVERSEERS,
        query: &[], body: Body::None, ok: &[(200, Out::Json("Object"))], errors: &[]),
    op!("get" "/log/checkpoint", "logCheckpoint", "evidence", "The transparency log's newest signed checkpoint (C2SP signed-note form).", ANYONE,
        query: &[], body: Body::None, ok: &[(200, Out::Text)], errors: &[]),
    op!("get" "/log/consistency", "logConsistency", "evidence", "A consistency proof between two log sizes (one base64 hash per line).", ANYONE,
        query: &[("from", "integer", "the older size (≥ 1)"), ("to", "integer", "the newer size")],
        body: Body::None, ok: &[(200, Out::Text)], errors: &[]),
];

/// The OpenAPI path of a registered route: `{path:.*}` → `{path}`.
pub fn openapi_path(registered: &str) -> String {
    let mut out = String::with_capacity(registered.len());
    let mut in_param = false;
    let mut skipping = false;
    for ch in registered.chars() {
        match ch {
            '{' => {
                in_param = true;
                out.push(ch);
            }
            ':' if in_param => skipping = true,
            '}' => {
                in_param = false;
                skipping = false;
                out.push(ch);
            }
            _ if skipping => {}
            _ => out.push(ch),
        }
    }
    out
}

fn path_params(path: &str) -> Vec<String> {
    path.split('{')
        .skip(1)
        .filter_map(|s| s.split('}').next())
        .map(str::to_owned)
        .collect()
}

fn status_text(s: u16) -> &'static str {
    match s {
        200 => "OK",
        201 => "Created",
        202 => "Accepted: goes on in the background",
        204 => "Stored",
        400 => "Bad request: a parameter or the body is malformed (the message names it)",
        401 => "Missing, unknown, revoked or expired token",
        403 => "The token's role may not do this (or four eyes: not the proposer)",
        404 => "No such thing",
        408 => "The body stopped arriving",
        409 => "Conflicts with the current state (`error` says which)",
        410 => "The case's content was destroyed by a lawful disposal",
        413 => "Larger than the limit",
        415 => "Wrong Content-Type",
        422 => "Refused with every problem listed",
        503 => "Busy: try again after Retry-After seconds",
        _ => "",
    }
}

fn content(out: Out) -> Value {
    match out {
        Out::Json(s) => {
            json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{s}")}}})
        }
        Out::Zip => {
            json!({"application/zip": {"schema": {"type": "string", "contentMediaType": "application/zip"}}})
        }
        Out::Xml => json!({"application/xml": {"schema": {"type": "string"}}}),
        Out::Document => json!({
            "application/zip": {"schema": {"type": "string"}},
            "application/xml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            "text/html": {"schema": {"type": "string"}},
        }),
        Out::Text => json!({"text/plain": {"schema": {"type": "string"}}}),
        Out::Bytes => json!({"*/*": {"schema": {"type": "string"}}}),
        Out::Empty => json!({}),
    }
}

/// The whole description.
pub fn document(version: &str) -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let path = openapi_path(op.path);
        let mut params: Vec<Value> = path_params(&path)
            .iter()
            .map(|p| {
                let ty = if p == "year" { "integer" } else { "string" };
                json!({"name": p, "in": "path", "required": true, "schema": {"type": ty}})
            })
            .collect();
        for (name, ty, desc) in op.query {
            params.push(json!({"name": name, "in": "query", "required": *name == "from" || *name == "to", "description": desc, "schema": {"type": ty}}));
        }
        let mut responses = Map::new();
        for (status, out) in op.ok {
            let mut r = json!({"description": status_text(*status)});
            let c = content(*out);
            if c.as_object().is_some_and(|o| !o.is_empty()) {
                r["content"] = c;
            }
            responses.insert(status.to_string(), r);
        }
        let mut errors: Vec<u16> = vec![400, 503];
        if !op.roles.is_empty() {
            errors.extend([401, 403]);
        }
        if !path_params(&path).is_empty() {
            errors.push(404);
        }
        errors.extend(op.errors);
        errors.sort_unstable();
        errors.dedup();
        for s in errors {
            let mut r = json!({"description": status_text(s)});
            if op.method != "head" {
                r["content"] =
                    json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
            }
            responses.insert(s.to_string(), r);
        }
        let roles = if op.roles.is_empty() {
            "No token needed.".to_string()
        } else {
            format!("Roles: {}.", op.roles.join(", "))
        };
        let mut o = json!({
            "operationId": op.id,
            "tags": [op.tag],
            "summary": op.summary,
            "description": format!("{} {roles}", op.summary),
            "x-roles": op.roles,
            "parameters": params,
            "responses": responses,
        });
        if op.roles.is_empty() {
            o["security"] = json!([]);
        } else if op.method != "get" && op.method != "head" {
            // A write needs the token, or the console's session with its CSRF token beside it.
            o["security"] = json!([{"bearer": []}, {"session": [], "csrf": []}]);
        }
        let body = match op.body {
            Body::None => None,
            Body::Json(s) => Some((
                true,
                json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{s}")}}}),
            )),
            Body::OptionalJson(s) => Some((
                false,
                json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{s}")}}}),
            )),
            Body::Zip => Some((
                true,
                json!({
                    "application/zip": {"schema": {"type": "string", "contentMediaType": "application/zip"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                }),
            )),
            Body::Bytes => Some((
                true,
                json!({"application/octet-stream": {"schema": {"type": "string"}}}),
            )),
        };
        if let Some((required, c)) = body {
            o["requestBody"] = json!({"required": required, "content": c});
        }
        let entry = paths
            .entry(format!("/api/v1{path}"))
            .or_insert_with(|| json!({}));
        entry[op.method] = o;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "guidang",
            "version": version,
            "description": "Archive for the electronic records of government-service cases. Every route answers errors as `Error`; `Accept-Language: zh` gives the messages in Chinese (codes unchanged). A signed-in console session may call the GET routes.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "tags": [
            {"name": "cases", "description": "Archiving and reading cases"},
            {"name": "evidence", "description": "Keys, the transparency log, fixity audits, the audit trail"},
            {"name": "retention", "description": "Retention rules"},
            {"name": "filing", "description": "The yearly filing"},
            {"name": "disposal", "description": "Appraisal, disposal and holds"},
            {"name": "digitised", "description": "Digitised copies of paper originals"},
            {"name": "transfer", "description": "Transfer to the archive authority, and receiving"},
            {"name": "admin", "description": "Tokens"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a token made by `guidang token create` or POST /api/v1/tokens"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::console::SESSION_COOKIE, "description": "the console's session: reads alone, writes with `X-CSRF-Token`"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token", "description": "the session's CSRF token (the console's pages carry it)"},
            },
            "schemas": schemas(),
        },
    })
}

fn schemas() -> Value {
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let string = json!({"type": "string"});
    let opt_string = json!({"type": ["string", "null"]});
    json!({
        "ProblemCode": {
            "description": "A stable problem code. The submission and QC codes are listed; lists about other things use `not_disposable`, `excluded` and `field_invalid` with `archive_id` or `field`.",
            "type": "string",
            "examples": codes,
            "x-codes": codes.iter().map(|c| json!({"code": c, "zh": Code::parse(c).map(|c| c.zh())})).collect::<Vec<_>>(),
        },
        "Problem": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"$ref": "#/components/schemas/ProblemCode"},
                "message": string,
                "message_en": string,
                "path": {"type": "string", "description": "the file it is about"},
                "field": {"type": "string", "description": "the metadata element or body field it is about"},
                "archive_id": {"type": "string"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error", "message", "problems"],
            "properties": {
                "error": {"type": "string", "description": "a stable word: unauthorized, forbidden, not_found, bad_request, request_timeout, busy, unavailable, unsupported_media_type, too_large, not_a_zip, rejected, case_exists, gone, filing_running, nothing_to_file, year_not_over, wrong_state, version_conflict, not_disposable, not_ready, year_not_filed, internal"},
                "message": {"type": "string", "description": "in Chinese when Accept-Language prefers zh"},
                "message_en": {"type": "string", "description": "the English message, beside the Chinese one"},
                "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}},
                "warnings": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}},
            },
        },
        "Object": {"type": "object"},
        "Items": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array"}}},
        "Keys": {"type": "object", "required": ["keys"], "properties": {"keys": {"type": "array", "items": {
            "type": "object", "required": ["key_id", "algorithm", "public_key"],
            "properties": {"key_id": string, "algorithm": string, "public_key": string, "created_at": string, "retired_at": opt_string},
        }}}},
        "Token": {"type": "object", "required": ["token_id", "role", "created_at"], "properties": {
            "token_id": string, "role": string, "org": opt_string, "name": opt_string, "created_at": string,
            "expires_at": opt_string, "last_used_at": opt_string, "revoked_at": opt_string, "content": {"type": "integer"},
        }},
        "TokenList": {"type": "object", "required": ["tokens"], "properties": {"tokens": {"type": "array", "items": {"$ref": "#/components/schemas/Token"}}}},
        "NewToken": {"type": "object", "required": ["role"], "additionalProperties": false, "properties": {
            "role": {"enum": ["submitter", "archivist", "auditor", "admin", "transferor"]},
            "org": {"type": "string", "description": "unified social credit code (submitter tokens need it)"},
            "name": string,
            "expires_at": {"type": "string", "description": "YYYY-MM-DD or an RFC 3339 time"},
            "content": {"type": "boolean", "description": "an auditor token that may read package content"},
        }},
        "CreatedToken": {"allOf": [{"$ref": "#/components/schemas/Token"}, {"type": "object", "required": ["token"], "properties": {"token": string}}]},
        "Revoked": {"type": "object", "required": ["token_id", "revoked"], "properties": {"token_id": string, "revoked": {"const": true}}},
        "Archived": {"type": "object", "required": ["archive_id"], "properties": {
            "archive_id": string, "warnings": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}},
        }},
        "CaseList": {"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "items": {"type": "object", "required": ["archive_id"], "properties": {"archive_id": string}}},
            "page": {"type": "integer"}, "per_page": {"type": "integer"}, "total": {"type": "integer"},
        }},
        "Case": {"type": "object", "required": ["archive_id"], "properties": {"archive_id": string}},
        "VersionAdded": {"type": "object"},
        "Audit": {"type": "object"},
        "Reason": {"type": "object", "required": ["reason"], "additionalProperties": false, "properties": {"reason": {"type": "string", "minLength": 1}}},
        "Rule": {"type": "object", "required": ["retention", "basis"], "additionalProperties": false, "properties": {
            "task_type": string, "catalog_code": string, "task_code": {"type": "string", "description": "exact, or ending in `*` for a prefix"},
            "retention": {"enum": ["Y", "D30", "D10"], "description": "Y permanent, D30 thirty years, D10 ten years"}, "basis": {"type": "string", "description": "the legal basis"},
        }},
        "RuleSet": {"type": "object", "required": ["version", "rules"], "properties": {
            "version": {"type": "integer"}, "rules": {"type": "array", "items": {"$ref": "#/components/schemas/Rule"}},
            "created_at": opt_string, "created_by": opt_string,
            "floor_years": {"type": "integer"},
            "default": {"type": "object", "properties": {"retention": string, "basis": string}},
        }},
        "RulesBody": {"type": "object", "required": ["rules"], "additionalProperties": false, "properties": {"rules": {"type": "array", "items": {"$ref": "#/components/schemas/Rule"}}}},
        "Reevaluate": {"type": "object", "additionalProperties": false, "properties": {"dry_run": {"type": "boolean"}}},
        "FilingRun": {"type": "object", "required": ["year"], "additionalProperties": false, "properties": {"year": {"type": "integer"}}},
        "Expected": {"type": "object", "additionalProperties": false, "properties": {
            "social_code": {"type": "string", "description": "the declaring organisation (a submitter: its own)"},
            "cases": {"type": "array", "items": {"type": "object", "required": ["task_code", "project_id"], "additionalProperties": false, "properties": {"task_code": string, "project_id": string}}},
            "counts": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        }},
        "Proposal": {"type": "object", "required": ["opinion", "cases"], "additionalProperties": false, "properties": {
            "opinion": {"type": "string", "description": "鉴定意见 on the list"},
            "cases": {"type": "array", "items": {"type": "object", "required": ["archive_id", "appraisal"], "additionalProperties": false, "properties": {"archive_id": string, "appraisal": string}}},
        }},
        "DisposalDecision": {"type": "object", "required": ["approve"], "additionalProperties": false, "properties": {"approve": {"type": "boolean"}, "note": string}},
        "Draft": {"type": "object", "required": ["year"], "properties": {
            "year": {"type": "integer"},
            "retention": {"type": "array", "items": string},
            "task_codes": {"type": "array", "items": string},
            "archival_code_from": string, "archival_code_to": string,
        }},
        "Decisions": {"type": "object", "additionalProperties": false, "properties": {
            "rules": {"type": "array", "items": {"type": "object"}},
            "cases": {"type": "array", "items": {"type": "object", "required": ["archive_id", "classification", "access"], "properties": {"archive_id": string}}},
        }},
        "Build": {"type": "object", "additionalProperties": false, "properties": {"volume_size": {"type": "string", "description": "25G, 4.7G, 700M or bytes (default 25G)"}}},
        "Trail": {"type": "object", "required": ["items", "chain"], "properties": {"items": {"type": "array"}, "chain": {"type": "object", "required": ["intact"]}}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_once_and_nothing_else_is() {
        let routes: std::collections::BTreeSet<(String, String)> = super::super::API_ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        let described: Vec<(String, String)> = OPERATIONS
            .iter()
            .map(|o| (o.method.to_string(), o.path.to_string()))
            .collect();
        let set: std::collections::BTreeSet<_> = described.iter().cloned().collect();
        assert_eq!(
            set.len(),
            described.len(),
            "an operation is described twice"
        );
        let missing: Vec<_> = routes.difference(&set).collect();
        let extra: Vec<_> = set.difference(&routes).collect();
        assert!(
            missing.is_empty(),
            "routes without a description: {missing:?}"
        );
        assert!(extra.is_empty(), "descriptions without a route: {extra:?}");
        let ids: std::collections::BTreeSet<_> = OPERATIONS.iter().map(|o| o.id).collect();
        assert_eq!(ids.len(), OPERATIONS.len(), "operationIds must be unique");
    }

    #[test]
    fn every_schema_referenced_exists() {
        let doc = document("test");
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "no schema {name}");
        }
        assert_eq!(
            openapi_path("/cases/{archive_id}/files/{path:.*}"),
            "/cases/{archive_id}/files/{path}"
        );
    }
}
