//! Store: packages live in an object store (`object_store`): the local file system by default,
//! any S3-compatible service with `s3://bucket/prefix`.
//!
//! A package is committed only once it is complete and synced. On the local file system the
//! staged file is renamed into place (atomic, no copy) and the directory synced; elsewhere it is
//! streamed as a multipart upload that becomes visible only when finished.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object store URL {0:?} is not supported: use file:///path or s3://bucket/prefix")]
    Url(String),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("object store I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The bytes of a stored object, as they arrive.
pub type ByteStream = BoxStream<'static, Result<Bytes, StoreError>>;

#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
    pub url: String,
}

pub fn package_key(archive_id: &str, version: i64) -> String {
    format!("packages/{archive_id}/v{version}.zip")
}

impl Store {
    pub fn open(url: &str) -> Result<Store, StoreError> {
        if let Some(path) = url.strip_prefix("file://") {
            let root = PathBuf::from(path);
            std::fs::create_dir_all(&root)?;
            // An ingest that fails after storing removes its package: the emptied
            // `packages/{id}/` directory goes with it.
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&root)?
                .with_automatic_cleanup(true);
            return Ok(Store {
                inner: Arc::new(fs),
                local_root: Some(root),
                url: url.to_string(),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StoreError::Url(url.into()));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()?;
            let inner: Arc<dyn ObjectStore> = if prefix.trim_matches('/').is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(
                    s3,
                    prefix.trim_matches('/'),
                ))
            };
            return Ok(Store {
                inner,
                local_root: None,
                url: url.to_string(),
            });
        }
        Err(StoreError::Url(url.into()))
    }

    /// Moves a finished, synced package into the store under `key`. When this returns the
    /// package survives a crash.
    pub async fn commit(&self, staged: &Path, key: &str) -> Result<(), StoreError> {
        if let Some(root) = &self.local_root {
            let dest = root.join(key);
            let staged = staged.to_path_buf();
            tokio::task::spawn_blocking(move || commit_local(&staged, &dest))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
            return Ok(());
        }
        let upload = self.inner.put_multipart(&ObjPath::from(key)).await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
        let mut f = tokio::fs::File::open(staged).await?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            w.wait_for_capacity(4).await?;
            w.write(&buf[..n]);
        }
        w.finish().await?;
        tokio::fs::remove_file(staged).await?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&ObjPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match self.inner.head(&ObjPath::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams a whole object: `(size, chunks)`.
    pub async fn get(
        &self,
        key: &str,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, StoreError>>), StoreError> {
        let r = self.inner.get(&ObjPath::from(key)).await?;
        let size = r.meta.size;
        Ok((size, r.into_stream().map_err(StoreError::from).boxed()))
    }

    /// Streams a byte range of an object (one file inside a stored package).
    pub async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, StoreError>>, StoreError> {
        if range.is_empty() {
            return Ok(futures_util::stream::empty().boxed());
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..Default::default()
        };
        let r = self.inner.get_opts(&ObjPath::from(key), opts).await?;
        Ok(r.into_stream().map_err(StoreError::from).boxed())
    }

    /// The file behind `key` when the store is the local file system: bulk checks read it
    /// directly, without a round through the object-store layer for every read.
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        let root = self.local_root.as_ref()?;
        let rel = Path::new(key);
        rel.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
            .then(|| root.join(rel))
    }

    pub async fn size(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self.inner.head(&ObjPath::from(key)).await?.size)
    }

    pub async fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        Ok(self.inner.get_range(&ObjPath::from(key), range).await?)
    }

    /// A blocking `Read + Seek` over a stored object by ranged reads of 8 MiB: packages are
    /// verified where they are stored, never copied or unpacked. Use from a blocking thread.
    pub fn reader(&self, key: &str, size: u64, handle: tokio::runtime::Handle) -> StoreReader {
        StoreReader {
            store: self.clone(),
            key: key.to_string(),
            size,
            pos: 0,
            buf: Bytes::new(),
            buf_start: 0,
            handle,
        }
    }

    /// Readiness: the store answers (a missing object is an answer).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.exists(".guidang-ping").await.map(|_| ())
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn commit_local(staged: &Path, dest: &Path) -> std::io::Result<()> {
    let parent = dest
        .parent()
        .ok_or_else(|| std::io::Error::other("key has no parent"))?;
    std::fs::create_dir_all(parent)?;
    match std::fs::rename(staged, dest) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            // Staging and store on different file systems: copy, sync, then swap in atomically.
            let tmp = dest.with_extension("partial");
            std::fs::copy(staged, &tmp)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, dest)?;
            std::fs::remove_file(staged)?;
        }
        Err(e) => return Err(e),
    }
    sync_dir(parent)?;
    if let Some(pp) = parent.parent() {
        sync_dir(pp)?;
    }
    Ok(())
}

pub struct StoreReader {
    store: Store,
    key: String,
    size: u64,
    pos: u64,
    buf: Bytes,
    buf_start: u64,
    handle: tokio::runtime::Handle,
}

const READ_AHEAD: u64 = 8 << 20;

impl std::io::Read for StoreReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size {
            return Ok(0);
        }
        let in_buf =
            self.pos >= self.buf_start && self.pos < self.buf_start + self.buf.len() as u64;
        if !in_buf {
            let end = (self.pos + READ_AHEAD).min(self.size);
            let (store, key, start) = (self.store.clone(), self.key.clone(), self.pos);
            self.buf = self
                .handle
                .block_on(async move { store.read_range(&key, start..end).await })
                .map_err(std::io::Error::other)?;
            self.buf_start = start;
        }
        let off = (self.pos - self.buf_start) as usize;
        let n = out.len().min(self.buf.len() - off);
        out[..n].copy_from_slice(&self.buf[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for StoreReader {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let p = match to {
            std::io::SeekFrom::Start(p) => p as i128,
            std::io::SeekFrom::End(d) => self.size as i128 + d as i128,
            std::io::SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if p < 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        }
        self.pos = p as u64;
        Ok(self.pos)
    }
}
