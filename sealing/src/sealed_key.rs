//! Sealed keys: a data key wrapped for one recipient's X25519 public key and bound to one
//! on-chain context (chain, contract, token, data hash, recipient).

use std::fmt;

use hkdf::Hkdf;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::commitment::Commitment;
use crate::error::KeyError;
use crate::keys::{DataKey, SealingPublicKey, SealingSecret, os_random};
use crate::labels;

/// Where a sealed key may be opened: it is bound (as AEAD associated data) to these values and
/// to the recipient's public key, and opens for no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyContext {
    /// EVM chain id.
    pub chain_id: u64,
    /// The INFT contract address.
    pub contract: [u8; 20],
    /// The token id, as a big-endian uint256.
    pub token_id: [u8; 32],
    /// The commitment of the blob this key decrypts (`dataHash`).
    pub data_hash: Commitment,
}

impl KeyContext {
    /// The context for files sealed outside any chain (the CLI's default): chain id 0, zero
    /// contract, token 0, bound to the blob's commitment.
    pub fn local(data_hash: Commitment) -> Self {
        Self {
            chain_id: 0,
            contract: [0; 20],
            token_id: [0; 32],
            data_hash,
        }
    }

    /// Token id from a `u64` (big-endian uint256 with the high bytes zero).
    pub fn token_id_from_u64(id: u64) -> [u8; 32] {
        let mut t = [0u8; 32];
        t[24..].copy_from_slice(&id.to_be_bytes());
        t
    }

    /// The associated data: `"inft/v1/sealed-key" ‖ version ‖ u64be(chain_id) ‖ contract ‖
    /// token_id ‖ data_hash ‖ recipient public key` (143 bytes).
    fn aad(&self, recipient: &SealingPublicKey) -> [u8; AAD_LEN] {
        let mut a = [0u8; AAD_LEN];
        let mut w = Writer(&mut a, 0);
        w.put(labels::SEALED_KEY);
        w.put(&[SealedKey::VERSION]);
        w.put(&self.chain_id.to_be_bytes());
        w.put(&self.contract);
        w.put(&self.token_id);
        w.put(self.data_hash.as_bytes());
        w.put(recipient.as_bytes());
        debug_assert_eq!(w.1, AAD_LEN);
        a
    }
}

const AAD_LEN: usize = 18 + 1 + 8 + 20 + 32 + 32 + 32;

struct Writer<'a>(&'a mut [u8], usize);
impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        self.0[self.1..self.1 + b.len()].copy_from_slice(b);
        self.1 += b.len();
    }
}

/// A data key sealed to one recipient and context: `version(1) ‖ ephemeral X25519 public key(32)
/// ‖ AES-256-GCM(data key)(32) ‖ tag(16)`, exactly [`SealedKey::LEN`] bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey([u8; SealedKey::LEN]);

impl SealedKey {
    /// Exact encoded length.
    pub const LEN: usize = 1 + 32 + 32 + 16;
    /// The version this library writes and reads.
    pub const VERSION: u8 = 1;

    /// Wraps `key` for `recipient`, bound to `ctx`, with a fresh ephemeral key.
    ///
    /// Fails with [`KeyError::LowOrderPoint`] if `recipient` is a low-order point (the exchange
    /// would yield the all-zero secret).
    pub fn seal(
        key: &DataKey,
        recipient: &SealingPublicKey,
        ctx: &KeyContext,
    ) -> Result<SealedKey, KeyError> {
        let mut eph = Zeroizing::new([0u8; 32]);
        os_random(eph.as_mut_slice());
        Self::seal_with_ephemeral(key, recipient, ctx, &eph)
    }

    /// [`SealedKey::seal`] with a given ephemeral secret: test vectors only.
    pub(crate) fn seal_with_ephemeral(
        key: &DataKey,
        recipient: &SealingPublicKey,
        ctx: &KeyContext,
        ephemeral: &[u8; 32],
    ) -> Result<SealedKey, KeyError> {
        let eph = SealingSecret::from_bytes(*ephemeral);
        let eph_pub = eph.public_key();
        let wrap = wrap_key(&eph, recipient, &eph_pub, recipient)?;
        let mut out = [0u8; Self::LEN];
        out[0] = Self::VERSION;
        out[1..33].copy_from_slice(eph_pub.as_bytes());
        let (body, tag_out) = out[33..].split_at_mut(32);
        body.copy_from_slice(key.expose());
        let tag = wrap
            .seal_in_place_separate_tag(zero_nonce(), Aad::from(ctx.aad(recipient)), body)
            .map_err(|_| KeyError::Unseal)?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(SealedKey(out))
    }

    /// Unwraps the data key with the recipient's secret, for exactly the context it was sealed to.
    pub fn open(&self, secret: &SealingSecret, ctx: &KeyContext) -> Result<DataKey, KeyError> {
        if self.0[0] != Self::VERSION {
            return Err(KeyError::Version(self.0[0]));
        }
        let mut eph = [0u8; 32];
        eph.copy_from_slice(&self.0[1..33]);
        let eph_pub = SealingPublicKey::from_bytes(eph);
        let recipient = secret.public_key();
        let wrap = wrap_key(secret, &eph_pub, &eph_pub, &recipient)?;
        let mut body = Zeroizing::new([0u8; 32]);
        body.copy_from_slice(&self.0[33..65]);
        let tag = Tag::try_from(&self.0[65..]).map_err(|_| KeyError::Unseal)?;
        wrap.open_in_place_separate_tag(
            zero_nonce(),
            Aad::from(ctx.aad(&recipient)),
            tag,
            body.as_mut_slice(),
            0..,
        )
        .map_err(|_| KeyError::Unseal)?;
        Ok(DataKey::from_bytes(*body))
    }

    /// The encoded bytes.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        self.0
    }

    /// The encoded bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// Parses exactly [`SealedKey::LEN`] bytes with a known version.
    pub fn from_bytes(bytes: &[u8]) -> Result<SealedKey, KeyError> {
        let arr: [u8; Self::LEN] = bytes.try_into().map_err(|_| KeyError::Length {
            expected: Self::LEN,
            actual: bytes.len(),
        })?;
        if arr[0] != Self::VERSION {
            return Err(KeyError::Version(arr[0]));
        }
        Ok(SealedKey(arr))
    }

    /// Lower-case hex, no prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The recipient-independent ephemeral public key inside.
    pub fn ephemeral_public_key(&self) -> SealingPublicKey {
        let mut e = [0u8; 32];
        e.copy_from_slice(&self.0[1..33]);
        SealingPublicKey::from_bytes(e)
    }
}

impl fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not secret (it is published on chain), but long: show the ephemeral key only.
        write!(
            f,
            "SealedKey(v{}, epk {})",
            self.0[0],
            hex::encode(&self.0[1..33])
        )
    }
}

/// `HKDF-SHA256(salt = ephemeral_pub ‖ recipient_pub, ikm = X25519(secret, peer),
/// info = "inft/v1/sealed-key")`, refusing the all-zero shared secret.
fn wrap_key(
    secret: &SealingSecret,
    peer: &SealingPublicKey,
    ephemeral_pub: &SealingPublicKey,
    recipient_pub: &SealingPublicKey,
) -> Result<LessSafeKey, KeyError> {
    let shared = secret
        .inner()
        .diffie_hellman(&x25519_dalek::PublicKey::from(*peer.as_bytes()));
    if !shared.was_contributory() {
        return Err(KeyError::LowOrderPoint);
    }
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral_pub.as_bytes());
    salt[32..].copy_from_slice(recipient_pub.as_bytes());
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes());
    let mut k = Zeroizing::new([0u8; 32]);
    hk.expand(labels::SEALED_KEY, k.as_mut_slice())
        .map_err(|_| KeyError::Unseal)?;
    let key = UnboundKey::new(&AES_256_GCM, k.as_slice()).map_err(|_| KeyError::Unseal)?;
    Ok(LessSafeKey::new(key))
}

/// The wrap key is single-use (fresh ephemeral per sealed key), so a fixed nonce is safe.
fn zero_nonce() -> Nonce {
    Nonce::assume_unique_for_key([0u8; 12])
}
