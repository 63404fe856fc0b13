//! Blob stores against real files and a real HTTP gateway on 127.0.0.1.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use agent_runtime::blobstore::{
    BlobError, BlobStore, HttpGatewayStore, LocalDirStore, commitment_hex, gateway,
};
use anyhow::Result;
use sealing::{Commitment, DataKey, SealOptions};

/// A real sealed blob of `len` plaintext bytes in 4 KiB chunks, and its commitment.
fn sealed_blob(len: usize, seed: u8) -> (Vec<u8>, Commitment) {
    let plaintext: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let mut out = Vec::new();
    let opts = SealOptions {
        chunk_size: 4096,
        threads: 1,
    };
    let summary =
        sealing::seal(&DataKey::generate(), &plaintext[..], &mut out, &opts).expect("seal");
    (out, summary.commitment)
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// Files in a store directory that look like blobs (not the temp dir).
fn blob_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.retain(|n| n != ".tmp");
    v.sort();
    v
}

fn temp_files(dir: &Path) -> usize {
    fs::read_dir(dir.join(".tmp"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn local_put_file_and_fetch_verified() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = LocalDirStore::open(dir.path().join("blobs"))?;
    let (blob, commitment) = sealed_blob(50_000, 1);
    let src = dir.path().join("model.sealed");
    fs::write(&src, &blob)?;

    let r = store.put_file(&src).await?;
    assert_eq!(r.commitment, commitment);
    assert_eq!(r.len, blob.len() as u64);
    assert_eq!(
        r.uri,
        format!("inft-local://{}", commitment_hex(&commitment))
    );
    assert_eq!(blob_files(store.root()), vec![commitment_hex(&commitment)]);
    assert_eq!(temp_files(store.root()), 0);

    let got = store.fetch(&r.uri, &commitment).await?;
    assert_eq!(got.commitment, commitment);
    assert_eq!(got.len, blob.len() as u64);
    assert_eq!(fs::read(&got.path)?, blob);

    // Storing the same bytes again (from a reader this time) is idempotent.
    let again = store
        .put_reader(Box::new(std::io::Cursor::new(blob.clone())))
        .await?;
    assert_eq!(again, r);
    assert_eq!(blob_files(store.root()).len(), 1);
    Ok(())
}

#[tokio::test]
async fn local_store_refuses_a_tampered_file_and_drops_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = LocalDirStore::open(dir.path())?;
    let (blob, commitment) = sealed_blob(20_000, 2);
    let r = store
        .put_reader(Box::new(std::io::Cursor::new(blob)))
        .await?;

    // Flip one ciphertext byte on disk.
    let path = store.path_of(&commitment);
    let mut bytes = fs::read(&path)?;
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    fs::write(&path, &bytes)?;

    match store.fetch(&r.uri, &commitment).await {
        Err(BlobError::CommitmentMismatch { expected, actual }) => {
            assert_eq!(expected, commitment);
            assert_ne!(actual, commitment);
        }
        other => panic!("expected a commitment mismatch, got {other:?}"),
    }
    assert!(!path.exists(), "a blob that fails verification is not kept");
    assert!(matches!(
        store.fetch(&r.uri, &commitment).await,
        Err(BlobError::NotFound { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn local_store_bad_requests_are_typed_errors() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = LocalDirStore::open(dir.path())?;
    let (blob, commitment) = sealed_blob(1000, 3);
    let (_, other) = sealed_blob(1000, 4);
    let r = store
        .put_reader(Box::new(std::io::Cursor::new(blob)))
        .await?;

    // The URI names one blob, the caller expects another: refused before reading anything.
    assert!(matches!(
        store.fetch(&r.uri, &other).await,
        Err(BlobError::UriMismatch { .. })
    ));
    assert!(matches!(
        store.fetch(&LocalDirStore::uri(&other), &other).await,
        Err(BlobError::NotFound { .. })
    ));
    for bad in [
        "",
        "inft-local://xyz",
        "file:///etc/passwd",
        "http://127.0.0.1:1/blob/00",
    ] {
        assert!(
            matches!(
                store.fetch(bad, &commitment).await,
                Err(BlobError::BadUri { .. })
            ),
            "{bad}"
        );
    }
    // An HTTP blob URL is not something the local store fetches.
    let http = format!("http://127.0.0.1:1/blob/{}", commitment_hex(&commitment));
    assert!(matches!(
        store.fetch(&http, &commitment).await,
        Err(BlobError::BadUri { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn bytes_that_are_not_a_sealed_blob_are_refused_and_not_kept() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = LocalDirStore::open(dir.path().join("store"))?;
    let err = store
        .put_reader(Box::new(&b"just some plaintext, not a sealed blob"[..]))
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Commitment(_)), "{err:?}");

    // A truncated sealed blob still looks well-formed without its key, but it commits to
    // something else: fetching it under the original commitment is what refuses it.
    let (blob, original) = sealed_blob(10_000, 5);
    let cut = blob[..blob.len() - 100].to_vec();
    let other = LocalDirStore::open(dir.path().join("other"))?;
    let stored = other
        .put_reader(Box::new(std::io::Cursor::new(cut)))
        .await?;
    assert_ne!(stored.commitment, original);
    assert!(matches!(
        other.fetch(&LocalDirStore::uri(&original), &original).await,
        Err(BlobError::NotFound { .. })
    ));

    assert!(blob_files(store.root()).is_empty());
    assert_eq!(temp_files(store.root()), 0);
    Ok(())
}

#[tokio::test]
async fn size_limit_stops_the_stream() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = LocalDirStore::open(dir.path())?.max_blob_len(Some(10_000));
    let (blob, _) = sealed_blob(30_000, 6);
    let err = store
        .put_reader(Box::new(std::io::Cursor::new(blob)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BlobError::TooLarge { limit: 10_000 }),
        "{err:?}"
    );
    assert!(blob_files(store.root()).is_empty());
    assert_eq!(temp_files(store.root()), 0);
    Ok(())
}

#[tokio::test]
async fn http_store_round_trip_through_a_real_gateway() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server_store = LocalDirStore::open(dir.path().join("server"))?;
    let server = gateway::serve(server_store.clone(), loopback()).await?;

    // Party A uploads (streamed, commitment checked against the gateway's answer).
    let (blob, commitment) = sealed_blob(300_000, 7);
    let src = dir.path().join("blob");
    fs::write(&src, &blob)?;
    let a = HttpGatewayStore::new(&server.base_url(), dir.path().join("cache-a"))?;
    let r = a.put_file(&src).await?;
    assert_eq!(r.commitment, commitment);
    assert_eq!(r.len, blob.len() as u64);
    assert_eq!(
        r.uri,
        format!("{}/blob/{}", server.base_url(), commitment_hex(&commitment))
    );
    assert_eq!(fs::read(server_store.path_of(&commitment))?, blob);

    // Party B downloads into its own cache, verified.
    let b = HttpGatewayStore::new(&server.base_url(), dir.path().join("cache-b"))?;
    let got = b.fetch(&r.uri, &commitment).await?;
    assert_eq!(got.commitment, commitment);
    assert_eq!(fs::read(&got.path)?, blob);
    assert!(got.path.starts_with(b.cache().root()));

    // With the gateway gone, the verified cached copy still serves.
    server.shutdown().await?;
    let cached = b.fetch(&r.uri, &commitment).await?;
    assert_eq!(fs::read(&cached.path)?, blob);
    Ok(())
}

#[tokio::test]
async fn http_store_refuses_tampered_bytes_from_the_gateway() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server_store = LocalDirStore::open(dir.path().join("server"))?;
    let server = gateway::serve(server_store.clone(), loopback()).await?;
    let (blob, commitment) = sealed_blob(100_000, 8);
    server_store
        .put_reader(Box::new(std::io::Cursor::new(blob.clone())))
        .await?;

    // The gateway's disk is tampered with: it now serves different bytes under the same name.
    let mut bad = blob.clone();
    let i = bad.len() - 10;
    bad[i] ^= 0x80;
    fs::write(server_store.path_of(&commitment), &bad)?;

    let client = HttpGatewayStore::new(&server.base_url(), dir.path().join("cache"))?;
    let uri = client.uri_for(&commitment);
    match client.fetch(&uri, &commitment).await {
        Err(BlobError::CommitmentMismatch { expected, .. }) => assert_eq!(expected, commitment),
        other => panic!("expected a commitment mismatch, got {other:?}"),
    }
    assert!(
        !client.cache().contains(&commitment),
        "refused bytes are not cached"
    );
    assert!(blob_files(client.cache().root()).is_empty());
    assert_eq!(temp_files(client.cache().root()), 0);

    // A gateway serving a different (valid) blob under the name is refused the same way.
    let (other_blob, _) = sealed_blob(1000, 9);
    fs::write(server_store.path_of(&commitment), &other_blob)?;
    assert!(matches!(
        client.fetch(&uri, &commitment).await,
        Err(BlobError::CommitmentMismatch { .. })
    ));
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn http_store_reports_a_gateway_that_is_down() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server =
        gateway::serve(LocalDirStore::open(dir.path().join("server"))?, loopback()).await?;
    let base = server.base_url();
    server.shutdown().await?;

    let (blob, commitment) = sealed_blob(1000, 10);
    let client = HttpGatewayStore::new(&base, dir.path().join("cache"))?;
    let err = client
        .fetch(&client.uri_for(&commitment), &commitment)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&base),
        "the message names the gateway: {err}"
    );

    let err = client
        .put_reader(Box::new(std::io::Cursor::new(blob)))
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Unreachable { .. }), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn gateway_answers_not_found_and_refuses_bad_uploads() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server_store = LocalDirStore::open(dir.path().join("server"))?;
    let server = gateway::serve(server_store.clone(), loopback()).await?;
    let client = HttpGatewayStore::new(&server.base_url(), dir.path().join("cache"))?;
    let (blob, commitment) = sealed_blob(5000, 11);
    let (_, other) = sealed_blob(5000, 12);

    assert!(matches!(
        client
            .fetch(&client.uri_for(&commitment), &commitment)
            .await,
        Err(BlobError::NotFound { .. })
    ));

    // Uploading bytes that are not a sealed blob: the gateway refuses and keeps nothing.
    let err = client
        .put_reader(Box::new(&b"not a blob"[..]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BlobError::Status { status: 422, .. }),
        "{err:?}"
    );

    // PUT under a commitment the bytes do not have: 422, nothing kept.
    let http = reqwest::Client::new();
    let resp = http
        .put(format!(
            "{}/blob/{}",
            server.base_url(),
            commitment_hex(&other)
        ))
        .body(blob.clone())
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 422);
    // PUT under the right commitment: stored.
    let resp = http
        .put(format!(
            "{}/blob/{}",
            server.base_url(),
            commitment_hex(&commitment)
        ))
        .body(blob.clone())
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(
        blob_files(server_store.root()),
        vec![commitment_hex(&commitment)]
    );
    assert_eq!(temp_files(server_store.root()), 0);

    // Malformed names.
    let resp = http
        .get(format!("{}/blob/not-hex", server.base_url()))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn fetch_checks_the_uri_against_the_expected_commitment_before_any_request() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_, a) = sealed_blob(100, 13);
    let (_, b) = sealed_blob(100, 14);
    // Port 1 on loopback: nothing listens, but no request is made anyway.
    let client = HttpGatewayStore::new("http://127.0.0.1:1", dir.path())?;
    let err = client.fetch(&client.uri_for(&a), &b).await.unwrap_err();
    assert!(matches!(err, BlobError::UriMismatch { .. }), "{err:?}");
    assert!(matches!(
        HttpGatewayStore::new("ftp://x", dir.path()),
        Err(BlobError::BadUri { .. })
    ));
    Ok(())
}

/// A plaintext source that fails after `ok` bytes, like a model file on a failing disk.
struct FailingReader {
    ok: usize,
}

impl std::io::Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.ok == 0 {
            return Err(std::io::Error::other("disk read error"));
        }
        let n = buf.len().min(self.ok);
        buf[..n].fill(7);
        self.ok -= n;
        Ok(n)
    }
}

#[tokio::test]
async fn seal_entry_streams_into_the_store_and_reports_either_side_failing() -> Result<()> {
    use agent_runtime::pipeline::{PipelineError, TokenRef, seal_entry};
    use alloy::primitives::{Address, U256};
    use inft_types::config::EntryKind;

    let dir = tempfile::tempdir()?;
    let owner = sealing::SealingSecret::generate();
    let token = TokenRef {
        chain_id: 31337,
        nft: Address::repeat_byte(1),
        token_id: U256::from(7u64),
    };
    let opts = SealOptions {
        chunk_size: 4096,
        threads: 2,
    };
    let plaintext: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();

    // Sealed straight into the store: the stored blob is the one the sealed key opens.
    let store = LocalDirStore::open(dir.path().join("store"))?;
    let entry = seal_entry(
        &store,
        EntryKind::Model,
        Box::new(std::io::Cursor::new(plaintext.clone())),
        &owner.public_key(),
        &token,
        &opts,
    )
    .await?;
    let key = entry
        .sealed_key
        .as_ref()
        .expect("sealed key")
        .open(&owner, &token.key_context(entry.data_hash))?;
    let blob = store.fetch(&entry.uri, &entry.data_hash).await?;
    let mut opened = Vec::new();
    sealing::open_verified(&key, &entry.data_hash, blob.open()?, &mut opened, &opts)?;
    assert_eq!(opened, plaintext);

    // The plaintext source fails mid-way: a seal error, never a sealed key for a cut blob.
    let err = seal_entry(
        &store,
        EntryKind::Model,
        Box::new(FailingReader { ok: 50_000 }),
        &owner.public_key(),
        &token,
        &opts,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PipelineError::Seal { .. }), "{err:?}");

    // The store is unreachable: its error is reported (and nothing hangs on the pipe).
    let down = HttpGatewayStore::new("http://127.0.0.1:1", dir.path().join("cache"))?;
    let err = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        seal_entry(
            &down,
            EntryKind::Model,
            Box::new(std::io::Cursor::new(plaintext)),
            &owner.public_key(),
            &token,
            &opts,
        ),
    )
    .await?
    .unwrap_err();
    assert!(matches!(err, PipelineError::Blob { .. }), "{err:?}");
    Ok(())
}

/// A server that counts the requests it gets and answers each with `answer`.
async fn counting_server(
    answer: impl Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
) -> Result<(
    gateway::GatewayHandle,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
)> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let answer = answer.clone();
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            answer()
        }
    });
    Ok((gateway::serve_router(app, loopback()).await?, hits))
}

fn hits(counter: &std::sync::atomic::AtomicUsize) -> usize {
    counter.load(std::sync::atomic::Ordering::SeqCst)
}

/// L1: a token's blob URIs are chosen by whoever hands it over. A URI naming another host
/// (an internal one, say) used to be fetched from that host; it is only a name now, fetched
/// from the configured gateway.
#[tokio::test]
async fn a_blob_uri_naming_another_host_is_fetched_from_the_configured_gateway() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server_store = LocalDirStore::open(dir.path().join("server"))?;
    let gw = gateway::serve(server_store.clone(), loopback()).await?;
    let (blob, commitment) = sealed_blob(20_000, 40);
    server_store
        .put_reader(Box::new(std::io::Cursor::new(blob.clone())))
        .await?;
    let (internal, internal_hits) =
        counting_server(|| axum::response::IntoResponse::into_response("internal secrets")).await?;

    let client = HttpGatewayStore::new(&gw.base_url(), dir.path().join("cache"))?;
    let planted = format!(
        "{}/admin/blob/{}",
        internal.base_url(),
        commitment_hex(&commitment)
    );
    let got = client.fetch(&planted, &commitment).await?;
    assert_eq!(fs::read(&got.path)?, blob);
    assert_eq!(
        hits(&internal_hits),
        0,
        "no request to the host the URI names"
    );
    // A local store's URI names the same blob too.
    let fresh = HttpGatewayStore::new(&gw.base_url(), dir.path().join("cache-2"))?;
    let got = fresh
        .fetch(&LocalDirStore::uri(&commitment), &commitment)
        .await?;
    assert_eq!(fs::read(&got.path)?, blob);
    Ok(())
}

/// L1: a gateway answering a redirect used to be followed, to any host.
#[tokio::test]
async fn a_gateway_that_redirects_is_refused_not_followed() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (internal, internal_hits) =
        counting_server(|| axum::response::IntoResponse::into_response("internal secrets")).await?;
    let target = format!("{}/latest/meta-data", internal.base_url());
    let (redirecting, _) = counting_server(move || {
        axum::response::IntoResponse::into_response(axum::response::Redirect::temporary(&target))
    })
    .await?;
    let (_, commitment) = sealed_blob(1000, 41);
    let client = HttpGatewayStore::new(&redirecting.base_url(), dir.path().join("cache"))?;
    let err = client
        .fetch(&client.uri_for(&commitment), &commitment)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BlobError::Protocol(m) if m.contains("redirect")),
        "{err:?}"
    );
    let err = client
        .fetch_record(alloy::primitives::B256::repeat_byte(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BlobError::Protocol(m) if m.contains("redirect")),
        "{err:?}"
    );
    assert_eq!(hits(&internal_hits), 0, "the redirect was not followed");
    assert!(blob_files(client.cache().root()).is_empty());
    Ok(())
}

/// L1: downloads had no size cap, so a sender could fill a receiver's disk. The default cap
/// refuses a blob announced larger before reading it, and any cap stops an unannounced stream
/// as the bytes arrive, keeping nothing.
#[tokio::test]
async fn an_oversize_download_is_refused_and_stopped_as_it_arrives() -> Result<()> {
    use agent_runtime::blobstore::DEFAULT_MAX_BLOB_LEN;
    use futures_util::StreamExt as _;
    let dir = tempfile::tempdir()?;
    let (_, commitment) = sealed_blob(1000, 42);

    // Announced: 9 GiB of Content-Length.
    let (announced, _) = counting_server(|| {
        axum::response::IntoResponse::into_response((
            [(axum::http::header::CONTENT_LENGTH, (9u64 << 30).to_string())],
            axum::body::Body::from_stream(futures_util::stream::pending::<
                Result<bytes::Bytes, std::io::Error>,
            >()),
        ))
    })
    .await?;
    let client = HttpGatewayStore::new(&announced.base_url(), dir.path().join("cache-a"))?;
    let err = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        client.fetch(&client.uri_for(&commitment), &commitment),
    )
    .await?
    .unwrap_err();
    assert!(
        matches!(err, BlobError::TooLarge { limit } if limit == DEFAULT_MAX_BLOB_LEN),
        "{err:?}"
    );

    // Unannounced: a real sealed blob of 2 MiB, sent without a length and then never ended,
    // capped at 1 MiB by the caller: only a cap checked as the bytes arrive ends the download.
    let (big, big_commitment) = sealed_blob(2 << 20, 43);
    let big = bytes::Bytes::from(big);
    let (endless, _) = counting_server(move || {
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = big
            .chunks(64 * 1024)
            .map(|c| Ok(big.slice_ref(c)))
            .collect();
        axum::response::IntoResponse::into_response(axum::body::Body::from_stream(
            futures_util::stream::iter(chunks).chain(futures_util::stream::pending()),
        ))
    })
    .await?;
    let commitment = big_commitment;
    let client = HttpGatewayStore::new(&endless.base_url(), dir.path().join("cache-b"))?;
    let err = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        client.fetch_at_most(&client.uri_for(&commitment), &commitment, 1 << 20),
    )
    .await?
    .unwrap_err();
    assert!(
        matches!(err, BlobError::TooLarge { limit: 1_048_576 }),
        "{err:?}"
    );
    assert!(blob_files(client.cache().root()).is_empty());
    assert_eq!(temp_files(client.cache().root()), 0, "nothing kept");
    Ok(())
}
