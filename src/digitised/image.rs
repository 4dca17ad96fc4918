//! What a scan is, read from its own bytes (DA/T 31-2017 quality control): for each page its
//! pixel size, resolution and colour mode. Nothing here trusts a file name or a declaration.
//!
//! Readers walk a file's structure and seek past pixel data, so the cost is a few small reads per
//! page whatever the image size, and memory does not grow with the file: TIFF (every IFD of a
//! multi-page file), JPEG (JFIF density, EXIF resolution, the frame header), JPEG 2000 (`ihdr`
//! and the capture/display resolution boxes), PDF (each page's MediaBox and the images it draws)
//! and OFD (each page's PhysicalBox and the image objects it places).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Tiff,
    Jpeg,
    Jp2,
    Pdf,
    Ofd,
}

impl ImageFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Tiff => "tiff",
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Jp2 => "jp2",
            ImageFormat::Pdf => "pdf",
            ImageFormat::Ofd => "ofd",
        }
    }

    pub fn parse(s: &str) -> Option<ImageFormat> {
        Some(match s.to_ascii_lowercase().as_str() {
            "tiff" | "tif" => ImageFormat::Tiff,
            "jpeg" | "jpg" => ImageFormat::Jpeg,
            "jp2" | "jpeg2000" | "jpeg 2000" => ImageFormat::Jp2,
            "pdf" => ImageFormat::Pdf,
            "ofd" => ImageFormat::Ofd,
            _ => return None,
        })
    }

    /// From the first bytes of a file.
    pub fn sniff(head: &[u8]) -> Option<ImageFormat> {
        if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
            Some(ImageFormat::Tiff)
        } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageFormat::Jpeg)
        } else if head.starts_with(&[0, 0, 0, 12, b'j', b'P', b' ', b' ']) {
            Some(ImageFormat::Jp2)
        } else if head.starts_with(b"%PDF-") {
            Some(ImageFormat::Pdf)
        } else if head.starts_with(b"PK\x03\x04") {
            // A ZIP; only an OFD is acceptable, which the OFD reader confirms from OFD.xml.
            Some(ImageFormat::Ofd)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColourMode {
    Bitonal,
    Gray,
    Color,
}

impl ColourMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ColourMode::Bitonal => "bitonal",
            ColourMode::Gray => "gray",
            ColourMode::Color => "color",
        }
    }
    pub fn parse(s: &str) -> Option<ColourMode> {
        Some(match s {
            "bitonal" => ColourMode::Bitonal,
            "gray" | "grey" => ColourMode::Gray,
            "color" | "colour" => ColourMode::Color,
            _ => return None,
        })
    }
}

/// One page as the file describes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page {
    pub width_px: u32,
    pub height_px: u32,
    /// Pixels per inch the file records (horizontal, vertical), if it records any.
    pub dpi: Option<(f64, f64)>,
    /// The page's physical size in millimetres where the container defines one (PDF, OFD): the
    /// resolution then follows from pixels over size.
    pub size_mm: Option<(f64, f64)>,
    pub mode: ColourMode,
}

impl Page {
    /// The resolution this page has on paper of `size_mm` (the smaller of both axes).
    pub fn dpi_over(&self, size_mm: (f64, f64)) -> Option<f64> {
        let (w, h) = size_mm;
        if w <= 0.0 || h <= 0.0 {
            return None;
        }
        // A page scanned in landscape has its axes swapped.
        let (pw, ph) = if (self.width_px > self.height_px) == (w > h) {
            (self.width_px as f64, self.height_px as f64)
        } else {
            (self.height_px as f64, self.width_px as f64)
        };
        Some((pw / (w / 25.4)).min(ph / (h / 25.4)))
    }

    /// The resolution recorded in the file or, for page-based containers, implied by its size.
    pub fn recorded_dpi(&self) -> Option<f64> {
        match (self.dpi, self.size_mm) {
            (Some((x, y)), _) => Some(x.min(y)),
            (None, Some(mm)) => self.dpi_over(mm),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageFacts {
    pub format: ImageFormat,
    pub pages: Vec<Page>,
}

/// Refuses files that claim more pages than any scan batch has: a hostile IFD chain or page tree
/// must not make the reader loop or grow without bound.
pub const MAX_PAGES: usize = 10_000;

pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// Reads a scan's facts. `Err` says why the file is not a readable image of its kind.
pub fn read(r: &mut dyn ReadSeek) -> Result<ImageFacts, String> {
    let mut head = [0u8; 8];
    let n = read_up_to(r, &mut head).map_err(|e| e.to_string())?;
    r.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let format = ImageFormat::sniff(&head[..n]).ok_or("not a TIFF, JPEG, JPEG 2000, PDF or OFD")?;
    let pages = match format {
        ImageFormat::Tiff => tiff(r)?,
        ImageFormat::Jpeg => vec![jpeg(r)?],
        ImageFormat::Jp2 => vec![jp2(r)?],
        ImageFormat::Pdf => pdf(r)?,
        ImageFormat::Ofd => ofd(r)?,
    };
    if pages.is_empty() {
        return Err("the file holds no page image".into());
    }
    Ok(ImageFacts { format, pages })
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn exact(r: &mut dyn Read, n: usize) -> Result<Vec<u8>, String> {
    let mut v = vec![0u8; n];
    r.read_exact(&mut v)
        .map_err(|_| "the file ends early".to_string())?;
    Ok(v)
}

// ---------------------------------------------------------------- TIFF

struct Endian(bool); // true: little-endian

impl Endian {
    fn u16(&self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        if self.0 {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        }
    }
    fn u32(&self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.0 {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    }
}

/// One IFD's entries that matter here, values resolved.
#[derive(Default)]
struct Ifd {
    width: u32,
    height: u32,
    bits: u32,
    samples: u32,
    photometric: Option<u16>,
    x_res: Option<f64>,
    y_res: Option<f64>,
    unit: u16,
    subfile: u32,
}

fn tiff(r: &mut dyn ReadSeek) -> Result<Vec<Page>, String> {
    let len = r.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    r.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let h = exact(r, 8)?;
    let e = Endian(&h[0..2] == b"II");
    let mut next = e.u32(&h[4..8]) as u64;
    let mut seen = std::collections::HashSet::new();
    let mut pages = Vec::new();
    while next != 0 {
        if next >= len || !seen.insert(next) {
            return Err(format!("IFD offset {next} is outside the file or loops"));
        }
        if seen.len() > MAX_PAGES {
            return Err(format!("more than {MAX_PAGES} images"));
        }
        r.seek(SeekFrom::Start(next)).map_err(|e| e.to_string())?;
        let count = e.u16(&exact(r, 2)?) as usize;
        let raw = exact(r, count * 12 + 4)?;
        let mut ifd = Ifd {
            unit: 2,
            bits: 1,
            samples: 1,
            ..Default::default()
        };
        for i in 0..count {
            let ent = &raw[i * 12..i * 12 + 12];
            let (tag, typ, cnt) = (e.u16(&ent[0..2]), e.u16(&ent[2..4]), e.u32(&ent[4..8]));
            let small = |ent: &[u8]| -> u32 {
                match typ {
                    3 => e.u16(&ent[8..10]) as u32,
                    _ => e.u32(&ent[8..12]),
                }
            };
            match tag {
                254 => ifd.subfile = small(ent),
                256 => ifd.width = small(ent),
                257 => ifd.height = small(ent),
                258 => {
                    // BitsPerSample: one value per sample; inline when it fits in four bytes.
                    ifd.bits = if cnt <= 2 || typ != 3 {
                        small(ent)
                    } else {
                        let here = r.stream_position().map_err(|e| e.to_string())?;
                        r.seek(SeekFrom::Start(e.u32(&ent[8..12]) as u64))
                            .map_err(|e| e.to_string())?;
                        let b = exact(r, 2)?;
                        r.seek(SeekFrom::Start(here)).map_err(|e| e.to_string())?;
                        e.u16(&b) as u32
                    }
                }
                262 => ifd.photometric = Some(small(ent) as u16),
                277 => ifd.samples = small(ent),
                282 | 283 if typ == 5 => {
                    let here = r.stream_position().map_err(|e| e.to_string())?;
                    r.seek(SeekFrom::Start(e.u32(&ent[8..12]) as u64))
                        .map_err(|e| e.to_string())?;
                    let b = exact(r, 8)?;
                    r.seek(SeekFrom::Start(here)).map_err(|e| e.to_string())?;
                    let (num, den) = (e.u32(&b[0..4]) as f64, e.u32(&b[4..8]) as f64);
                    let v = (den > 0.0).then(|| num / den);
                    if tag == 282 {
                        ifd.x_res = v;
                    } else {
                        ifd.y_res = v;
                    }
                }
                296 => ifd.unit = small(ent) as u16,
                _ => {}
            }
        }
        next = e.u32(&raw[count * 12..]) as u64;
        // Reduced-resolution copies (thumbnails) are not pages.
        if ifd.subfile & 1 == 1 {
            continue;
        }
        if ifd.width == 0 || ifd.height == 0 {
            return Err("an image without width or height".into());
        }
        let mode = match (ifd.photometric, ifd.bits, ifd.samples) {
            (Some(0 | 1) | None, 1, _) => ColourMode::Bitonal,
            (Some(0 | 1) | None, _, 1) => ColourMode::Gray,
            (Some(4), _, _) => ColourMode::Bitonal,
            _ => ColourMode::Color,
        };
        let factor = match ifd.unit {
            2 => Some(1.0),
            3 => Some(2.54),
            _ => None,
        };
        let dpi = match (factor, ifd.x_res, ifd.y_res) {
            (Some(f), Some(x), y) => Some((x * f, y.unwrap_or(x) * f)),
            _ => None,
        };
        pages.push(Page {
            width_px: ifd.width,
            height_px: ifd.height,
            dpi,
            size_mm: None,
            mode,
        });
    }
    Ok(pages)
}

// ---------------------------------------------------------------- JPEG

fn jpeg(r: &mut dyn ReadSeek) -> Result<Page, String> {
    let mut r = BufReader::with_capacity(16 * 1024, r);
    exact(&mut r, 2)?;
    let mut jfif: Option<(f64, f64)> = None;
    let mut exif: Option<(f64, f64)> = None;
    loop {
        let mut m = exact(&mut r, 2)?;
        // Fill bytes before a marker.
        while m[0] == 0xFF && m[1] == 0xFF {
            m = vec![0xFF, exact(&mut r, 1)?[0]];
        }
        if m[0] != 0xFF {
            return Err("a JPEG segment does not start with a marker".into());
        }
        let marker = m[1];
        if marker == 0xD9 || marker == 0xDA {
            return Err("no frame header before the image data".into());
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            continue;
        }
        let len = u16::from_be_bytes([exact(&mut r, 1)?[0], exact(&mut r, 1)?[0]]) as usize;
        if len < 2 {
            return Err("a JPEG segment with a bad length".into());
        }
        let body_len = len - 2;
        match marker {
            0xC0..=0xCF if marker != 0xC4 && marker != 0xC8 && marker != 0xCC => {
                let b = exact(&mut r, body_len)?;
                if b.len() < 6 {
                    return Err("a short frame header".into());
                }
                let height = u16::from_be_bytes([b[1], b[2]]) as u32;
                let width = u16::from_be_bytes([b[3], b[4]]) as u32;
                let mode = match b[5] {
                    1 => ColourMode::Gray,
                    _ => ColourMode::Color,
                };
                if width == 0 || height == 0 {
                    return Err("a frame without width or height".into());
                }
                return Ok(Page {
                    width_px: width,
                    height_px: height,
                    dpi: jfif.or(exif),
                    size_mm: None,
                    mode,
                });
            }
            0xE0 if body_len >= 12 => {
                let b = exact(&mut r, body_len)?;
                if b.starts_with(b"JFIF\0") {
                    let (x, y) = (
                        u16::from_be_bytes([b[8], b[9]]) as f64,
                        u16::from_be_bytes([b[10], b[11]]) as f64,
                    );
                    jfif = match b[7] {
                        1 if x > 0.0 => Some((x, y)),
                        2 if x > 0.0 => Some((x * 2.54, y * 2.54)),
                        _ => None,
                    };
                }
            }
            0xE1 if body_len > 14 => {
                let b = exact(&mut r, body_len)?;
                if let Some(t) = b.strip_prefix(b"Exif\0\0") {
                    exif = exif_resolution(t);
                }
            }
            _ => {
                r.seek_relative(body_len as i64)
                    .map_err(|e| e.to_string())?;
            }
        }
    }
}

/// XResolution/YResolution/ResolutionUnit of IFD0 in an EXIF block (a small TIFF in memory).
fn exif_resolution(t: &[u8]) -> Option<(f64, f64)> {
    if t.len() < 8 {
        return None;
    }
    let e = Endian(&t[0..2] == b"II");
    let ifd = e.u32(&t[4..8]) as usize;
    let count = e.u16(t.get(ifd..ifd + 2)?) as usize;
    let (mut x, mut y, mut unit) = (None, None, 2u16);
    for i in 0..count {
        let ent = t.get(ifd + 2 + i * 12..ifd + 14 + i * 12)?;
        let tag = e.u16(&ent[0..2]);
        let rational = |ent: &[u8]| -> Option<f64> {
            let off = e.u32(&ent[8..12]) as usize;
            let b = t.get(off..off + 8)?;
            let (n, d) = (e.u32(&b[0..4]) as f64, e.u32(&b[4..8]) as f64);
            (d > 0.0).then(|| n / d)
        };
        match tag {
            282 => x = rational(ent),
            283 => y = rational(ent),
            296 => unit = e.u16(&ent[8..10]),
            _ => {}
        }
    }
    let f = match unit {
        2 => 1.0,
        3 => 2.54,
        _ => return None,
    };
    let x = x?;
    Some((x * f, y.unwrap_or(x) * f))
}

// ---------------------------------------------------------------- JPEG 2000

fn jp2(r: &mut dyn ReadSeek) -> Result<Page, String> {
    let len = r.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    r.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let (mut pos, end) = (0u64, len);
    // The header superbox: walk the top-level boxes to it.
    let (hstart, hend) = loop {
        let (typ, body, next) = jp2_box(r, pos, end)?;
        if &typ == b"jp2h" {
            break (body, next);
        }
        if next >= end {
            return Err("no jp2h header box".into());
        }
        pos = next;
    };
    let (mut ihdr, mut capture, mut display) = (None, None, None);
    let mut p = hstart;
    while p < hend {
        let (typ, body, next) = jp2_box(r, p, hend)?;
        match &typ {
            b"ihdr" => {
                r.seek(SeekFrom::Start(body)).map_err(|e| e.to_string())?;
                let b = exact(r, 14)?;
                let h = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                let w = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                let nc = u16::from_be_bytes([b[8], b[9]]);
                let bpc = (b[10] & 0x7F) + 1;
                ihdr = Some((w, h, nc, bpc));
            }
            b"res " => {
                let mut q = body;
                while q < next {
                    let (t, b, n) = jp2_box(r, q, next)?;
                    if &t == b"resc" || &t == b"resd" {
                        r.seek(SeekFrom::Start(b)).map_err(|e| e.to_string())?;
                        let v = exact(r, 10)?;
                        let ppm = |n: u16, d: u16, e: i8| {
                            (d > 0).then(|| n as f64 / d as f64 * 10f64.powi(e as i32) * 0.0254)
                        };
                        let vr = ppm(
                            u16::from_be_bytes([v[0], v[1]]),
                            u16::from_be_bytes([v[2], v[3]]),
                            v[8] as i8,
                        );
                        let hr = ppm(
                            u16::from_be_bytes([v[4], v[5]]),
                            u16::from_be_bytes([v[6], v[7]]),
                            v[9] as i8,
                        );
                        if let (Some(h), Some(vv)) = (hr, vr) {
                            if &t == b"resc" {
                                capture = Some((h, vv));
                            } else {
                                display = Some((h, vv));
                            }
                        }
                    }
                    q = n;
                }
            }
            _ => {}
        }
        p = next;
    }
    let (w, h, nc, bpc) = ihdr.ok_or("no ihdr box")?;
    if w == 0 || h == 0 {
        return Err("an image without width or height".into());
    }
    let mode = match (nc, bpc) {
        (1, 1) => ColourMode::Bitonal,
        (1 | 2, _) => ColourMode::Gray,
        _ => ColourMode::Color,
    };
    Ok(Page {
        width_px: w,
        height_px: h,
        // The capture resolution is the scanner's; the display resolution is a rendering hint.
        dpi: capture.or(display).map(|(x, y)| (round2(x), round2(y))),
        size_mm: None,
        mode,
    })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The box at `pos`: its type, where its body starts and where the next box starts.
fn jp2_box(r: &mut dyn ReadSeek, pos: u64, end: u64) -> Result<([u8; 4], u64, u64), String> {
    r.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
    let h = exact(r, 8)?;
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as u64;
    let typ = [h[4], h[5], h[6], h[7]];
    let (body, next) = match len {
        0 => (pos + 8, end),
        1 => {
            let x = exact(r, 8)?;
            let l = u64::from_be_bytes(x.try_into().unwrap_or([0; 8]));
            (pos + 16, pos.saturating_add(l))
        }
        l => (pos + 8, pos + l),
    };
    if next > end || next <= pos || body > next {
        return Err("a JPEG 2000 box runs past its container".into());
    }
    Ok((typ, body, next))
}

// ---------------------------------------------------------------- PDF

/// A PDF value, as far as page geometry and image dictionaries need.
#[derive(Debug, Clone, PartialEq)]
enum Pv {
    Num(f64),
    Name(String),
    Ref(u32),
    Arr(Vec<Pv>),
    Dict(HashMap<String, Pv>),
    Other,
}

impl Pv {
    fn dict(&self) -> Option<&HashMap<String, Pv>> {
        match self {
            Pv::Dict(d) => Some(d),
            _ => None,
        }
    }
    fn num(&self) -> Option<f64> {
        match self {
            Pv::Num(n) => Some(*n),
            _ => None,
        }
    }
    fn name(&self) -> Option<&str> {
        match self {
            Pv::Name(n) => Some(n),
            _ => None,
        }
    }
}

struct Lexer<'a> {
    b: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() {
            match self.b[self.i] {
                b' ' | b'\n' | b'\r' | b'\t' | b'\x0c' | 0 => self.i += 1,
                b'%' => {
                    while self.i < self.b.len()
                        && self.b[self.i] != b'\n'
                        && self.b[self.i] != b'\r'
                    {
                        self.i += 1
                    }
                }
                _ => break,
            }
        }
    }

    fn regular(c: u8) -> bool {
        !crate::pipeline::identify::is_pdf_delim(c)
    }

    fn word(&mut self) -> &[u8] {
        let s = self.i;
        while self.i < self.b.len() && Self::regular(self.b[self.i]) {
            self.i += 1;
        }
        &self.b[s..self.i]
    }

    fn value(&mut self, depth: usize) -> Option<Pv> {
        if depth > 32 {
            return None;
        }
        self.ws();
        let c = *self.b.get(self.i)?;
        match c {
            b'/' => {
                self.i += 1;
                Some(Pv::Name(String::from_utf8_lossy(self.word()).into_owned()))
            }
            b'[' => {
                self.i += 1;
                let mut v = Vec::new();
                loop {
                    self.ws();
                    if *self.b.get(self.i)? == b']' {
                        self.i += 1;
                        return Some(Pv::Arr(collapse_refs(v)));
                    }
                    v.push(self.value(depth + 1)?);
                }
            }
            b'<' if self.b.get(self.i + 1) == Some(&b'<') => {
                self.i += 2;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.b.get(self.i..self.i + 2)? == b">>" {
                        self.i += 2;
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                }
                let items = collapse_refs(items);
                let mut d = HashMap::new();
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    if let Pv::Name(k) = k {
                        d.insert(k, v);
                    }
                }
                Some(Pv::Dict(d))
            }
            b'<' => {
                while *self.b.get(self.i)? != b'>' {
                    self.i += 1;
                }
                self.i += 1;
                Some(Pv::Other)
            }
            b'(' => {
                let mut level = 0;
                loop {
                    let c = *self.b.get(self.i)?;
                    self.i += 1;
                    match c {
                        b'\\' => self.i += 1,
                        b'(' => level += 1,
                        b')' => {
                            level -= 1;
                            if level == 0 {
                                return Some(Pv::Other);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                let w = self.word();
                if w.is_empty() {
                    self.i += 1;
                    return Some(Pv::Other);
                }
                if w == b"R" {
                    return Some(Pv::Name("\u{0}R".into()));
                }
                match std::str::from_utf8(w)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                {
                    Some(n) => Some(Pv::Num(n)),
                    None => Some(Pv::Other),
                }
            }
        }
    }
}

/// `n g R` read as three values becomes one reference.
fn collapse_refs(v: Vec<Pv>) -> Vec<Pv> {
    let mut out: Vec<Pv> = Vec::with_capacity(v.len());
    for x in v {
        if x == Pv::Name("\u{0}R".into()) && out.len() >= 2 {
            let g = out.pop();
            let n = out.pop();
            if let (Some(Pv::Num(n)), Some(Pv::Num(_))) = (&n, &g) {
                out.push(Pv::Ref(*n as u32));
                continue;
            }
            out.extend(n);
            out.extend(g);
        } else {
            out.push(x);
        }
    }
    out
}

/// The largest dictionary read before a stream's data or `endobj`: object dictionaries of page
/// images are small, and a larger one is not a scan.
const MAX_DICT: usize = 64 * 1024;

fn pdf(r: &mut dyn ReadSeek) -> Result<Vec<Page>, String> {
    // One forward pass over the file: each `N G obj` dictionary is parsed, stream data skipped.
    let mut objs: HashMap<u32, Pv> = HashMap::new();
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let mut line = Vec::new();
    let mut pos: u64 = 0;
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        pos += n as u64;
        if line.len() > 4096 {
            // Binary data or a long line outside any object header: only its tail can start one.
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let Some(at) = text.find(" obj") else {
            continue;
        };
        let head: Vec<&str> = text[..at].split_whitespace().collect();
        let Some(num) = head
            .len()
            .checked_sub(2)
            .and_then(|k| head[k].parse::<u32>().ok())
            .filter(|_| head.last().is_some_and(|g| g.parse::<u32>().is_ok()))
        else {
            continue;
        };
        if objs.len() > 4 * MAX_PAGES + 1000 {
            return Err("too many objects for a scan".into());
        }
        // The object's text up to `stream` or `endobj`, bounded.
        let mut body: Vec<u8> = line[at + 4..].to_vec();
        let mut has_stream = false;
        loop {
            if let Some(k) = find(&body, b"stream")
                && !body[..k].ends_with(b"end")
            {
                body.truncate(k);
                has_stream = true;
                break;
            }
            if let Some(k) = find(&body, b"endobj") {
                body.truncate(k);
                break;
            }
            if body.len() > MAX_DICT {
                break;
            }
            line.clear();
            let n = r.read_until(b'\n', &mut line).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            body.extend_from_slice(&line);
        }
        let mut lx = Lexer { b: &body, i: 0 };
        let v = lx.value(0).unwrap_or(Pv::Other);
        let len = v
            .dict()
            .and_then(|d| d.get("Length"))
            .and_then(Pv::num)
            .filter(|l| has_stream && *l > 0.0);
        if let Some(len) = len {
            if v.dict().and_then(|d| d.get("Type")).and_then(Pv::name) == Some("ObjStm") {
                // An object stream (PDF 1.5) holds page dictionaries too: read, inflate, parse.
                if len as usize > MAX_OBJSTM {
                    return Err(format!(
                        "an object stream of {len} bytes is too large for a scan"
                    ));
                }
                let data = exact(&mut r, len as usize)?;
                pos += len as u64;
                object_stream(&v, &data, &mut objs)?;
            } else {
                // Skip the stream's data by its direct /Length; with an indirect one the line
                // reader walks over it (still one pass, just in smaller steps).
                r.seek_relative(len as i64).map_err(|e| e.to_string())?;
                pos += len as u64;
            }
        }
        objs.insert(num, v);
    }
    let _ = pos;
    let get = |v: &Pv| -> Option<Pv> {
        match v {
            Pv::Ref(n) => objs.get(n).cloned(),
            x => Some(x.clone()),
        }
    };
    let catalog = objs
        .values()
        .find(|v| {
            v.dict()
                .and_then(|d| d.get("Type"))
                .and_then(Pv::name)
                .is_some_and(|t| t == "Catalog")
        })
        .ok_or("no document catalogue")?
        .clone();
    let root = catalog
        .dict()
        .and_then(|d| d.get("Pages"))
        .and_then(&get)
        .ok_or("the catalogue has no page tree")?;
    let mut pages = Vec::new();
    // Depth-first over the page tree, inheriting MediaBox and Resources.
    let mut stack: Vec<(Pv, Option<Pv>, Option<Pv>, usize)> = vec![(root, None, None, 0)];
    let mut visited = 0usize;
    while let Some((node, mb, res, depth)) = stack.pop() {
        visited += 1;
        if visited > 2 * MAX_PAGES || depth > 64 {
            return Err("the page tree is too large or loops".into());
        }
        let Some(d) = node.dict() else { continue };
        let mb = d.get("MediaBox").and_then(&get).or(mb);
        let res = d.get("Resources").and_then(&get).or(res);
        match d.get("Type").and_then(Pv::name) {
            Some("Pages") => {
                if let Some(Pv::Arr(kids)) = d.get("Kids").and_then(&get) {
                    for k in kids.iter().rev() {
                        if let Some(kid) = get(k) {
                            stack.push((kid, mb.clone(), res.clone(), depth + 1));
                        }
                    }
                }
            }
            _ => {
                let size = match mb {
                    Some(Pv::Arr(a)) if a.len() == 4 => {
                        let n: Vec<f64> = a
                            .iter()
                            .filter_map(|x| get(x).and_then(|v| v.num()))
                            .collect();
                        (n.len() == 4).then(|| {
                            (
                                (n[2] - n[0]).abs() / 72.0 * 25.4,
                                (n[3] - n[1]).abs() / 72.0 * 25.4,
                            )
                        })
                    }
                    _ => None,
                }
                .ok_or_else(|| format!("page {} has no MediaBox", pages.len() + 1))?;
                // The largest image the page draws is its scan.
                let mut best: Option<(u32, u32, ColourMode)> = None;
                let xobjects = res
                    .as_ref()
                    .and_then(|r| r.dict())
                    .and_then(|d| d.get("XObject"))
                    .and_then(&get);
                if let Some(Pv::Dict(xo)) = xobjects {
                    for v in xo.values() {
                        let Some(Pv::Dict(im)) = get(v) else { continue };
                        if im.get("Subtype").and_then(Pv::name) != Some("Image") {
                            continue;
                        }
                        let w = im
                            .get("Width")
                            .and_then(&get)
                            .and_then(|v| v.num())
                            .unwrap_or(0.0) as u32;
                        let h = im
                            .get("Height")
                            .and_then(&get)
                            .and_then(|v| v.num())
                            .unwrap_or(0.0) as u32;
                        let mode = pdf_mode(&im, &get);
                        if best
                            .is_none_or(|(bw, bh, _)| (w as u64 * h as u64) > bw as u64 * bh as u64)
                        {
                            best = Some((w, h, mode));
                        }
                    }
                }
                let (w, h, mode) = best.ok_or_else(|| {
                    format!("page {} draws no image: not a scan", pages.len() + 1)
                })?;
                if w == 0 || h == 0 {
                    return Err(format!(
                        "page {} has an image without size",
                        pages.len() + 1
                    ));
                }
                pages.push(Page {
                    width_px: w,
                    height_px: h,
                    dpi: None,
                    size_mm: Some(size),
                    mode,
                });
                if pages.len() > MAX_PAGES {
                    return Err(format!("more than {MAX_PAGES} pages"));
                }
            }
        }
    }
    Ok(pages)
}

/// The largest object stream read (compressed page and resource dictionaries; images are never
/// in one).
const MAX_OBJSTM: usize = 8 << 20;

/// The objects of an object stream: `/N` pairs of object number and offset, then the objects
/// from `/First`.
fn object_stream(dict: &Pv, data: &[u8], objs: &mut HashMap<u32, Pv>) -> Result<(), String> {
    let d = dict.dict().ok_or("an object stream without a dictionary")?;
    let n = d.get("N").and_then(Pv::num).unwrap_or(0.0) as usize;
    let first = d.get("First").and_then(Pv::num).unwrap_or(0.0) as usize;
    let inflated;
    let body: &[u8] = match d.get("Filter") {
        None => data,
        Some(Pv::Name(f)) if f == "FlateDecode" => {
            use std::io::Read as _;
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(data)
                .take(4 * MAX_OBJSTM as u64)
                .read_to_end(&mut out)
                .map_err(|e| format!("an object stream cannot be inflated: {e}"))?;
            inflated = out;
            &inflated
        }
        Some(other) => {
            return Err(format!(
                "an object stream filtered by {other:?} is not read"
            ));
        }
    };
    if n > 4 * MAX_PAGES || first > body.len() {
        return Err("an object stream with a bad header".into());
    }
    let mut header = Lexer {
        b: &body[..first],
        i: 0,
    };
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        match (header.value(0), header.value(0)) {
            (Some(Pv::Num(o)), Some(Pv::Num(off))) => pairs.push((o as u32, off as usize)),
            _ => return Err("an object stream with a bad header".into()),
        }
    }
    for (o, off) in pairs {
        let at = first.saturating_add(off);
        if at >= body.len() {
            continue;
        }
        let mut lx = Lexer {
            b: &body[at..],
            i: 0,
        };
        if let Some(v) = lx.value(0) {
            objs.entry(o).or_insert(v);
        }
        if objs.len() > 4 * MAX_PAGES + 1000 {
            return Err("too many objects for a scan".into());
        }
    }
    Ok(())
}

fn pdf_mode(im: &HashMap<String, Pv>, get: &dyn Fn(&Pv) -> Option<Pv>) -> ColourMode {
    if matches!(im.get("ImageMask"), Some(Pv::Other) | Some(Pv::Name(_))) {
        // `/ImageMask true` reads as Other: a stencil, one bit.
        return ColourMode::Bitonal;
    }
    let bits = im
        .get("BitsPerComponent")
        .and_then(get)
        .and_then(|v| v.num())
        .unwrap_or(8.0);
    let filters: Vec<String> = match im.get("Filter").and_then(get) {
        Some(Pv::Name(n)) => vec![n],
        Some(Pv::Arr(a)) => a
            .iter()
            .filter_map(|x| x.name().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    if filters
        .iter()
        .any(|f| f == "CCITTFaxDecode" || f == "JBIG2Decode")
    {
        return ColourMode::Bitonal;
    }
    let components = match im.get("ColorSpace").and_then(get) {
        Some(Pv::Name(n)) => match n.as_str() {
            "DeviceGray" | "CalGray" => 1,
            _ => 3,
        },
        Some(Pv::Arr(a)) => match a.first().and_then(Pv::name) {
            Some("ICCBased") => a
                .get(1)
                .and_then(get)
                .and_then(|s| s.dict().and_then(|d| d.get("N")).and_then(|v| v.num()))
                .unwrap_or(3.0) as u32,
            Some("CalGray") => 1,
            _ => 3,
        },
        _ => 3,
    };
    match (components, bits as u32) {
        (1, 1) => ColourMode::Bitonal,
        (1, _) => ColourMode::Gray,
        _ => ColourMode::Color,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

// ---------------------------------------------------------------- OFD

/// The largest OFD XML part read: page descriptions are small.
const MAX_OFD_XML: u64 = 4 << 20;

fn ofd(r: &mut dyn ReadSeek) -> Result<Vec<Page>, String> {
    let mut zip = zip::ZipArchive::new(r).map_err(|e| format!("not a readable OFD (ZIP): {e}"))?;
    let text =
        |zip: &mut zip::ZipArchive<&mut dyn ReadSeek>, name: &str| -> Result<String, String> {
            let name = name.trim_start_matches('/');
            let f = zip
                .by_name(name)
                .map_err(|_| format!("the OFD has no {name}"))?;
            let mut s = String::new();
            f.take(MAX_OFD_XML)
                .read_to_string(&mut s)
                .map_err(|e| format!("{name}: {e}"))?;
            Ok(s)
        };
    let ofd_xml = text(&mut zip, "OFD.xml")?;
    let doc_root = xml_text(&ofd_xml, "DocRoot").ok_or("OFD.xml names no DocRoot")?;
    let doc_dir = parent(&doc_root);
    let document = text(&mut zip, &doc_root)?;
    let d = roxmltree::Document::parse(&document).map_err(|e| format!("{doc_root}: {e}"))?;
    let default_box = d
        .descendants()
        .find(|n| n.tag_name().name() == "PageArea")
        .and_then(|pa| child_text(pa, "PhysicalBox"))
        .and_then(|b| ofd_box(&b));
    // Images by resource id, from every resource file the document names.
    let mut media: HashMap<String, String> = HashMap::new();
    let res_files: Vec<String> = d
        .descendants()
        .filter(|n| matches!(n.tag_name().name(), "PublicRes" | "DocumentRes"))
        .filter_map(|n| n.text().map(|t| join(&doc_dir, t.trim())))
        .collect();
    for rf in res_files {
        let rtext = text(&mut zip, &rf)?;
        let rd = roxmltree::Document::parse(&rtext).map_err(|e| format!("{rf}: {e}"))?;
        let base = rd
            .root_element()
            .attribute("BaseLoc")
            .map(|b| join(&parent(&rf), b))
            .unwrap_or_else(|| parent(&rf));
        for m in rd
            .descendants()
            .filter(|n| n.tag_name().name() == "MultiMedia")
        {
            if let (Some(id), Some(file)) = (m.attribute("ID"), child_text(m, "MediaFile")) {
                media.insert(id.to_string(), join(&base, file.trim()));
            }
        }
    }
    let page_locs: Vec<(String, Option<String>)> = d
        .descendants()
        .filter(|n| n.tag_name().name() == "Page" && n.attribute("BaseLoc").is_some())
        .map(|n| {
            (
                join(&doc_dir, n.attribute("BaseLoc").unwrap_or_default()),
                None,
            )
        })
        .collect();
    if page_locs.len() > MAX_PAGES {
        return Err(format!("more than {MAX_PAGES} pages"));
    }
    let mut pages = Vec::new();
    for (loc, _) in page_locs {
        let ptext = text(&mut zip, &loc)?;
        let pd = roxmltree::Document::parse(&ptext).map_err(|e| format!("{loc}: {e}"))?;
        let size = pd
            .descendants()
            .find(|n| n.tag_name().name() == "PhysicalBox")
            .and_then(|n| n.text())
            .and_then(ofd_box)
            .or(default_box)
            .ok_or_else(|| format!("{loc}: no PhysicalBox"))?;
        // The largest image the page places is its scan.
        let mut best: Option<(u64, String)> = None;
        for io in pd
            .descendants()
            .filter(|n| n.tag_name().name() == "ImageObject")
        {
            let area = io
                .attribute("Boundary")
                .and_then(ofd_box)
                .map(|(w, h)| (w * h) as u64)
                .unwrap_or(0);
            if let Some(id) = io.attribute("ResourceID")
                && best.as_ref().is_none_or(|(a, _)| area > *a)
            {
                best = Some((area, id.to_string()));
            }
        }
        let (_, id) = best.ok_or_else(|| format!("{loc} places no image: not a scan"))?;
        let file = media
            .get(&id)
            .ok_or_else(|| format!("{loc}: image resource {id} is not declared"))?
            .clone();
        let inner = {
            let mut f = zip
                .by_name(file.trim_start_matches('/'))
                .map_err(|_| format!("the OFD has no {file}"))?;
            if f.size() > 512 << 20 {
                return Err(format!("{file} is too large"));
            }
            // Image headers are read from a copy in memory: ZIP entries cannot seek.
            let mut v = Vec::with_capacity(f.size() as usize);
            f.read_to_end(&mut v).map_err(|e| format!("{file}: {e}"))?;
            v
        };
        let mut c = io::Cursor::new(inner);
        let facts = match ImageFormat::sniff(c.get_ref()) {
            Some(ImageFormat::Jpeg) => jpeg(&mut c),
            Some(ImageFormat::Tiff) => {
                tiff(&mut c).and_then(|p| p.into_iter().next().ok_or_else(|| "empty TIFF".into()))
            }
            Some(ImageFormat::Jp2) => jp2(&mut c),
            _ => Err(format!("{file} is not a TIFF, JPEG or JPEG 2000 image")),
        }
        .map_err(|e| format!("{file}: {e}"))?;
        pages.push(Page {
            width_px: facts.width_px,
            height_px: facts.height_px,
            dpi: None,
            size_mm: Some(size),
            mode: facts.mode,
        });
    }
    Ok(pages)
}

fn xml_text(text: &str, tag: &str) -> Option<String> {
    let d = roxmltree::Document::parse(text).ok()?;
    d.descendants()
        .find(|n| n.tag_name().name() == tag)
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string())
}

fn child_text(n: roxmltree::Node<'_, '_>, tag: &str) -> Option<String> {
    n.children()
        .find(|c| c.tag_name().name() == tag)
        .and_then(|c| c.text())
        .map(str::to_string)
}

/// `x y w h` in millimetres → (w, h).
fn ofd_box(s: &str) -> Option<(f64, f64)> {
    let v: Vec<f64> = s
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    (v.len() == 4 && v[2] > 0.0 && v[3] > 0.0).then(|| (v[2], v[3]))
}

fn parent(p: &str) -> String {
    match p.trim_start_matches('/').rfind('/') {
        Some(i) => p.trim_start_matches('/')[..i].to_string(),
        None => String::new(),
    }
}

fn join(dir: &str, rel: &str) -> String {
    if let Some(abs) = rel.strip_prefix('/') {
        return abs.to_string();
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_values_and_references() {
        let b =
            b"<< /Type /Page /MediaBox [0 0 595.2 841.8] /Resources 5 0 R /Kids [1 0 R 2 0 R] >>";
        let v = Lexer { b, i: 0 }.value(0).unwrap();
        let d = v.dict().unwrap();
        assert_eq!(d.get("Resources"), Some(&Pv::Ref(5)));
        assert_eq!(d.get("Kids"), Some(&Pv::Arr(vec![Pv::Ref(1), Pv::Ref(2)])));
        assert_eq!(
            d.get("MediaBox"),
            Some(&Pv::Arr(vec![
                Pv::Num(0.0),
                Pv::Num(0.0),
                Pv::Num(595.2),
                Pv::Num(841.8)
            ]))
        );
    }

    #[test]
    fn resolution_over_paper_follows_orientation() {
        let p = Page {
            width_px: 3508,
            height_px: 2480,
            dpi: None,
            size_mm: None,
            mode: ColourMode::Color,
        };
        let d = p.dpi_over((210.0, 297.0)).unwrap();
        assert!((d - 300.0).abs() < 1.0, "{d}");
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        for b in [
            &b"II*\0\xff\xff\xff\x7f"[..],
            b"MM\0*\0\0\0\x08\xff\xff",
            b"\xff\xd8\xff\xe0\0\x01",
            b"\0\0\0\x0cjP  \r\n\x87\n\0\0\0\0",
            b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 1 0 R >> endobj\n",
            b"PK\x03\x04",
        ] {
            let mut c = io::Cursor::new(b.to_vec());
            assert!(read(&mut c).is_err());
        }
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;

    /// Every image of the generated fixtures reads as what the generator made.
    #[test]
    fn fixtures_read_as_made() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/digitised");
        let want: &[(&str, ImageFormat, usize, ColourMode, Option<u32>)] = &[
            (
                "jpeg-ok/images/form-0001.jpg",
                ImageFormat::Jpeg,
                1,
                ColourMode::Color,
                Some(200),
            ),
            (
                "jpeg-ok/images/licence-0001.jpg",
                ImageFormat::Jpeg,
                1,
                ColourMode::Color,
                Some(300),
            ),
            (
                "tiff-g4-ok/images/form.tif",
                ImageFormat::Tiff,
                3,
                ColourMode::Bitonal,
                Some(300),
            ),
            (
                "jp2-ok/images/form-0001.jp2",
                ImageFormat::Jp2,
                1,
                ColourMode::Gray,
                Some(300),
            ),
            (
                "pdf-ok/images/form.pdf",
                ImageFormat::Pdf,
                2,
                ColourMode::Color,
                Some(200),
            ),
            (
                "ofd-ok/images/form.ofd",
                ImageFormat::Ofd,
                2,
                ColourMode::Color,
                Some(200),
            ),
            (
                "bad-gray-as-colour/images/licence-0001.jpg",
                ImageFormat::Jpeg,
                1,
                ColourMode::Gray,
                Some(300),
            ),
            (
                "bad-lying-dpi/images/licence-0001.jpg",
                ImageFormat::Jpeg,
                1,
                ColourMode::Color,
                Some(300),
            ),
        ];
        for (rel, format, pages, mode, dpi) in want {
            let mut f = std::fs::File::open(root.join(rel)).unwrap();
            let facts = read(&mut f).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(facts.format, *format, "{rel}");
            assert_eq!(facts.pages.len(), *pages, "{rel}");
            assert!(
                facts.pages.iter().all(|p| p.mode == *mode),
                "{rel}: {:?}",
                facts.pages
            );
            let got = facts.pages[0].recorded_dpi().map(|d| d.round() as u32);
            assert_eq!(got, *dpi, "{rel}: {:?}", facts.pages[0]);
        }
    }
}
