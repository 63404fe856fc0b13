//! A content-addressed local directory.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use alloy::primitives::B256;
use async_trait::async_trait;
use sealing::Commitment;

use super::records::{
    CONTENT_INDEX_COMPLETE, CONTENT_INDEX_DIR, MAX_RECORD_LEN, RECORD_DIR, check_record_signature,
    conflict, content_keys, record_bytes, record_hash_from_hex, record_hex, verify_record_bytes,
};
use crate::record::SignedRecord;

use super::{
    BlobError, BlobRef, BlobStore, BlobUri, IngestError, Tee, VerifiedBlob, commit_through,
    parse_uri,
};

/// Temp files older than this in `<root>/.tmp` are leftovers of a crash and removed at open.
const STALE_TMP: Duration = Duration::from_secs(24 * 3600);

/// Blobs stored as `<root>/<hex commitment>`.
///
/// Writes are atomic: the bytes go to a temp file in `<root>/.tmp` while their commitment is
/// computed (one pass), the file is fsynced, renamed to its commitment and the directory is
/// fsynced, so a crash never leaves a partial blob under a commitment name. A blob whose
/// commitment does not match what the caller expects is never renamed into place.
///
/// [`fetch`](BlobStore::fetch) re-hashes the file by default (the disk may have been
/// tampered with since it was written); [`verify_on_fetch(false)`](Self::verify_on_fetch) skips
/// that pass for callers that verify while they read anyway (e.g. `sealing::open_verified`).
#[derive(Clone, Debug)]
pub struct LocalDirStore {
    root: PathBuf,
    tmp: PathBuf,
    verify_on_fetch: bool,
    max_len: Option<u64>,
    /// Serializes record writes of this store (and its clones, e.g. a gateway's handlers), so
    /// the write-once check and the write are one step.
    record_lock: Arc<Mutex<()>>,
}

impl LocalDirStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        let tmp = root.join(".tmp");
        fs::create_dir_all(&tmp)?;
        let store = Self {
            root,
            tmp,
            verify_on_fetch: true,
            max_len: None,
            record_lock: Arc::default(),
        };
        store.remove_stale_temp_files();
        Ok(store)
    }

    /// Whether [`fetch`](BlobStore::fetch) re-hashes the stored file (default `true`).
    pub fn verify_on_fetch(mut self, yes: bool) -> Self {
        self.verify_on_fetch = yes;
        self
    }

    /// Refuses blobs longer than `limit` bytes (default: no limit).
    pub fn max_blob_len(mut self, limit: Option<u64>) -> Self {
        self.max_len = limit;
        self
    }

    /// The length limit, if any.
    pub fn limit(&self) -> Option<u64> {
        self.max_len
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a blob with this commitment is stored in (whether or not it exists).
    pub fn path_of(&self, commitment: &Commitment) -> PathBuf {
        self.root.join(super::commitment_hex(commitment))
    }

    /// Whether a blob with this commitment is stored (not verified).
    pub fn contains(&self, commitment: &Commitment) -> bool {
        self.path_of(commitment).is_file()
    }

    /// The URI of a blob in any local store: `inft-local://<hex>`.
    pub fn uri(commitment: &Commitment) -> String {
        format!(
            "{}://{}",
            super::LOCAL_SCHEME,
            super::commitment_hex(commitment)
        )
    }

    /// The file the record with this hash is stored in (whether or not it exists).
    pub fn record_path(&self, record_hash: &B256) -> PathBuf {
        self.root.join(RECORD_DIR).join(record_hex(record_hash))
    }

    /// The URI of a public record in a local store: `inft-local://record/<hex>`.
    pub fn record_uri(&self, record_hash: &B256) -> String {
        format!(
            "{}://record/{}",
            super::LOCAL_SCHEME,
            record_hex(record_hash)
        )
    }

    /// Stores a record write-once (see [`records`](super::records)): kept as is if the same
    /// record with the same signature is stored, written if nothing (or something malformed) is
    /// stored under its hash, refused with [`BlobError::RecordConflict`] if a valid envelope
    /// with another signature is, unless `replace`. Atomic (temp file, fsync, rename); a new
    /// file is linked into place without clobbering, so two processes cannot both write one.
    /// Blocking.
    pub(crate) fn put_record_blocking(
        &self,
        record: &SignedRecord,
        replace: bool,
    ) -> Result<(), BlobError> {
        let hash = record.record_hash();
        check_record_signature(record)?;
        let bytes = record_bytes(record)?;
        let writing = self
            .record_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Indexed before it is stored: a crash in between leaves an entry naming a record that
        // is not there (lookups skip it), never a stored record missing from the index.
        self.index_content(record)?;
        let path = self.record_path(&hash);
        let absent = match self.read_record_bytes(&hash)? {
            None => true,
            Some(existing) => match verify_record_bytes(&existing, hash) {
                Ok(stored) if stored == *record => return Ok(()),
                Ok(stored) if !replace && stored.signer().is_ok() => {
                    return Err(conflict(&stored, record));
                }
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!(record = %hash, error = %e, "a malformed stored record is replaced");
                    false
                }
            },
        };
        let dir = self.root.join(RECORD_DIR);
        fs::create_dir_all(&dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix("record-")
            .tempfile_in(&self.tmp)?;
        tmp.write_all(&bytes)?;
        tmp.as_file().sync_all()?;
        if absent {
            match tmp.persist_noclobber(&path) {
                Ok(_) => {}
                // Another process stored it since: its copy decides, as above.
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                    drop(writing);
                    return self.put_record_blocking(record, replace);
                }
                Err(e) => return Err(BlobError::Io(e.error)),
            }
        } else {
            tmp.persist(&path).map_err(|e| BlobError::Io(e.error))?;
        }
        sync_dir(&dir)?;
        Ok(())
    }

    /// The bytes stored under a record hash (at most one byte over [`MAX_RECORD_LEN`], enough
    /// to refuse), or `None`. Blocking.
    fn read_record_bytes(&self, hash: &B256) -> Result<Option<Vec<u8>>, BlobError> {
        match File::open(self.record_path(hash)) {
            Ok(f) => {
                let mut buf = Vec::new();
                f.take(MAX_RECORD_LEN as u64 + 1).read_to_end(&mut buf)?;
                Ok(Some(buf))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads and verifies a stored record. Blocking.
    pub(crate) fn read_record_blocking(&self, hash: B256) -> Result<SignedRecord, BlobError> {
        match self.read_record_bytes(&hash)? {
            Some(bytes) => verify_record_bytes(&bytes, hash),
            None => Err(BlobError::NotFound {
                uri: self.record_uri(&hash),
            }),
        }
    }

    /// The directory listing the records whose output hashes to `content_hash`.
    fn content_dir(&self, content_hash: &B256) -> PathBuf {
        self.root
            .join(CONTENT_INDEX_DIR)
            .join(record_hex(content_hash))
    }

    /// Notes `record` under its output hash and its piece text's hash ([`content_keys`], see
    /// [`records`](super::records#lookup-by-content)). Idempotent; a record hash always names
    /// the same output, so a record replaced under its hash (a repair) keeps its entries.
    /// Blocking.
    fn index_content(&self, record: &SignedRecord) -> Result<(), BlobError> {
        for key in content_keys(record.record()) {
            let dir = self.content_dir(&key);
            fs::create_dir_all(&dir)?;
            let entry = dir.join(record_hex(&record.record_hash()));
            if !entry.exists() {
                File::create(&entry)?;
            }
        }
        Ok(())
    }

    /// Indexes the records stored before the store kept a content index, once. Blocking.
    fn complete_content_index(&self) -> Result<(), BlobError> {
        let complete = self
            .root
            .join(CONTENT_INDEX_DIR)
            .join(CONTENT_INDEX_COMPLETE);
        if complete.exists() {
            return Ok(());
        }
        match fs::read_dir(self.root.join(RECORD_DIR)) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let Some(hash) = name.to_str().and_then(record_hash_from_hex) else {
                        continue;
                    };
                    // A malformed stored copy is not indexed: it serves nothing anyway.
                    if let Ok(record) = self.read_record_blocking(hash) {
                        self.index_content(&record)?;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        fs::create_dir_all(self.root.join(CONTENT_INDEX_DIR))?;
        File::create(complete)?;
        Ok(())
    }

    /// The hashes of the stored records whose output hashes to `content_hash`, as the index
    /// lists them (not verified: fetch each with [`BlobStore::fetch_record`]). Blocking.
    pub(crate) fn records_by_content_blocking(
        &self,
        content_hash: &B256,
    ) -> Result<Vec<B256>, BlobError> {
        self.complete_content_index()?;
        let mut hashes = match fs::read_dir(self.content_dir(content_hash)) {
            Ok(entries) => entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(record_hash_from_hex))
                .collect::<Vec<_>>(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        hashes.sort();
        Ok(hashes)
    }

    /// Removes a blob; returns whether it was there.
    pub fn remove(&self, commitment: &Commitment) -> Result<bool, BlobError> {
        match fs::remove_file(self.path_of(commitment)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(&self.tmp) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STALE_TMP);
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Copies `reader` into the store, computing the commitment on the way; refuses (and
    /// discards) the bytes if `expected` is given and does not match. Blocking.
    pub(crate) fn ingest_blocking(
        &self,
        reader: &mut (dyn Read + Send),
        expected: Option<&Commitment>,
        limit: Option<u64>,
    ) -> Result<BlobRef, IngestError> {
        let mut tmp = tempfile::Builder::new()
            .prefix("ingest-")
            .tempfile_in(&self.tmp)?;
        let (commitment, len) = {
            let sink = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
            let mut tee = Tee::new(reader, sink, limit);
            let commitment = commit_through(&mut tee)?;
            let len = tee.count;
            tee.sink.flush()?;
            (commitment, len)
        };
        if let Some(expected) = expected
            && commitment != *expected
        {
            // Dropping `tmp` deletes the bytes: a refused blob is never kept.
            return Err(BlobError::CommitmentMismatch {
                expected: *expected,
                actual: commitment,
            }
            .into());
        }
        tmp.as_file().sync_all()?;
        let dest = self.path_of(&commitment);
        tmp.persist(&dest).map_err(|e| BlobError::Io(e.error))?;
        sync_dir(&self.root)?;
        Ok(BlobRef {
            uri: Self::uri(&commitment),
            commitment,
            len,
        })
    }

    async fn store_record(
        &self,
        record: &SignedRecord,
        replace: bool,
    ) -> Result<String, BlobError> {
        let hash = record.record_hash();
        let store = self.clone();
        let record = record.clone();
        tokio::task::spawn_blocking(move || store.put_record_blocking(&record, replace))
            .await
            .map_err(|e| BlobError::Io(io::Error::other(e)))??;
        Ok(self.record_uri(&hash))
    }

    pub(crate) async fn ingest(
        &self,
        reader: Box<dyn Read + Send>,
        expected: Option<Commitment>,
    ) -> Result<BlobRef, IngestError> {
        self.ingest_at_most(reader, expected, self.max_len).await
    }

    /// [`ingest`](Self::ingest) with its own length limit (stopped as the bytes arrive).
    pub(crate) async fn ingest_at_most(
        &self,
        mut reader: Box<dyn Read + Send>,
        expected: Option<Commitment>,
        limit: Option<u64>,
    ) -> Result<BlobRef, IngestError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            store.ingest_blocking(&mut *reader, expected.as_ref(), limit)
        })
        .await
        .map_err(|e| IngestError::Blob(BlobError::Io(io::Error::other(e))))?
    }

    /// Verifies a stored blob by commitment, without a URI.
    pub async fn get(&self, expected: &Commitment) -> Result<VerifiedBlob, BlobError> {
        let path = self.path_of(expected);
        let len = match fs::metadata(&path) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => {
                return Err(BlobError::NotFound {
                    uri: Self::uri(expected),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound {
                    uri: Self::uri(expected),
                });
            }
            Err(e) => return Err(e.into()),
        };
        if self.verify_on_fetch {
            let p = path.clone();
            let actual = tokio::task::spawn_blocking(move || -> Result<Commitment, BlobError> {
                let file = File::open(&p)?;
                sealing::commitment_of(file).map_err(|e| BlobError::Commitment(e.to_string()))
            })
            .await
            .map_err(|e| BlobError::Io(io::Error::other(e)))??;
            if actual != *expected {
                // The file changed on disk since it was stored: drop it so it is fetched anew.
                tracing::warn!(path = %path.display(), "stored blob does not match its commitment; removed");
                let _ = fs::remove_file(&path);
                return Err(BlobError::CommitmentMismatch {
                    expected: *expected,
                    actual,
                });
            }
        }
        Ok(VerifiedBlob {
            path,
            commitment: *expected,
            len,
        })
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    // Makes the rename durable. Directories can be opened for reading on Unix; elsewhere this
    // is best effort.
    match File::open(dir) {
        Ok(d) => d.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

fn into_blob(e: IngestError) -> BlobError {
    match e {
        IngestError::Source(e) | IngestError::Blob(BlobError::Io(e)) => BlobError::Io(e),
        IngestError::Blob(b) => b,
    }
}

#[async_trait]
impl BlobStore for LocalDirStore {
    async fn put_reader(&self, reader: Box<dyn Read + Send>) -> Result<BlobRef, BlobError> {
        self.ingest(reader, None).await.map_err(into_blob)
    }

    async fn fetch(&self, uri: &str, expected: &Commitment) -> Result<VerifiedBlob, BlobError> {
        let named = match parse_uri(uri)? {
            BlobUri::Local(c) => c,
            _ => {
                return Err(BlobError::BadUri {
                    uri: uri.to_owned(),
                    reason: "not an inft-local:// URI",
                });
            }
        };
        if named != *expected {
            return Err(BlobError::UriMismatch {
                uri: uri.to_owned(),
                named,
                expected: *expected,
            });
        }
        self.get(expected).await
    }

    fn uri_for(&self, commitment: &Commitment) -> String {
        Self::uri(commitment)
    }

    async fn put_record(&self, record: &SignedRecord) -> Result<String, BlobError> {
        self.store_record(record, false).await
    }

    /// Overwrites whatever this directory holds under the record's hash: the owner of the
    /// directory restoring its own signed copy (see [`BlobStore::restore_record`]).
    async fn restore_record(&self, record: &SignedRecord) -> Result<String, BlobError> {
        self.store_record(record, true).await
    }

    async fn fetch_record(&self, record_hash: B256) -> Result<SignedRecord, BlobError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_record_blocking(record_hash))
            .await
            .map_err(|e| BlobError::Io(io::Error::other(e)))?
    }

    async fn records_by_content(&self, content_hash: B256) -> Result<Vec<B256>, BlobError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.records_by_content_blocking(&content_hash))
            .await
            .map_err(|e| BlobError::Io(io::Error::other(e)))?
    }
}
