//! Content-addressed blob storage for sealed agent data (GiB-sized sealed models, configs,
//! action records).
//!
//! A blob is known by its **commitment**, [`sealing::commitment_of`] over its bytes (the
//! token's `dataHash` for sealed data). Every store streams: blobs are never held whole in
//! memory. Every blob a store hands out was verified against the commitment the caller expects;
//! a blob that does not match is refused with [`BlobError::CommitmentMismatch`] and not kept.
//!
//! Two stores implement [`BlobStore`]:
//!
//! | store | URI form | where the bytes are |
//! | --- | --- | --- |
//! | [`LocalDirStore`] | `inft-local://<hex commitment>` | `<root>/<hex commitment>`, written atomically (temp file, fsync, rename, fsync dir) |
//! | [`HttpGatewayStore`] | `http(s)://<gateway>/blob/<hex commitment>` | a gateway ([`gateway::serve`]), downloaded into a local cache ([`LocalDirStore`]) and verified while streaming; always from the configured gateway (a URI's host is ignored), no redirects, at most [`DEFAULT_MAX_BLOB_LEN`] bytes unless configured |
//!
//! Signed action records are stored beside the sealed blobs, in the clear and addressed by their
//! record hash: see [`records`] and [`BlobStore::put_record`].
//!
//! The hex is the commitment in lowercase (64 digits, no `0x`). URIs name content, not a location you
//! have to trust: a fetched blob is checked against the commitment the caller expects (from the
//! chain), never against the URI alone. Nor is a URI a location a store goes to: a token's URIs
//! are chosen by whoever minted or handed it over, so the HTTP store fetches the named
//! commitment from its own gateway, whatever host the URI names (no requests to hosts a sender
//! picks, internal ones included), follows no redirects, and caps the length.

pub mod gateway;
mod http;
mod local;
pub mod records;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use alloy::primitives::B256;
use async_trait::async_trait;
use sealing::Commitment;

use crate::record::SignedRecord;

pub use crate::error::BlobError;
pub use http::HttpGatewayStore;
pub use local::LocalDirStore;

/// URI scheme of [`LocalDirStore`] blobs.
pub const LOCAL_SCHEME: &str = "inft-local";

/// Default cap on a blob an [`HttpGatewayStore`] downloads or uploads: 8 GiB, enough for a 13B
/// model in 4 bits. Whoever hands a token over chooses its blobs, so a download without a cap
/// could fill the receiver's disk (`transfer accept`). Change it with
/// [`HttpGatewayStore::max_blob_len`] (`inft --max-blob-size`).
pub const DEFAULT_MAX_BLOB_LEN: u64 = 8 << 30;

/// A stored blob: where it is, what it commits to, and its length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    /// The URI to fetch it with.
    pub uri: String,
    /// [`sealing::commitment_of`] of its bytes.
    pub commitment: Commitment,
    /// Length in bytes.
    pub len: u64,
}

/// A blob available as a local file whose bytes were verified against `commitment`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBlob {
    /// The local file holding the bytes (inside a store or cache directory: do not modify).
    pub path: PathBuf,
    /// The verified commitment.
    pub commitment: Commitment,
    /// Length in bytes.
    pub len: u64,
}

impl VerifiedBlob {
    /// Opens the blob for reading.
    pub fn open(&self) -> io::Result<File> {
        File::open(&self.path)
    }
}

/// A content-addressed blob store.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores the file at `path`, streaming it, and returns its reference.
    async fn put_file(&self, path: &Path) -> Result<BlobRef, BlobError> {
        let file = File::open(path)?;
        self.put_reader(Box::new(file)).await
    }

    /// Stores everything `reader` yields, streaming it (the reader runs on a blocking thread).
    async fn put_reader(&self, reader: Box<dyn Read + Send>) -> Result<BlobRef, BlobError>;

    /// Fetches the blob at `uri`, verifying that its bytes commit to `expected`.
    async fn fetch(&self, uri: &str, expected: &Commitment) -> Result<VerifiedBlob, BlobError>;

    /// [`fetch`](Self::fetch), refusing a blob longer than `max_len` bytes with
    /// [`BlobError::TooLarge`]. A store that downloads stops the transfer as the bytes arrive
    /// (and keeps nothing); the default checks the length of what `fetch` returned, which is
    /// right for stores whose blobs are already local.
    async fn fetch_at_most(
        &self,
        uri: &str,
        expected: &Commitment,
        max_len: u64,
    ) -> Result<VerifiedBlob, BlobError> {
        let blob = self.fetch(uri, expected).await?;
        if blob.len > max_len {
            return Err(BlobError::TooLarge { limit: max_len });
        }
        Ok(blob)
    }

    /// The URI under which this store serves the blob with this commitment.
    fn uri_for(&self, commitment: &Commitment) -> String;

    /// Publishes a signed action record in the clear, addressed by its record hash (see
    /// [`records`]), and returns its URI. Write-once: idempotent for the same record and
    /// signature, [`BlobError::RecordConflict`] if another valid signature is stored. Stores
    /// that hold only sealed blobs keep the default, which refuses with
    /// [`BlobError::RecordsUnsupported`].
    async fn put_record(&self, record: &SignedRecord) -> Result<String, BlobError> {
        let _ = record;
        Err(BlobError::RecordsUnsupported)
    }

    /// Puts the runtime's own signed copy of a record back where the store holds another or a
    /// damaged one (see [`records`]): a [`LocalDirStore`] (the runtime's own directory)
    /// overwrites; other stores only [`put_record`](Self::put_record), which a gateway
    /// holding another valid signature refuses ([`BlobError::RecordConflict`]: its operator
    /// must remove the copy). Only for a caller holding the record from its own database.
    async fn restore_record(&self, record: &SignedRecord) -> Result<String, BlobError> {
        self.put_record(record).await
    }

    /// Fetches the record whose hash is `record_hash`, checking that the bytes are a signed
    /// record with exactly that hash ([`BlobError::RecordMismatch`] otherwise,
    /// [`BlobError::NotFound`] if the store does not have it).
    async fn fetch_record(&self, record_hash: B256) -> Result<SignedRecord, BlobError> {
        let _ = record_hash;
        Err(BlobError::RecordsUnsupported)
    }

    /// The hashes of the stored records whose output hashes to `content_hash` (see
    /// [`records`](records#lookup-by-content)). A hint to check, not a proof: fetch each with
    /// [`fetch_record`](Self::fetch_record), which verifies it.
    async fn records_by_content(&self, content_hash: B256) -> Result<Vec<B256>, BlobError> {
        let _ = content_hash;
        Err(BlobError::RecordsUnsupported)
    }
}

/// A parsed blob URI.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobUri {
    /// `inft-local://<hex>`: a local content-addressed directory.
    Local(Commitment),
    /// `http(s)://…/blob/<hex>`: a gateway.
    Http {
        /// The full URL.
        url: String,
        /// The commitment it names.
        commitment: Commitment,
    },
}

impl BlobUri {
    /// The commitment the URI names.
    pub fn commitment(&self) -> &Commitment {
        match self {
            Self::Local(c) | Self::Http { commitment: c, .. } => c,
        }
    }
}

/// Parses a blob URI of either store.
pub fn parse_uri(uri: &str) -> Result<BlobUri, BlobError> {
    let bad = |reason| BlobError::BadUri {
        uri: uri.to_owned(),
        reason,
    };
    if let Some(rest) = uri.strip_prefix("inft-local://") {
        return commitment_from_hex(rest)
            .map(BlobUri::Local)
            .ok_or_else(|| bad("expected inft-local://<64 hex digits>"));
    }
    if uri.starts_with("http://") || uri.starts_with("https://") {
        let url = reqwest::Url::parse(uri).map_err(|_| bad("not a valid URL"))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a blob URL has no query or fragment"));
        }
        let mut segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
        let hex = segments.pop().unwrap_or_default();
        if segments.pop() != Some("blob") {
            return Err(bad("expected a URL ending in /blob/<64 hex digits>"));
        }
        let commitment = commitment_from_hex(hex)
            .ok_or_else(|| bad("expected a URL ending in /blob/<64 hex digits>"))?;
        return Ok(BlobUri::Http {
            url: uri.to_owned(),
            commitment,
        });
    }
    Err(bad("unknown scheme (expected inft-local:// or http(s)://)"))
}

/// The commitment as it appears in file names and URIs: 64 lowercase hex digits, no prefix.
pub fn commitment_hex(c: &Commitment) -> String {
    hex::encode(c.as_bytes())
}

/// Parses a commitment written as exactly 64 hex digits (no prefix). Upper case is accepted;
/// URIs this crate writes are lowercase.
pub fn commitment_from_hex(s: &str) -> Option<Commitment> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(s, &mut bytes).ok()?;
    Some(Commitment::from_bytes(bytes))
}

/// Why copying a stream into the store stopped.
#[derive(Debug)]
pub(crate) enum IngestError {
    /// Reading the source failed (the network, for a download).
    Source(io::Error),
    /// Anything else (local I/O, limit, commitment mismatch).
    Blob(BlobError),
}

impl From<io::Error> for IngestError {
    fn from(e: io::Error) -> Self {
        Self::Blob(BlobError::Io(e))
    }
}

impl From<BlobError> for IngestError {
    fn from(e: BlobError) -> Self {
        Self::Blob(e)
    }
}

/// Why a [`Tee`] refused to go on. Kept aside because the commitment function only sees an
/// opaque I/O error.
#[derive(Debug)]
pub(crate) enum TeeFailure {
    Limit(u64),
    Read(io::Error),
    Write(io::Error),
}

/// A reader that copies everything read through it into `sink` and counts it: lets
/// `sealing::commitment_of` hash a stream while it is written to disk, in one pass.
pub(crate) struct Tee<'a, R: ?Sized, W> {
    pub(crate) inner: &'a mut R,
    pub(crate) sink: W,
    pub(crate) count: u64,
    pub(crate) limit: Option<u64>,
    pub(crate) failure: Option<TeeFailure>,
}

impl<'a, R: Read + ?Sized, W: io::Write> Tee<'a, R, W> {
    pub(crate) fn new(inner: &'a mut R, sink: W, limit: Option<u64>) -> Self {
        Self {
            inner,
            sink,
            count: 0,
            limit,
            failure: None,
        }
    }

    fn fail(&mut self, f: TeeFailure) -> io::Error {
        self.failure = Some(f);
        io::Error::other("blob stream stopped")
    }
}

impl<R: Read + ?Sized, W: io::Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failure.is_some() {
            return Err(io::Error::other("blob stream stopped"));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => return Err(self.fail(TeeFailure::Read(e))),
        };
        let total = self.count.saturating_add(n as u64);
        if let Some(limit) = self.limit
            && total > limit
        {
            return Err(self.fail(TeeFailure::Limit(limit)));
        }
        if let Err(e) = self.sink.write_all(&buf[..n]) {
            return Err(self.fail(TeeFailure::Write(e)));
        }
        self.count = total;
        Ok(n)
    }
}

/// Runs `sealing::commitment_of` over a tee and sorts out why it failed, if it did.
pub(crate) fn commit_through<R: Read + ?Sized, W: io::Write>(
    tee: &mut Tee<'_, R, W>,
) -> Result<Commitment, IngestError> {
    let result = sealing::commitment_of(&mut *tee);
    match tee.failure.take() {
        Some(TeeFailure::Limit(limit)) => Err(IngestError::Blob(BlobError::TooLarge { limit })),
        Some(TeeFailure::Read(e)) => Err(IngestError::Source(e)),
        Some(TeeFailure::Write(e)) => Err(IngestError::Blob(BlobError::Io(e))),
        None => result.map_err(|e| IngestError::Blob(BlobError::Commitment(e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_strictly() {
        let hex = "ab".repeat(32);
        assert!(matches!(
            parse_uri(&format!("inft-local://{hex}")),
            Ok(BlobUri::Local(_))
        ));
        assert!(matches!(
            parse_uri(&format!("http://127.0.0.1:9/blob/{hex}")),
            Ok(BlobUri::Http { .. })
        ));
        assert!(matches!(
            parse_uri(&format!("https://gw.example/some/prefix/blob/{hex}")),
            Ok(BlobUri::Http { .. })
        ));
        for bad in [
            String::new(),
            "inft-local://".into(),
            format!("inft-local://{}", &hex[..62]),
            format!("inft-local://{hex}00"),
            format!("inft-local://{}zz", &hex[..62]),
            format!("ftp://x/blob/{hex}"),
            format!("http://x/blobs/{hex}"),
            format!("http://x/blob/{hex}?a=1"),
            "http://[::1".into(),
        ] {
            assert!(
                matches!(parse_uri(&bad), Err(BlobError::BadUri { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn tee_copies_counts_and_enforces_the_limit() {
        // commitment_of takes sealed blobs only: seal 10 KB in small chunks.
        let mut data = Vec::new();
        let opts = sealing::SealOptions {
            chunk_size: 1024,
            threads: 1,
        };
        sealing::seal(
            &sealing::DataKey::generate(),
            &[7u8; 10_000][..],
            &mut data,
            &opts,
        )
        .unwrap();
        let mut src: &[u8] = &data;
        let mut out = Vec::new();
        let mut tee = Tee::new(&mut src, &mut out, None);
        let c = commit_through(&mut tee).unwrap();
        assert_eq!(tee.count, data.len() as u64);
        drop(tee);
        assert_eq!(out, data);
        assert_eq!(c, sealing::commitment_of(&data[..]).unwrap());

        let mut src: &[u8] = &data;
        let mut tee = Tee::new(&mut src, io::sink(), Some(9_999));
        assert!(matches!(
            commit_through(&mut tee),
            Err(IngestError::Blob(BlobError::TooLarge { limit: 9_999 }))
        ));
    }
}
