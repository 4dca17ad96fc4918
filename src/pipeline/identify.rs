//! Identify: every file's format from its content (magic bytes and structure), never its name,
//! and the format policy of DOMAIN.md §5 applied to it.
//!
//! Identification happens in two places, neither of which re-reads a whole file:
//! - [`Sniffer`] sees every byte once, as the digest pass streams the file into the package
//!   (head bytes, PDF `/Encrypt` in any trailer or cross-reference stream, text validity);
//! - [`inspect_container`] opens ZIP- and OLE-based files *as stored* in the package being
//!   built and reads only their directories and a few small members.

use std::collections::BTreeMap;
use std::io::{Read, Seek};

use memchr::memmem;
use serde::Serialize;

use crate::problem::{Code, Problem, Problems};

pub use crate::config::Action;

/// The effective format policy: the defaults of the format policy overlaid with the configured table.
pub fn policy(configured: &BTreeMap<String, Action>) -> BTreeMap<String, Action> {
    let mut p = default_policy();
    p.extend(configured.iter().map(|(k, v)| (k.clone(), *v)));
    p
}

pub fn default_policy() -> BTreeMap<String, Action> {
    let mut p = BTreeMap::new();
    for f in [
        "pdf", "ofd", "xml", "txt", "jpeg", "jp2", "tiff", "png", "wav", "mp3", "mp4",
    ] {
        p.insert(f.to_string(), Action::Accept);
    }
    for f in ["docx", "xlsx", "pptx", "odt", "ods", "odp", "rtf"] {
        p.insert(f.to_string(), Action::Warn);
    }
    for f in ["doc", "xls", "ppt", "ole", "wps", "caj", "rar", "exe"] {
        p.insert(f.to_string(), Action::ProprietaryFormat);
    }
    for f in ["zip", "7z", "tar", "gzip", "bzip2", "xz", "zstd", "cab"] {
        p.insert(f.to_string(), Action::ArchiveContainer);
    }
    p
}

/// Canonical format id for a declared format name (case systems write `jpg`, `PDF`, `tif`…).
pub fn canonical_format(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    match n.as_str() {
        "jpg" | "jpe" => "jpeg".into(),
        "tif" => "tiff".into(),
        "text" | "plain" => "txt".into(),
        "j2k" | "jpx" | "jpf" | "jpeg2000" => "jp2".into(),
        "m4v" | "m4a" => "mp4".into(),
        "gz" | "tgz" => "gzip".into(),
        "bz2" => "bzip2".into(),
        "zst" => "zstd".into(),
        "et" | "dps" => "wps".into(),
        "dll" | "elf" => "exe".into(),
        _ => n,
    }
}

/// Format implied by a file name's extension, if the extension is one we know.
pub fn format_of_extension(path: &str) -> Option<String> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let (_, ext) = file.rsplit_once('.')?;
    let f = canonical_format(ext);
    let known = default_policy().contains_key(&f) || f == "ofd";
    known.then_some(f)
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Identification {
    /// Format id (`pdf`, `ofd`, `docx`…) or `unknown`.
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub mime: String,
    /// Set when the content is encrypted: why we say so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<String>,
    /// Extra facts worth recording (PDF/A part, text encoding…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Structural defects worth a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defect: Option<String>,
    /// The file carries electronic signatures or seals (OFD `Signatures.xml`, a PDF signature's
    /// `/ByteRange`): recorded, their validity not checked.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub signed: bool,
}

pub use crate::codes::pronom;

fn ident(format: &str, mime: &str) -> Identification {
    Identification {
        format: format.into(),
        mime: mime.into(),
        ..Default::default()
    }
}

const HEAD: usize = 64 * 1024;
const TAIL: usize = 1024;
const CARRY: usize = 64;

/// Streaming observer of one file's bytes.
pub struct Sniffer {
    head: Vec<u8>,
    tail: Vec<u8>,
    total: u64,
    pdf: Option<PdfScan>,
    text: TextScan,
}

struct PdfScan {
    window: Vec<u8>,
    carry: Vec<u8>,
    base: u64,
    counted_until: u64,
    encrypt_at: Option<u64>,
    pdfa_part: Option<String>,
    /// `A`, `B` or `U` (PDF/A's conformance level), which PRONOM tells apart.
    pdfa_conformance: Option<String>,
    /// A signature dictionary's `/ByteRange` was seen.
    signed: bool,
}

const BYTERANGE: &[u8] = b"/ByteRange";
const PDFACONF: &[u8] = b"pdfaid:conformance";
const ENCRYPT: &[u8] = b"/Encrypt";
const PDFAID: &[u8] = b"pdfaid:part";

impl PdfScan {
    fn new() -> Self {
        PdfScan {
            window: Vec::with_capacity(256 * 1024 + CARRY),
            carry: Vec::new(),
            base: 0,
            counted_until: 0,
            encrypt_at: None,
            pdfa_part: None,
            pdfa_conformance: None,
            signed: false,
        }
    }

    fn feed(&mut self, chunk: &[u8], last: bool) {
        self.window.clear();
        self.window.extend_from_slice(&self.carry);
        self.window.extend_from_slice(chunk);
        let w = &self.window;
        if self.encrypt_at.is_none() {
            for p in memmem::find_iter(w, ENCRYPT) {
                let abs = self.base + p as u64;
                if abs < self.counted_until {
                    continue;
                }
                if !last && p + CARRY > w.len() {
                    break; // decided when the next chunk arrives
                }
                self.counted_until = abs + 1;
                if encrypt_key_with_value(&w[p + ENCRYPT.len()..]) {
                    self.encrypt_at = Some(abs);
                    break;
                }
            }
        }
        if !self.signed {
            self.signed = memmem::find(w, BYTERANGE).is_some();
        }
        if self.pdfa_conformance.is_none()
            && let Some(p) = memmem::find(w, PDFACONF)
            && (last || p + CARRY <= w.len())
        {
            let v: String = w[p + PDFACONF.len()..]
                .iter()
                .skip_while(|c| matches!(c, b'=' | b'"' | b'\'' | b'>' | b' '))
                .take_while(|c| matches!(c, b'A' | b'B' | b'U' | b'a' | b'b' | b'u'))
                .take(1)
                .map(|&c| (c as char).to_ascii_uppercase())
                .collect();
            self.pdfa_conformance = (!v.is_empty()).then_some(v);
        }
        if self.pdfa_part.is_none()
            && let Some(p) = memmem::find(w, PDFAID)
            && (last || p + CARRY <= w.len())
        {
            self.pdfa_part = pdfa_value(&w[p + PDFAID.len()..]);
        }
        let keep = w.len().min(CARRY);
        self.base += (w.len() - keep) as u64;
        self.carry = w[w.len() - keep..].to_vec();
    }
}

/// PDF whitespace and delimiters (ISO 32000 7.2.2): what ends a token.
pub fn is_pdf_delim(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t'
            | b'\r'
            | b'\n'
            | b'\x0c'
            | b'\0'
            | b'/'
            | b'<'
            | b'>'
            | b'['
            | b']'
            | b'('
            | b')'
            | b'{'
            | b'}'
            | b'%'
    )
}

/// After the name `/Encrypt`: the name must end there (not `/EncryptMetadata`) and its value must
/// be an indirect reference `N G R` or a direct dictionary, as in a trailer or a cross-reference
/// stream dictionary. Text that merely mentions the word does not count.
fn encrypt_key_with_value(after: &[u8]) -> bool {
    let Some(&first) = after.first() else {
        return false;
    };
    if !is_pdf_delim(first) {
        return false;
    }
    let s = after
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(after.len());
    let rest = &after[s..];
    if rest.starts_with(b"<<") {
        return true;
    }
    let mut i = 0;
    let mut parts = 0;
    while parts < 2 {
        let start = i;
        while i < rest.len() && rest[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
        let ws = i;
        while i < rest.len() && rest[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == ws {
            return false;
        }
        parts += 1;
    }
    rest.get(i) == Some(&b'R')
}

fn pdfa_value(after: &[u8]) -> Option<String> {
    let v: Vec<u8> = after
        .iter()
        .skip_while(|c| matches!(c, b'=' | b'"' | b'\'' | b'>' | b' '))
        .take_while(|c| c.is_ascii_digit())
        .copied()
        .collect();
    (!v.is_empty()).then(|| String::from_utf8_lossy(&v).into_owned())
}

/// Streaming check that a file is text: UTF-8 (or else GB 18030) without binary control bytes.
/// Both encodings are validated side by side by byte-level state machines, without decoding.
struct TextScan {
    alive: bool,
    utf8_ok: bool,
    /// Bytes of an incomplete UTF-8 sequence at the end of the previous chunk.
    utf8_carry: Vec<u8>,
    gb_ok: bool,
    /// GB 18030 position inside a multi-byte sequence: 0 none, 1 after a lead byte, 2 after a
    /// four-byte sequence's digit, 3 after its third byte.
    gb_state: u8,
}

impl TextScan {
    fn new() -> Self {
        TextScan {
            alive: true,
            utf8_ok: true,
            utf8_carry: Vec::new(),
            gb_ok: true,
            gb_state: 0,
        }
    }

    fn feed_utf8(&mut self, mut chunk: &[u8], last: bool) {
        while !self.utf8_carry.is_empty() {
            let Some((&b, rest)) = chunk.split_first() else {
                break;
            };
            self.utf8_carry.push(b);
            chunk = rest;
            match std::str::from_utf8(&self.utf8_carry) {
                Ok(_) => self.utf8_carry.clear(),
                Err(e) if e.error_len().is_none() && self.utf8_carry.len() < 4 => {}
                Err(_) => {
                    self.utf8_ok = false;
                    return;
                }
            }
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => {}
            Err(e) if e.error_len().is_none() => {
                self.utf8_carry = chunk[e.valid_up_to()..].to_vec()
            }
            Err(_) => self.utf8_ok = false,
        }
        if last && !self.utf8_carry.is_empty() {
            self.utf8_ok = false;
        }
    }

    fn feed_gb18030(&mut self, chunk: &[u8], last: bool) {
        let mut st = self.gb_state;
        for &c in chunk {
            st = match (st, c) {
                (0, 0x00..=0x7f) => 0,
                (0, 0x81..=0xfe) => 1,
                (1, 0x40..=0x7e | 0x80..=0xfe) => 0,
                (1, 0x30..=0x39) => 2,
                (2, 0x81..=0xfe) => 3,
                (3, 0x30..=0x39) => 0,
                _ => {
                    self.gb_ok = false;
                    return;
                }
            };
        }
        self.gb_state = st;
        if last && st != 0 {
            self.gb_ok = false;
        }
    }

    fn feed(&mut self, chunk: &[u8], last: bool) {
        if !self.alive {
            return;
        }
        if chunk
            .iter()
            .any(|&c| (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r' | b'\x0c')) || c == 0x7f)
        {
            self.alive = false;
            return;
        }
        if self.utf8_ok {
            self.feed_utf8(chunk, last);
        }
        if self.gb_ok {
            self.feed_gb18030(chunk, last);
        }
        if !self.utf8_ok && !self.gb_ok {
            self.alive = false;
        }
    }

    fn encoding(&self) -> Option<&'static str> {
        if !self.alive {
            None
        } else if self.utf8_ok {
            Some("UTF-8")
        } else if self.gb_ok {
            Some("GB18030")
        } else {
            None
        }
    }
}

impl Default for Sniffer {
    fn default() -> Self {
        Self::new()
    }
}

impl Sniffer {
    pub fn new() -> Self {
        Sniffer {
            head: Vec::new(),
            tail: Vec::new(),
            total: 0,
            pdf: None,
            text: TextScan::new(),
        }
    }

    /// Feed the next chunk; `last` marks the final one (may be empty).
    pub fn feed(&mut self, chunk: &[u8], last: bool) {
        if self.head.len() < HEAD {
            let before = self.head.len();
            let take = (HEAD - before).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            // The header may arrive split over several chunks: decide once 1 KiB (or all) is seen.
            if self.pdf.is_none()
                && before < 1024
                && memmem::find(&self.head[..self.head.len().min(1024)], b"%PDF-").is_some()
            {
                let mut scan = PdfScan::new();
                scan.feed(&self.head[..before], false);
                self.pdf = Some(scan);
            }
        }
        if chunk.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - TAIL..]);
        } else {
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > TAIL {
                self.tail.drain(..self.tail.len() - TAIL);
            }
        }
        if let Some(p) = self.pdf.as_mut() {
            p.feed(chunk, last);
        }
        if self.text.alive && !self.looks_binary_magic() {
            self.text.feed(chunk, last);
        } else {
            self.text.alive = false;
        }
        self.total += chunk.len() as u64;
    }

    fn looks_binary_magic(&self) -> bool {
        self.pdf.is_some()
            || self.head.first().is_some_and(|&c| {
                c >= 0x80
                    && self.head.len() > 3
                    && (self.head.starts_with(&[0xFF, 0xD8])
                        || self.head.starts_with(&[0x89, b'P']))
            })
    }

    /// Identification from what the stream showed. Containers (`zip`, `ole`) still need
    /// [`inspect_container`] over the stored bytes.
    pub fn finish(&self) -> Identification {
        let h = &self.head[..];
        if let Some(p) = &self.pdf {
            let mut id = ident("pdf", "application/pdf");
            if let Some(off) = memmem::find(&h[..h.len().min(1024)], b"%PDF-") {
                let v: String = h[off + 5..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit() || **c == b'.')
                    .map(|&c| c as char)
                    .collect();
                if !v.is_empty() {
                    id.version = Some(v);
                }
            }
            if let Some(at) = p.encrypt_at {
                id.encrypted = Some(format!(
                    "PDF has an /Encrypt dictionary (byte {at}): it is password-protected or restricted; decrypt before archiving"
                ));
            }
            if let Some(part) = &p.pdfa_part {
                id.note = Some(format!(
                    "PDF/A-{part}{}",
                    p.pdfa_conformance.as_deref().unwrap_or("")
                ));
            }
            id.signed = p.signed;
            if memmem::find(&self.tail, b"%%EOF").is_none() {
                id.defect = Some("no %%EOF marker at the end: the PDF may be truncated".into());
            }
            return id;
        }
        if h.starts_with(b"PK\x03\x04") || h.starts_with(b"PK\x05\x06") {
            return ident("zip", "application/zip");
        }
        if h.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
            return ident("ole", "application/x-ole-storage");
        }
        if h.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return ident("jpeg", "image/jpeg");
        }
        if h.starts_with(b"\x89PNG\r\n\x1a\n") {
            return ident("png", "image/png");
        }
        if h.starts_with(b"II*\0")
            || h.starts_with(b"MM\0*")
            || h.starts_with(b"II+\0")
            || h.starts_with(b"MM\0+")
        {
            return ident("tiff", "image/tiff");
        }
        if h.starts_with(&[
            0, 0, 0, 0x0C, b'j', b'P', b' ', b' ', 0x0D, 0x0A, 0x87, 0x0A,
        ]) || h.starts_with(&[0xFF, 0x4F, 0xFF, 0x51])
        {
            return ident("jp2", "image/jp2");
        }
        if h.len() >= 12 && &h[..4] == b"RIFF" && &h[8..12] == b"WAVE" {
            return ident("wav", "audio/wav");
        }
        if h.len() >= 12 && &h[4..8] == b"ftyp" {
            let brand = &h[8..12];
            const MP4: [&[u8]; 10] = [
                b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ",
                b"M4A ",
            ];
            if MP4.contains(&brand) {
                let mut id = ident("mp4", "video/mp4");
                id.version = Some(String::from_utf8_lossy(brand).trim().to_string());
                return id;
            }
            return ident("unknown", "application/octet-stream");
        }
        if h.starts_with(b"ID3")
            || (h.len() >= 4 && h[0] == 0xFF && h[1] & 0xE0 == 0xE0 && h[1] & 0x06 == 0x02)
        {
            return ident("mp3", "audio/mpeg");
        }
        if h.starts_with(b"{\\rtf") {
            return ident("rtf", "application/rtf");
        }
        if h.starts_with(b"Rar!\x1a\x07") {
            return ident("rar", "application/vnd.rar");
        }
        if h.starts_with(b"7z\xbc\xaf\x27\x1c") {
            return ident("7z", "application/x-7z-compressed");
        }
        if h.starts_with(&[0x1f, 0x8b]) {
            return ident("gzip", "application/gzip");
        }
        if h.starts_with(b"BZh") && h.len() > 3 && h[3].is_ascii_digit() {
            return ident("bzip2", "application/x-bzip2");
        }
        if h.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0]) {
            return ident("xz", "application/x-xz");
        }
        if h.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
            return ident("zstd", "application/zstd");
        }
        if h.starts_with(b"MSCF") {
            return ident("cab", "application/vnd.ms-cab-compressed");
        }
        if h.len() > 262 && &h[257..262] == b"ustar" {
            return ident("tar", "application/x-tar");
        }
        if h.starts_with(b"MZ")
            || h.starts_with(b"\x7fELF")
            || h.starts_with(&[0xCF, 0xFA, 0xED, 0xFE])
            || h.starts_with(&[0xCE, 0xFA, 0xED, 0xFE])
            || h.starts_with(&[0xCA, 0xFE, 0xBA, 0xBE])
        {
            return ident("exe", "application/octet-stream");
        }
        if h.starts_with(b"CAJ") || h.starts_with(b"HN\x00\x00") || h.starts_with(b"KDH ") {
            return ident("caj", "application/caj");
        }
        if self.total > 0
            && let Some(enc) = self.text.encoding()
        {
            let body = h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h);
            let start = body
                .iter()
                .position(|c| !c.is_ascii_whitespace())
                .unwrap_or(body.len());
            let body = &body[start..];
            if body.starts_with(b"<?xml")
                || (body.starts_with(b"<") && body.get(1).is_some_and(|c| c.is_ascii_alphabetic()))
            {
                let mut id = ident("xml", "application/xml");
                id.note = Some(format!("encoding {enc}"));
                return id;
            }
            let mut id = ident("txt", "text/plain");
            id.note = Some(format!("encoding {enc}"));
            return id;
        }
        ident("unknown", "application/octet-stream")
    }
}

const SMALL_MEMBER: u64 = 4 << 20;

fn read_member<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, name: &str) -> Option<Vec<u8>> {
    let f = zip.by_name(name).ok()?;
    if f.size() > SMALL_MEMBER || f.encrypted() {
        return None;
    }
    let mut v = Vec::with_capacity(f.size() as usize);
    f.take(SMALL_MEMBER).read_to_end(&mut v).ok()?;
    Some(v)
}

/// Refines a `zip` or `ole` identification by reading the container's structure from the stored
/// bytes: OFD, OOXML and ODF documents and their encryption; DOC/XLS/PPT and encrypted OOXML.
pub fn inspect_container<R: Read + Seek>(id: Identification, view: R) -> Identification {
    match id.format.as_str() {
        "zip" => inspect_zip(view),
        "ole" => inspect_ole(view),
        _ => id,
    }
}

fn inspect_zip<R: Read + Seek>(view: R) -> Identification {
    let mut zip = match zip::ZipArchive::new(view) {
        Ok(z) => z,
        Err(e) => {
            let mut id = ident("unknown", "application/octet-stream");
            id.defect = Some(format!("damaged ZIP structure: {e}"));
            return id;
        }
    };
    let names: Vec<String> = (0..zip.len())
        .filter_map(|i| {
            zip.by_index_raw(i)
                .ok()
                .and_then(|f| f.name().ok().map(|n| n.to_string()))
        })
        .collect();
    let encrypted_member = (0..zip.len()).find_map(|i| {
        zip.by_index_raw(i)
            .ok()
            .filter(|f| f.encrypted())
            .map(|f| f.name().map(|n| n.to_string()).unwrap_or_default())
    });
    let has = |n: &str| names.iter().any(|x| x == n);
    let has_prefix = |p: &str| names.iter().any(|x| x.starts_with(p));

    let mut id = if has("OFD.xml") {
        let mut id = ident("ofd", "application/ofd");
        if let Some(n) = names
            .iter()
            .find(|n| n.to_ascii_lowercase().ends_with("encryptions.xml"))
        {
            id.encrypted = Some(format!(
                "OFD has encryption entries ({n}): decrypt before archiving"
            ));
        } else if let Some(ofd) = read_member(&mut zip, "OFD.xml")
            && memmem::find(&ofd, b"Encryptions").is_some()
        {
            id.encrypted = Some("OFD.xml declares encryptions: decrypt before archiving".into());
        }
        id.signed = names
            .iter()
            .any(|n| n.to_ascii_lowercase().ends_with("signatures.xml"));
        if let Some(ofd) = read_member(&mut zip, "OFD.xml")
            && let Some(p) = memmem::find(&ofd, b"Version=\"")
        {
            let v: String = ofd[p + 9..]
                .iter()
                .take_while(|c| **c != b'"')
                .take(16)
                .map(|&c| c as char)
                .collect();
            id.version = Some(v);
        }
        id
    } else if has("[Content_Types].xml") {
        if has_prefix("word/") {
            ident(
                "docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            )
        } else if has_prefix("xl/") {
            ident(
                "xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )
        } else if has_prefix("ppt/") {
            ident(
                "pptx",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            )
        } else {
            ident("unknown", "application/octet-stream")
        }
    } else if let Some(mt) = read_member(&mut zip, "mimetype") {
        let mt = String::from_utf8_lossy(&mt).trim().to_string();
        let fmt = match mt.as_str() {
            "application/vnd.oasis.opendocument.text" => "odt",
            "application/vnd.oasis.opendocument.spreadsheet" => "ods",
            "application/vnd.oasis.opendocument.presentation" => "odp",
            _ => "unknown",
        };
        let mut id = ident(fmt, &mt);
        if fmt != "unknown"
            && let Some(man) = read_member(&mut zip, "META-INF/manifest.xml")
            && memmem::find(&man, b"encryption-data").is_some()
        {
            id.encrypted = Some(
                "ODF manifest lists encryption data: the document is password-protected".into(),
            );
        }
        id
    } else {
        ident("zip", "application/zip")
    };
    if id.encrypted.is_none()
        && let Some(n) = encrypted_member
    {
        id.encrypted = Some(format!(
            "member {n:?} is encrypted: decrypt before archiving"
        ));
    }
    id
}

fn inspect_ole<R: Read + Seek>(view: R) -> Identification {
    let Ok(cf) = cfb::CompoundFile::open(view) else {
        let mut id = ident("ole", "application/x-ole-storage");
        id.defect = Some("damaged OLE compound file".into());
        return id;
    };
    let names: Vec<String> = cf
        .read_root_storage()
        .map(|e| e.name().to_string())
        .collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    if has("EncryptionInfo") && has("EncryptedPackage") {
        let mut id = ident("ooxml-encrypted", "application/x-ole-storage");
        id.encrypted = Some("an Office document encrypted with a password (OLE container with EncryptionInfo and EncryptedPackage)".into());
        return id;
    }
    if has("WordDocument") {
        return ident("doc", "application/msword");
    }
    if has("Workbook") || has("Book") {
        return ident("xls", "application/vnd.ms-excel");
    }
    if has("PowerPoint Document") {
        return ident("ppt", "application/vnd.ms-powerpoint");
    }
    ident("ole", "application/x-ole-storage")
}

/// Applies encryption rules, the policy table and the declared-format/extension agreement,
/// recording problems and warnings against `path`.
pub fn judge(
    path: &str,
    declared: Option<&str>,
    id: &Identification,
    policy: &BTreeMap<String, Action>,
    problems: &mut Problems,
) {
    if let Some(why) = &id.encrypted {
        problems.push(Problem::file(Code::EncryptedFile, path, why.clone()));
        return;
    }
    let action = policy
        .get(&id.format)
        .copied()
        .unwrap_or(Action::UnknownFormat);
    match action {
        Action::Accept | Action::Warn => {}
        Action::ProprietaryFormat => {
            problems.push(Problem::file(
                Code::ProprietaryFormat,
                path,
                format!(
                    "{} is a closed format bound to particular software; convert to PDF/OFD",
                    id.format.to_uppercase()
                ),
            ));
            return;
        }
        Action::ArchiveContainer => {
            problems.push(Problem::file(
                Code::ArchiveContainer,
                path,
                format!(
                    "{} archive inside the submission: unpack it and list its files",
                    id.format.to_uppercase()
                ),
            ));
            return;
        }
        Action::UnknownFormat => {
            let detail = id
                .defect
                .clone()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            problems.push(Problem::file(
                Code::UnknownFormat,
                path,
                if id.format == "unknown" {
                    format!("the content is not a format this archive accepts{detail}")
                } else {
                    format!("{} is not accepted by the format policy{detail}", id.format)
                },
            ));
            return;
        }
    }
    if let Some(d) = declared {
        let d = canonical_format(d);
        if d != id.format {
            problems.push(Problem::file(
                Code::FormatMismatch,
                path,
                format!("declared format {d} but the content is {}", id.format),
            ));
            return;
        }
    }
    match format_of_extension(path) {
        Some(ext) if ext != id.format => {
            problems.push(Problem::file(
                Code::FormatMismatch,
                path,
                format!("the extension says {ext} but the content is {}", id.format),
            ));
            return;
        }
        None => problems.warn(Problem::file(
            Code::UnknownExtension,
            path,
            format!(
                "the file name has no recognised extension; the content is {}",
                id.format
            ),
        )),
        _ => {}
    }
    if action == Action::Warn {
        problems.warn(Problem::file(
            Code::NotFixedLayout,
            path,
            format!(
                "{} is not a fixed-layout format; PDF/A or OFD is preferred for long-term keeping",
                id.format.to_uppercase()
            ),
        ));
    }
    if let Some(d) = &id.defect {
        problems.warn(Problem::file(Code::PdfIncomplete, path, d.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff(bytes: &[u8], chunk: usize) -> Identification {
        let mut s = Sniffer::new();
        let mut it = bytes.chunks(chunk).peekable();
        while let Some(c) = it.next() {
            s.feed(c, it.peek().is_none());
        }
        s.finish()
    }

    #[test]
    fn encrypt_reference_found_across_chunk_boundaries() {
        let pdf = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Size 3 /Encrypt 2 0 R /Root 1 0 R >>\n%%EOF\n";
        for chunk in [1, 3, 7, 16, 1000] {
            let id = sniff(pdf, chunk);
            assert_eq!(id.format, "pdf");
            assert!(id.encrypted.is_some(), "chunk size {chunk}");
        }
    }

    #[test]
    fn the_word_encrypt_in_text_is_not_encryption() {
        let pdf = b"%PDF-1.4\n1 0 obj\n<< /EncryptMetadata false >>\nendobj\nBT (see /Encrypt below) Tj ET\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";
        assert!(sniff(pdf, 5).encrypted.is_none());
    }

    #[test]
    fn text_in_utf8_and_gb18030() {
        assert_eq!(sniff("办件说明\n".as_bytes(), 2).format, "txt");
        let (gb, _, _) = encoding_rs::GB18030.encode("办件说明\n");
        let id = sniff(&gb, 3);
        assert_eq!(id.format, "txt");
        assert_eq!(id.note.as_deref(), Some("encoding GB18030"));
        assert_eq!(sniff(&[0u8, 1, 2, 3, 200, 201], 2).format, "unknown");
    }
}
