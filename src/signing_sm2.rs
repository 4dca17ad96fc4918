//! SM2 signatures (GB/T 32918, SM2 with SM3, user id `1234567812345678`): what archive
//! authorities check. The key is PKCS#8 PEM (`keys/sm2.pem`, mode 0600, made on first start
//! where `sm2.enabled`); a signature is `signature-sm2.json` beside `signature.json` over the same
//! bytes, with the public key as base64 DER SubjectPublicKeyInfo and the signature DER-encoded,
//! exactly what `openssl pkeyutl -verify -rawin -digest sm3 -pkeyopt distid:1234567812345678`
//! accepts.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sm2::dsa::signature::{Signer as _, Verifier as _};
use sm2::dsa::{Signature, SigningKey, VerifyingKey};
use sm2::elliptic_curve::Generate;
use sm2::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use sm2::{PublicKey, SecretKey};

use crate::signing::PublicKeyInfo;

pub const ALGORITHM: &str = "SM2-SM3";
/// The default distinguishing identifier of GB/T 32918 (GM/T 0009).
pub const USER_ID: &str = "1234567812345678";
pub const SIGNATURE_FILE: &str = "signature-sm2.json";

#[derive(Debug, thiserror::Error)]
pub enum Sm2Error {
    #[error("SM2 key {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("SM2 key {0} is not a PKCS#8 SM2 private key: {1}")]
    Format(PathBuf, String),
}

/// `signature-sm2.json`: the fields of `signature.json` (CONTRACT §4) plus the user id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sm2SignatureFile {
    pub algorithm: String,
    pub key_id: String,
    /// base64 DER SubjectPublicKeyInfo.
    pub public_key: String,
    pub user_id: String,
    pub signed_file: String,
    /// base64 DER (SEQUENCE of r, s).
    pub signature: String,
    pub signed_at: String,
}

pub struct Sm2Signer {
    key: SigningKey,
    pub info: PublicKeyInfo,
}

/// `key_id` of an SM2 key: lowercase hex SHA-256 of its DER SubjectPublicKeyInfo.
pub fn key_id(spki_der: &[u8]) -> String {
    hex::encode(Sha256::digest(spki_der))
}

impl Sm2Signer {
    /// Loads the key at `path`, creating it (mode 0600) if it does not exist; creation is
    /// exclusive, so two processes starting at once agree on one key.
    pub fn load_or_create(path: &Path) -> Result<Sm2Signer, Sm2Error> {
        let io = |e| Sm2Error::Io(path.to_path_buf(), e);
        let fmt = |e: String| Sm2Error::Format(path.to_path_buf(), e);
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let secret = SecretKey::generate();
            let pem = secret
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| fmt(e.to_string()))?;
            crate::signing::create_key_file(path, pem.as_bytes()).map_err(io)?;
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let secret = SecretKey::from_pkcs8_pem(&text).map_err(|e| fmt(e.to_string()))?;
        let created = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .map(|t| {
                chrono::DateTime::<chrono::Utc>::from(t)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
            .unwrap_or_default();
        Self::from_secret(&secret, created).map_err(fmt)
    }

    fn from_secret(secret: &SecretKey, created_at: String) -> Result<Sm2Signer, String> {
        let key = SigningKey::new(USER_ID, secret).map_err(|e| e.to_string())?;
        let spki = secret
            .public_key()
            .to_public_key_der()
            .map_err(|e| e.to_string())?;
        Ok(Sm2Signer {
            info: PublicKeyInfo {
                key_id: key_id(spki.as_bytes()),
                algorithm: ALGORITHM.into(),
                public_key: B64.encode(spki.as_bytes()),
                created_at,
                retired_at: None,
                purpose: "package".into(),
                vkey: None,
            },
            key,
        })
    }

    pub fn sign(&self, signed_file: &str, bytes: &[u8], signed_at: &str) -> Sm2SignatureFile {
        let sig: Signature = self.key.sign(bytes);
        Sm2SignatureFile {
            algorithm: ALGORITHM.into(),
            key_id: self.info.key_id.clone(),
            public_key: self.info.public_key.clone(),
            user_id: USER_ID.into(),
            signed_file: signed_file.into(),
            signature: B64.encode(sig.to_der().as_bytes()),
            signed_at: signed_at.into(),
        }
    }
}

/// Checks an SM2-with-SM3 signature (DER, base64) over `bytes` under a public key (DER
/// SubjectPublicKeyInfo, base64) and user id. `Err` says why not.
pub fn verify(public_b64: &str, sig_b64: &str, user_id: &str, bytes: &[u8]) -> Result<(), String> {
    let spki = B64
        .decode(public_b64)
        .map_err(|_| "public key is not base64".to_string())?;
    let pk = PublicKey::from_public_key_der(&spki)
        .map_err(|e| format!("not an SM2 SubjectPublicKeyInfo: {e}"))?;
    let vk = VerifyingKey::new(user_id, pk).map_err(|e| format!("unusable SM2 key: {e}"))?;
    let der = B64
        .decode(sig_b64)
        .map_err(|_| "signature is not base64".to_string())?;
    let sig = Signature::from_der(&der).map_err(|e| format!("not a DER SM2 signature: {e}"))?;
    vk.verify(bytes, &sig)
        .map_err(|_| "the SM2 signature does not match the signed bytes".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_refuses_other_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sm2Signer::load_or_create(&dir.path().join("keys/sm2.pem")).unwrap();
        let again = Sm2Signer::load_or_create(&dir.path().join("keys/sm2.pem")).unwrap();
        assert_eq!(s.info.key_id, again.info.key_id, "the key is kept");
        let f = s.sign("tagmanifest-sha256.txt", b"bytes", "2026-12-02T00:00:00Z");
        verify(&f.public_key, &f.signature, USER_ID, b"bytes").unwrap();
        assert!(verify(&f.public_key, &f.signature, USER_ID, b"other").is_err());
        assert!(verify(&f.public_key, &f.signature, "another-id", b"bytes").is_err());
    }
}
