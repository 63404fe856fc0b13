//! Unsealed model bytes held in an anonymous, sealed memory file (Linux memfd).
//!
//! llama.cpp only loads models by path. Writing the decrypted weights to a temporary file would
//! put plaintext on disk (and in backups, swap-less page cache flushes, forensics…). Instead the
//! unseal pipeline writes into a memfd: a file that lives only in RAM, has no name in any
//! directory, and is reachable by path only from this process as `/proc/self/fd/N`. Once every
//! byte is written the file is sealed (`F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`)
//! so the bytes llama.cpp maps are exactly the bytes that were hashed.

use std::io::{self, Write};
use std::path::PathBuf;
#[cfg(target_os = "linux")]
use std::sync::mpsc;
#[cfg(target_os = "linux")]
use std::thread::JoinHandle;

#[cfg(target_os = "linux")]
use sha2::{Digest, Sha256};

use super::EngineError;

/// A sink for plaintext model bytes: an in-memory file plus its SHA-256.
///
/// Implements [`Write`], so a decryptor can stream straight into it
/// (`sealing::open(key, blob, &mut mem_model, opts)`). Call [`MemModel::finish`] afterwards.
/// SHA-256 cannot be split across cores, and at ~2 GB/s it is slower than decrypting; so a
/// thread of its own hashes the file behind the writer (reading back what was written, still
/// hot in cache) instead of the writer hashing inline. Its cost is measured by the `inference`
/// bench.
pub struct MemModel {
    #[cfg(target_os = "linux")]
    file: memfd::Memfd,
    #[cfg(target_os = "linux")]
    hasher: Option<Hasher>,
    len: u64,
}

/// The hashing thread: told each new end of the file, it hashes up to it.
#[cfg(target_os = "linux")]
struct Hasher {
    written: mpsc::Sender<u64>,
    thread: JoinHandle<io::Result<[u8; 32]>>,
}

#[cfg(target_os = "linux")]
impl Hasher {
    fn spawn(file: std::fs::File) -> io::Result<Self> {
        use std::os::unix::fs::FileExt;
        let (written, ends) = mpsc::channel::<u64>();
        let thread = std::thread::Builder::new()
            .name("inft-model-hash".into())
            .spawn(move || {
                let mut sha = Sha256::new();
                let mut buf = vec![0u8; 1 << 20];
                let mut hashed = 0u64;
                // Ends only when the writer is done (or dropped): every byte is hashed once.
                for end in ends {
                    while hashed < end {
                        let n =
                            usize::try_from(end - hashed).map_or(buf.len(), |n| n.min(buf.len()));
                        file.read_exact_at(&mut buf[..n], hashed)?;
                        sha.update(&buf[..n]);
                        hashed += n as u64;
                    }
                }
                Ok(sha.finalize().into())
            })?;
        Ok(Self { written, thread })
    }

    /// Waits for the thread to hash everything written.
    fn finish(self) -> io::Result<[u8; 32]> {
        drop(self.written);
        self.thread
            .join()
            .map_err(|_| io::Error::other("the model hashing thread panicked"))?
    }
}

impl std::fmt::Debug for MemModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately no content: it is plaintext model data.
        f.debug_struct("MemModel")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl MemModel {
    /// Create an empty in-memory model file. `name` is only a debugging label
    /// (visible in `/proc/self/fd` as `/memfd:NAME (deleted)`).
    ///
    /// Returns [`EngineError::Unsupported`] on platforms without memfd: plaintext is never
    /// written to a regular file instead.
    pub fn new(name: &str) -> Result<Self, EngineError> {
        #[cfg(target_os = "linux")]
        {
            let file = memfd::MemfdOptions::new()
                .allow_sealing(true)
                .close_on_exec(true)
                .create(name)
                .map_err(|e| EngineError::MemFile(io::Error::other(e)))?;
            let hasher = Hasher::spawn(file.as_file().try_clone().map_err(EngineError::MemFile)?)
                .map_err(EngineError::MemFile)?;
            Ok(MemModel {
                file,
                hasher: Some(hasher),
                len: 0,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            Err(EngineError::Unsupported(
                "in-memory model loading needs Linux memfd; refusing to write plaintext weights to disk",
            ))
        }
    }

    /// Create a model file and fill it from `reader` (e.g. an unsealed stream).
    pub fn from_reader(name: &str, mut reader: impl io::Read) -> Result<SealedModel, EngineError> {
        let mut m = Self::new(name)?;
        io::copy(&mut reader, &mut m).map_err(EngineError::MemFile)?;
        m.finish()
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Seal the file against any further change and return it with its plaintext SHA-256.
    pub fn finish(mut self) -> Result<SealedModel, EngineError> {
        #[cfg(target_os = "linux")]
        {
            use memfd::FileSeal;
            let sha256 = self
                .hasher
                .take()
                .ok_or_else(|| EngineError::MemFile(io::Error::other("model already finished")))?
                .finish()
                .map_err(EngineError::MemFile)?;
            self.file
                .add_seals(&[
                    FileSeal::SealWrite,
                    FileSeal::SealShrink,
                    FileSeal::SealGrow,
                    FileSeal::SealSeal,
                ])
                .map_err(|e| EngineError::MemFile(io::Error::other(e)))?;
            Ok(SealedModel {
                file: self.file,
                sha256,
                len: self.len,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(EngineError::Unsupported(
                "in-memory model loading needs Linux memfd",
            ))
        }
    }
}

impl Write for MemModel {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        {
            let mut file: &std::fs::File = self.file.as_file();
            let n = file.write(buf)?;
            self.len += n as u64;
            if let Some(hasher) = &self.hasher {
                hasher
                    .written
                    .send(self.len)
                    .map_err(|_| io::Error::other("the model hashing thread stopped"))?;
            }
            Ok(n)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = buf;
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "memfd needs Linux",
            ))
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A complete, sealed in-memory model: immutable bytes plus their SHA-256.
pub struct SealedModel {
    #[cfg(target_os = "linux")]
    file: memfd::Memfd,
    sha256: [u8; 32],
    len: u64,
}

impl std::fmt::Debug for SealedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedModel")
            .field("sha256", &hex::encode(self.sha256))
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl SealedModel {
    /// SHA-256 of the plaintext model bytes: the model's identity in the cache and in actions.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the model is empty (an empty file never loads).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The path llama.cpp opens: `/proc/self/fd/N`. Valid only inside this process and only
    /// while `self` is alive; it names no file on any disk.
    pub fn path(&self) -> PathBuf {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            PathBuf::from(format!("/proc/self/fd/{}", self.file.as_file().as_raw_fd()))
        }
        #[cfg(not(target_os = "linux"))]
        {
            PathBuf::new()
        }
    }

    /// The underlying file (read-only use: it is sealed).
    #[cfg(target_os = "linux")]
    pub fn as_file(&self) -> &std::fs::File {
        self.file.as_file()
    }
}
