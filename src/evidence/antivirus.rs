//! Virus scanning with ClamAV: `clamd` over its socket (INSTREAM, for production: the signature
//! database stays loaded) or the `clamscan` command (loads its database per file; fine for small
//! custom databases). Without configuration the check reports `not_configured`, never `pass`.

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};

pub use crate::config::Antivirus;

pub enum Verdict {
    Clean,
    Infected(String),
}

impl Antivirus {
    pub fn configured(&self) -> bool {
        self.clamd_socket.is_some() || self.clamscan.is_some()
    }

    /// A short description of the engine for reports.
    pub fn engine(&self) -> String {
        match (&self.clamd_socket, &self.clamscan) {
            (Some(s), _) => format!("clamd at {}", s.display()),
            (None, Some(c)) => format!(
                "{c}{}",
                self.database
                    .as_ref()
                    .map(|d| format!(" -d {}", d.display()))
                    .unwrap_or_default()
            ),
            _ => "none".into(),
        }
    }

    pub fn scan(&self, content: &mut dyn Read) -> io::Result<Verdict> {
        if let Some(sock) = &self.clamd_socket {
            return clamd_instream(sock, content);
        }
        let Some(cmd) = &self.clamscan else {
            return Err(io::Error::other("no virus scanner configured"));
        };
        let mut c = Command::new(cmd);
        c.args(["--no-summary", "--stdout"]);
        if let Some(db) = &self.database {
            c.arg("-d").arg(db);
        }
        let mut child = c
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin"))?;
        let copied = io::copy(content, &mut stdin);
        drop(stdin);
        let out = child.wait_with_output()?;
        copied?;
        let text = String::from_utf8_lossy(&out.stdout);
        match out.status.code() {
            Some(0) => Ok(Verdict::Clean),
            Some(1) => Ok(Verdict::Infected(found_name(&text))),
            _ => Err(io::Error::other(format!(
                "clamscan failed: {}",
                text.trim()
            ))),
        }
    }
}

fn found_name(line: &str) -> String {
    line.lines()
        .find_map(|l| l.strip_suffix(" FOUND"))
        .and_then(|l| l.rsplit(": ").next())
        .unwrap_or("unknown signature")
        .to_string()
}

#[cfg(unix)]
fn clamd_instream(sock: &std::path::Path, content: &mut dyn Read) -> io::Result<Verdict> {
    let mut s = std::os::unix::net::UnixStream::connect(sock)?;
    s.write_all(b"zINSTREAM\0")?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = content.read(&mut buf)?;
        if n == 0 {
            break;
        }
        s.write_all(&(n as u32).to_be_bytes())?;
        s.write_all(&buf[..n])?;
    }
    s.write_all(&0u32.to_be_bytes())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let reply = reply.trim_end_matches('\0').trim();
    if reply.ends_with(" OK") {
        Ok(Verdict::Clean)
    } else if reply.ends_with(" FOUND") {
        Ok(Verdict::Infected(found_name(reply)))
    } else {
        Err(io::Error::other(format!("clamd: {reply}")))
    }
}

#[cfg(not(unix))]
fn clamd_instream(_sock: &std::path::Path, _content: &mut dyn Read) -> io::Result<Verdict> {
    Err(io::Error::other("clamd sockets need a Unix system"))
}
