//! Passphrase-encrypted key files for a [`SealingSecret`]: Argon2id + AES-256-GCM in a small,
//! versioned JSON document. Layout: see FORMAT.md.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::KeyFileError;
use crate::keys::{SealingPublicKey, SealingSecret, os_random};
use crate::labels;

const KIND: &str = "inft-sealing-key";
const VERSION: u32 = 1;
const KDF_NAME: &str = "argon2id";
const CIPHER_NAME: &str = "aes-256-gcm";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const CT_LEN: usize = 32 + 16;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB (8..=1 048 576).
    pub m_cost_kib: u32,
    /// Passes (1..=16).
    pub t_cost: u32,
    /// Lanes (1..=16).
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about a tenth of a second on a current core.
    fn default() -> Self {
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters (64 KiB, 1 pass) for tests only; never for real keys.
    pub fn insecure_fast() -> Self {
        Self {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    fn check(&self) -> Result<(), KeyFileError> {
        // Bounds stop a hostile file from demanding unbounded memory or time.
        if !(8..=1 << 20).contains(&self.m_cost_kib)
            || !(1..=16).contains(&self.t_cost)
            || !(1..=16).contains(&self.p_cost)
        {
            return Err(KeyFileError::Format("kdf parameters out of bounds"));
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfJson {
    name: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CipherJson {
    name: String,
    nonce: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    kind: String,
    version: u32,
    public_key: String,
    kdf: KdfJson,
    cipher: CipherJson,
    ciphertext: String,
}

/// A sealing secret encrypted under a passphrase. Holds no secret in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedKeyFile {
    public_key: SealingPublicKey,
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    ciphertext: [u8; CT_LEN],
}

impl EncryptedKeyFile {
    /// Encrypts `secret` under `passphrase` with fresh salt and nonce.
    pub fn encrypt(
        secret: &SealingSecret,
        passphrase: &[u8],
        params: KdfParams,
    ) -> Result<Self, KeyFileError> {
        params.check()?;
        let mut salt = [0u8; SALT_LEN];
        os_random(&mut salt);
        let mut nonce = [0u8; NONCE_LEN];
        os_random(&mut nonce);
        let mut f = Self {
            public_key: secret.public_key(),
            params,
            salt,
            nonce,
            ciphertext: [0; CT_LEN],
        };
        let key = f.derive(passphrase)?;
        let mut body = Zeroizing::new([0u8; 32]);
        body.copy_from_slice(secret.to_bytes().as_slice());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(f.aad()),
                body.as_mut_slice(),
            )
            .map_err(|_| KeyFileError::Passphrase)?;
        f.ciphertext[..32].copy_from_slice(body.as_slice());
        f.ciphertext[32..].copy_from_slice(tag.as_ref());
        Ok(f)
    }

    /// Decrypts the secret; a wrong passphrase or any altered field gives
    /// [`KeyFileError::Passphrase`].
    pub fn decrypt(&self, passphrase: &[u8]) -> Result<SealingSecret, KeyFileError> {
        let key = self.derive(passphrase)?;
        let mut buf = Zeroizing::new(self.ciphertext);
        let pt = key
            .open_in_place(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(self.aad()),
                buf.as_mut_slice(),
            )
            .map_err(|_| KeyFileError::Passphrase)?;
        let mut sk = Zeroizing::new([0u8; 32]);
        sk.copy_from_slice(pt);
        let secret = SealingSecret::from_bytes(*sk);
        // The public key is authenticated as AAD; this only guards against a logic slip.
        if secret.public_key() != self.public_key {
            return Err(KeyFileError::Passphrase);
        }
        Ok(secret)
    }

    /// The public key, readable without the passphrase.
    pub fn public_key(&self) -> SealingPublicKey {
        self.public_key
    }

    /// The KDF parameters in use.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// Pretty JSON, newline-terminated.
    pub fn to_json(&self) -> String {
        let j = FileJson {
            kind: KIND.into(),
            version: VERSION,
            public_key: self.public_key.to_hex(),
            kdf: KdfJson {
                name: KDF_NAME.into(),
                m_cost_kib: self.params.m_cost_kib,
                t_cost: self.params.t_cost,
                p_cost: self.params.p_cost,
                salt: hex::encode(self.salt),
            },
            cipher: CipherJson {
                name: CIPHER_NAME.into(),
                nonce: hex::encode(self.nonce),
            },
            ciphertext: hex::encode(self.ciphertext),
        };
        // Serializing plain strings and integers cannot fail.
        let mut s = serde_json::to_string_pretty(&j).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses and validates a key file (kind, version, algorithms, lengths, KDF bounds).
    pub fn from_json(s: &str) -> Result<Self, KeyFileError> {
        let j: FileJson = serde_json::from_str(s)?;
        if j.kind != KIND {
            return Err(KeyFileError::Format("not an inft sealing key file"));
        }
        if j.version != VERSION {
            return Err(KeyFileError::Format("unsupported key file version"));
        }
        if j.kdf.name != KDF_NAME || j.cipher.name != CIPHER_NAME {
            return Err(KeyFileError::Format("unsupported kdf or cipher"));
        }
        let params = KdfParams {
            m_cost_kib: j.kdf.m_cost_kib,
            t_cost: j.kdf.t_cost,
            p_cost: j.kdf.p_cost,
        };
        params.check()?;
        Ok(Self {
            public_key: SealingPublicKey::from_hex(&j.public_key)
                .map_err(|_| KeyFileError::Format("bad public_key"))?,
            params,
            salt: hex_exact(&j.kdf.salt, "bad kdf salt")?,
            nonce: hex_exact(&j.cipher.nonce, "bad cipher nonce")?,
            ciphertext: hex_exact(&j.ciphertext, "bad ciphertext")?,
        })
    }

    fn aad(&self) -> Vec<u8> {
        let mut a = Vec::with_capacity(16 + 32 + 12 + SALT_LEN);
        a.extend_from_slice(labels::KEY_FILE);
        a.extend_from_slice(self.public_key.as_bytes());
        a.extend_from_slice(&self.params.m_cost_kib.to_be_bytes());
        a.extend_from_slice(&self.params.t_cost.to_be_bytes());
        a.extend_from_slice(&self.params.p_cost.to_be_bytes());
        a.extend_from_slice(&self.salt);
        a
    }

    fn derive(&self, passphrase: &[u8]) -> Result<LessSafeKey, KeyFileError> {
        let params = argon2::Params::new(
            self.params.m_cost_kib,
            self.params.t_cost,
            self.params.p_cost,
            Some(32),
        )
        .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut k = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, &self.salt, k.as_mut_slice())
            .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
        let key = UnboundKey::new(&AES_256_GCM, k.as_slice())
            .map_err(|_| KeyFileError::Kdf("bad key length".into()))?;
        Ok(LessSafeKey::new(key))
    }
}

fn hex_exact<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], KeyFileError> {
    let v = hex::decode(s).map_err(|_| KeyFileError::Format(what))?;
    v.try_into().map_err(|_| KeyFileError::Format(what))
}
