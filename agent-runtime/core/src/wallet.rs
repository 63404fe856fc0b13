//! Wallets: encrypted keystore files, passphrases, and the owner's sealing key derived from
//! the wallet.
//!
//! # Keystores
//!
//! Keys live in Ethereum V3 keystore files (scrypt + AES-128-CTR, the format geth, Foundry's
//! `cast wallet` and MetaMask exports use). [`load_keystore`] decrypts one into an alloy
//! [`PrivateKeySigner`]; [`create_keystore`] makes a new random key and writes it encrypted
//! (mode `0600` on Unix). The passphrase comes from `INFT_PASSPHRASE`, from the file named by
//! `INFT_PASSPHRASE_FILE`, or from a prompt on the terminal ([`Passphrase::from_env_or_prompt`]);
//! never from a command-line argument (visible in `ps` and shell history). Decrypted key bytes
//! are wiped after use; private keys are never logged or written in plaintext.
//!
//! # Owner sealing key
//!
//! An owner's X25519 sealing key is derived from their wallet so they need nothing but the
//! wallet: the wallet signs the EIP-712 typed data
//!
//! ```text
//! domain:  { name: "inft sealing key", version: "1" }
//! type:    InftSealingKey(string purpose,address owner,uint256 chainId,uint32 keyIndex)
//! message: { purpose: SEALING_KEY_PURPOSE, owner, chainId, keyIndex }
//! ```
//!
//! and the 65-byte signature goes to `sealing::SealingSecret::from_wallet_signature`. This
//! only works because the signature is **deterministic**: alloy's local signer uses RFC 6979
//! nonces, as do hardware wallets and MetaMask; a signer with random nonces would derive a
//! different key every time (and lock the owner out). The signature is normalized to low `s`
//! first so an encoder that emits the malleable twin still derives the same key. The owner and
//! chain are in the message so a key is bound to one account on one chain; `keyIndex` lets an
//! owner rotate to a fresh key. The signature is key material: it is wiped after use and must
//! never be shown or sent anywhere.
//!
//! **Phishing, and rotation.** A deterministic signature is a key anyone can ask for: a web page
//! that gets a wallet to sign the same typed data learns the sealing secret, and with it every
//! data key and agent key ever sealed to it. Nothing in a signature scheme can prevent that; the
//! defences are (1) the `purpose` text, which the wallet shows and which says to sign only in an
//! inft client, (2) signing locally: the `inft` CLI derives the key from a keystore file in this
//! process, so its users are never asked to sign it in a browser, and (3) rotation: the current
//! key is the index whose public key the AgentNFT holds ([`find_sealing_secret`]), and
//! `inft keys rotate` moves to the next index, re-keys every token the owner holds (fresh data
//! keys, new blobs, a new agent key) and publishes the new key, so what a phished signature
//! opens is the data of before the rotation, not of after.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, Signature};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};
use sealing::SealingSecret;
use zeroize::{Zeroize, Zeroizing};

pub use crate::error::WalletError;

/// Environment variable holding the keystore passphrase.
pub const PASSPHRASE_ENV: &str = "INFT_PASSPHRASE";
/// Environment variable naming a file whose content is the keystore passphrase.
pub const PASSPHRASE_FILE_ENV: &str = "INFT_PASSPHRASE_FILE";

/// The fixed `purpose` of the sealing-key message ([`sealing::WALLET_KEY_MESSAGE`]). Changing
/// it would change every owner's sealing key: it is part of the protocol.
pub const SEALING_KEY_PURPOSE: &str = sealing::WALLET_KEY_MESSAGE;

/// EIP-712 domain name of the sealing-key message.
pub const SEALING_KEY_DOMAIN_NAME: &str = "inft sealing key";
/// EIP-712 domain version of the sealing-key message.
pub const SEALING_KEY_DOMAIN_VERSION: &str = "1";

mod eip712 {
    #![allow(missing_docs)]
    alloy::sol! {
        /// The message an owner's wallet signs to derive their sealing key.
        struct InftSealingKey {
            string purpose;
            address owner;
            uint256 chainId;
            uint32 keyIndex;
        }
    }
}

/// A keystore passphrase: wiped on drop, never printed, not `Clone`.
pub struct Passphrase(Zeroizing<String>);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Passphrase {
    /// Wraps a passphrase (taking ownership, so the caller's copy is the one wiped).
    pub fn new(passphrase: String) -> Self {
        Self(Zeroizing::new(passphrase))
    }

    /// The passphrase from the environment: `INFT_PASSPHRASE`, else the content of the file
    /// named by `INFT_PASSPHRASE_FILE` (one trailing newline removed). `None` if neither is set.
    pub fn from_env() -> Result<Option<Self>, WalletError> {
        Self::from_sources(
            std::env::var_os(PASSPHRASE_ENV),
            std::env::var_os(PASSPHRASE_FILE_ENV),
        )
    }

    /// The passphrase in `path` (one trailing newline dropped), e.g. a service's per-keystore
    /// secret file.
    pub fn from_file(path: &Path) -> Result<Self, WalletError> {
        Self::from_sources(None, Some(path.as_os_str().to_owned()))
            .map(|p| p.unwrap_or_else(|| Self::new(String::new())))
    }

    fn from_sources(
        value: Option<std::ffi::OsString>,
        file: Option<std::ffi::OsString>,
    ) -> Result<Option<Self>, WalletError> {
        if let Some(p) = value {
            let p = p.into_string().map_err(|_| WalletError::NoPassphrase)?;
            return Ok(Some(Self::new(p)));
        }
        if let Some(path) = file {
            let path = PathBuf::from(path);
            let mut content = Zeroizing::new(
                std::fs::read_to_string(&path)
                    .map_err(|source| WalletError::PassphraseFile { path, source })?,
            );
            if content.ends_with('\n') {
                content.pop();
                if content.ends_with('\r') {
                    content.pop();
                }
            }
            return Ok(Some(Self::new(std::mem::take(&mut *content))));
        }
        Ok(None)
    }

    /// Asks for the passphrase on the terminal, without echo.
    pub fn prompt(prompt: &str) -> Result<Self, WalletError> {
        rpassword::prompt_password(prompt)
            .map(Self::new)
            .map_err(WalletError::Prompt)
    }

    /// [`from_env`](Self::from_env), else [`prompt`](Self::prompt) when there is a terminal,
    /// else [`WalletError::NoPassphrase`].
    pub fn from_env_or_prompt(prompt: &str) -> Result<Self, WalletError> {
        if let Some(p) = Self::from_env()? {
            return Ok(p);
        }
        match Self::prompt(prompt) {
            Ok(p) => Ok(p),
            // No controlling terminal (CI, a service): say how to provide it instead.
            Err(WalletError::Prompt(_)) => Err(WalletError::NoPassphrase),
            Err(e) => Err(e),
        }
    }

    /// The passphrase bytes, for a key-derivation function.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Decrypts the V3 keystore at `path`.
pub fn load_keystore(
    path: impl AsRef<Path>,
    passphrase: &Passphrase,
) -> Result<PrivateKeySigner, WalletError> {
    let path = path.as_ref();
    let secret = Zeroizing::new(
        eth_keystore::decrypt_key(path, passphrase.expose_secret()).map_err(|source| {
            WalletError::Keystore {
                path: path.to_owned(),
                source,
            }
        })?,
    );
    PrivateKeySigner::from_slice(&secret).map_err(|_| WalletError::InvalidKey {
        path: path.to_owned(),
    })
}

/// Creates a new random key and writes it to `dir/<name>` as a V3 keystore encrypted with
/// `passphrase` (`name` defaults to the keystore's UUID). Returns the signer and the file path.
pub fn create_keystore(
    dir: impl AsRef<Path>,
    name: Option<&str>,
    passphrase: &Passphrase,
) -> Result<(PrivateKeySigner, PathBuf), WalletError> {
    let signer = PrivateKeySigner::random_with(&mut rand08::rngs::OsRng);
    let path = import_keystore(dir, name, &signer, passphrase)?;
    Ok((signer, path))
}

/// Writes an existing signer's key to `dir/<name>` as an encrypted V3 keystore (e.g. a
/// development account of a local chain). Returns the file path.
pub fn import_keystore(
    dir: impl AsRef<Path>,
    name: Option<&str>,
    signer: &PrivateKeySigner,
    passphrase: &Passphrase,
) -> Result<PathBuf, WalletError> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir)?;
    if let Some(name) = name
        && (name.is_empty() || name.contains(['/', '\\']) || name == "." || name == "..")
    {
        return Err(WalletError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid keystore file name {name:?}"),
        )));
    }
    let key = Zeroizing::new(signer.to_bytes().0);
    let uuid = eth_keystore::encrypt_key(
        dir,
        &mut rand08::rngs::OsRng,
        key.as_slice(),
        passphrase.expose_secret(),
        name,
    )
    .map_err(|source| WalletError::Keystore {
        path: dir.to_owned(),
        source,
    })?;
    let path = dir.join(name.unwrap_or(&uuid));
    restrict_permissions(&path)?;
    Ok(path)
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

fn sealing_domain() -> Eip712Domain {
    eip712_domain! {
        name: SEALING_KEY_DOMAIN_NAME,
        version: SEALING_KEY_DOMAIN_VERSION,
    }
}

fn sealing_message(owner: Address, chain_id: u64, key_index: u32) -> eip712::InftSealingKey {
    eip712::InftSealingKey {
        purpose: SEALING_KEY_PURPOSE.to_owned(),
        owner,
        chainId: alloy::primitives::U256::from(chain_id),
        keyIndex: key_index,
    }
}

/// The EIP-712 digest an owner signs to derive their sealing key.
pub fn sealing_key_digest(owner: Address, chain_id: u64, key_index: u32) -> B256 {
    sealing_message(owner, chain_id, key_index).eip712_signing_hash(&sealing_domain())
}

/// The sealing-key message as `eth_signTypedData_v4` JSON, for wallets outside this process.
pub fn sealing_key_typed_data(owner: Address, chain_id: u64, key_index: u32) -> serde_json::Value {
    serde_json::json!({
        "types": {
            "EIP712Domain": [
                { "name": "name", "type": "string" },
                { "name": "version", "type": "string" },
            ],
            "InftSealingKey": [
                { "name": "purpose", "type": "string" },
                { "name": "owner", "type": "address" },
                { "name": "chainId", "type": "uint256" },
                { "name": "keyIndex", "type": "uint32" },
            ],
        },
        "primaryType": "InftSealingKey",
        "domain": { "name": SEALING_KEY_DOMAIN_NAME, "version": SEALING_KEY_DOMAIN_VERSION },
        "message": {
            "purpose": SEALING_KEY_PURPOSE,
            "owner": owner.to_checksum(None),
            "chainId": chain_id.to_string(),
            "keyIndex": key_index,
        },
    })
}

/// How many wallet-derived sealing keys an owner may rotate through (key indices `0..`this).
pub const MAX_SEALING_KEY_INDEX: u32 = 256;

/// The owner's current wallet-derived sealing secret: the one at the key index whose public key
/// is `published` (what the AgentNFT holds for the wallet), with that index. Each index costs
/// one local signature, so scanning all of them takes milliseconds.
pub fn find_sealing_secret(
    wallet: &PrivateKeySigner,
    chain_id: u64,
    published: &sealing::SealingPublicKey,
) -> Result<(u32, SealingSecret), WalletError> {
    for index in 0..MAX_SEALING_KEY_INDEX {
        let secret = derive_sealing_secret(wallet, chain_id, index)?;
        if secret.public_key() == *published {
            return Ok((index, secret));
        }
    }
    Err(WalletError::UnknownSealingKey {
        owner: wallet.address(),
    })
}

/// Derives the owner's sealing secret with a local wallet (see the module docs).
pub fn derive_sealing_secret(
    wallet: &PrivateKeySigner,
    chain_id: u64,
    key_index: u32,
) -> Result<SealingSecret, WalletError> {
    let digest = sealing_key_digest(wallet.address(), chain_id, key_index);
    let signature = wallet.sign_hash_sync(&digest)?;
    secret_from_signature(signature)
}

/// Derives the owner's sealing secret from a signature made by a wallet outside this process
/// over [`sealing_key_typed_data`]; checks first that `owner` made it.
pub fn sealing_secret_from_signature(
    signature: &[u8],
    owner: Address,
    chain_id: u64,
    key_index: u32,
) -> Result<SealingSecret, WalletError> {
    // Low-s first: some encoders emit the malleable twin, which not every recovery accepts.
    let signature = Signature::from_raw(signature)
        .map_err(|_| WalletError::BadSignature)?
        .normalized_s();
    let digest = sealing_key_digest(owner, chain_id, key_index);
    let actual = signature
        .recover_address_from_prehash(&digest)
        .map_err(|_| WalletError::BadSignature)?;
    if actual != owner {
        return Err(WalletError::WrongSigner {
            expected: owner,
            actual,
        });
    }
    secret_from_signature(signature)
}

fn secret_from_signature(signature: Signature) -> Result<SealingSecret, WalletError> {
    let mut bytes = signature.normalized_s().as_bytes();
    let secret = SealingSecret::from_wallet_signature(&bytes)
        .map_err(|e| WalletError::Sealing(e.to_string()));
    bytes.zeroize();
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_debug_is_redacted() {
        let p = Passphrase::new("hunter2".into());
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn passphrase_sources_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        std::fs::write(&file, "from file\n").unwrap();
        let p = Passphrase::from_sources(Some("from var".into()), Some(file.clone().into()))
            .unwrap()
            .unwrap();
        assert_eq!(p.expose_secret(), b"from var");
        let p = Passphrase::from_sources(None, Some(file.into()))
            .unwrap()
            .unwrap();
        assert_eq!(
            p.expose_secret(),
            b"from file",
            "one trailing newline is dropped"
        );
        let crlf = dir.path().join("crlf");
        std::fs::write(&crlf, "x y\r\n\n").unwrap();
        let p = Passphrase::from_sources(None, Some(crlf.into()))
            .unwrap()
            .unwrap();
        assert_eq!(p.expose_secret(), b"x y\r\n", "only one newline is dropped");
        assert!(Passphrase::from_sources(None, None).unwrap().is_none());
        let missing = dir.path().join("missing");
        assert!(matches!(
            Passphrase::from_sources(None, Some(missing.into())),
            Err(WalletError::PassphraseFile { .. })
        ));
    }

    #[test]
    fn keystore_round_trip_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let pass = Passphrase::new("pw".into());
        let (signer, path) = create_keystore(dir.path(), Some("owner.json"), &pass).unwrap();
        assert_eq!(path, dir.path().join("owner.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        // Encrypted: the private key is not in the file.
        assert!(!text.contains(&hex::encode(signer.to_bytes())));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(
            load_keystore(&path, &pass).unwrap().address(),
            signer.address()
        );

        // Importing a known key (e.g. a dev-chain account).
        let known = PrivateKeySigner::random();
        let p2 = import_keystore(dir.path(), Some("dev.json"), &known, &pass).unwrap();
        assert_eq!(
            load_keystore(&p2, &pass).unwrap().address(),
            known.address()
        );
        assert!(import_keystore(dir.path(), Some("../escape"), &known, &pass).is_err());
        assert!(load_keystore(dir.path().join("nope.json"), &pass).is_err());
        std::fs::write(dir.path().join("junk.json"), "{").unwrap();
        assert!(load_keystore(dir.path().join("junk.json"), &pass).is_err());
    }

    #[test]
    fn sealing_secret_is_deterministic_and_bound_to_the_owner() {
        let wallet = PrivateKeySigner::random();
        let a = derive_sealing_secret(&wallet, 31337, 0)
            .unwrap()
            .public_key();
        let b = derive_sealing_secret(&wallet, 31337, 0)
            .unwrap()
            .public_key();
        assert_eq!(a, b, "RFC 6979: same wallet, same key");
        assert_ne!(
            a,
            derive_sealing_secret(&wallet, 1, 0).unwrap().public_key()
        );
        assert_ne!(
            a,
            derive_sealing_secret(&wallet, 31337, 1)
                .unwrap()
                .public_key()
        );
        assert_ne!(
            a,
            derive_sealing_secret(&PrivateKeySigner::random(), 31337, 0)
                .unwrap()
                .public_key()
        );

        // An external wallet's signature over the same typed data derives the same key.
        let digest = sealing_key_digest(wallet.address(), 31337, 0);
        let sig = wallet.sign_hash_sync(&digest).unwrap();
        let ext =
            sealing_secret_from_signature(&sig.as_bytes(), wallet.address(), 31337, 0).unwrap();
        assert_eq!(ext.public_key(), a);
        // ...also in its malleable high-s form.
        let n = alloy::primitives::U256::from_str_radix(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
            16,
        )
        .unwrap();
        let twin = Signature::new(sig.r(), n - sig.s(), !sig.v());
        let ext2 =
            sealing_secret_from_signature(&twin.as_bytes(), wallet.address(), 31337, 0).unwrap();
        assert_eq!(ext2.public_key(), a);
        // A signature by someone else, or over another chain, is refused.
        let other = PrivateKeySigner::random();
        let bad = other.sign_hash_sync(&digest).unwrap();
        assert!(matches!(
            sealing_secret_from_signature(&bad.as_bytes(), wallet.address(), 31337, 0),
            Err(WalletError::WrongSigner { .. })
        ));
        assert!(sealing_secret_from_signature(&sig.as_bytes(), wallet.address(), 1, 0).is_err());
        assert!(matches!(
            sealing_secret_from_signature(&[0u8; 10], wallet.address(), 31337, 0),
            Err(WalletError::BadSignature)
        ));
    }

    #[test]
    fn typed_data_json_hashes_to_the_digest() {
        // Hash the JSON's values by hand, as EIP-712 defines it, and compare with the digest.
        use alloy::primitives::{U256, keccak256};
        let owner = Address::repeat_byte(0x42);
        let json = sealing_key_typed_data(owner, 31337, 2);
        let m = &json["message"];
        let d = &json["domain"];
        let type_hash = keccak256(
            "InftSealingKey(string purpose,address owner,uint256 chainId,uint32 keyIndex)",
        );
        let owner_json: Address = m["owner"].as_str().unwrap().parse().unwrap();
        let chain: u64 = m["chainId"].as_str().unwrap().parse().unwrap();
        let struct_hash = keccak256(
            [
                type_hash.as_slice(),
                keccak256(m["purpose"].as_str().unwrap()).as_slice(),
                owner_json.into_word().as_slice(),
                &U256::from(chain).to_be_bytes::<32>(),
                &U256::from(m["keyIndex"].as_u64().unwrap()).to_be_bytes::<32>(),
            ]
            .concat(),
        );
        let domain_sep = keccak256(
            [
                keccak256("EIP712Domain(string name,string version)").as_slice(),
                keccak256(d["name"].as_str().unwrap()).as_slice(),
                keccak256(d["version"].as_str().unwrap()).as_slice(),
            ]
            .concat(),
        );
        let digest = keccak256(
            [
                &[0x19u8, 0x01][..],
                domain_sep.as_slice(),
                struct_hash.as_slice(),
            ]
            .concat(),
        );
        assert_eq!(digest, sealing_key_digest(owner, 31337, 2));
        assert_eq!(m["purpose"], SEALING_KEY_PURPOSE);
    }

    #[test]
    fn digest_binds_owner_chain_and_index() {
        let a = Address::repeat_byte(1);
        let d = sealing_key_digest(a, 1, 0);
        assert_ne!(d, sealing_key_digest(Address::repeat_byte(2), 1, 0));
        assert_ne!(d, sealing_key_digest(a, 2, 0));
        assert_ne!(d, sealing_key_digest(a, 1, 1));
    }
}
