//! Issue 9, item 11: the service's verdict on `metadata.xml` and xmllint's against
//! `schemas/case.xsd` agree, on a corpus of variants generated from the valid fixture (element
//! order, unknown and repeated elements, lengths, patterns, vocabularies, namespaces, attributes,
//! text where only elements belong). A disagreement prints the variant.

use crate::common::*;
use guidang::problem::Problems;

fn base() -> String {
    String::from_utf8(std::fs::read(fixtures().join("valid/food-licence/metadata.xml")).unwrap())
        .unwrap()
}

/// The whole element `<name>…</name>` on one line of the fixture, first occurrence.
fn element(doc: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let i = doc
        .find(&open)
        .unwrap_or_else(|| panic!("{name} in fixture"));
    let j = doc[i..].find(&close).unwrap() + i + close.len();
    doc[i..j].to_string()
}

fn set_text(doc: &str, name: &str, value: &str) -> String {
    doc.replacen(&element(doc, name), &format!("<{name}>{value}</{name}>"), 1)
}

/// Root-level simple elements in schema order, with the longest value each may have.
const ROOT: &[(&str, Option<usize>)] = &[
    ("project_id", Some(64)),
    ("task_code", Some(36)),
    ("catalog_code", Some(36)),
    ("task_name", Some(200)),
    ("task_type", None),
    ("project_name", Some(500)),
    ("region_code", None),
    ("lead_department", Some(200)),
    ("social_code", None),
    ("apply_name", Some(200)),
    ("apply_type", None),
    ("apply_card_type", Some(32)),
    ("apply_card_no", Some(64)),
    ("receive_time", None),
    ("transact_time", None),
    ("result", None),
    ("result_code", Some(64)),
    ("security_classification", None),
    ("retention_period", None),
];

fn variants() -> Vec<(String, String)> {
    let doc = base();
    let mut v: Vec<(String, String)> = vec![("unchanged".into(), doc.clone())];
    let mut add = |label: String, d: String| v.push((label, d));
    for (i, (name, max)) in ROOT.iter().enumerate() {
        let el = element(&doc, name);
        add(format!("{name} removed"), doc.replacen(&el, "", 1));
        add(
            format!("{name} twice"),
            doc.replacen(&el, &format!("{el}{el}"), 1),
        );
        add(
            format!("unknown element before {name}"),
            doc.replacen(&el, &format!("<remark>x</remark>{el}"), 1),
        );
        add(format!("{name} empty"), set_text(&doc, name, ""));
        add(format!("{name} blank"), set_text(&doc, name, "  \n "));
        add(
            format!("{name} with an attribute"),
            doc.replacen(&format!("<{name}>"), &format!("<{name} note=\"1\">"), 1),
        );
        add(
            format!("{name} holding an element"),
            set_text(&doc, name, "<b>x</b>"),
        );
        add(
            format!("{name} in another namespace"),
            doc.replacen(
                &el,
                &el.replacen(
                    &format!("<{name}>"),
                    &format!("<o:{name} xmlns:o=\"urn:other\">"),
                    1,
                )
                .replacen(&format!("</{name}>"), &format!("</o:{name}>"), 1),
                1,
            ),
        );
        let inner = &el[name.len() + 2..el.len() - name.len() - 3];
        add(
            format!("{name} padded with whitespace"),
            set_text(&doc, name, &format!("\n   {inner}  \n")),
        );
        if let Some(next) = ROOT.get(i + 1) {
            let other = element(&doc, next.0);
            let swapped = doc
                .replacen(&el, "\u{0}", 1)
                .replacen(&other, &el, 1)
                .replacen('\u{0}', &other, 1);
            add(format!("{name} and {} swapped", next.0), swapped);
        }
        if let Some(max) = max {
            add(
                format!("{name} at its longest"),
                set_text(&doc, name, &"档".repeat(*max)),
            );
            add(
                format!("{name} one character too long"),
                set_text(&doc, name, &"档".repeat(max + 1)),
            );
        }
    }
    add(
        "task_name of 5,000 characters".into(),
        set_text(&doc, "task_name", &"食".repeat(5000)),
    );
    for (name, bad) in [
        ("task_type", "xk"),
        ("task_type", "XX"),
        ("apply_type", "company"),
        ("result", "Approved"),
        ("security_classification", "top"),
        ("retention_period", "D20"),
        ("region_code", "37010"),
        ("region_code", "37010A"),
        ("social_code", "11370102mb2854637k"),
        ("social_code", "11370102MB2854637"),
        ("social_code", "1137010ZMB2854637K"),
        ("social_code", "11370102MB2854637I"),
        ("receive_time", "2025-03-03T09:15:00"),
        ("receive_time", "2025-03-03 09:15:00+08:00"),
        ("receive_time", "2025-03-03T25:15:00+08:00"),
        ("receive_time", "2025-02-30T09:15:00+08:00"),
        ("receive_time", "2025-03-03T09:15:00+8:00"),
        ("receive_time", "2025-3-3T09:15:00+08:00"),
        ("receive_time", "2025-03-03T09:15:00.+08:00"),
    ] {
        add(format!("{name} = {bad:?}"), set_text(&doc, name, bad));
    }
    for (name, good) in [
        ("receive_time", "2025-03-03T09:15:00Z"),
        ("receive_time", "2025-03-03T09:15:00.250+08:00"),
        ("task_type", " GG "),
        ("result_code", "A  B"),
    ] {
        add(format!("{name} = {good:?}"), set_text(&doc, name, good));
    }
    // Inside the repeated parts.
    let step = element(&doc, "step");
    let file = element(&doc, "file");
    let partner = element(&doc, "partner");
    let license = element(&doc, "license");
    add(
        "a step twice".into(),
        doc.replacen(&step, &format!("{step}{step}"), 1),
    );
    add("no step".into(), {
        let mut d = doc.clone();
        while let Some(i) = d.find("<step>") {
            let j = d[i..].find("</step>").unwrap() + i + 7;
            d.replace_range(i..j, "");
        }
        d
    });
    add(
        "step code and time swapped".into(),
        doc.replacen(
            &step,
            &step
                .replacen("<code>1</code>", "\u{0}", 1)
                .replacen(
                    "<time>2025-03-03T09:15:00+08:00</time>",
                    "<code>1</code>",
                    1,
                )
                .replacen('\u{0}', "<time>2025-03-03T09:15:00+08:00</time>", 1),
            1,
        ),
    );
    add(
        "step code 5".into(),
        doc.replacen("<code>1</code>", "<code>5</code>", 1),
    );
    add(
        "opinion of 4,000 characters".into(),
        doc.replacen("材料齐全", &"意".repeat(4000), 1),
    );
    add(
        "opinion of 4,001 characters".into(),
        doc.replacen("材料齐全", &"意".repeat(4001), 1),
    );
    add("empty opinion".into(), doc.replacen("材料齐全", "", 1));
    add(
        "text inside <process>".into(),
        doc.replacen("<process>", "<process>note", 1),
    );
    add(
        "file sha256 of 63 characters".into(),
        doc.replacen(
            "dfb8733dd1274f8839adca2184a0dd4e1a422f570c0e4eec1dd895e486b61120",
            "dfb8733dd1274f8839adca2184a0dd4e1a422f570c0e4eec1dd895e486b6112",
            1,
        ),
    );
    add(
        "file stage 13".into(),
        doc.replacen(
            &file,
            &file.replacen("<stage>1</stage>", "<stage>13</stage>", 1),
            1,
        ),
    );
    add(
        "file without format".into(),
        doc.replacen(&file, &file.replacen("<format>pdf</format>", "", 1), 1),
    );
    add(
        "file with an unknown element".into(),
        doc.replacen(
            &file,
            &file.replacen("<format>", "<size>1</size><format>", 1),
            1,
        ),
    );
    add(
        "file path outside files/".into(),
        doc.replacen(
            "<path>files/01-食品经营许可申请书.pdf</path>",
            "<path>01-食品经营许可申请书.pdf</path>",
            1,
        ),
    );
    add(
        "partner without project_id".into(),
        doc.replacen(
            &partner,
            &partner.replacen("<project_id>MR-370102-2025-7781</project_id>", "", 1),
            1,
        ),
    );
    add("partners empty".into(), doc.replacen(&partner, "", 1));
    add("licenses empty".into(), doc.replacen(&license, "", 1));
    add(
        "licence with its related item".into(),
        doc.replacen(
            "<status>valid</status>",
            "<related_item>11370102MB2854637Q4370117001000</related_item><status>valid</status>",
            1,
        ),
    );
    add(
        "licence related item after status".into(),
        doc.replacen(
            "<status>valid</status>",
            "<status>valid</status><related_item>11370102MB2854637Q4370117001000</related_item>",
            1,
        ),
    );
    add(
        "licence issue date with an offset".into(),
        doc.replacen(
            "<issue_date>2025-03-18</issue_date>",
            "<issue_date>2025-03-18+08:00</issue_date>",
            1,
        ),
    );
    add(
        "licence identifier lower case".into(),
        doc.replacen(".001.S</identifier>", ".001.s</identifier>", 1),
    );
    add(
        "licence valid_from and valid_to swapped".into(),
        doc.replacen("<valid_from>2025-03-18</valid_from>", "\u{0}", 1)
            .replacen(
                "<valid_to>2030-03-17</valid_to>",
                "<valid_from>2025-03-18</valid_from>",
                1,
            )
            .replacen('\u{0}', "<valid_to>2030-03-17</valid_to>", 1),
    );
    add(
        "an unknown attribute on case".into(),
        doc.replacen("version=\"1\"", "version=\"1\" lang=\"zh\"", 1),
    );
    add(
        "root in another namespace".into(),
        doc.replacen("urn:guidang:case:1", "urn:guidang:case:2", 1),
    );
    v
}

fn service_accepts(doc: &str) -> (bool, Vec<String>) {
    let mut problems = Problems::default();
    let m = guidang::pipeline::describe::describe(doc.as_bytes(), true, &mut problems);
    let msgs = problems
        .errors
        .iter()
        .map(|p| format!("{} {:?}: {}", p.code.as_str(), p.field, p.message))
        .collect();
    (m.is_some() && problems.errors.is_empty(), msgs)
}

#[test]
fn the_service_and_xmllint_agree_on_every_variant() {
    let corpus = variants();
    assert!(corpus.len() > 200, "{} variants", corpus.len());
    let dir = tempfile::tempdir().unwrap();
    let mut paths = vec![];
    for (i, (_, doc)) in corpus.iter().enumerate() {
        let p = dir.path().join(format!("v{i:04}.xml"));
        std::fs::write(&p, doc).unwrap();
        paths.push(p);
    }
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(fixtures().join("../schemas/case.xsd"))
        .args(&paths)
        .output()
        .expect("xmllint (libxml2-utils, installed by scripts/test.sh)");
    let report = String::from_utf8_lossy(&out.stderr).to_string();
    let mut disagreements = vec![];
    let (mut accepted, mut refused) = (0, 0);
    for (i, (label, doc)) in corpus.iter().enumerate() {
        let name = paths[i].display().to_string();
        let xmllint_ok = report.contains(&format!("{name} validates"));
        assert!(
            xmllint_ok || report.contains(&format!("{name} fails to validate")),
            "no verdict for {label}: {report}"
        );
        let (ours, why) = service_accepts(doc);
        if ours {
            accepted += 1;
        } else {
            refused += 1;
        }
        if ours != xmllint_ok {
            let lint: Vec<&str> = report.lines().filter(|l| l.starts_with(&name)).collect();
            disagreements.push(format!(
                "{label}: service {}, xmllint {}\n  service: {why:?}\n  xmllint: {lint:?}",
                if ours { "accepts" } else { "refuses" },
                if xmllint_ok { "accepts" } else { "refuses" },
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} variants disagree:\n{}",
        disagreements.len(),
        corpus.len(),
        disagreements.join("\n")
    );
    // Both verdicts occur, so agreement means something.
    assert!(
        accepted > 20 && refused > 150,
        "{accepted} accepted, {refused} refused"
    );
}

/// Through HTTP: what the schema refuses is not archived, and the problem names the element.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_violations_are_refused_naming_the_element() {
    let app = TestApp::spawn().await;
    let doc = base();
    for (label, edited, field) in [
        (
            "two project ids",
            doc.replacen(
                "<project_id>370102-SPJY-20250303-0001</project_id>",
                "<project_id>370102-SPJY-20250303-0001</project_id><project_id>OTHER</project_id>",
                1,
            ),
            "project_id",
        ),
        (
            "an unknown element",
            doc.replacen("<result>", "<remark>x</remark><result>", 1),
            "remark",
        ),
        (
            "swapped elements",
            doc.replacen(
                "<task_name>食品经营许可</task_name>\n  <task_type>XK</task_type>",
                "<task_type>XK</task_type>\n  <task_name>食品经营许可</task_name>",
                1,
            ),
            "task_type",
        ),
        (
            "a 5,000-character task name",
            set_text(&doc, "task_name", &"食".repeat(5000)),
            "task_name",
        ),
    ] {
        let body = valid_with_metadata(|_| edited.clone());
        let (s, b) = app.submit(&app.archivist, body).await;
        assert_eq!(s, 422, "{label}: {b}");
        assert!(
            b["problems"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["field"] == field),
            "{label}: {b}"
        );
    }
    assert!(app.stored_packages().is_empty());
}
