//! Unpacking while receiving: the submission ZIP is read as it arrives, in the same pass that
//! spools it, so that a large file is inflated, hashed, identified and packaged while its bytes are
//! still coming in — not in a second pass after the upload has finished.
//!
//! This is speculation, checked afterwards: local file headers can lie, so nothing found here is
//! trusted until [`crate::pipeline::prepare`] has validated the central directory and matched
//! every entry (offset, name, size, CRC-32) to what was seen here. On any disagreement, or any
//! construct not handled here (encryption, stored entries with data descriptors, other methods,
//! a limit reached), speculation stops, the partial package is discarded and the spool file is
//! processed the ordinary way. Either way the result is the same; only the time differs.

use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};

use super::digest::{Digester, Digests, with_digester};
use super::identify::{Identification, Sniffer};
use super::package::PackageWriter;
use super::unpack::{Bounded, decode_zip_name, safe_name};
use crate::config::Limits;

/// What the receiving side needs to start a package.
pub struct EarlyInput {
    pub pkg_path: PathBuf,
    pub archive_id: String,
    pub received_at: DateTime<FixedOffset>,
    pub limits: Limits,
}

#[derive(Debug, Clone)]
pub struct EarlyEntry {
    pub header_offset: u64,
    pub name: String,
    pub size: u64,
    pub crc32: u32,
    pub digests: Digests,
    pub pkg_offset: u64,
    pub ident: Identification,
}

/// A package begun while receiving, with every entry it holds.
pub struct Early {
    pub pkg: PackageWriter,
    pub staged: tempfile::TempPath,
    pub entries: Vec<EarlyEntry>,
}

/// Every byte read from the channel is first appended to the spool file.
pub struct Tee {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
    pos: usize,
    consumed: u64,
    spool: io::BufWriter<std::fs::File>,
    eof: bool,
}

impl Tee {
    pub fn new(rx: tokio::sync::mpsc::Receiver<Bytes>, spool: std::fs::File) -> Tee {
        Tee {
            rx,
            cur: Bytes::new(),
            pos: 0,
            consumed: 0,
            spool: io::BufWriter::with_capacity(1 << 20, spool),
            eof: false,
        }
    }

    /// Reads (and spools) whatever is left of the body.
    pub fn drain(mut self) -> io::Result<()> {
        loop {
            let n = self.fill_buf()?.len();
            if n == 0 {
                break;
            }
            self.consume(n);
        }
        self.spool.flush()
    }
}

impl BufRead for Tee {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.cur.len() && !self.eof {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.spool.write_all(&chunk)?;
                    self.cur = chunk;
                    self.pos = 0;
                }
                None => self.eof = true,
            }
        }
        Ok(&self.cur[self.pos.min(self.cur.len())..])
    }
    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.consumed += n as u64;
    }
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Why speculation stopped (the ordinary path takes over; nothing is reported from here).
#[derive(Debug)]
enum Stop {
    Unsupported(&'static str),
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

fn u16le(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn u32le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
fn u64le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Runs on the spooling thread: spools the whole body and, where it can, builds the package.
pub fn receive(mut tee: Tee, inp: Option<EarlyInput>) -> io::Result<Option<Early>> {
    let Some(inp) = inp else {
        tee.drain()?;
        return Ok(None);
    };
    let mut early = match PackageWriter::create(&inp.pkg_path, &inp.archive_id, &inp.received_at) {
        Ok(pkg) => Some(Early {
            pkg,
            staged: tempfile::TempPath::try_from_path(&inp.pkg_path)?,
            entries: Vec::new(),
        }),
        Err(_) => None,
    };
    if let Some(e) = early.as_mut() {
        let result = with_digester(|dg| speculate(&mut tee, &inp, dg, e));
        match result {
            Ok(()) => {}
            Err(Stop::Io(err)) if err.kind() == io::ErrorKind::StorageFull => return Err(err),
            Err(stop) => {
                let why = match &stop {
                    Stop::Unsupported(w) => w.to_string(),
                    Stop::Io(e) => e.to_string(),
                };
                tracing::debug!(%why, "unpacking while receiving stopped; the spool file is unpacked after the upload");
                early = None;
            }
        }
    }
    tee.drain()?;
    Ok(early)
}

fn speculate(
    t: &mut Tee,
    inp: &EarlyInput,
    dg: &mut Digester,
    early: &mut Early,
) -> Result<(), Stop> {
    let limits = &inp.limits;
    let mut total = 0u64;
    loop {
        let header_offset = t.consumed;
        let mut sig = [0u8; 4];
        if t.read_exact(&mut sig).is_err() {
            return Err(Stop::Unsupported("ended inside a header"));
        }
        if u32le(&sig) != 0x0403_4b50 {
            // The central directory (or anything else) ends the entries.
            return Ok(());
        }
        let mut h = [0u8; 26];
        t.read_exact(&mut h)?;
        let flags = u16le(&h[2..]);
        let method = u16le(&h[4..]);
        let mut crc = u32le(&h[10..]);
        let mut csize = u32le(&h[14..]) as u64;
        let mut usize_ = u32le(&h[18..]) as u64;
        let nlen = u16le(&h[22..]) as usize;
        let xlen = u16le(&h[24..]) as usize;
        let mut raw_name = vec![0u8; nlen];
        t.read_exact(&mut raw_name)?;
        let mut extra = vec![0u8; xlen];
        t.read_exact(&mut extra)?;
        if flags & 1 != 0 {
            return Err(Stop::Unsupported("encrypted entry"));
        }
        let descriptor = flags & 8 != 0;
        if csize == 0xFFFF_FFFF || usize_ == 0xFFFF_FFFF {
            let mut i = 0;
            let mut found = false;
            while i + 4 <= extra.len() {
                let id = u16le(&extra[i..]);
                let len = u16le(&extra[i + 2..]) as usize;
                if id == 1 && len >= 16 && i + 4 + 16 <= extra.len() {
                    usize_ = u64le(&extra[i + 4..]);
                    csize = u64le(&extra[i + 12..]);
                    found = true;
                }
                i += 4 + len;
            }
            if !found {
                return Err(Stop::Unsupported("ZIP64 sizes missing"));
            }
        }
        let utf8 = if flags & 0x800 != 0 {
            std::str::from_utf8(&raw_name).ok().map(str::to_string)
        } else {
            None
        };
        let display = decode_zip_name(&raw_name, utf8.as_deref());
        let name = safe_name(&display).map_err(|_| Stop::Unsupported("unsafe name"))?;
        if name.ends_with('/') {
            if csize != 0 || descriptor {
                return Err(Stop::Unsupported("directory with content"));
            }
            continue;
        }
        if early.entries.len() >= limits.max_entries {
            return Err(Stop::Unsupported("too many entries"));
        }
        let budget = limits.max_total_bytes.saturating_sub(total);
        let known = !descriptor;
        if known
            && (usize_ > budget || (usize_ > 1 << 20 && usize_ / csize.max(1) > limits.max_ratio))
        {
            return Err(Stop::Unsupported("limits"));
        }
        let rel = format!("submission/{name}");
        let pkg_offset = early
            .pkg
            .begin_payload(&rel, if known { usize_ } else { budget })?;
        let mut sniffer = Sniffer::new();
        let mut hasher = crc32fast::Hasher::new();
        let before = t.consumed;
        let pkg = &mut early.pkg;
        let mut sink = |chunk: &[u8], last: bool| -> io::Result<()> {
            sniffer.feed(chunk, last);
            hasher.update(chunk);
            pkg.write(chunk)
        };
        let (digests, size) = match method {
            0 => {
                if descriptor {
                    return Err(Stop::Unsupported("stored entry with data descriptor"));
                }
                let mut r = (&mut *t).take(csize);
                dg.stream(&mut r, &mut sink)?
            }
            8 => {
                let limit = if known { usize_ } else { budget };
                let mut r = Bounded {
                    inner: flate2::bufread::DeflateDecoder::new(&mut *t),
                    left: limit,
                };
                dg.stream(&mut r, &mut sink)?
            }
            _ => return Err(Stop::Unsupported("compression method")),
        };
        let consumed = t.consumed - before;
        if descriptor {
            let mut d = [0u8; 4];
            t.read_exact(&mut d)?;
            if u32le(&d) == 0x0807_4b50 {
                t.read_exact(&mut d)?;
            }
            crc = u32le(&d);
            // 32- or 64-bit sizes: whichever agrees with what was read.
            let mut s = [0u8; 8];
            t.read_exact(&mut s)?;
            if (u32le(&s) as u64, u32le(&s[4..]) as u64) != (consumed, size) {
                let mut s2 = [0u8; 8];
                t.read_exact(&mut s2)?;
                if (u64le(&s), u64le(&s2)) != (consumed, size) {
                    return Err(Stop::Unsupported("data descriptor disagrees"));
                }
            }
            csize = consumed;
            usize_ = size;
        }
        if size != usize_ || consumed != csize {
            return Err(Stop::Unsupported("sizes disagree with the header"));
        }
        let crc_seen = hasher.finalize();
        if crc_seen != crc {
            return Err(Stop::Unsupported("CRC-32 mismatch"));
        }
        if !known && size > 1 << 20 && size / csize.max(1) > limits.max_ratio {
            return Err(Stop::Unsupported("limits"));
        }
        total += size;
        early.pkg.end_payload(&rel, size, digests, pkg_offset);
        early.entries.push(EarlyEntry {
            header_offset,
            name,
            size,
            crc32: crc,
            digests,
            pkg_offset,
            ident: sniffer.finish(),
        });
    }
}
