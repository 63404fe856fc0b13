//! Off-chain halves of the contract rules: the EIP-712 transfer proofs, the agent account's
//! ERC-1271 message wrapper, token ids and the contributors hash, computed exactly as the
//! contracts do (the integration test checks each against the chain).

use alloy::primitives::aliases::U96;
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::sol_types::{Eip712Domain, SolStruct, SolValue, eip712_domain};

use crate::bindings::IAgentNFT;

#[allow(missing_docs)]
mod typed {
    alloy::sol! {
        /// The receiver's EIP-712 acceptance of a rotation (proof mode 0).
        #[derive(Debug, PartialEq, Eq)]
        struct Acceptance {
            address nft;
            uint256 tokenId;
            uint256 newTokenId;
            address from;
            address to;
            bytes32[] oldDataHashes;
            bytes32[] newDataHashes;
            bytes[] sealedKeys;
            string[] uris;
            bytes32 sealingKey;
            address newAgent;
            address market;
            uint256 price;
            uint256 nonce;
            uint256 deadline;
        }

        /// A re-encryption oracle's EIP-712 attestation of a rotation (proof mode 1).
        #[derive(Debug, PartialEq, Eq)]
        struct Attestation {
            address nft;
            uint256 tokenId;
            uint256 newTokenId;
            address from;
            address to;
            bytes32[] oldDataHashes;
            bytes32[] newDataHashes;
            bytes[] sealedKeys;
            string[] uris;
            bytes32 sealingKey;
            address newAgent;
            address market;
            uint256 price;
            uint256 nonce;
            uint256 deadline;
        }

        /// What an owner or agent signs for its agent account to accept `hash` under ERC-1271.
        #[derive(Debug, PartialEq, Eq)]
        struct AgentAccountMessage {
            bytes32 hash;
        }
    }
}
pub use typed::{Acceptance, AgentAccountMessage, Attestation};

/// EIP-712 domain name of the TransferVerifier.
pub const PROOF_DOMAIN_NAME: &str = "inft TransferVerifier";
/// EIP-712 domain version of the TransferVerifier.
pub const PROOF_DOMAIN_VERSION: &str = "1";

/// Who signs a rotation proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum ProofMode {
    /// The receiver signs an `Acceptance` after checking the new data itself.
    Receiver = 0,
    /// A registered re-encryption oracle signs an `Attestation`.
    Oracle = 1,
}

impl ProofMode {
    /// The `mode` byte the contracts take.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The EIP-712 domain of the TransferVerifier at `verifier` on `chain_id`.
pub fn proof_domain(chain_id: u64, verifier: Address) -> Eip712Domain {
    eip712_domain! {
        name: PROOF_DOMAIN_NAME,
        version: PROOF_DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: verifier,
    }
}

/// EIP-712 domain name of every agent account.
pub const ACCOUNT_DOMAIN_NAME: &str = "AgentAccount";
/// EIP-712 domain version of every agent account.
pub const ACCOUNT_DOMAIN_VERSION: &str = "1";

/// The EIP-712 domain of the agent account at `account` on `chain_id`.
pub fn account_domain(chain_id: u64, account: Address) -> Eip712Domain {
    eip712_domain! {
        name: ACCOUNT_DOMAIN_NAME,
        version: ACCOUNT_DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: account,
    }
}

/// The digest to sign so that the agent account at `account` accepts `hash` through ERC-1271
/// `isValidSignature(hash, signature)` (equals `AgentAccount.messageHash(hash)`): the hash
/// wrapped in `AgentAccountMessage(bytes32 hash)` under the account's own domain, so a signature
/// is valid for this account on this chain only.
pub fn account_message_hash(chain_id: u64, account: Address, hash: B256) -> B256 {
    AgentAccountMessage { hash }.eip712_signing_hash(&account_domain(chain_id, account))
}

/// Everything a rotation proof binds: a transfer (`new_token_id == token_id`) or a clone.
///
/// `old_data_hashes` are the token's current hashes (`AgentNFT.dataHashesOf`), `sealing_key` the
/// receiver's published X25519 key (`AgentNFT.sealingKeyOf(to)`), or for a sale the key the
/// buyer committed at the buy (`AgentMarket.listingOf(token).sealingKey`); the NFT refills these
/// from its own state (and the market's), so a proof made from stale values does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The AgentNFT.
    pub nft: Address,
    /// The token that moves (or is cloned).
    pub token_id: U256,
    /// Equal to `token_id` for a transfer; the clone's id for a clone.
    pub new_token_id: U256,
    /// The current owner.
    pub from: Address,
    /// The receiver.
    pub to: Address,
    /// The token's current data hashes.
    pub old_data_hashes: Vec<B256>,
    /// The rotated data hashes, one per entry.
    pub new_data_hashes: Vec<B256>,
    /// The new data keys sealed to the receiver, one per entry.
    pub sealed_keys: Vec<Bytes>,
    /// Where the new sealed blobs are stored, one per entry.
    pub uris: Vec<String>,
    /// The receiver's published X25519 sealing key.
    pub sealing_key: B256,
    /// The new agent wallet.
    pub new_agent: Address,
    /// For a sale, the market that completes it (`AgentMarket.complete` calls
    /// `AgentNFT.sellWithProof`); zero for any other transfer or clone.
    pub market: Address,
    /// For a sale, its price in wei; zero otherwise.
    pub price: U256,
    /// The signer's nonce (usable once).
    pub nonce: U256,
    /// Last valid block timestamp.
    pub deadline: U256,
}

impl Rotation {
    /// The receiver's typed data.
    pub fn acceptance(&self) -> Acceptance {
        Acceptance {
            nft: self.nft,
            tokenId: self.token_id,
            newTokenId: self.new_token_id,
            from: self.from,
            to: self.to,
            oldDataHashes: self.old_data_hashes.clone(),
            newDataHashes: self.new_data_hashes.clone(),
            sealedKeys: self.sealed_keys.clone(),
            uris: self.uris.clone(),
            sealingKey: self.sealing_key,
            newAgent: self.new_agent,
            market: self.market,
            price: self.price,
            nonce: self.nonce,
            deadline: self.deadline,
        }
    }

    /// The oracle's typed data.
    pub fn attestation(&self) -> Attestation {
        Attestation {
            nft: self.nft,
            tokenId: self.token_id,
            newTokenId: self.new_token_id,
            from: self.from,
            to: self.to,
            oldDataHashes: self.old_data_hashes.clone(),
            newDataHashes: self.new_data_hashes.clone(),
            sealedKeys: self.sealed_keys.clone(),
            uris: self.uris.clone(),
            sealingKey: self.sealing_key,
            newAgent: self.new_agent,
            market: self.market,
            price: self.price,
            nonce: self.nonce,
            deadline: self.deadline,
        }
    }

    /// The EIP-712 hash to sign in `mode` (equals `TransferVerifier.hashRotation`).
    pub fn signing_hash(&self, mode: ProofMode, domain: &Eip712Domain) -> B256 {
        match mode {
            ProofMode::Receiver => self.acceptance().eip712_signing_hash(domain),
            ProofMode::Oracle => self.attestation().eip712_signing_hash(domain),
        }
    }

    /// The new entries as `transferWithProof` / `cloneWithProof` take them.
    pub fn data_entries(&self) -> IAgentNFT::DataEntries {
        IAgentNFT::DataEntries {
            dataHashes: self.new_data_hashes.clone(),
            sealedKeys: self.sealed_keys.clone(),
            uris: self.uris.clone(),
        }
    }

    /// The proof argument for `transferWithProof` / `cloneWithProof`.
    pub fn proof(&self, mode: ProofMode, signature: Bytes) -> IAgentNFT::Proof {
        IAgentNFT::Proof {
            mode: mode.as_u8(),
            nonce: self.nonce,
            deadline: self.deadline,
            signature,
        }
    }
}

/// The id `minter` gets for `salt`: `minter << 96 | salt` (equals `AgentNFT.tokenIdFor`).
pub fn token_id_for(minter: Address, salt: U96) -> U256 {
    (U256::from_be_slice(minter.as_slice()) << 96) | U256::from(salt)
}

/// The creator encoded in a minted (non-clone) token id.
pub fn minter_of(token_id: U256) -> Address {
    let bytes = (token_id >> 96usize).to_be_bytes::<32>();
    Address::from_slice(&bytes[12..])
}

/// `keccak256(abi.encode(contributors, bps))` as stored at mint; zero when there are none.
pub fn contributors_hash(contributors: &[Address], bps: &[u16]) -> B256 {
    if contributors.is_empty() && bps.is_empty() {
        return B256::ZERO;
    }
    keccak256((contributors.to_vec(), bps.to_vec()).abi_encode_params())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    #[test]
    fn token_id_layout() {
        let minter = address!("0x00000000000000000000000000000000000000ff");
        let id = token_id_for(minter, U96::from(7u8));
        assert_eq!(id, (U256::from(0xffu64) << 96) | U256::from(7u8));
        assert_eq!(minter_of(id), minter);
    }

    #[test]
    fn empty_contributors_hash_is_zero() {
        assert_eq!(contributors_hash(&[], &[]), B256::ZERO);
        assert_ne!(contributors_hash(&[Address::ZERO], &[1]), B256::ZERO);
    }

    #[test]
    fn account_messages_are_bound_to_the_account_and_chain() {
        let h = B256::repeat_byte(0x11);
        let a = Address::repeat_byte(0xaa);
        let base = account_message_hash(31337, a, h);
        assert_ne!(
            base,
            account_message_hash(31337, Address::repeat_byte(0xbb), h)
        );
        assert_ne!(base, account_message_hash(1, a, h));
        assert_ne!(base, h);
    }

    #[test]
    fn modes_sign_different_hashes() {
        let r = Rotation {
            nft: Address::repeat_byte(1),
            token_id: U256::from(1),
            new_token_id: U256::from(1),
            from: Address::repeat_byte(2),
            to: Address::repeat_byte(3),
            old_data_hashes: vec![B256::repeat_byte(4)],
            new_data_hashes: vec![B256::repeat_byte(5)],
            sealed_keys: vec![Bytes::from_static(&[6; 81])],
            uris: vec!["inft://x".into()],
            sealing_key: B256::repeat_byte(7),
            new_agent: Address::repeat_byte(8),
            market: Address::ZERO,
            price: U256::ZERO,
            nonce: U256::from(9),
            deadline: U256::from(10),
        };
        let d = proof_domain(31337, Address::repeat_byte(9));
        assert_ne!(
            r.signing_hash(ProofMode::Receiver, &d),
            r.signing_hash(ProofMode::Oracle, &d)
        );
        assert_ne!(
            r.signing_hash(ProofMode::Receiver, &d),
            r.signing_hash(
                ProofMode::Receiver,
                &proof_domain(1, Address::repeat_byte(9))
            )
        );
        // A sale's proof names its market and price: it settles no other sale.
        let sale = Rotation {
            market: Address::repeat_byte(0xaa),
            price: U256::from(100),
            ..r.clone()
        };
        let hash = |r: &Rotation| r.signing_hash(ProofMode::Oracle, &d);
        assert_ne!(hash(&sale), hash(&r));
        let elsewhere = Rotation {
            market: Address::repeat_byte(0xbb),
            ..sale.clone()
        };
        let cheaper = Rotation {
            price: U256::from(50),
            ..sale.clone()
        };
        assert_ne!(hash(&sale), hash(&elsewhere));
        assert_ne!(hash(&sale), hash(&cheaper));
    }
}
