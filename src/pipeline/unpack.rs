//! Unpack: open a submission (a ZIP on disk or an unpacked folder), list its entries under safe,
//! NFC-normalised names, and enforce the limits that stop zip bombs — all before any entry is
//! inflated. Entries are then read one at a time by the digest pass.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use unicode_normalization::UnicodeNormalization;

use crate::config::Limits;
use crate::problem::{Code, Problem, Problems};

/// Where a submission's bytes come from. Online and offline archiving differ only here.
#[derive(Debug, Clone)]
pub enum Source {
    Zip(PathBuf),
    Folder(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Entry {
    /// Normalised name: `/`-separated, NFC, relative.
    pub name: String,
    pub size: u64,
    /// Offset of the local file header and CRC-32 (ZIP sources): how an entry seen while
    /// receiving is matched to the validated directory.
    pub header_offset: u64,
    pub crc32: u32,
    index: usize,
    disk_path: Option<PathBuf>,
}

/// A submission that cannot be read at all (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{0}")]
    NotAZip(String),
    #[error("cannot read the submission: {0}")]
    Io(#[from] io::Error),
}

pub fn normalize_name(name: &str) -> String {
    name.nfc().collect()
}

/// Checks one entry name; returns the normalised name or the reason it is unsafe.
pub fn safe_name(raw: &str) -> Result<String, String> {
    let name = raw.replace('\\', "/");
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.starts_with('/') {
        return Err("absolute path".into());
    }
    let b = name.as_bytes();
    if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
        return Err("drive letter".into());
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("control character in name".into());
    }
    let trimmed = name.strip_suffix('/').unwrap_or(&name);
    for comp in trimmed.split('/') {
        match comp {
            "" => return Err("empty path component".into()),
            "." | ".." => return Err(format!("{comp:?} path component")),
            _ => {}
        }
    }
    Ok(normalize_name(&name))
}

/// What a ZIP's end-of-central-directory record says.
pub(crate) struct Eocd {
    pub entries: u64,
    pub cd_size: u64,
    /// Where the central directory ends (the EOCD or ZIP64 end record starts).
    pub cd_end: u64,
    /// Where the end record ends (with its comment), and the file's length: bytes between them
    /// belong to no part of the ZIP.
    pub eocd_end: u64,
    pub file_len: u64,
}

/// Reads the ZIP's end-of-central-directory record to learn the entry count and directory size
/// before the zip crate loads the directory into memory (ingest) or before a package is trusted
/// to be one unambiguous ZIP (verify).
pub(crate) fn eocd<R: Read + Seek + ?Sized>(f: &mut R) -> Result<Eocd, UnpackError> {
    let len = f.seek(SeekFrom::End(0))?;
    if len < 22 {
        return Err(UnpackError::NotAZip("too short to be a ZIP".into()));
    }
    let tail_len = len.min(22 + 65535);
    f.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    f.read_exact(&mut tail)?;
    let pos = (0..=tail.len() - 22)
        .rev()
        .find(|&i| tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or_else(|| {
            UnpackError::NotAZip("no end of central directory: not a ZIP or truncated".into())
        })?;
    let rec = &tail[pos..];
    let entries = u16::from_le_bytes([rec[10], rec[11]]) as u64;
    let cd_size = u32::from_le_bytes([rec[12], rec[13], rec[14], rec[15]]) as u64;
    let eocd_abs = len - tail_len + pos as u64;
    let eocd_end = eocd_abs + 22 + u16::from_le_bytes([rec[20], rec[21]]) as u64;
    let zip64 = entries == 0xFFFF || cd_size == 0xFFFF_FFFF;
    if zip64 && eocd_abs >= 20 {
        // ZIP64: the locator sits right before the EOCD record.
        let mut loc = [0u8; 20];
        f.seek(SeekFrom::Start(eocd_abs - 20))?;
        f.read_exact(&mut loc)?;
        if loc[..4] == [0x50, 0x4b, 0x06, 0x07] {
            let off = u64::from_le_bytes(loc[8..16].try_into().unwrap_or_default());
            let mut rec64 = [0u8; 56];
            if off + 56 <= len {
                f.seek(SeekFrom::Start(off))?;
                f.read_exact(&mut rec64)?;
                if rec64[..4] == [0x50, 0x4b, 0x06, 0x06] {
                    return Ok(Eocd {
                        entries: u64::from_le_bytes(rec64[32..40].try_into().unwrap_or_default()),
                        cd_size: u64::from_le_bytes(rec64[40..48].try_into().unwrap_or_default()),
                        cd_end: off,
                        eocd_end,
                        file_len: len,
                    });
                }
            }
        }
    }
    Ok(Eocd {
        entries,
        cd_size,
        cd_end: eocd_abs,
        eocd_end,
        file_len: len,
    })
}

/// One central-directory record: its raw name, whether the UTF-8 flag is set, and where its
/// local header is (the 32-bit field; not meaningful for ZIP64 entries).
pub(crate) struct CentralRecord {
    pub raw: Vec<u8>,
    pub utf8: bool,
    pub local_offset: u64,
    /// General-purpose flags (bit 3: sizes follow the data in a descriptor).
    pub flags: u16,
    pub compressed_size: u64,
    pub size: u64,
    /// Sizes or offset came from a ZIP64 extra field (a data descriptor then has 8-byte sizes).
    pub zip64: bool,
}

/// The ZIP64 extended-information extra field (0x0001): the 64-bit values of the fields that
/// are saturated in the record, in the order size, compressed size, offset.
fn zip64_extra(extra: &[u8], size: &mut u64, csize: &mut u64, offset: &mut u64) -> bool {
    let mut i = 0;
    while i + 4 <= extra.len() {
        let id = u16::from_le_bytes([extra[i], extra[i + 1]]);
        let n = u16::from_le_bytes([extra[i + 2], extra[i + 3]]) as usize;
        let body = &extra[(i + 4).min(extra.len())..(i + 4 + n).min(extra.len())];
        if id == 0x0001 {
            let mut at = 0;
            let mut next = |v: &mut u64| {
                if *v == 0xFFFF_FFFF && at + 8 <= body.len() {
                    *v = u64::from_le_bytes(body[at..at + 8].try_into().unwrap_or_default());
                    at += 8;
                }
            };
            next(size);
            next(csize);
            next(offset);
            return true;
        }
        i += 4 + n;
    }
    false
}

/// The central directory's records in order, read one by one (the zip crate keeps one entry per
/// name, so two records with one name would otherwise go unseen). Stops at the first record that
/// is damaged or cut short: then fewer than `entries` records come back.
pub(crate) fn central_records<R: Read + Seek + ?Sized>(
    f: &mut R,
    e: &Eocd,
) -> Result<Vec<CentralRecord>, UnpackError> {
    f.seek(SeekFrom::Start(e.cd_end.saturating_sub(e.cd_size)))?;
    let mut r = BufReader::with_capacity(64 * 1024, f);
    let mut records = Vec::new();
    for _ in 0..e.entries {
        let mut h = [0u8; 46];
        if r.read_exact(&mut h).is_err() || h[..4] != [0x50, 0x4b, 0x01, 0x02] {
            break;
        }
        let n = u16::from_le_bytes([h[28], h[29]]) as usize;
        let xn = u16::from_le_bytes([h[30], h[31]]) as usize;
        let comment = u16::from_le_bytes([h[32], h[33]]) as i64;
        let mut raw = vec![0u8; n];
        let mut extra = vec![0u8; xn];
        if r.read_exact(&mut raw).is_err() || r.read_exact(&mut extra).is_err() {
            break;
        }
        r.seek_relative(comment)?;
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]) as u64;
        let (mut size, mut csize, mut offset) = (u32_at(24), u32_at(20), u32_at(42));
        let zip64 = (size == 0xFFFF_FFFF || csize == 0xFFFF_FFFF || offset == 0xFFFF_FFFF)
            && zip64_extra(&extra, &mut size, &mut csize, &mut offset);
        let flags = u16::from_le_bytes([h[8], h[9]]);
        records.push(CentralRecord {
            raw,
            utf8: flags & 0x0800 != 0,
            local_offset: offset,
            flags,
            compressed_size: csize,
            size,
            zip64,
        });
    }
    Ok(records)
}

/// Checks that a ZIP is one unambiguous sequence: the entries' local headers (each naming what
/// its central record names) and data follow one another from byte 0 without gaps or overlaps
/// (two records sharing a local header overlap), the central directory follows the last entry,
/// and nothing follows the end record. A directory entry carries no bytes. Returns each
/// departure as (entry, why); an entry of `None` is about the file as a whole.
pub(crate) fn layout<R: Read + Seek + ?Sized>(
    f: &mut R,
    e: &Eocd,
    records: &[CentralRecord],
) -> Result<Vec<(Option<String>, String)>, UnpackError> {
    let mut out = Vec::new();
    let name = |raw: &[u8]| String::from_utf8_lossy(raw).to_string();
    // (start, end, name) of every entry: local header, name, extra, data, descriptor.
    let mut spans: Vec<(u64, u64, String)> = Vec::with_capacity(records.len());
    for rec in records {
        let n = name(&rec.raw);
        if rec.raw.ends_with(b"/") && (rec.size > 0 || rec.compressed_size > 0) {
            out.push((Some(n.clone()), "a directory entry carries bytes".into()));
        }
        if rec.local_offset.saturating_add(30) > e.file_len {
            out.push((Some(n), "its local header lies outside the file".into()));
            continue;
        }
        f.seek(SeekFrom::Start(rec.local_offset))?;
        let mut h = [0u8; 30];
        f.read_exact(&mut h)?;
        if h[..4] != [0x50, 0x4b, 0x03, 0x04] {
            out.push((
                Some(n),
                "no local header where the directory puts it".into(),
            ));
            continue;
        }
        let ln = u16::from_le_bytes([h[26], h[27]]) as u64;
        let lx = u16::from_le_bytes([h[28], h[29]]) as u64;
        // A damaged input is the submitter's problem, never an I/O error (500): a header that
        // runs past the end of the file is a layout problem like any other.
        let end_of_header = rec.local_offset + 30 + ln + lx;
        if end_of_header > e.file_len {
            out.push((
                Some(n),
                "its local header runs past the end of the file".into(),
            ));
            continue;
        }
        let mut local = vec![0u8; ln as usize];
        f.read_exact(&mut local)?;
        if local != rec.raw {
            // Its bytes are still accounted for below, so no gap is reported besides.
            out.push((
                Some(n.clone()),
                format!("its local header names {:?}", name(&local)),
            ));
        }
        let mut local_extra = vec![0u8; lx as usize];
        f.read_exact(&mut local_extra)?;
        let (mut a, mut b, mut c) = (0xFFFF_FFFF, 0xFFFF_FFFF, 0);
        // Either record's ZIP64 field means the descriptor carries 8-byte sizes.
        let zip64 = rec.zip64 || zip64_extra(&local_extra, &mut a, &mut b, &mut c);
        let mut end = end_of_header.saturating_add(rec.compressed_size);
        if rec.flags & 0x0008 != 0 {
            // A data descriptor: an optional signature, the CRC-32 and both sizes.
            let mut sig = [0u8; 4];
            f.seek(SeekFrom::Start(end))?;
            if f.read_exact(&mut sig).is_ok() && sig == [0x50, 0x4b, 0x07, 0x08] {
                end += 4;
            }
            end = end.saturating_add(if zip64 { 20 } else { 12 });
        }
        spans.push((rec.local_offset, end, n));
    }
    spans.sort();
    let mut at = 0u64;
    let mut prev: Option<&str> = None;
    for (start, end, n) in &spans {
        if *start < at {
            out.push((
                Some(n.clone()),
                format!(
                    "its bytes overlap those of {} (two directory records for one entry?)",
                    prev.unwrap_or("another entry")
                ),
            ));
        } else if *start > at {
            out.push((
                Some(n.clone()),
                match prev {
                    None => format!("{} bytes before the first entry belong to no entry", start),
                    Some(p) => {
                        format!("{} bytes between {p} and it belong to no entry", start - at)
                    }
                },
            ));
        }
        at = at.max(*end);
        prev = Some(n);
    }
    let cd_start = e.cd_end.saturating_sub(e.cd_size);
    if at != cd_start && !spans.is_empty() {
        out.push((
            prev.map(str::to_string),
            if at > cd_start {
                "its bytes run into the central directory".into()
            } else {
                format!(
                    "{} bytes between the last entry and the central directory belong to no entry",
                    cd_start - at
                )
            },
        ));
    }
    if e.eocd_end != e.file_len {
        out.push((
            None,
            format!(
                "{} bytes after the end of the ZIP belong to no entry",
                e.file_len.saturating_sub(e.eocd_end)
            ),
        ));
    }
    Ok(out)
}

/// An opened submission, ready to be listed and read entry by entry.
pub enum Opened {
    Zip(Box<zip::ZipArchive<BufReader<File>>>),
    Folder(PathBuf),
    /// Refused before its directory was read (limits); nothing to read.
    Nothing,
}

pub(crate) fn decode_zip_name(raw: &[u8], utf8_flag_or_valid: Option<&str>) -> String {
    if let Some(s) = utf8_flag_or_valid {
        return s.to_string();
    }
    if let Ok(s) = std::str::from_utf8(raw) {
        return s.to_string();
    }
    // Chinese Windows tools write GBK names without the UTF-8 flag.
    let (cow, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(raw);
    if !had_errors {
        return cow.into_owned();
    }
    String::from_utf8_lossy(raw).into_owned()
}

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;

/// Opens the submission and lists its file entries; unsafe names and broken limits are recorded
/// in `problems` (every one of them), unreadable input is an error.
pub fn open(
    source: &Source,
    limits: &Limits,
    problems: &mut Problems,
) -> Result<(Opened, Vec<Entry>), UnpackError> {
    match source {
        Source::Zip(path) => open_zip(path, limits, problems),
        Source::Folder(root) => {
            let entries = list_folder(root, limits, problems)?;
            Ok((Opened::Folder(root.clone()), entries))
        }
    }
}

fn open_zip(
    path: &Path,
    limits: &Limits,
    problems: &mut Problems,
) -> Result<(Opened, Vec<Entry>), UnpackError> {
    let mut f = File::open(path)?;
    let end = eocd(&mut f)?;
    let (count, cd_size) = (end.entries, end.cd_size);
    if count as usize > limits.max_entries {
        problems.push(Problem::new(
            Code::ZipLimits,
            format!(
                "{count} entries, more than the limit of {}",
                limits.max_entries
            ),
        ));
        return Ok((Opened::Nothing, vec![]));
    }
    // A central directory record is at least 46 bytes plus its name; allow generous names.
    if cd_size > (limits.max_entries as u64 + 1) * 4096 {
        problems.push(Problem::new(
            Code::ZipLimits,
            "central directory is implausibly large",
        ));
        return Ok((Opened::Nothing, vec![]));
    }
    // Two entries under one name (exactly, after NFC, or ignoring case, which collide on common
    // file systems) would leave it to the reader which one counts: refused, naming the entry.
    let mut seen_anywhere: std::collections::HashMap<String, String> = Default::default();
    let records = central_records(&mut f, &end)?;
    for (entry, why) in layout(&mut f, &end, &records)? {
        let at = entry.unwrap_or_else(|| "(after the ZIP's end record)".into());
        problems.push(Problem::file(Code::UnsafePath, at, why));
    }
    for rec in records {
        let utf8 = rec
            .utf8
            .then(|| std::str::from_utf8(&rec.raw).ok())
            .flatten();
        let display = decode_zip_name(&rec.raw, utf8);
        let key = normalize_name(&display).to_lowercase();
        let key = key.trim_end_matches('/').to_string();
        if let Some(first) = seen_anywhere.get(&key) {
            problems.push(Problem::file(
                Code::UnsafePath,
                display.clone(),
                if *first == display {
                    "the entry appears more than once in the ZIP".to_string()
                } else {
                    format!(
                        "the entry collides with {first} (same name ignoring case or Unicode form)"
                    )
                },
            ));
        } else {
            seen_anywhere.insert(key, display);
        }
    }
    f.seek(SeekFrom::Start(0))?;
    let mut zip = zip::ZipArchive::new(BufReader::with_capacity(64 * 1024, f))
        .map_err(|e| UnpackError::NotAZip(format!("not a readable ZIP: {e}")))?;
    let mut entries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let zf = zip
            .by_index_raw(i)
            .map_err(|e| UnpackError::NotAZip(format!("entry {i} is unreadable: {e}")))?;
        let raw = zf.name_raw().to_vec();
        let flagged = std::str::from_utf8(&raw).ok().map(|s| s.to_string());
        let display = decode_zip_name(&raw, flagged.as_deref());
        let name = match safe_name(&display) {
            Ok(n) => n,
            Err(why) => {
                problems.push(Problem::file(
                    Code::UnsafePath,
                    display.clone(),
                    format!("refused entry name: {why}"),
                ));
                continue;
            }
        };
        if let Some(mode) = zf.unix_mode()
            && mode & S_IFMT == S_IFLNK
        {
            problems.push(Problem::file(
                Code::UnsafePath,
                name,
                "symbolic links are not allowed",
            ));
            continue;
        }
        if zf.is_dir() {
            continue;
        }
        if !seen.insert(name.clone()) {
            problems.push(Problem::file(
                Code::UnsafePath,
                name,
                "entry appears more than once",
            ));
            continue;
        }
        if zf.encrypted() {
            problems.push(Problem::file(
                Code::EncryptedFile,
                name,
                "the ZIP entry is encrypted: decrypt before archiving",
            ));
            continue;
        }
        let size = zf.size();
        let csize = zf.compressed_size().max(1);
        if size > 1 << 20 && size / csize > limits.max_ratio {
            problems.push(Problem::file(
                Code::ZipLimits,
                name,
                format!(
                    "compression ratio {}:1 exceeds the limit of {}:1",
                    size / csize,
                    limits.max_ratio
                ),
            ));
            continue;
        }
        if !matches!(
            zf.compression(),
            zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated
        ) {
            problems.push(Problem::file(
                Code::ZipLimits,
                name,
                format!(
                    "compression method {:?} is not supported: use Deflate or Stored",
                    zf.compression()
                ),
            ));
            continue;
        }
        total = total.saturating_add(size);
        entries.push(Entry {
            name,
            size,
            header_offset: zf.header_start(),
            crc32: zf.crc32(),
            index: i,
            disk_path: None,
        });
    }
    if total > limits.max_total_bytes {
        problems.push(Problem::new(
            Code::ZipLimits,
            format!(
                "{total} bytes uncompressed, more than the limit of {}",
                limits.max_total_bytes
            ),
        ));
    }
    Ok((Opened::Zip(Box::new(zip)), entries))
}

fn list_folder(
    root: &Path,
    limits: &Limits,
    problems: &mut Problems,
) -> Result<Vec<Entry>, UnpackError> {
    let mut entries = Vec::new();
    let mut total = 0u64;
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let mut list: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        list.sort_by_key(|e| e.file_name());
        for de in list {
            let fname = de.file_name();
            let Some(fname) = fname.to_str() else {
                problems.push(Problem::file(
                    Code::UnsafePath,
                    format!("{prefix}{}", fname.to_string_lossy()),
                    "file name is not valid UTF-8",
                ));
                continue;
            };
            let rel = format!("{prefix}{fname}");
            let md = std::fs::symlink_metadata(de.path())?;
            if md.file_type().is_symlink() {
                problems.push(Problem::file(
                    Code::UnsafePath,
                    rel,
                    "symbolic links are not allowed",
                ));
                continue;
            }
            if md.is_dir() {
                stack.push((de.path(), format!("{rel}/")));
                continue;
            }
            if !md.is_file() {
                problems.push(Problem::file(Code::UnsafePath, rel, "not a regular file"));
                continue;
            }
            let name = match safe_name(&rel) {
                Ok(n) => n,
                Err(why) => {
                    problems.push(Problem::file(
                        Code::UnsafePath,
                        rel,
                        format!("refused name: {why}"),
                    ));
                    continue;
                }
            };
            total = total.saturating_add(md.len());
            entries.push(Entry {
                name,
                size: md.len(),
                header_offset: 0,
                crc32: 0,
                index: 0,
                disk_path: Some(de.path()),
            });
            if entries.len() > limits.max_entries {
                problems.push(Problem::new(
                    Code::ZipLimits,
                    format!("more than {} files", limits.max_entries),
                ));
                return Ok(vec![]);
            }
        }
    }
    if total > limits.max_total_bytes {
        problems.push(Problem::new(
            Code::ZipLimits,
            format!(
                "{total} bytes, more than the limit of {}",
                limits.max_total_bytes
            ),
        ));
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Refuses to yield more bytes than the entry declared, so a lying header cannot inflate a bomb.
pub(crate) struct Bounded<R> {
    pub(crate) inner: R,
    pub(crate) left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "entry is larger than its declared size",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl Opened {
    /// Runs `f` over a reader of the entry's bytes (inflated, bounded by the declared size).
    pub fn read_entry<T>(
        &mut self,
        entry: &Entry,
        f: impl FnOnce(&mut dyn Read) -> io::Result<T>,
    ) -> io::Result<T> {
        match self {
            Opened::Zip(zip) => {
                let zf = zip.by_index(entry.index).map_err(io::Error::other)?;
                let mut r = Bounded {
                    inner: zf,
                    left: entry.size,
                };
                f(&mut r)
            }
            Opened::Nothing => Err(io::Error::other("submission was not opened")),
            Opened::Folder(_) => {
                let p = entry
                    .disk_path
                    .as_ref()
                    .ok_or_else(|| io::Error::other("entry has no path"))?;
                let file = File::open(p)?;
                let mut r = Bounded {
                    inner: file,
                    left: entry.size,
                };
                f(&mut r)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn names() {
        assert!(safe_name("files/a.pdf").is_ok());
        assert!(safe_name("../etc/passwd").is_err());
        assert!(safe_name("files/../../x").is_err());
        assert!(safe_name("/etc/passwd").is_err());
        assert!(safe_name("C:/Windows/x").is_err());
        assert!(safe_name("files\\..\\x").is_err());
        assert!(safe_name("files//x").is_err());
        // NFD input is stored and compared as NFC.
        assert_eq!(safe_name("files/e\u{301}.pdf").unwrap(), "files/\u{e9}.pdf");
    }
}
