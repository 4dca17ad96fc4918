//! Scratch space for submissions being received and packages and documents being built. Each
//! process (a server, a `guidang import`) works in its own directory `tmp/{instance}/`, holding
//! an exclusive `flock` on `tmp/{instance}/.lock` for as long as it lives. The kernel drops the
//! lock when the process ends, however it ends (`kill -9` included), so a sweep can tell at once
//! which directories belong to nobody and remove them whole, without waiting for a grace period
//! and without disturbing a concurrent import.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LOCK: &str = ".lock";

/// This process's staging directory; removed when dropped, its lock released.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    _lock: File,
}

/// What a sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Directories of processes that are gone.
    pub dirs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Loose files (written before staging was per process) older than the grace period.
    pub loose: usize,
}

fn try_lock(f: &File) -> io::Result<bool> {
    // SAFETY: flock(2) on a descriptor this function borrows for the call.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

fn size_of(dir: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => n += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    n
}

impl Staging {
    /// Creates and locks `root/{instance}/`.
    pub fn claim(root: &Path, instance: &str) -> io::Result<Staging> {
        let dir = root.join(instance);
        std::fs::create_dir_all(&dir)?;
        let lock = File::create(dir.join(LOCK))?;
        if !try_lock(&lock)? {
            return Err(io::Error::other(format!(
                "staging directory {} is locked by another process",
                dir.display()
            )));
        }
        Ok(Staging { dir, _lock: lock })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes every directory under `root` whose owner is gone (its lock can be taken), and
    /// loose files older than `loose_grace`.
    pub fn sweep(root: &Path, loose_grace: Duration) -> io::Result<Swept> {
        let mut swept = Swept::default();
        let rd = match std::fs::read_dir(root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(swept),
            Err(e) => return Err(e),
        };
        for e in rd.flatten() {
            let path = e.path();
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                let owner_gone = match File::open(path.join(LOCK)) {
                    Ok(f) => try_lock(&f)?,
                    // A directory being claimed has its lock file a moment later; one without
                    // for a whole grace period belongs to nobody.
                    Err(_) => e
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().unwrap_or_default() >= loose_grace),
                };
                if owner_gone {
                    let bytes = size_of(&path);
                    if std::fs::remove_dir_all(&path).is_ok() {
                        swept.dirs += 1;
                        swept.bytes += bytes;
                    }
                }
            } else {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().unwrap_or_default() >= loose_grace);
                if old && std::fs::remove_file(&path).is_ok() {
                    swept.loose += 1;
                }
            }
        }
        Ok(swept)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// [`Staging::sweep`], with what it removed (or why it could not) in the log.
pub fn sweep_and_log(root: &Path, loose_grace: Duration) {
    match Staging::sweep(root, loose_grace) {
        Ok(s) if s.dirs > 0 || s.loose > 0 => tracing::warn!(
            dirs = s.dirs,
            bytes = s.bytes,
            loose_files = s.loose,
            "removed staging left by processes that ended mid-work"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "cannot sweep the staging directory"),
    }
}
