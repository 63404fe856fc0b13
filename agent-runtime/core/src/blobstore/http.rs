//! An IPFS-style HTTP gateway client.

use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::B256;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use sealing::Commitment;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::records::{
    ContentLookup, MAX_RECORD_LEN, record_bytes, record_hex, verify_record_bytes,
};
use crate::record::SignedRecord;

use super::{
    BlobError, BlobRef, BlobStore, BlobUri, DEFAULT_MAX_BLOB_LEN, IngestError, LocalDirStore,
    TeeFailure, VerifiedBlob, commitment_from_hex, parse_uri,
};

/// Blobs on an HTTP gateway ([`gateway::serve`](super::gateway::serve) or any server with the
/// same protocol), cached locally.
///
/// Protocol: `GET <base>/blob/<hex>` returns the bytes; `POST <base>/blob` with the bytes as the
/// body stores them and answers `201 {"commitment": "<hex>", "len": n}`; `PUT <base>/blob/<hex>`
/// stores them only if they commit to `<hex>`.
///
/// Downloads stream into the cache directory while their commitment is computed; a download
/// that does not match the expected commitment is discarded and refused. Uploads stream too,
/// and the gateway's answer is checked against the commitment computed locally on the way.
///
/// [`fetch`](BlobStore::fetch) takes a URI as a name only: any `http(s)://…/blob/<hex>` or
/// `inft-local://<hex>` names a commitment, which is fetched from *this* store's gateway, never
/// from the host in the URI (a token's URIs are chosen by whoever handed it over: they must not
/// make the receiver request internal hosts). Redirects are refused, and a download stops at
/// [`max_blob_len`](Self::max_blob_len) bytes ([`DEFAULT_MAX_BLOB_LEN`] by default), or at the
/// smaller limit given to [`fetch_at_most`](BlobStore::fetch_at_most).
#[derive(Clone, Debug)]
pub struct HttpGatewayStore {
    base: String,
    client: reqwest::Client,
    cache: LocalDirStore,
}

/// The gateway's answer to an upload.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct PutAnswer {
    pub(crate) commitment: String,
    pub(crate) len: u64,
}

impl HttpGatewayStore {
    /// A store on the gateway at `base_url` (e.g. `http://127.0.0.1:8787`), caching downloads
    /// in `cache_dir`.
    pub fn new(base_url: &str, cache_dir: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let bad = |reason| BlobError::BadUri {
            uri: base_url.to_owned(),
            reason,
        };
        let url = reqwest::Url::parse(base_url).map_err(|_| bad("not a valid URL"))?;
        if !matches!(url.scheme(), "http" | "https")
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(bad(
                "a gateway base URL is http(s):// without query or fragment",
            ));
        }
        let client = reqwest::Client::builder()
            // A gateway that redirects is refused (check_not_redirected), not followed to a
            // host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            // No overall timeout (models are GiB); a stalled connection fails instead.
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| BlobError::Protocol(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_owned(),
            client,
            cache: LocalDirStore::open(cache_dir)?.max_blob_len(Some(DEFAULT_MAX_BLOB_LEN)),
        })
    }

    /// Uses this HTTP client (timeouts, proxies, TLS settings). Build it with
    /// `redirect(reqwest::redirect::Policy::none())`: an answer that comes from anywhere but
    /// the requested URL is refused anyway, but a following client has already made the
    /// request by then.
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// Refuses blobs longer than `limit` bytes, in both directions, stopping a download as the
    /// bytes arrive (default: [`DEFAULT_MAX_BLOB_LEN`]; `None`: no limit).
    pub fn max_blob_len(mut self, limit: Option<u64>) -> Self {
        self.cache = self.cache.max_blob_len(limit);
        self
    }

    /// The gateway base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The local cache of downloaded blobs.
    pub fn cache(&self) -> &LocalDirStore {
        &self.cache
    }

    /// `<base>/record/<hex>`: where the gateway serves a public action record.
    pub fn record_uri(&self, record_hash: &B256) -> String {
        format!("{}/record/{}", self.base, record_hex(record_hash))
    }

    /// `<base>/blob/<hex>`.
    pub fn blob_url(&self, commitment: &Commitment) -> String {
        format!("{}/blob/{}", self.base, super::commitment_hex(commitment))
    }
}

/// The first 512 characters of an error response's body, for the message.
async fn error_message(resp: reqwest::Response) -> String {
    resp.text()
        .await
        .unwrap_or_default()
        .chars()
        .take(512)
        .collect()
}

/// An unexpected HTTP status, with the start of the body.
async fn error_status(url: &str, resp: reqwest::Response) -> BlobError {
    let status = resp.status().as_u16();
    BlobError::Status {
        url: url.to_owned(),
        status,
        message: error_message(resp).await,
    }
}

/// A reader that forwards everything it reads into a channel (the upload body) and counts it.
struct ChannelTee {
    inner: Box<dyn Read + Send>,
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    count: u64,
    limit: Option<u64>,
    failure: Option<TeeFailure>,
}

impl Read for ChannelTee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failure.is_some() {
            return Err(io::Error::other("upload stopped"));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                // Abort the request body so the gateway discards the partial upload.
                let _ = self
                    .tx
                    .blocking_send(Err(io::Error::new(e.kind(), "upload source failed")));
                self.failure = Some(TeeFailure::Read(e));
                return Err(io::Error::other("upload stopped"));
            }
        };
        let total = self.count.saturating_add(n as u64);
        if let Some(limit) = self.limit
            && total > limit
        {
            let _ = self
                .tx
                .blocking_send(Err(io::Error::other("blob too large")));
            self.failure = Some(TeeFailure::Limit(limit));
            return Err(io::Error::other("upload stopped"));
        }
        if n > 0
            && self
                .tx
                .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                .is_err()
        {
            // The request ended (the gateway answered or the connection broke).
            self.failure = Some(TeeFailure::Write(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "upload ended early",
            )));
            return Err(io::Error::other("upload stopped"));
        }
        self.count = total;
        Ok(n)
    }
}

#[async_trait]
impl BlobStore for HttpGatewayStore {
    async fn put_reader(&self, reader: Box<dyn Read + Send>) -> Result<BlobRef, BlobError> {
        let url = format!("{}/blob", self.base);
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        let limit = self.cache_limit();
        let hashing = tokio::task::spawn_blocking(move || {
            let mut tee = ChannelTee {
                inner: reader,
                tx,
                count: 0,
                limit,
                failure: None,
            };
            let result = sealing::commitment_of(&mut tee).map_err(|e| e.to_string());
            (result, tee.count, tee.failure)
        });
        let body =
            reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            }));
        let sent = self.client.post(&url).body(body).send().await;
        let (local, len, failure) = hashing
            .await
            .map_err(|e| BlobError::Io(io::Error::other(e)))?;
        match failure {
            Some(TeeFailure::Read(e)) => return Err(BlobError::Io(e)),
            Some(TeeFailure::Limit(limit)) => return Err(BlobError::TooLarge { limit }),
            // The request ended early: the HTTP result below says why.
            Some(TeeFailure::Write(_)) | None => {}
        }
        let resp = sent.map_err(|source| {
            if source.is_connect() {
                BlobError::Unreachable {
                    url: url.clone(),
                    source,
                }
            } else {
                BlobError::Transfer {
                    url: url.clone(),
                    source: io::Error::other(source),
                }
            }
        })?;
        if !resp.status().is_success() {
            return Err(error_status(&url, resp).await);
        }
        let local = local.map_err(BlobError::Commitment)?;
        let answer: PutAnswer = resp.json().await.map_err(|e| {
            BlobError::Protocol(format!("unreadable upload answer from {url}: {e}"))
        })?;
        let remote = commitment_from_hex(&answer.commitment).ok_or_else(|| {
            BlobError::Protocol(format!(
                "gateway answered a malformed commitment {:?}",
                answer.commitment
            ))
        })?;
        if remote != local || answer.len != len {
            return Err(BlobError::Protocol(format!(
                "gateway stored {} ({} bytes) but {} ({len} bytes) was sent",
                remote.to_hex(),
                answer.len,
                local.to_hex()
            )));
        }
        Ok(BlobRef {
            uri: self.blob_url(&local),
            commitment: local,
            len,
        })
    }

    async fn fetch(&self, uri: &str, expected: &Commitment) -> Result<VerifiedBlob, BlobError> {
        self.download(uri, expected, self.cache_limit()).await
    }

    async fn fetch_at_most(
        &self,
        uri: &str,
        expected: &Commitment,
        max_len: u64,
    ) -> Result<VerifiedBlob, BlobError> {
        let limit = self.cache_limit().map_or(max_len, |l| l.min(max_len));
        let blob = self.download(uri, expected, Some(limit)).await?;
        // A copy cached earlier under a larger limit.
        if blob.len > limit {
            return Err(BlobError::TooLarge { limit });
        }
        Ok(blob)
    }

    fn uri_for(&self, commitment: &Commitment) -> String {
        self.blob_url(commitment)
    }

    async fn put_record(&self, record: &SignedRecord) -> Result<String, BlobError> {
        let url = self.record_uri(&record.record_hash());
        let bytes = record_bytes(record)?;
        let resp = self
            .client
            .put(&url)
            .body(bytes)
            .send()
            .await
            .map_err(|source| BlobError::Unreachable {
                url: url.clone(),
                source,
            })?;
        if resp.status() == reqwest::StatusCode::CONFLICT {
            return Err(BlobError::RecordConflict {
                record_hash: record.record_hash(),
                detail: format!("the gateway says: {}", error_message(resp).await),
            });
        }
        if !resp.status().is_success() {
            return Err(error_status(&url, resp).await);
        }
        Ok(url)
    }

    async fn fetch_record(&self, record_hash: B256) -> Result<SignedRecord, BlobError> {
        let url = self.record_uri(&record_hash);
        let mut resp = self.get(&url).await?;
        if !resp.status().is_success() {
            return Err(error_status(&url, resp).await);
        }
        let limit = MAX_RECORD_LEN as u64;
        if resp.content_length().is_some_and(|len| len > limit) {
            return Err(BlobError::TooLarge { limit });
        }
        // Read chunk by chunk so a server that lies about its length cannot make us buffer more.
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| BlobError::Transfer {
            url: url.clone(),
            source: io::Error::other(e),
        })? {
            if bytes.len() + chunk.len() > MAX_RECORD_LEN {
                return Err(BlobError::TooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        verify_record_bytes(&bytes, record_hash)
    }

    async fn records_by_content(&self, content_hash: B256) -> Result<Vec<B256>, BlobError> {
        let url = format!("{}/by-content/{}", self.base, record_hex(&content_hash));
        let resp = self.get(&url).await?;
        if !resp.status().is_success() {
            return Err(error_status(&url, resp).await);
        }
        // A few hashes per content; a gateway answering more than a record's worth is refused.
        if resp
            .content_length()
            .is_some_and(|len| len > MAX_RECORD_LEN as u64)
        {
            return Err(BlobError::TooLarge {
                limit: MAX_RECORD_LEN as u64,
            });
        }
        let answer: ContentLookup = resp.json().await.map_err(|e| BlobError::Transfer {
            url: url.clone(),
            source: io::Error::other(e),
        })?;
        Ok(answer.records)
    }
}

impl HttpGatewayStore {
    /// `GET url` from the gateway: unreachable, redirected and `404` answers are errors
    /// (other statuses are the caller's to judge).
    async fn get(&self, url: &str) -> Result<reqwest::Response, BlobError> {
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|source| BlobError::Unreachable {
                url: url.to_owned(),
                source,
            })?;
        check_not_redirected(url, &resp)?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(BlobError::NotFound {
                uri: url.to_owned(),
            });
        }
        Ok(resp)
    }

    fn cache_limit(&self) -> Option<u64> {
        self.cache.limit()
    }

    /// Downloads the blob `uri` names from this store's gateway into the cache (or takes the
    /// verified cached copy), refusing more than `limit` bytes as they arrive.
    async fn download(
        &self,
        uri: &str,
        expected: &Commitment,
        limit: Option<u64>,
    ) -> Result<VerifiedBlob, BlobError> {
        // The URI is only a name: whatever host it names, the bytes come from our gateway.
        let named = match parse_uri(uri)? {
            BlobUri::Http { commitment, .. } | BlobUri::Local(commitment) => commitment,
        };
        if named != *expected {
            return Err(BlobError::UriMismatch {
                uri: uri.to_owned(),
                named,
                expected: *expected,
            });
        }
        if self.cache.contains(expected) {
            match self.cache.get(expected).await {
                Ok(blob) => return Ok(blob),
                // A cached copy that no longer verifies was removed: download it again.
                Err(BlobError::CommitmentMismatch { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let url = self.blob_url(expected);
        let resp = self.get(&url).await?;
        if !resp.status().is_success() {
            return Err(error_status(&url, resp).await);
        }
        if let (Some(limit), Some(len)) = (limit, resp.content_length())
            && len > limit
        {
            return Err(BlobError::TooLarge { limit });
        }
        let stream = Box::pin(resp.bytes_stream().map(|r| r.map_err(io::Error::other)));
        let reader = SyncIoBridge::new(StreamReader::new(stream));
        let stored = self
            .cache
            .ingest_at_most(Box::new(reader), Some(*expected), limit)
            .await
            .map_err(|e| match e {
                IngestError::Source(source) => BlobError::Transfer {
                    url: url.clone(),
                    source,
                },
                IngestError::Blob(b) => b,
            })?;
        tracing::debug!(%url, len = stored.len, "blob downloaded and verified");
        Ok(VerifiedBlob {
            path: self.cache.path_of(&stored.commitment),
            commitment: stored.commitment,
            len: stored.len,
        })
    }
}

/// Refuses an answer that is a redirect, or that a client built to follow redirects (see
/// [`HttpGatewayStore::with_client`]) fetched from elsewhere: blobs and records come from the
/// configured gateway only.
fn check_not_redirected(url: &str, resp: &reqwest::Response) -> Result<(), BlobError> {
    let elsewhere = reqwest::Url::parse(url).ok().as_ref() != Some(resp.url());
    if resp.status().is_redirection() || elsewhere {
        let to = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(resp.url().as_str());
        return Err(BlobError::Protocol(format!(
            "{url} answered a redirect (HTTP {}, to {:?}); blobs and records are fetched from the configured gateway only",
            resp.status().as_u16(),
            to.chars().take(200).collect::<String>()
        )));
    }
    Ok(())
}
