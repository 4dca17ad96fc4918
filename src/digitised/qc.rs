//! Quality control of a scan batch against its declaration (DA/T 31-2017): resolution from the
//! file (or from pixels over the declared paper, which also exposes a resolution tag that lies),
//! colour mode, one format per batch, every page of every original scanned once and only once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::declaration::{Declaration, DeclaredImage};
use super::image::{ColourMode, ImageFacts, ImageFormat};
use crate::config::DigitisationSettings;
use crate::problem::{Code, Problem, Problems};

/// A declared image as read: its digest and, if it could be read, its facts.
pub struct Scanned<'a> {
    pub declared: &'a DeclaredImage,
    pub sha256: String,
    pub facts: Option<ImageFacts>,
}

/// What QC measured for one image file, recorded in archive.xml.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measured {
    pub path: String,
    pub original: String,
    pub first_page: u32,
    pub pages: u32,
    pub format: ImageFormat,
    pub colour_mode: ColourMode,
    /// The lowest effective resolution over the file's pages.
    pub dpi: Option<u32>,
    pub width_px: u32,
    pub height_px: u32,
}

fn pages_list(v: &[u32]) -> String {
    let mut s: Vec<String> = v.iter().take(10).map(|p| p.to_string()).collect();
    if v.len() > 10 {
        s.push(format!("… ({} in all)", v.len()));
    }
    s.join(", ")
}

fn differs(a: f64, b: f64, tolerance_percent: u32) -> bool {
    (a - b).abs() > b.max(1.0) * tolerance_percent as f64 / 100.0
}

pub fn check(
    decl: &Declaration,
    scans: &[Scanned<'_>],
    cfg: &DigitisationSettings,
    problems: &mut Problems,
) -> Vec<Measured> {
    let originals: HashMap<&str, &super::declaration::Original> =
        decl.originals.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut measured = Vec::new();
    // One batch, one format (DA/T 31): the first image's format is the batch's.
    let mut batch_format: Option<ImageFormat> = None;
    let mut coverage: BTreeMap<&str, BTreeMap<u32, Vec<&str>>> = BTreeMap::new();
    let mut by_digest: HashMap<&str, &str> = HashMap::new();
    for s in scans {
        let d = s.declared;
        let path = d.path.as_str();
        if let Some(first) = by_digest.insert(s.sha256.as_str(), path) {
            problems.push(Problem::file(
                Code::PageDuplicate,
                path,
                format!("the same bytes as {first}: one page scanned twice"),
            ));
            by_digest.insert(s.sha256.as_str(), first);
        }
        let Some(facts) = &s.facts else { continue };
        if !cfg.formats.iter().any(|f| f == facts.format.as_str()) {
            problems.push(Problem::file(
                Code::FormatNotAllowed,
                path,
                format!(
                    "{} is not among the formats configured for scans ({})",
                    facts.format.as_str(),
                    cfg.formats.join(", ")
                ),
            ));
        }
        match batch_format {
            None => batch_format = Some(facts.format),
            Some(b) if b != facts.format => problems.push(Problem::file(
                Code::MixedFormats,
                path,
                format!(
                    "{} in a batch of {}: one batch uses one format",
                    facts.format.as_str(),
                    b.as_str()
                ),
            )),
            _ => {}
        }
        let original = originals.get(d.original.as_str());
        let paper = original.and_then(|o| o.paper_mm);
        let mut low = Vec::new();
        let mut unknown = Vec::new();
        let mut lying = Vec::new();
        let mut declared_off = Vec::new();
        let mut modes = Vec::new();
        let mut min_dpi: Option<f64> = None;
        for (i, p) in facts.pages.iter().enumerate() {
            let n = d.page + i as u32;
            let recorded = p.recorded_dpi();
            let physical = paper.and_then(|mm| p.dpi_over(mm));
            let effective = match (recorded, physical) {
                (Some(r), Some(ph)) if differs(r, ph, cfg.tolerance_percent.max(10)) => {
                    lying.push((n, r, ph));
                    Some(ph)
                }
                (Some(r), _) => Some(r),
                (None, ph) => ph,
            };
            match effective {
                None => unknown.push(n),
                Some(e) => {
                    min_dpi = Some(min_dpi.map_or(e, |m: f64| m.min(e)));
                    if e + 0.5 < cfg.min_dpi as f64 {
                        low.push((n, e));
                    }
                    if differs(e, d.resolution as f64, cfg.tolerance_percent) {
                        declared_off.push((n, e));
                    }
                }
            }
            if p.mode != d.colour_mode {
                modes.push((n, p.mode));
            }
        }
        if !low.is_empty() {
            let worst = low.iter().map(|(_, e)| *e).fold(f64::MAX, f64::min);
            let pages: Vec<u32> = low.iter().map(|(n, _)| *n).collect();
            problems.push(Problem::file(
                Code::ResolutionTooLow,
                path,
                format!(
                    "page {}: {:.0} dpi, below the minimum of {} dpi",
                    pages_list(&pages),
                    worst,
                    cfg.min_dpi
                ),
            ));
        }
        if !unknown.is_empty() {
            problems.push(Problem::file(
                Code::ResolutionUnknown,
                path,
                format!(
                    "page {}: the file records no resolution and the original declares no <paper> size, so the resolution cannot be established",
                    pages_list(&unknown)
                ),
            ));
        }
        if let Some((n, r, ph)) = lying.first() {
            let p = &facts.pages[(n - d.page) as usize];
            let mm = paper.unwrap_or_default();
            problems.push(Problem::file(
                Code::DeclarationMismatch,
                path,
                format!(
                    "page {n}: the file's resolution tag says {r:.0} dpi, but {}×{} pixels over the declared {:.0}×{:.0} mm paper are {ph:.0} dpi{}",
                    p.width_px,
                    p.height_px,
                    mm.0,
                    mm.1,
                    if lying.len() > 1 { format!(" ({} pages so)", lying.len()) } else { String::new() }
                ),
            ));
        } else if let Some((n, e)) = declared_off.first() {
            problems.push(Problem::file(
                Code::DeclarationMismatch,
                path,
                format!(
                    "page {n}: declared {} dpi, the image is {e:.0} dpi{}",
                    d.resolution,
                    if declared_off.len() > 1 {
                        format!(" ({} pages so)", declared_off.len())
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        if !lying.is_empty()
            && !declared_off.is_empty()
            && lying.first().map(|l| l.0) != declared_off.first().map(|x| x.0)
        {
            // Both kinds on different pages: the second is worth its own line too.
            let (n, e) = declared_off[0];
            problems.push(Problem::file(
                Code::DeclarationMismatch,
                path,
                format!(
                    "page {n}: declared {} dpi, the image is {e:.0} dpi",
                    d.resolution
                ),
            ));
        }
        if let Some((n, m)) = modes.first() {
            problems.push(Problem::file(
                Code::ColourModeMismatch,
                path,
                format!(
                    "page {n}: declared {}, the image is {}{}",
                    d.colour_mode.as_str(),
                    m.as_str(),
                    if modes.len() > 1 {
                        format!(" ({} pages so)", modes.len())
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        let count = facts.pages.len() as u32;
        if let Some(o) = original {
            let cov = coverage.entry(o.id.as_str()).or_default();
            for n in d.page..d.page + count {
                cov.entry(n).or_default().push(path);
            }
        }
        let first = &facts.pages[0];
        measured.push(Measured {
            path: d.path.clone(),
            original: d.original.clone(),
            first_page: d.page,
            pages: count,
            format: facts.format,
            colour_mode: first.mode,
            dpi: min_dpi.map(|v| v.round() as u32),
            width_px: first.width_px,
            height_px: first.height_px,
        });
    }
    // Every page of every original once. An original with an image that could not be read (its
    // problem is listed already) is not also reported for pages: how many that file holds is
    // unknown.
    let unread: BTreeSet<&str> = scans
        .iter()
        .filter(|s| s.facts.is_none())
        .map(|s| s.declared.original.as_str())
        .collect();
    for o in decl
        .originals
        .iter()
        .filter(|o| !unread.contains(o.id.as_str()))
    {
        let cov = coverage.remove(o.id.as_str()).unwrap_or_default();
        let missing: Vec<u32> = (1..=o.pages).filter(|n| !cov.contains_key(n)).collect();
        if !missing.is_empty() {
            problems.push(Problem::field(
                Code::PageMissing,
                format!("original {}", o.id),
                format!(
                    "page {} of {} ({}) not scanned",
                    pages_list(&missing),
                    o.pages,
                    o.title
                ),
            ));
        }
        let mut reported = BTreeSet::new();
        for (n, paths) in &cov {
            if paths.len() > 1 && reported.insert(paths[1]) {
                problems.push(Problem::file(
                    Code::PageDuplicate,
                    paths[1],
                    format!("page {n} of {} is also in {}", o.id, paths[0]),
                ));
            }
            if *n > o.pages && reported.insert(paths[0]) {
                problems.push(Problem::file(
                    Code::DeclarationMismatch,
                    paths[0],
                    format!(
                        "holds page {n}, but original {} has {} pages",
                        o.id, o.pages
                    ),
                ));
            }
        }
    }
    measured
}
