//! The key service: the active package-signing key (reloaded when `guidang keys rotate`, possibly
//! in another process, replaced its file), rotation, and the published keys auditors pin.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::db::{Db, DbError};
use crate::evidence::Evidence;
use crate::signing::{KeyError, PublicKeyInfo, Signer};
use crate::signing_sm2::{Sm2Error, Sm2Signer};

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Sm2(#[from] Sm2Error),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot keep the retired key at {0}: {1}")]
    Io(String, #[source] std::io::Error),
}

pub struct Keys {
    db: Db,
    evidence: Evidence,
    path: PathBuf,
    log_name: String,
    active: RwLock<(Arc<Signer>, Option<SystemTime>)>,
    sm2: Option<Arc<Sm2Signer>>,
}

fn mtime(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Keys {
    /// Loads (or creates) the signing key at `path` and, where SM2 is enabled, the SM2 key at
    /// `sm2_path`, and publishes them.
    pub async fn open(
        db: Db,
        evidence: Evidence,
        path: PathBuf,
        sm2_path: Option<PathBuf>,
        log_name: String,
    ) -> Result<Keys, KeysError> {
        let signer = Signer::load_or_create(&path)?;
        db.publish_key(&signer.info).await?;
        let sm2 = match sm2_path {
            Some(p) => {
                let s = Sm2Signer::load_or_create(&p)?;
                db.publish_key(&s.info).await?;
                Some(Arc::new(s))
            }
            None => None,
        };
        Ok(Keys {
            sm2,
            active: RwLock::new((Arc::new(signer), mtime(&path))),
            db,
            evidence,
            path,
            log_name,
        })
    }

    /// The SM2 key, where enabled.
    pub fn sm2(&self) -> Option<Arc<Sm2Signer>> {
        self.sm2.clone()
    }

    /// The active package-signing key.
    pub fn signer(&self) -> Arc<Signer> {
        let now = mtime(&self.path);
        if let Ok(g) = self.active.read()
            && g.1 == now
        {
            return g.0.clone();
        }
        match Signer::load_or_create(&self.path) {
            Ok(s) => {
                let s = Arc::new(s);
                if let Ok(mut g) = self.active.write() {
                    *g = (s.clone(), now);
                }
                s
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the signing key; keeping the loaded one");
                self.active
                    .read()
                    .map(|g| g.0.clone())
                    .unwrap_or_else(|p| p.into_inner().0.clone())
            }
        }
    }

    /// Starts a new package-signing key. The old key is retired (still published, its packages
    /// still verify), its file kept under `keys/retired/`, and the rotation entered in the log.
    pub async fn rotate(&self) -> Result<(PublicKeyInfo, PublicKeyInfo), KeysError> {
        let old = self.signer();
        let retired_dir = self
            .path
            .parent()
            .map(|p| p.join("retired"))
            .unwrap_or_else(|| "retired".into());
        std::fs::create_dir_all(&retired_dir)
            .map_err(|e| KeysError::Io(retired_dir.display().to_string(), e))?;
        let kept = retired_dir.join(format!("signing-{}.ed25519", old.info.key_id));
        std::fs::rename(&self.path, &kept)
            .map_err(|e| KeysError::Io(kept.display().to_string(), e))?;
        let new = Signer::load_or_create(&self.path)?;
        let now = crate::db::now_rfc3339();
        self.db.publish_key(&new.info).await?;
        self.db.retire_key(&old.info.key_id, &now).await?;
        let entry = format!(
            "guidang-key-rotated-v1\n{}\n{}\n{now}\n",
            old.info.key_id, new.info.key_id
        );
        self.evidence.log_event("key_rotated", entry).await?;
        let mut old_info = old.info.clone();
        old_info.retired_at = Some(now);
        let new_info = new.info.clone();
        if let Ok(mut g) = self.active.write() {
            *g = (Arc::new(new), mtime(&self.path));
        }
        Ok((old_info, new_info))
    }

    /// Every key ever published; the log key carries its signed-note verifier key.
    pub async fn published(&self) -> Result<Vec<PublicKeyInfo>, DbError> {
        let mut keys = self.db.keys().await?;
        for k in &mut keys {
            if k.purpose == "log" {
                let pk: Option<[u8; 32]> = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    &k.public_key,
                )
                .ok()
                .and_then(|b| b.try_into().ok());
                k.vkey = pk.map(|pk| crate::evidence::note::vkey(&self.log_name, &pk));
            }
        }
        Ok(keys)
    }
}
