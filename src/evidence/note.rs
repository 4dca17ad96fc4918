//! C2SP signed notes (`c2sp.org/signed-note`), checkpoints (`c2sp.org/tlog-checkpoint`) and
//! inclusion proofs (`c2sp.org/tlog-proof@v1`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: origin, size, base64 root, each on its own line.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    pub fn parse(text: &str) -> Result<Checkpoint, String> {
        let mut lines = text.lines();
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or("checkpoint has no origin line")?;
        let size = lines
            .next()
            .and_then(|l| l.parse::<u64>().ok())
            .ok_or("checkpoint size is not a number")?;
        let root: Hash = lines
            .next()
            .and_then(|l| B64.decode(l).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or("checkpoint root is not a base64 SHA-256 hash")?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// Key hash of an Ed25519 signed-note key: SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[0..4].
pub fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([1u8]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The verifier key string: `name+hexhash+base64(0x01 ‖ key)`.
pub fn vkey(name: &str, public: &[u8; 32]) -> String {
    let mut k = vec![1u8];
    k.extend_from_slice(public);
    format!(
        "{name}+{}+{}",
        hex::encode(key_hash(name, public)),
        B64.encode(k)
    )
}

/// Parses a verifier key string into (name, public key).
pub fn parse_vkey(v: &str) -> Result<(String, [u8; 32]), String> {
    let mut parts = v.splitn(3, '+');
    let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("verifier key must be name+hash+key".into());
    };
    let raw = B64.decode(key).map_err(|_| "verifier key is not base64")?;
    if raw.len() != 33 || raw[0] != 1 {
        return Err("only Ed25519 verifier keys are supported".into());
    }
    let pk: [u8; 32] = raw[1..].try_into().map_err(|_| "bad key length")?;
    if hex::encode(key_hash(name, &pk)) != hash {
        return Err("verifier key hash does not match".into());
    }
    Ok((name.to_string(), pk))
}

/// A note with the signature line of `name` appended.
pub fn sign(text: &str, name: &str, public: &[u8; 32], sig: &[u8; 64]) -> String {
    let mut blob = key_hash(name, public).to_vec();
    blob.extend_from_slice(sig);
    format!("{text}\n\u{2014} {name} {}\n", B64.encode(blob))
}

/// Splits a signed note into its text (with final newline) and its signature lines.
pub fn split(note: &str) -> Result<(&str, Vec<&str>), String> {
    let at = note.find("\n\n").ok_or("the note has no signature block")?;
    let text = &note[..at + 1];
    let sigs: Vec<&str> = note[at + 2..].lines().filter(|l| !l.is_empty()).collect();
    Ok((text, sigs))
}

/// Verifies that `note` carries a valid signature by (`name`, `public`); returns the text.
pub fn verify<'a>(note: &'a str, name: &str, public: &[u8; 32]) -> Result<&'a str, String> {
    let (text, sigs) = split(note)?;
    let want = key_hash(name, public);
    let vk = VerifyingKey::from_bytes(public).map_err(|e| format!("bad public key: {e}"))?;
    for line in sigs {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            continue;
        };
        let Some((n, b64)) = rest.rsplit_once(' ') else {
            continue;
        };
        if n != name {
            continue;
        }
        let Ok(blob) = B64.decode(b64) else { continue };
        if blob.len() != 68 || blob[..4] != want {
            continue;
        }
        let sig: [u8; 64] = blob[4..].try_into().map_err(|_| "bad signature length")?;
        return vk
            .verify(text.as_bytes(), &Signature::from_bytes(&sig))
            .map(|_| text)
            .map_err(|_| {
                "the checkpoint signature does not verify: the log key did not sign this"
                    .to_string()
            });
    }
    Err(format!("no signature by the log key {name} on this note"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub index: u64,
    pub hashes: Vec<Hash>,
    /// The signed checkpoint, verbatim.
    pub checkpoint: String,
}

impl InclusionProof {
    pub fn format(&self) -> String {
        let mut s = format!("{PROOF_HEADER}\nindex {}\n", self.index);
        for h in &self.hashes {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    pub fn parse(text: &str) -> Result<InclusionProof, String> {
        let mut rest = text
            .strip_prefix(PROOF_HEADER)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or("not a c2sp.org/tlog-proof@v1 file")?;
        let mut index = None;
        let mut hashes = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or("the proof ends before its checkpoint")?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if line.starts_with("extra ") {
                continue;
            }
            if let Some(i) = line.strip_prefix("index ") {
                index = Some(i.parse::<u64>().map_err(|_| "index is not a number")?);
                continue;
            }
            let h: Hash = B64
                .decode(line)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or("a proof line is not a base64 SHA-256 hash")?;
            hashes.push(h);
        }
        Ok(InclusionProof {
            index: index.ok_or("the proof has no index line")?,
            hashes,
            checkpoint: rest.to_string(),
        })
    }
}

/// The log entry for an archived package, derivable from the package alone (CONTRACT.md §5).
pub fn aip_entry(archive_id: &str, tagmanifest_sha256: &str) -> String {
    format!("guidang-aip-v1\n{archive_id}\n{tagmanifest_sha256}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn signed_checkpoints_and_proofs_round_trip() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let public = key.verifying_key().to_bytes();
        let cp = Checkpoint {
            origin: "guidang.local/log".into(),
            size: 5,
            root: [9u8; 32],
        };
        let text = cp.text();
        let note = sign(
            &text,
            &cp.origin,
            &public,
            &key.sign(text.as_bytes()).to_bytes(),
        );
        assert_eq!(verify(&note, &cp.origin, &public).unwrap(), text);
        assert_eq!(Checkpoint::parse(&text).unwrap(), cp);
        let forged = note.replace("\n5\n", "\n6\n");
        assert!(verify(&forged, &cp.origin, &public).is_err());
        assert!(verify(&note, "other.example/log", &public).is_err());
        let (name, pk) = parse_vkey(&vkey(&cp.origin, &public)).unwrap();
        assert_eq!((name.as_str(), pk), (cp.origin.as_str(), public));
        let p = InclusionProof {
            index: 3,
            hashes: vec![[1u8; 32], [2u8; 32]],
            checkpoint: note,
        };
        assert_eq!(InclusionProof::parse(&p.format()).unwrap(), p);
    }
}
