//! Option groups and helpers shared by several subcommands.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use sealing::{
    Commitment, EncryptedKeyFile, KeyContext, SealedKey, SealingPublicKey, SealingSecret,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Environment variable holding the key-file passphrase (never taken as an argument).
pub(crate) const PASSPHRASE_ENV: &str = "INFT_PASSPHRASE";

/// Reads the key-file passphrase from `INFT_PASSPHRASE`, or prompts on the terminal
/// (twice when `confirm`).
pub(crate) fn passphrase(confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Ok(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set {PASSPHRASE_ENV} or run in a terminal");
    }
    let p = Zeroizing::new(rpassword::prompt_password("Key file passphrase: ")?);
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("Repeat passphrase: ")?);
        if *p != *again {
            bail!("passphrases do not match");
        }
        if p.is_empty() {
            bail!("empty passphrase refused");
        }
    }
    Ok(p)
}

/// Loads a key file (public part only; no passphrase needed).
pub(crate) fn load_key_file(path: &Path) -> anyhow::Result<EncryptedKeyFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key file {}", path.display()))?;
    EncryptedKeyFile::from_json(&text).with_context(|| format!("key file {}", path.display()))
}

/// Loads and decrypts a key file with the passphrase from the environment or a prompt.
pub(crate) fn unlock_key_file(path: &Path) -> anyhow::Result<SealingSecret> {
    let file = load_key_file(path)?;
    let pass = passphrase(false)?;
    file.decrypt(pass.as_bytes())
        .with_context(|| format!("unlocking key file {}", path.display()))
}

/// Where a sealed key may be opened, from flags; defaults to the local (off-chain) context.
#[derive(Debug, Clone, Args)]
pub(crate) struct ContextOpts {
    /// Chain id the sealed key is bound to (0 = local, off-chain).
    #[arg(long, default_value_t = 0, value_name = "ID")]
    pub(crate) chain_id: u64,
    /// INFT contract address the sealed key is bound to (0x + 40 hex digits).
    #[arg(long, value_parser = parse_address, default_value = "0x0000000000000000000000000000000000000000", value_name = "ADDRESS")]
    pub(crate) contract: Address,
    /// Token id the sealed key is bound to (decimal, or 0x-prefixed hex uint256).
    #[arg(long, value_parser = parse_u256, default_value = "0", value_name = "ID")]
    pub(crate) token_id: U256Bytes,
}

impl ContextOpts {
    /// The key context for a blob with commitment `data_hash`.
    pub(crate) fn context(&self, data_hash: Commitment) -> KeyContext {
        KeyContext {
            chain_id: self.chain_id,
            contract: self.contract.0,
            token_id: self.token_id.0,
            data_hash,
        }
    }
}

/// A 20-byte address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Address(pub(crate) [u8; 20]);

/// A uint256 as 32 big-endian bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct U256Bytes(pub(crate) [u8; 32]);

pub(crate) fn parse_address(s: &str) -> Result<Address, String> {
    let h = s.strip_prefix("0x").unwrap_or(s);
    let v = hex::decode(h).map_err(|e| format!("invalid address: {e}"))?;
    v.try_into()
        .map(Address)
        .map_err(|_| "an address is 20 bytes (40 hex digits)".to_owned())
}

pub(crate) fn parse_u256(s: &str) -> Result<U256Bytes, String> {
    let mut out = [0u8; 32];
    if let Some(h) = s.strip_prefix("0x") {
        if h.is_empty() || h.len() > 64 {
            return Err("hex uint256 needs 1 to 64 digits".into());
        }
        let padded = format!("{h:0>64}");
        let v = hex::decode(padded).map_err(|e| format!("invalid hex: {e}"))?;
        out.copy_from_slice(&v);
        return Ok(U256Bytes(out));
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a decimal number or 0x-prefixed hex".into());
    }
    for d in s.bytes().map(|b| u16::from(b - b'0')) {
        // out = out * 10 + d, big-endian, refusing overflow past 2^256.
        let mut carry = d;
        for byte in out.iter_mut().rev() {
            let v = u16::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        if carry != 0 {
            return Err("token id exceeds uint256".into());
        }
    }
    Ok(U256Bytes(out))
}

/// The `.key` file written next to a sealed blob: the sealed data key plus the context it is
/// bound to (the context is authenticated by the sealed key itself; editing it breaks opening).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealedKeyFile {
    /// Always `inft-sealed-key`.
    pub(crate) kind: String,
    /// Format version, 1.
    pub(crate) version: u32,
    /// The 81-byte sealed key, hex.
    pub(crate) sealed_key: String,
    /// Recipient X25519 public key, hex.
    pub(crate) recipient: String,
    /// Chain id of the context.
    pub(crate) chain_id: u64,
    /// Contract address of the context, 0x-hex.
    pub(crate) contract: String,
    /// Token id of the context, 0x-hex uint256.
    pub(crate) token_id: String,
    /// Commitment of the blob (`dataHash`), 0x-hex.
    pub(crate) data_hash: String,
}

impl SealedKeyFile {
    const KIND: &'static str = "inft-sealed-key";

    pub(crate) fn new(sealed: &SealedKey, recipient: &SealingPublicKey, ctx: &KeyContext) -> Self {
        Self {
            kind: Self::KIND.into(),
            version: 1,
            sealed_key: sealed.to_hex(),
            recipient: recipient.to_hex(),
            chain_id: ctx.chain_id,
            contract: format!("0x{}", hex::encode(ctx.contract)),
            token_id: format!("0x{}", hex::encode(ctx.token_id)),
            data_hash: ctx.data_hash.to_hex(),
        }
    }

    pub(crate) fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading sealed key {}", path.display()))?;
        let f: Self = serde_json::from_str(&text)
            .with_context(|| format!("sealed key {} is not valid", path.display()))?;
        if f.kind != Self::KIND || f.version != 1 {
            bail!("{} is not a version 1 inft sealed key file", path.display());
        }
        Ok(f)
    }

    /// The sealed key, recipient and context, parsed.
    pub(crate) fn parts(&self) -> anyhow::Result<(SealedKey, SealingPublicKey, KeyContext)> {
        let sk = hex::decode(&self.sealed_key).context("sealed_key is not hex")?;
        let sealed = SealedKey::from_bytes(&sk).context("sealed_key")?;
        let recipient = SealingPublicKey::from_hex(&self.recipient).context("recipient")?;
        let ctx = KeyContext {
            chain_id: self.chain_id,
            contract: parse_address(&self.contract).map_err(anyhow::Error::msg)?.0,
            token_id: parse_u256(&self.token_id).map_err(anyhow::Error::msg)?.0,
            data_hash: Commitment::from_hex(&self.data_hash).context("data_hash")?,
        };
        Ok((sealed, recipient, ctx))
    }
}

/// `path` with `suffix` appended to its file name (`a.bin` + `.sealed` = `a.bin.sealed`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A temporary file in `target`'s directory that becomes `target` only on [`AtomicOutput::commit`];
/// dropped without commit, it is deleted. So a failed command leaves no output behind.
pub(crate) struct AtomicOutput {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
    overwrite: bool,
}

impl AtomicOutput {
    /// Refuses an existing `target` unless `overwrite`.
    pub(crate) fn create(target: &Path, overwrite: bool) -> anyhow::Result<Self> {
        if !overwrite && target.exists() {
            bail!(
                "{} already exists (use --force to overwrite)",
                target.display()
            );
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".inft-partial-")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        Ok(Self {
            tmp,
            target: target.to_owned(),
            overwrite,
        })
    }

    /// Where the partial output lives until commit.
    pub(crate) fn temp_path(&self) -> PathBuf {
        self.tmp.path().to_owned()
    }

    /// The file to write into.
    pub(crate) fn file(&mut self) -> &mut std::fs::File {
        self.tmp.as_file_mut()
    }

    /// Flushes to disk and renames onto the target.
    pub(crate) fn commit(self) -> anyhow::Result<()> {
        self.tmp.as_file().sync_all().context("syncing output")?;
        let target = self.target;
        let res = if self.overwrite {
            self.tmp.persist(&target).map(|_| ())
        } else {
            self.tmp.persist_noclobber(&target).map(|_| ())
        };
        res.map_err(|e| e.error)
            .with_context(|| format!("moving output into place at {}", target.display()))
    }
}

/// Runs blocking file work on a blocking thread; on Ctrl-C deletes the partial outputs in
/// `temps` (destructors do not run when a signal ends the process) and fails.
pub(crate) async fn interruptible<T: Send + 'static>(
    temps: Vec<PathBuf>,
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let task = tokio::task::spawn_blocking(work);
    tokio::select! {
        res = task => res.context("worker thread failed")?,
        _ = tokio::signal::ctrl_c() => {
            for t in temps {
                let _ = std::fs::remove_file(t);
            }
            bail!("interrupted, no output written")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u256_parsing() {
        assert_eq!(parse_u256("0").unwrap().0, [0; 32]);
        let mut one_k = [0u8; 32];
        one_k[30] = 0x03;
        one_k[31] = 0xe8;
        assert_eq!(parse_u256("1000").unwrap().0, one_k);
        assert_eq!(parse_u256("0x3e8").unwrap().0, one_k);
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(parse_u256(max).unwrap().0, [0xff; 32]);
        assert!(
            parse_u256(
                "115792089237316195423570985008687907853269984665640564039457584007913129639936"
            )
            .is_err()
        );
        assert!(parse_u256("-1").is_err());
        assert!(parse_u256("").is_err());
        assert!(parse_u256("0x").is_err());
    }

    #[test]
    fn address_parsing() {
        assert!(parse_address("0x0000000000000000000000000000000000000001").is_ok());
        assert!(parse_address("0x01").is_err());
    }
}
