//! The blob gateway server: serves a [`LocalDirStore`] over HTTP so parties can hand blobs to
//! each other (transfers) and so [`HttpGatewayStore`](super::HttpGatewayStore) has a real
//! server to talk to.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /blob/<hex>` (and `HEAD`) | `200` the bytes, streamed, with `Content-Length`; `404` if absent |
//! | `POST /blob` (body: the bytes) | `201 {"commitment": "<hex>", "len": n}` |
//! | `PUT /blob/<hex>` (body: the bytes) | `201` as above if the bytes commit to `<hex>`, else `422` and nothing is kept |
//! | `GET /record/<hex>` | `200` a public action record envelope (JSON); `404` if absent |
//! | `GET /by-content/<hex>` | `200 {"records": ["0x…", …]}`: the stored records whose output hashes to `<hex>` (see [`records`](super::records#lookup-by-content)); an empty list if none |
//! | `PUT /record/<hex>` (body: the envelope) | `201` if it is a signed record whose hash is `<hex>` (stored in canonical form; again `201` if that exact record and signature are already stored), else `422`; `409` if the record is stored with another signature (write-once, see [`records`](super::records)); `413` over [`MAX_RECORD_LEN`] |
//!
//! Uploads stream into the store (temp file, commitment computed on the way, atomic rename);
//! `413` if longer than the store's [`max_blob_len`](LocalDirStore::max_blob_len). The server
//! serves what is on disk without re-hashing it: clients verify what they download.
//!
//! It has no authentication: bind it to loopback, or put it behind something that has.

use std::io;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::io::{ReaderStream, StreamReader, SyncIoBridge};

use super::http::PutAnswer;
use super::records::{ContentLookup, MAX_RECORD_LEN, record_hash_from_hex, verify_record_bytes};
use super::{BlobError, IngestError, LocalDirStore, commitment_from_hex};

/// The gateway routes over `store`, to serve alone ([`serve`]) or merged into a larger router.
pub fn router(store: LocalDirStore) -> Router {
    Router::new()
        .route("/blob", post(upload))
        .route("/blob/{hex}", get(download).put(upload_expected))
        .route("/record/{hex}", get(download_record).put(upload_record))
        .route("/by-content/{hex}", get(records_by_content))
        // Uploads are streamed to disk, never buffered; the store enforces its own limit.
        .layer(DefaultBodyLimit::disable())
        .with_state(store)
}

/// A running gateway. Dropping the handle stops the server.
#[derive(Debug)]
pub struct GatewayHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    join: Option<JoinHandle<io::Result<()>>>,
}

impl GatewayHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: the base URL for [`HttpGatewayStore`](super::HttpGatewayStore).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets running requests finish, and waits for the server.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.join.take() {
            Some(join) => join.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `store` on `addr` (port 0 picks a free port; see [`GatewayHandle::local_addr`]).
/// Returns once the socket is bound, so requests can be made right away.
pub async fn serve(store: LocalDirStore, addr: SocketAddr) -> Result<GatewayHandle, BlobError> {
    let handle = serve_router(router(store), addr).await?;
    tracing::info!(addr = %handle.local_addr(), "blob gateway listening");
    Ok(handle)
}

/// Serves any `app` on `addr` until the returned handle is shut down or dropped (the runtime's
/// other HTTP services, e.g. the re-encryption oracle, run the same way).
pub async fn serve_router(app: Router, addr: SocketAddr) -> io::Result<GatewayHandle> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let join = tokio::spawn(async move {
        // Handlers may ask for the peer's address (the oracle limits requests per client).
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stop_rx.await;
        })
        .await
    });
    Ok(GatewayHandle {
        addr,
        stop: Some(stop_tx),
        join: Some(join),
    })
}

fn error_response(e: &BlobError) -> Response {
    let status = match e {
        BlobError::BadUri { .. } => StatusCode::BAD_REQUEST,
        BlobError::NotFound { .. } => StatusCode::NOT_FOUND,
        // Bytes that do not commit to the name, or are not a sealed blob at all.
        BlobError::CommitmentMismatch { .. }
        | BlobError::UriMismatch { .. }
        | BlobError::RecordMismatch { .. }
        | BlobError::Commitment(_) => StatusCode::UNPROCESSABLE_ENTITY,
        BlobError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        BlobError::RecordConflict { .. } => StatusCode::CONFLICT,
        BlobError::Transfer { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "blob gateway error");
    }
    (status, e.to_string()).into_response()
}

async fn download(State(store): State<LocalDirStore>, Path(hex): Path<String>) -> Response {
    let Some(commitment) = commitment_from_hex(&hex) else {
        return error_response(&BlobError::BadUri {
            uri: hex,
            reason: "expected /blob/<64 hex digits>",
        });
    };
    let path = store.path_of(&commitment);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return error_response(&BlobError::NotFound {
                uri: LocalDirStore::uri(&commitment),
            });
        }
        Err(e) => return error_response(&BlobError::Io(e)),
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return error_response(&BlobError::Io(e)),
    };
    let body = Body::from_stream(ReaderStream::with_capacity(file, 256 * 1024));
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response()
}

async fn upload(State(store): State<LocalDirStore>, body: Body) -> Response {
    ingest(store, body, None).await
}

async fn upload_expected(
    State(store): State<LocalDirStore>,
    Path(hex): Path<String>,
    body: Body,
) -> Response {
    match commitment_from_hex(&hex) {
        Some(c) => ingest(store, body, Some(c)).await,
        None => error_response(&BlobError::BadUri {
            uri: hex,
            reason: "expected /blob/<64 hex digits>",
        }),
    }
}

async fn ingest(
    store: LocalDirStore,
    body: Body,
    expected: Option<sealing::Commitment>,
) -> Response {
    let stream = Box::pin(body.into_data_stream().map(|r| r.map_err(io::Error::other)));
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    match store.ingest(Box::new(reader), expected).await {
        Ok(blob) => {
            tracing::debug!(commitment = %blob.commitment, len = blob.len, "blob stored via gateway");
            let answer = PutAnswer {
                commitment: super::commitment_hex(&blob.commitment),
                len: blob.len,
            };
            (StatusCode::CREATED, axum::Json(answer)).into_response()
        }
        Err(IngestError::Source(e)) => error_response(&BlobError::Transfer {
            url: "request body".into(),
            source: e,
        }),
        Err(IngestError::Blob(e)) => error_response(&e),
    }
}

fn bad_record_name(hex: String) -> Response {
    error_response(&BlobError::BadUri {
        uri: hex,
        reason: "expected /record/<64 hex digits>",
    })
}

async fn download_record(State(store): State<LocalDirStore>, Path(hex): Path<String>) -> Response {
    let Some(hash) = record_hash_from_hex(&hex) else {
        return bad_record_name(hex);
    };
    // Served as stored; clients verify the hash of what they download.
    match tokio::fs::read(store.record_path(&hash)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => error_response(&BlobError::NotFound {
            uri: store.record_uri(&hash),
        }),
        Err(e) => error_response(&BlobError::Io(e)),
    }
}

async fn upload_record(
    State(store): State<LocalDirStore>,
    Path(hex): Path<String>,
    body: Body,
) -> Response {
    let Some(hash) = record_hash_from_hex(&hex) else {
        return bad_record_name(hex);
    };
    let bytes = match axum::body::to_bytes(body, MAX_RECORD_LEN).await {
        Ok(b) => b,
        Err(_) => {
            return error_response(&BlobError::TooLarge {
                limit: MAX_RECORD_LEN as u64,
            });
        }
    };
    let record = match verify_record_bytes(&bytes, hash) {
        Ok(record) => record,
        Err(e) => return error_response(&e),
    };
    // Write-once: a different signature for a stored record is refused (409), never swapped in.
    let result =
        tokio::task::spawn_blocking(move || store.put_record_blocking(&record, false)).await;
    match result {
        Ok(Ok(())) => StatusCode::CREATED.into_response(),
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&BlobError::Io(io::Error::other(e))),
    }
}

async fn records_by_content(
    State(store): State<LocalDirStore>,
    Path(hex): Path<String>,
) -> Response {
    let Some(content_hash) = record_hash_from_hex(&hex) else {
        return error_response(&BlobError::BadUri {
            uri: hex,
            reason: "expected /by-content/<64 hex digits>",
        });
    };
    let found =
        tokio::task::spawn_blocking(move || store.records_by_content_blocking(&content_hash)).await;
    match found {
        Ok(Ok(records)) => axum::Json(ContentLookup { records }).into_response(),
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&BlobError::Io(io::Error::other(e))),
    }
}
