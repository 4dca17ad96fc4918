//! Sign: the archive's Ed25519 signing key and the detached signature over a package's tag
//! manifest (CONTRACT.md §4).

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "Ed25519";
const KEY_HEADER: &str = "guidang-ed25519-signing-key v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("signing key {0} is not a guidang Ed25519 key: {1}")]
    Format(PathBuf, String),
    #[error("cannot get randomness for a new key: {0}")]
    Random(String),
}

/// The public half, as published at `GET /api/v1/keys` and by `guidang keys export`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublicKeyInfo {
    pub key_id: String,
    pub algorithm: String,
    pub public_key: String,
    pub created_at: String,
    pub retired_at: Option<String>,
    /// `package` (signs tag manifests) or `log` (signs checkpoints).
    #[serde(default = "package_purpose")]
    pub purpose: String,
    /// For the log key: the C2SP signed-note verifier key, `origin+hash+key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vkey: Option<String>,
}

fn package_purpose() -> String {
    "package".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SignatureFile {
    pub algorithm: String,
    pub key_id: String,
    pub public_key: String,
    pub signed_file: String,
    pub signature: String,
    pub signed_at: String,
}

/// `key_id` is the lowercase hex SHA-256 of the raw 32-byte public key.
pub fn key_id(public: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(public))
}

pub struct Signer {
    key: SigningKey,
    pub info: PublicKeyInfo,
}

impl Signer {
    /// Loads the key at `path`, creating it (mode 0600, directory 0700) if it does not exist.
    /// Two processes starting at once agree on one key: creation is exclusive.
    pub fn load_or_create(path: &Path) -> Result<Signer, KeyError> {
        let io = |e| KeyError::Io(path.to_path_buf(), e);
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
                set_mode(dir, 0o700);
            }
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
            let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let body = format!(
                "{KEY_HEADER}\ncreated: {created}\nseed: {}\n",
                B64.encode(seed)
            );
            create_key_file(path, body.as_bytes()).map_err(io)?;
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let fmt = |m: &str| KeyError::Format(path.to_path_buf(), m.to_string());
        let mut lines = text.lines();
        if lines.next() != Some(KEY_HEADER) {
            return Err(fmt("missing header line"));
        }
        let mut created = None;
        let mut seed = None;
        for l in lines {
            if let Some(v) = l.strip_prefix("created: ") {
                created = Some(v.to_string());
            } else if let Some(v) = l.strip_prefix("seed: ") {
                seed = Some(
                    B64.decode(v.trim())
                        .map_err(|_| fmt("seed is not base64"))?,
                );
            }
        }
        let seed: [u8; 32] = seed
            .ok_or_else(|| fmt("no seed"))?
            .try_into()
            .map_err(|_| fmt("seed must be 32 bytes"))?;
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key().to_bytes();
        Ok(Signer {
            info: PublicKeyInfo {
                key_id: key_id(&public),
                algorithm: ALGORITHM.into(),
                public_key: B64.encode(public),
                created_at: created.unwrap_or_default(),
                retired_at: None,
                purpose: package_purpose(),
                vkey: None,
            },
            key,
        })
    }

    pub fn public_bytes(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    pub fn sign_raw(&self, bytes: &[u8]) -> [u8; 64] {
        self.key.sign(bytes).to_bytes()
    }

    pub fn sign(&self, signed_file: &str, bytes: &[u8], signed_at: &str) -> SignatureFile {
        let sig = self.key.sign(bytes);
        SignatureFile {
            algorithm: ALGORITHM.into(),
            key_id: self.info.key_id.clone(),
            public_key: self.info.public_key.clone(),
            signed_file: signed_file.into(),
            signature: B64.encode(sig.to_bytes()),
            signed_at: signed_at.into(),
        }
    }
}

/// Writes a new private key file (mode 0600) exclusively: when two processes start at once, the
/// first one's key stands and the second reads it.
pub fn create_key_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(bytes)?;
            f.sync_all()
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_mode(p: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    }
}

/// Checks `sig` over `bytes` with a base64 public key. `Err` says why not.
pub fn verify_signature(public_b64: &str, sig_b64: &str, bytes: &[u8]) -> Result<(), String> {
    let pk: [u8; 32] = B64
        .decode(public_b64)
        .map_err(|_| "public key is not base64".to_string())?
        .try_into()
        .map_err(|_| "public key must be 32 bytes".to_string())?;
    let vk =
        VerifyingKey::from_bytes(&pk).map_err(|e| format!("not an Ed25519 public key: {e}"))?;
    let sig: [u8; 64] = B64
        .decode(sig_b64)
        .map_err(|_| "signature is not base64".to_string())?
        .try_into()
        .map_err(|_| "signature must be 64 bytes".to_string())?;
    vk.verify(bytes, &Signature::from_bytes(&sig))
        .map_err(|_| "the signature does not match the signed bytes".to_string())
}
