//! `digitisation.xml` (namespace `urn:guidang:digitisation:1`, `schemas/digitisation.xsd`): the
//! paper originals (title, page count, paper size) and, per image, its path, original and first
//! page, declared resolution, colour mode and format; the scanner, operator and date (DA/T 31
//! digitisation metadata). Every defect is a problem naming the element.

use std::collections::HashSet;

use super::image::{ColourMode, ImageFormat};
use crate::problem::{Code, Problem, Problems};

pub const PATH: &str = "digitisation.xml";
pub const NAMESPACE: &str = "urn:guidang:digitisation:1";

#[derive(Debug, Clone, serde::Serialize)]
pub struct Original {
    pub id: String,
    pub title: String,
    pub pages: u32,
    /// Paper size in millimetres (width, height), from `A4`, `A3`, … or `210x297`.
    pub paper_mm: Option<(f64, f64)>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeclaredImage {
    pub path: String,
    pub original: String,
    /// The original's page this image (or a multi-page file's first image) shows.
    pub page: u32,
    pub resolution: u32,
    pub colour_mode: ColourMode,
    pub format: ImageFormat,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Declaration {
    pub scanner: String,
    pub operator: String,
    pub date: String,
    pub originals: Vec<Original>,
    pub images: Vec<DeclaredImage>,
}

/// The largest page count accepted for one original.
const MAX_ORIGINAL_PAGES: u32 = 100_000;

pub fn paper_size(s: &str) -> Option<(f64, f64)> {
    let t = s.trim().to_ascii_uppercase();
    let named = match t.as_str() {
        "A3" => Some((297.0, 420.0)),
        "A4" => Some((210.0, 297.0)),
        "A5" => Some((148.0, 210.0)),
        "B4" => Some((250.0, 353.0)),
        "B5" => Some((176.0, 250.0)),
        "16K" => Some((195.0, 270.0)),
        "8K" => Some((270.0, 390.0)),
        "LETTER" => Some((215.9, 279.4)),
        _ => None,
    };
    named.or_else(|| {
        let (w, h) = t.split_once('X')?;
        let (w, h): (f64, f64) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
        (w >= 10.0 && h >= 10.0 && w <= 5000.0 && h <= 5000.0).then_some((w, h))
    })
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text_of(n: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    child(n, name).map(|c| c.text().unwrap_or("").trim().to_string())
}

/// Parses and checks the declaration; `None` when it cannot be used at all (problems say why).
pub fn parse(bytes: &[u8], problems: &mut Problems) -> Option<Declaration> {
    let bad = |problems: &mut Problems, code: Code, field: String, msg: String| {
        problems.push(Problem::field(code, field, msg).in_file(PATH));
    };
    if let Err(e) = crate::pipeline::xml::conformance(bytes) {
        bad(
            problems,
            Code::MetadataInvalid,
            "digitisation".into(),
            e.to_string(),
        );
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let doc = match roxmltree::Document::parse(text) {
        Ok(d) => d,
        Err(e) => {
            bad(
                problems,
                Code::MetadataInvalid,
                "digitisation".into(),
                e.to_string(),
            );
            return None;
        }
    };
    let root = doc.root_element();
    if root.tag_name().name() != "digitisation" || root.tag_name().namespace() != Some(NAMESPACE) {
        bad(
            problems,
            Code::MetadataInvalid,
            "digitisation".into(),
            format!("the root element must be <digitisation xmlns=\"{NAMESPACE}\">"),
        );
        return None;
    }
    let need =
        |problems: &mut Problems, n: roxmltree::Node<'_, '_>, at: &str, name: &str, max: usize| {
            match text_of(n, name) {
                None => {
                    bad(
                        problems,
                        Code::FieldMissing,
                        format!("{at}{name}"),
                        format!("<{name}> is required"),
                    );
                    None
                }
                Some(v) if v.is_empty() || v.chars().count() > max => {
                    bad(
                        problems,
                        Code::FieldInvalid,
                        format!("{at}{name}"),
                        format!("<{name}> must be 1 to {max} characters"),
                    );
                    None
                }
                Some(v) => Some(v),
            }
        };
    let before = problems.errors.len();
    // What the schema allows under each element: anything else is named, not ignored.
    let allowed =
        |n: roxmltree::Node<'_, '_>, at: &str, names: &[&str], problems: &mut Problems| {
            for c in n.children().filter(|c| c.is_element()) {
                let name = c.tag_name().name();
                if !names.contains(&name) || c.tag_name().namespace() != Some(NAMESPACE) {
                    bad(
                        problems,
                        Code::FieldInvalid,
                        format!("{at}{name}"),
                        format!(
                            "<{name}> is not an element of digitisation.xml here (allowed: {})",
                            names.join(", ")
                        ),
                    );
                }
            }
        };
    allowed(
        root,
        "",
        &["scanner", "operator", "date", "originals", "images"],
        problems,
    );
    if let Some(o) = child(root, "originals") {
        allowed(o, "originals/", &["original"], problems);
        for (i, x) in o
            .children()
            .filter(|c| c.is_element() && c.tag_name().name() == "original")
            .enumerate()
        {
            allowed(
                x,
                &format!("originals/original[{}]/", i + 1),
                &["id", "title", "pages", "paper"],
                problems,
            );
        }
    }
    if let Some(o) = child(root, "images") {
        allowed(o, "images/", &["image"], problems);
        for (i, x) in o
            .children()
            .filter(|c| c.is_element() && c.tag_name().name() == "image")
            .enumerate()
        {
            allowed(
                x,
                &format!("images/image[{}]/", i + 1),
                &[
                    "path",
                    "original",
                    "page",
                    "resolution",
                    "colour_mode",
                    "format",
                    "sha256",
                ],
                problems,
            );
        }
    }
    let scanner = need(problems, root, "", "scanner", 200);
    let operator = need(problems, root, "", "operator", 100);
    let date = need(problems, root, "", "date", 10);
    if let Some(d) = &date
        && chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err()
    {
        bad(
            problems,
            Code::FieldInvalid,
            "date".into(),
            format!("{d:?} is not a date YYYY-MM-DD"),
        );
    }
    let mut originals = Vec::new();
    let mut ids = HashSet::new();
    let listed: Vec<roxmltree::Node<'_, '_>> = child(root, "originals")
        .map(|o| {
            o.children()
                .filter(|c| c.is_element() && c.tag_name().name() == "original")
                .collect()
        })
        .unwrap_or_default();
    if listed.is_empty() {
        bad(
            problems,
            Code::FieldMissing,
            "originals".into(),
            "at least one <original> is required".into(),
        );
    }
    for (i, o) in listed.iter().enumerate() {
        let at = format!("originals/original[{}]/", i + 1);
        let id = need(problems, *o, &at, "id", 64);
        let title = need(problems, *o, &at, "title", 500);
        let pages = need(problems, *o, &at, "pages", 6).and_then(|p| match p.parse::<u32>() {
            Ok(n) if (1..=MAX_ORIGINAL_PAGES).contains(&n) => Some(n),
            _ => {
                bad(
                    problems,
                    Code::FieldInvalid,
                    format!("{at}pages"),
                    format!("{p:?} is not a page count 1..{MAX_ORIGINAL_PAGES}"),
                );
                None
            }
        });
        let paper_mm = match text_of(*o, "paper") {
            None => None,
            Some(p) => match paper_size(&p) {
                Some(mm) => Some(mm),
                None => {
                    bad(
                        problems,
                        Code::FieldInvalid,
                        format!("{at}paper"),
                        format!(
                            "{p:?} is not a paper size (A3, A4, A5, B4, B5, 16K, 8K, Letter or WIDTHxHEIGHT in mm)"
                        ),
                    );
                    None
                }
            },
        };
        if let Some(id) = &id
            && !ids.insert(id.clone())
        {
            bad(
                problems,
                Code::FieldInvalid,
                format!("{at}id"),
                format!("original {id:?} is declared twice"),
            );
        }
        if let (Some(id), Some(title), Some(pages)) = (id, title, pages) {
            originals.push(Original {
                id,
                title,
                pages,
                paper_mm,
            });
        }
    }
    let mut images = Vec::new();
    let listed: Vec<roxmltree::Node<'_, '_>> = child(root, "images")
        .map(|o| {
            o.children()
                .filter(|c| c.is_element() && c.tag_name().name() == "image")
                .collect()
        })
        .unwrap_or_default();
    if listed.is_empty() {
        bad(
            problems,
            Code::FieldMissing,
            "images".into(),
            "at least one <image> is required".into(),
        );
    }
    let mut paths = HashSet::new();
    for (i, n) in listed.iter().enumerate() {
        let at = format!("images/image[{}]/", i + 1);
        let path = need(problems, *n, &at, "path", 1024).and_then(|p| {
            match crate::pipeline::unpack::safe_name(&p) {
                Ok(p) if p != PATH => Some(p),
                Ok(_) => {
                    bad(
                        problems,
                        Code::FieldInvalid,
                        format!("{at}path"),
                        "an image cannot be digitisation.xml".into(),
                    );
                    None
                }
                Err(why) => {
                    bad(
                        problems,
                        Code::UnsafePath,
                        format!("{at}path"),
                        format!("{p:?}: {why}"),
                    );
                    None
                }
            }
        });
        if let Some(p) = &path
            && !paths.insert(p.clone())
        {
            bad(
                problems,
                Code::FieldInvalid,
                format!("{at}path"),
                format!("{p} is listed twice"),
            );
        }
        let original = need(problems, *n, &at, "original", 64);
        if let Some(o) = &original
            && !ids.contains(o)
        {
            bad(
                problems,
                Code::FieldInvalid,
                format!("{at}original"),
                format!("no <original> has id {o:?}"),
            );
        }
        let num = |problems: &mut Problems, name: &str, v: Option<String>, max: u32| {
            v.and_then(|v| match v.parse::<u32>() {
                Ok(x) if (1..=max).contains(&x) => Some(x),
                _ => {
                    bad(
                        problems,
                        Code::FieldInvalid,
                        format!("{at}{name}"),
                        format!("{v:?} is not a whole number 1..{max}"),
                    );
                    None
                }
            })
        };
        let v = need(problems, *n, &at, "page", 6);
        let page = num(problems, "page", v, MAX_ORIGINAL_PAGES);
        let v = need(problems, *n, &at, "resolution", 5);
        let resolution = num(problems, "resolution", v, 10_000);
        let colour_mode = need(problems, *n, &at, "colour_mode", 16).and_then(|v| {
            ColourMode::parse(&v).or_else(|| {
                bad(
                    problems,
                    Code::FieldInvalid,
                    format!("{at}colour_mode"),
                    format!("{v:?} is not bitonal, gray or color"),
                );
                None
            })
        });
        let format = need(problems, *n, &at, "format", 16).and_then(|v| {
            ImageFormat::parse(&v).or_else(|| {
                bad(
                    problems,
                    Code::FieldInvalid,
                    format!("{at}format"),
                    format!("{v:?} is not tiff, jpeg, jp2, pdf or ofd"),
                );
                None
            })
        });
        let sha256 = text_of(*n, "sha256").map(|s| s.to_ascii_lowercase());
        if let Some(s) = &sha256
            && (s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()))
        {
            bad(
                problems,
                Code::FieldInvalid,
                format!("{at}sha256"),
                "64 hexadecimal characters".into(),
            );
        }
        if let (
            Some(path),
            Some(original),
            Some(page),
            Some(resolution),
            Some(colour_mode),
            Some(format),
        ) = (path, original, page, resolution, colour_mode, format)
        {
            images.push(DeclaredImage {
                path,
                original,
                page,
                resolution,
                colour_mode,
                format,
                sha256,
            });
        }
    }
    if problems.errors.len() > before {
        return None;
    }
    Some(Declaration {
        scanner: scanner?,
        operator: operator?,
        date: date?,
        originals,
        images,
    })
}
