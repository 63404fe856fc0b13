//! Streaming seal/open: batches of chunks processed in parallel, output written in order, with
//! reading and writing overlapped with the crypto of the current batch.
//!
//! Memory: two batches in flight (one being computed, one being written then refilled), each
//! about `max(8 MiB, threads chunks)`; never the whole input.

use std::io::{self, Read, Write};

use rayon::prelude::*;

use crate::commitment::{Commitment, MerkleBuilder, leaf_hash};
use crate::error::{OpenError, SealError};
use crate::format::{
    DEFAULT_CHUNK_SIZE, HEADER_LEN, Header, MAX_CHUNK_INDEX, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE,
    NONCE_PREFIX_LEN, PayloadKey, TAG_LEN,
};
use crate::keys::{DataKey, os_random};

/// Options for [`seal`] and [`open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealOptions {
    /// Plaintext bytes per chunk when sealing ([`MIN_CHUNK_SIZE`]..=[`MAX_CHUNK_SIZE`], default
    /// 1 MiB). Opening reads the chunk size from the blob header and ignores this field.
    pub chunk_size: u32,
    /// Worker threads for the chunk crypto; 0 means one per available core. With 1, everything
    /// runs on the calling thread.
    pub threads: usize,
}

impl Default for SealOptions {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            threads: 0,
        }
    }
}

/// What [`seal`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SealSummary {
    /// The blob commitment (`dataHash`).
    pub commitment: Commitment,
    /// Plaintext bytes read.
    pub plaintext_len: u64,
    /// Blob bytes written (header included).
    pub ciphertext_len: u64,
}

/// What [`open`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenSummary {
    /// The blob commitment (`dataHash`) of the blob that was read.
    pub commitment: Commitment,
    /// Plaintext bytes written.
    pub plaintext_len: u64,
}

/// Seals `input` under `key`, writing the blob to `output`. Streams: memory use is bounded by
/// the batch size, not by the input.
///
/// A data key must seal one blob only (the runtime makes a fresh key per blob and per rotation);
/// the random 56-bit nonce prefix keeps accidental reuse for a few blobs safe.
pub fn seal(
    key: &DataKey,
    input: impl Read,
    output: impl Write,
    opts: &SealOptions,
) -> Result<SealSummary, SealError> {
    let mut prefix = [0u8; NONCE_PREFIX_LEN];
    os_random(&mut prefix);
    seal_with(key, prefix, 0, input, output, opts)
}

/// [`seal`] with a caller-chosen nonce prefix and first chunk index: test vectors and the
/// counter-overflow tests only. Never reuse a (key, prefix) pair.
pub(crate) fn seal_with(
    key: &DataKey,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    start_index: u64,
    input: impl Read,
    mut output: impl Write,
    opts: &SealOptions,
) -> Result<SealSummary, SealError> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&opts.chunk_size) {
        return Err(SealError::ChunkSize(opts.chunk_size));
    }
    let (header, pk) = Header::new(key, opts.chunk_size, nonce_prefix);
    output.write_all(&header.bytes)?;
    let mut driver = Driver::new(Mode::Seal(&pk), opts.chunk_size, opts.threads, start_index);
    let out = driver
        .run(input, &mut output, &header)
        .map_err(|e| match e {
            DriverError::Io(e) => SealError::Io(e),
            DriverError::Counter => SealError::TooLarge,
            // Sealing never authenticates anything; these cannot occur.
            DriverError::Open(_) => SealError::TooLarge,
        })?;
    output.flush()?;
    Ok(SealSummary {
        commitment: out.commitment,
        plaintext_len: out.data_len,
        ciphertext_len: HEADER_LEN as u64 + out.records_len,
    })
}

/// Opens a blob sealed under `key`, writing the plaintext to `output` in order, and returns its
/// commitment. Decryption runs in parallel across `opts.threads`.
///
/// **On error the caller must discard everything written to `output` so far**: chunks are
/// released as soon as they authenticate, before the end of the stream is known.
pub fn open(
    key: &DataKey,
    input: impl Read,
    output: impl Write,
    opts: &SealOptions,
) -> Result<OpenSummary, OpenError> {
    open_from(key, input, output, opts, 0)
}

/// [`open`], then checks the commitment against `expected` (e.g. the on-chain `dataHash`),
/// failing with [`OpenError::CommitmentMismatch`]. The plaintext was still written: discard it
/// on any error.
pub fn open_verified(
    key: &DataKey,
    expected: &Commitment,
    input: impl Read,
    output: impl Write,
    opts: &SealOptions,
) -> Result<OpenSummary, OpenError> {
    let s = open(key, input, output, opts)?;
    if s.commitment != *expected {
        return Err(OpenError::CommitmentMismatch {
            expected: *expected,
            actual: s.commitment,
        });
    }
    Ok(s)
}

pub(crate) fn open_from(
    key: &DataKey,
    input: impl Read,
    mut output: impl Write,
    opts: &SealOptions,
    start_index: u64,
) -> Result<OpenSummary, OpenError> {
    let mut src = Source::new(input);
    let header = read_header(&mut src)?;
    let (header, pk) = header.verify(key)?;
    let mut driver = Driver::new(
        Mode::Open(&pk),
        header.chunk_size,
        opts.threads,
        start_index,
    );
    let out = driver
        .run_source(src, &mut output, &header)
        .map_err(OpenError::from)?;
    output.flush()?;
    Ok(OpenSummary {
        commitment: out.commitment,
        plaintext_len: out.data_len,
    })
}

/// Computes the commitment of a blob without its key (structure checks only: header fields,
/// chunk framing, counter range). Uses all cores.
pub fn commitment_of(input: impl Read) -> Result<Commitment, OpenError> {
    commitment_of_with(input, &SealOptions::default())
}

/// [`commitment_of`] with a chosen thread count (`opts.chunk_size` is ignored).
pub fn commitment_of_with(input: impl Read, opts: &SealOptions) -> Result<Commitment, OpenError> {
    let mut src = Source::new(input);
    let header = read_header(&mut src)?.unauthenticated();
    let mut driver = Driver::new(Mode::Hash, header.chunk_size, opts.threads, 0);
    let out = driver
        .run_source(src, &mut io::sink(), &header)
        .map_err(OpenError::from)?;
    Ok(out.commitment)
}

fn read_header<R: Read>(src: &mut Source<R>) -> Result<crate::format::UnverifiedHeader, OpenError> {
    let mut bytes = [0u8; HEADER_LEN];
    let n = src.fill(&mut bytes)?;
    let m = n.min(crate::format::MAGIC.len());
    if bytes[..m] != crate::format::MAGIC[..m] {
        return Err(OpenError::BadMagic);
    }
    if n < HEADER_LEN {
        return Err(OpenError::TruncatedHeader);
    }
    Header::parse(bytes)
}

/// How many trailing bytes the error path tries cutting off a failed record to recognise
/// appended data (each try decrypts the record once).
const TRAILING_SEARCH: usize = 256;

/// A reader with one byte of lookahead, so a full chunk can be told apart from the final one.
struct Source<R> {
    inner: R,
    peeked: Option<u8>,
    eof: bool,
}

impl<R: Read> Source<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            peeked: None,
            eof: false,
        }
    }

    /// Reads until `buf` is full or the input ends; returns the bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(b) = self.peeked.take() {
            buf[0] = b;
            n = 1;
        }
        while n < buf.len() && !self.eof {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => self.eof = true,
                // min(): a misbehaving reader claiming more than it was given must not panic us.
                Ok(k) => n = (n + k).min(buf.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn at_eof(&mut self) -> io::Result<bool> {
        if self.peeked.is_some() {
            return Ok(false);
        }
        let mut b = [0u8; 1];
        while !self.eof {
            match self.inner.read(&mut b) {
                Ok(0) => self.eof = true,
                Ok(_) => {
                    self.peeked = Some(b[0]);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// Where a batch's chunk crypto runs.
enum Exec {
    /// On the calling thread, I/O not overlapped.
    Inline,
    /// rayon's global pool (the caller asked for all cores).
    Global,
    /// A pool of the requested size.
    Pool(rayon::ThreadPool),
}

#[derive(Clone, Copy)]
enum Mode<'k> {
    Seal(&'k PayloadKey),
    Open(&'k PayloadKey),
    Hash,
}

impl Mode<'_> {
    fn is_seal(&self) -> bool {
        matches!(self, Mode::Seal(_))
    }
}

#[derive(Debug)]
enum DriverError {
    Io(io::Error),
    Counter,
    Open(OpenError),
}

impl From<io::Error> for DriverError {
    fn from(e: io::Error) -> Self {
        DriverError::Io(e)
    }
}

impl From<DriverError> for OpenError {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::Io(e) => OpenError::Io(e),
            DriverError::Counter => OpenError::CounterOverflow,
            DriverError::Open(e) => e,
        }
    }
}

/// Outcome of one chunk's crypto, classified in order after the parallel step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Failed,
    Short,
}

/// One chunk's slots as zipped for sealing: (input slot, leaf), status.
type SealItem<'a> = ((&'a mut [u8], &'a mut [u8; 32]), &'a mut Status);
/// One chunk's slots as zipped for opening/hashing: ((record, output slot), leaf), status.
type OpenItem<'a> = (((&'a [u8], &'a mut [u8]), &'a mut [u8; 32]), &'a mut Status);

/// A batch of consecutive chunks.
struct Batch {
    /// Index of the first chunk.
    first: u64,
    /// Input slots of `slot` bytes (plaintext + room for the tag when sealing, records when opening).
    inp: Vec<u8>,
    /// Bytes used in each input slot.
    lens: Vec<usize>,
    /// Plaintext slots of `chunk_size` bytes (open only).
    out: Vec<u8>,
    leaves: Vec<[u8; 32]>,
    status: Vec<Status>,
    /// The input ended right after this batch's last chunk.
    last: bool,
}

impl Batch {
    fn new() -> Self {
        Self {
            first: 0,
            inp: Vec::new(),
            lens: Vec::new(),
            out: Vec::new(),
            leaves: Vec::new(),
            status: Vec::new(),
            last: false,
        }
    }
}

struct DriverOutput {
    commitment: Commitment,
    /// Plaintext bytes (seal: read; open: written; hash: 0).
    data_len: u64,
    /// Chunk record bytes (after the header).
    records_len: u64,
}

struct Driver<'k> {
    mode: Mode<'k>,
    chunk_size: usize,
    /// Input slot size: chunk + tag.
    slot: usize,
    per_batch: usize,
    threads: usize,
    /// `threads` was 0: use rayon's global pool.
    all_cores: bool,
    /// Index of the stream's first chunk (0 except in counter-overflow tests).
    start_index: u64,
    next_index: u64,
}

impl<'k> Driver<'k> {
    fn new(mode: Mode<'k>, chunk_size: u32, threads: usize, start_index: u64) -> Self {
        let all_cores = threads == 0;
        // All cores = the global pool's size (cheap, unlike available_parallelism, which
        // reads cgroup files on every call).
        let threads = if all_cores {
            rayon::current_num_threads()
        } else {
            threads
        };
        let chunk_size = chunk_size as usize;
        let slot = chunk_size + TAG_LEN;
        // ~8 MiB of plaintext per batch, at most 64 Ki chunks, and a whole number of chunks
        // per thread: every batch ends in a barrier, and 7 chunks on 2 threads would leave one
        // idle an eighth of the time. Memory in flight is about four batches (input and
        // output of two).
        let per_batch = (8usize << 20)
            .div_ceil(chunk_size)
            .clamp(1, 1 << 16)
            .div_ceil(threads)
            * threads;
        Self {
            mode,
            chunk_size,
            slot,
            per_batch,
            threads,
            all_cores,
            start_index,
            next_index: start_index,
        }
    }

    fn run(
        &mut self,
        input: impl Read,
        output: &mut impl Write,
        header: &Header,
    ) -> Result<DriverOutput, DriverError> {
        self.run_source(Source::new(input), output, header)
    }

    fn run_source<R: Read>(
        &mut self,
        mut src: Source<R>,
        output: &mut impl Write,
        header: &Header,
    ) -> Result<DriverOutput, DriverError> {
        let mut merkle = MerkleBuilder::new();
        let mut data_len = 0u64;
        let mut records_len = 0u64;

        let mut cur = Batch::new();
        self.read_batch(&mut src, &mut cur)?;
        // Inline for one thread or a single-chunk input (no pool to start); rayon's global
        // pool when the caller asked for "all cores"; else a pool of the requested size.
        let exec = if self.threads <= 1 || (cur.last && cur.lens.len() < 2) {
            Exec::Inline
        } else if self.all_cores {
            Exec::Global
        } else {
            Exec::Pool(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.threads)
                    .thread_name(|i| format!("inft-seal-{i}"))
                    .build()
                    .map_err(io::Error::other)?,
            )
        };
        let mut other = Batch::new();
        let mut other_pending_write = false;
        loop {
            // Crypto of `cur` in parallel with: writing `other` (the previous batch), then
            // refilling it with the next batch.
            let need_next = !cur.last;
            // The next batch's chunk indices follow this one's.
            self.next_index = cur.first + cur.lens.len() as u64;
            // Crypto on the pool, I/O on this thread; the scope joins both.
            macro_rules! overlapped {
                ($($scope:tt)+) => {{
                    let this = &*self;
                    let cur_ref = &mut cur;
                    let mut io_res = Ok(());
                    $($scope)+(|s| {
                        s.spawn(move |_| this.compute(cur_ref, true));
                        io_res = self_io(
                            this,
                            &mut src,
                            output,
                            &mut other,
                            other_pending_write,
                            need_next,
                        );
                    });
                    io_res
                }};
            }
            let io_result: Result<(), DriverError> = match &exec {
                Exec::Pool(pool) => overlapped!(pool.in_place_scope),
                Exec::Global => overlapped!(rayon::in_place_scope),
                Exec::Inline => {
                    self.compute(&mut cur, false);
                    self_io(
                        self,
                        &mut src,
                        output,
                        &mut other,
                        other_pending_write,
                        need_next,
                    )
                }
            };
            // An I/O error while writing the previous batch or reading the next one: report it,
            // unless this batch itself is bad (a format error is the more useful one).
            let next = match io_result {
                Ok(()) if need_next => Some(&other),
                Ok(()) => None,
                Err(e) => {
                    self.classify(&cur, None)?;
                    return Err(e);
                }
            };
            self.classify(&cur, next)?;
            for (i, leaf) in cur.leaves.iter().enumerate() {
                merkle.push(*leaf);
                let len = cur.lens[i];
                records_len += (len + if self.mode.is_seal() { TAG_LEN } else { 0 }) as u64;
                data_len += match self.mode {
                    Mode::Seal(_) => len,
                    Mode::Open(_) => len - TAG_LEN,
                    Mode::Hash => 0,
                } as u64;
            }
            if cur.last {
                self.write_batch(output, &cur)?;
                break;
            }
            std::mem::swap(&mut cur, &mut other);
            other_pending_write = true;
        }
        let commitment = merkle
            .commitment(&header.bytes)
            .ok_or(DriverError::Open(OpenError::Truncated { chunks: 0 }))?;
        Ok(DriverOutput {
            commitment,
            data_len,
            records_len,
        })
    }

    /// Reads up to `per_batch` chunks into `b`, starting at `self.next_index`.
    fn read_batch<R: Read>(&self, src: &mut Source<R>, b: &mut Batch) -> Result<(), DriverError> {
        b.first = self.next_index;
        b.lens.clear();
        b.last = false;
        let want = if self.mode.is_seal() {
            self.chunk_size
        } else {
            self.slot
        };
        for i in 0..self.per_batch {
            let index = b.first + i as u64;
            let start = i * self.slot;
            if b.inp.len() < start + self.slot {
                b.inp.resize(start + self.slot, 0);
            }
            let n = src.fill(&mut b.inp[start..start + want])?;
            if n == 0 && !(self.mode.is_seal() && index == self.start_index) {
                // No record here. Sealing: only an empty input has an (empty) chunk 0; opening:
                // a stream with no records at all, reported as truncated by the caller.
                b.last = true;
                break;
            }
            if index > MAX_CHUNK_INDEX {
                return Err(DriverError::Counter);
            }
            b.lens.push(n);
            if n < want || src.at_eof()? {
                b.last = true;
                break;
            }
        }
        let n = b.lens.len();
        b.leaves.clear();
        b.leaves.resize(n, [0; 32]);
        b.status.clear();
        b.status.resize(n, Status::Ok);
        // Plaintext slots when opening; hashing needs none but gets one byte per chunk so
        // both share the same zipped iteration.
        let out_len = match self.mode {
            Mode::Seal(_) => 0,
            Mode::Open(_) => n * self.chunk_size,
            Mode::Hash => n,
        };
        if b.out.len() < out_len {
            b.out.resize(out_len, 0);
        }
        Ok(())
    }

    /// The per-chunk crypto and leaf hashing of a batch, in parallel when `parallel`.
    fn compute(&self, b: &mut Batch, parallel: bool) {
        let n = b.lens.len();
        let first = b.first;
        let last_in_stream = b.last;
        let is_last = move |i: usize| last_in_stream && i + 1 == n;
        let slot = self.slot;
        let cs = self.chunk_size;
        let mode = self.mode;
        let start = self.start_index;
        let inp = &mut b.inp[..n * slot];
        let lens = &b.lens[..];
        let leaves = &mut b.leaves[..];
        let status = &mut b.status[..];
        match mode {
            Mode::Seal(pk) => {
                let work = |(i, ((s, leaf), st)): (usize, SealItem<'_>)| {
                    let len = lens[i];
                    if !pk.seal_chunk(first + i as u64, is_last(i), s, len) {
                        *st = Status::Failed;
                    }
                    *leaf = leaf_hash(&s[..len + TAG_LEN]);
                };
                if parallel {
                    inp.par_chunks_mut(slot)
                        .zip(leaves.par_iter_mut())
                        .zip(status.par_iter_mut())
                        .enumerate()
                        .for_each(work);
                } else {
                    inp.chunks_mut(slot)
                        .zip(leaves.iter_mut())
                        .zip(status.iter_mut())
                        .enumerate()
                        .for_each(work);
                }
            }
            Mode::Open(_) | Mode::Hash => {
                let key = match mode {
                    Mode::Open(pk) => Some(pk),
                    _ => None,
                };
                let work = |(i, (((rec, o), leaf), st)): (usize, OpenItem<'_>)| {
                    let len = lens[i];
                    let rec = &rec[..len];
                    // Framing: a record holds at least a tag; an empty final chunk is only
                    // canonical as chunk 0 (the empty plaintext).
                    if len < TAG_LEN || (len == TAG_LEN && first + i as u64 != start) {
                        *st = Status::Short;
                        return;
                    }
                    *leaf = leaf_hash(rec);
                    if let Some(pk) = key
                        && !pk.open_chunk(first + i as u64, is_last(i), rec, o)
                    {
                        *st = Status::Failed;
                    }
                };
                // Hash mode has no plaintext: hand out empty output slots.
                let out_chunk = if key.is_some() { cs } else { 1 };
                let out = &mut b.out[..n * out_chunk];
                if parallel {
                    inp.par_chunks(slot)
                        .zip(out.par_chunks_mut(out_chunk))
                        .zip(leaves.par_iter_mut())
                        .zip(status.par_iter_mut())
                        .enumerate()
                        .for_each(work);
                } else {
                    inp.chunks(slot)
                        .zip(out.chunks_mut(out_chunk))
                        .zip(leaves.iter_mut())
                        .zip(status.iter_mut())
                        .enumerate()
                        .for_each(work);
                }
            }
        }
    }

    /// Turns the first failed chunk of a batch into its error, trying the other nonces only on
    /// this failure path to tell truncation, trailing data and reordering apart.
    fn classify(&self, b: &Batch, next: Option<&Batch>) -> Result<(), DriverError> {
        let n = b.lens.len();
        if n == 0 {
            // Only possible for a blob with no chunk records at all.
            return Err(DriverError::Open(OpenError::Truncated {
                chunks: b.first - self.start_index,
            }));
        }
        let Some(i) = b.status.iter().position(|s| *s != Status::Ok) else {
            return Ok(());
        };
        let index = b.first + i as u64;
        if b.status[i] == Status::Short {
            return Err(DriverError::Open(OpenError::ShortChunk { index }));
        }
        let pk = match self.mode {
            Mode::Open(pk) => pk,
            // Sealing fails only on the counter range, which read_batch already refused.
            _ => return Err(DriverError::Counter),
        };
        let slot = self.slot;
        fn record(bb: &Batch, slot: usize, k: usize) -> &[u8] {
            &bb.inp[k * slot..k * slot + bb.lens[k]]
        }
        let rec = record(b, slot, i);
        let mut scratch = vec![0u8; rec.len()];
        let at_end = b.last && i + 1 == n;
        if at_end {
            if pk.open_chunk(index, false, rec, &mut scratch) {
                return Err(DriverError::Open(OpenError::Truncated {
                    chunks: index + 1,
                }));
            }
        } else if pk.open_chunk(index, true, rec, &mut scratch) {
            // A final chunk with more bytes behind it: an authentic chunk, or just junk?
            let follower = if i + 1 < n {
                Some(record(b, slot, i + 1))
            } else {
                next.filter(|nb| !nb.lens.is_empty())
                    .map(|nb| record(nb, slot, 0))
            };
            let authentic = follower.is_some_and(|f| {
                let mut s = vec![0u8; f.len()];
                f.len() >= TAG_LEN
                    && (pk.open_chunk(index + 1, false, f, &mut s)
                        || pk.open_chunk(index + 1, true, f, &mut s))
            });
            return Err(DriverError::Open(if authentic {
                OpenError::ChunkAfterLast { index: index + 1 }
            } else {
                OpenError::TrailingData { after_chunk: index }
            }));
        }
        // Junk appended to a short final chunk merges into its record: try cutting a little
        // off the end (bounded, error path only).
        for t in 1..=TRAILING_SEARCH.min(rec.len() - TAG_LEN) {
            let r = &rec[..rec.len() - t];
            if r.len() == TAG_LEN && index != self.start_index {
                continue; // an empty final chunk is canonical only as the first chunk
            }
            if pk.open_chunk(index, true, r, &mut scratch) {
                return Err(DriverError::Open(OpenError::TrailingData {
                    after_chunk: index,
                }));
            }
        }
        // Reordered or duplicated within the batch window?
        for j in 0..n as u64 {
            let cand = b.first + j;
            if cand == index || cand > MAX_CHUNK_INDEX {
                continue;
            }
            if pk.open_chunk(cand, false, rec, &mut scratch)
                || pk.open_chunk(cand, true, rec, &mut scratch)
            {
                return Err(DriverError::Open(OpenError::Reordered {
                    index,
                    original: cand,
                }));
            }
        }
        Err(DriverError::Open(OpenError::Chunk { index }))
    }

    fn write_batch(&self, output: &mut impl Write, b: &Batch) -> io::Result<()> {
        let n = b.lens.len();
        if n == 0 {
            return Ok(());
        }
        let last_len = b.lens[n - 1];
        match self.mode {
            // Full records are exactly one slot, and only the final one can be short, so the
            // batch is one contiguous run.
            Mode::Seal(_) => output.write_all(&b.inp[..(n - 1) * self.slot + last_len + TAG_LEN]),
            Mode::Open(_) => {
                output.write_all(&b.out[..(n - 1) * self.chunk_size + last_len - TAG_LEN])
            }
            Mode::Hash => Ok(()),
        }
    }
}

/// The I/O half of a step: write the previous batch (if any), then refill it with the next.
fn self_io<R: Read>(
    d: &Driver<'_>,
    src: &mut Source<R>,
    output: &mut impl Write,
    other: &mut Batch,
    pending_write: bool,
    need_next: bool,
) -> Result<(), DriverError> {
    if pending_write {
        d.write_batch(output, other)?;
    }
    if need_next {
        d.read_batch(src, other)?;
    }
    Ok(())
}
