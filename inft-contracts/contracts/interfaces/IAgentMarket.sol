// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgentNFT} from "./IAgentNFT.sol";

/// @title IAgentMarket
/// @notice Fixed-price ETH market for private agent tokens that completes the sale with the
/// token's key rotation and pays the ERC-2981 royalty and the seller in the same transaction.
///
/// A private token moves only by {IAgentNFT.transferWithProof}: its data is re-encrypted for the
/// buyer, so a sale cannot settle at the moment of payment. It takes three steps:
/// 1. {list}: the token's owner asks `price` wei and gives itself `window` seconds to deliver
///    after a buy; the owner approves this market on the NFT (`approve` or `setApprovalForAll`).
/// 2. {buy}: a buyer escrows exactly `price` and commits the X25519 sealing key it published on
///    the NFT; the data must be re-encrypted to that key.
/// 3. {complete}: the rotation (the seller's re-encrypted data and the buyer's acceptance, or a
///    re-encryption oracle's attestation) is submitted through the market, which calls
///    `transferWithProof(buyer, …)` and, in the same transaction, pays
///    `royaltyInfo(tokenId, price)` to the royalty receiver and the rest to the seller.
/// If the sale does not complete by the deadline (or the listing becomes void: the token moved,
/// the market lost its approval, the token's agent account changed), the buyer's escrow is
/// refunded ({refund}).
///
/// The token's agent account (the ERC-6551 account at `nft.accountFactory().accountOf(tokenId)`,
/// deployed or not) is part of what is sold: its funds follow the token. So {buy} records the
/// account's ERC-6551 `state()` ({accountStateAtBuy}; an account without code counts as state
/// 0) and refuses while the account holds open approvals of the seller (a spender could drain it
/// without changing its state); {complete} is refused if the state changed since the buy
/// ({AccountChanged}): any `execute` of the seller, its agent or a grantee (a withdrawal, a trade,
/// a new approval) changes it. The buyer may then take its refund at once.
interface IAgentMarket {
    /// @notice A listing, and its pending sale if `buyer` is set.
    /// @param seller the token's owner when it was listed (the listing is void once it is not)
    /// @param epoch the token's epoch when it was listed (a transfer bumps it: a token that moved
    /// and came back is not the listed one)
    /// @param window seconds the seller has to complete after a buy
    /// @param price asked and, once bought, escrowed wei
    /// @param buyer the buyer, zero while unsold
    /// @param deadline last timestamp (inclusive) at which the sale may complete; zero while unsold
    /// @param sealingKey the X25519 key the buyer committed to at {buy}
    struct Listing {
        address seller;
        uint64 epoch;
        uint32 window;
        uint256 price;
        address buyer;
        uint64 deadline;
        bytes32 sealingKey;
    }

    // ----------------------------------------------------------------- events

    /// @notice `seller` listed (or relisted) `tokenId` at `price` wei with a completion `window`.
    event Listed(uint256 indexed tokenId, address indexed seller, uint256 price, uint32 window, uint64 epoch);
    /// @notice The seller withdrew an unsold listing (or a pending sale, refunding the buyer).
    event Cancelled(uint256 indexed tokenId, address indexed seller);
    /// @notice `buyer` escrowed `price` for `tokenId`; the seller must complete by `deadline`
    /// with the data sealed to `sealingKey`.
    event Bought(
        uint256 indexed tokenId, address indexed buyer, address indexed seller, uint256 price, bytes32 sealingKey, uint64 deadline
    );
    /// @notice The rotation completed the sale: `buyer` holds the token, `royaltyReceiver` was
    /// paid `royalty` and `seller` `price - royalty`.
    event Sold(
        uint256 indexed tokenId,
        address indexed seller,
        address indexed buyer,
        uint256 price,
        address royaltyReceiver,
        uint256 royalty
    );
    /// @notice The pending sale of `tokenId` ended without completing; `amount` went back to `buyer`.
    event Refunded(uint256 indexed tokenId, address indexed buyer, uint256 amount);
    /// @notice `amount` wei was sent to `payee`.
    event Paid(address indexed payee, uint256 amount);
    /// @notice Sending `amount` wei to `payee` failed (it reverted or needed more than the payout
    /// gas); it is credited for {withdraw}.
    event PaymentDeferred(address indexed payee, uint256 amount);
    /// @notice `payee` withdrew `amount` wei of deferred payments to `to`.
    event Withdrawn(address indexed payee, address indexed to, uint256 amount);
    /// @notice At the buy of `tokenId`, its agent account `account` had the ERC-6551 `state`
    /// (0 if not deployed); the sale completes only while the account still has it.
    event AccountStateRecorded(uint256 indexed tokenId, address indexed account, uint256 state);

    // ----------------------------------------------------------------- errors

    /// @notice The caller is not the token's owner (for {list}) or the listing's seller.
    error NotSeller(uint256 tokenId, address caller);
    /// @notice The market is not approved to move the token.
    error MarketNotApproved(uint256 tokenId);
    /// @notice A listing must ask a non-zero price.
    error ZeroPrice();
    /// @notice The completion window is outside [MIN_WINDOW, MAX_WINDOW].
    error BadWindow(uint32 window);
    /// @notice The token is not listed.
    error NotListed(uint256 tokenId);
    /// @notice The listing is void: the seller no longer owns the token, it moved since it was
    /// listed, or the market lost its approval.
    error ListingVoid(uint256 tokenId);
    /// @notice A buyer has escrowed for the token already (a second buy, a relist or a price
    /// change while a sale is pending).
    error SalePending(uint256 tokenId, address buyer);
    /// @notice No buyer has escrowed for the token (nothing to complete or refund).
    error NoPendingSale(uint256 tokenId);
    /// @notice `msg.value` is not the listed price.
    error WrongPayment(uint256 price, uint256 value);
    /// @notice The listing's completion window is not the one the buyer agreed to.
    error WrongWindow(uint32 window, uint32 expected);
    /// @notice The seller cannot buy its own listing.
    error SellerIsBuyer(address seller);
    /// @notice The committed sealing key is zero or not the one the buyer published.
    error SealingKeyMismatch(bytes32 committed, bytes32 published);
    /// @notice The completion deadline has passed (the buyer may take a refund).
    error SaleExpired(uint256 deadline, uint256 nowTs);
    /// @notice The refund is not due yet: the sale may still complete until `deadline`.
    error RefundNotDue(uint256 deadline, uint256 nowTs);
    /// @notice The NFT's royalty exceeds the price.
    error RoyaltyTooHigh(uint256 royalty, uint256 price);
    /// @notice Nothing to withdraw.
    error NothingToWithdraw(address payee);
    /// @notice Sending a withdrawal failed.
    error WithdrawFailed(address to, uint256 amount);
    /// @notice A zero address where an address is required.
    error ZeroAddress();
    /// @notice The token's agent account `account` changed since the buy: its ERC-6551 state was
    /// `expected` at the buy and is `actual` now (the seller, its agent or a grantee operated it).
    /// The sale cannot complete; the buyer may take its refund at once.
    error AccountChanged(address account, uint256 expected, uint256 actual);
    /// @notice The token's agent account `account` holds `count` open approvals of the seller (a
    /// spender could empty it between the buy and the completion): the seller closes them
    /// (`closeApprovals()` on the account) before a buy.
    error AccountApprovalsOpen(address account, uint256 count);

    // -------------------------------------------------------------- listing

    /// @notice List `tokenId` (caller: its owner) at `price` wei; after a buy, the seller has
    /// `window` seconds to complete. Replaces the caller's earlier listing of the token; refused
    /// while a sale is pending. The market must be approved on the NFT for the token.
    function list(uint256 tokenId, uint256 price, uint32 window) external;

    /// @notice The seller withdraws its listing. If a buyer has escrowed, the sale ends and the
    /// buyer is refunded in the same transaction.
    function cancel(uint256 tokenId) external;

    // --------------------------------------------------------------- buying

    /// @notice Buy `tokenId`: escrow exactly the listed price and commit `sealingKey`, which must
    /// be the X25519 key the caller published on the NFT (`sealingKeyOf(msg.sender)`). The seller
    /// must then complete within the listing's window, which the buyer restates as `window`: the
    /// terms the buyer agreed to (price, window) cannot change under a buy in flight. Records the
    /// token's agent account state ({AccountStateRecorded}, {accountStateAtBuy}); refused with
    /// {AccountApprovalsOpen} while that account holds open approvals of the seller.
    function buy(uint256 tokenId, bytes32 sealingKey, uint32 window) external payable;

    /// @notice Complete the pending sale of `tokenId`: moves the token to the buyer with
    /// `sellWithProof(buyer, tokenId, committedKey, price, data, newAgent, proof)` and pays the
    /// royalty receiver `royaltyInfo(tokenId, price)` and the seller the rest, in this
    /// transaction. Anyone may call: the proof (an oracle's attestation of exactly this rotation,
    /// sealed to the key the buyer committed at the buy, for this market and price) is the
    /// authorization, and the payees are fixed. Refused after the deadline, if the listing is
    /// void, or if the token's agent account changed since the buy ({AccountChanged}); a
    /// receiver's acceptance is refused by the NFT ({IAgentNFT.SaleNeedsAttestation}).
    function complete(uint256 tokenId, IAgentNFT.DataEntries calldata data, address newAgent, IAgentNFT.Proof calldata proof)
        external;

    /// @notice Refund the buyer of a sale that did not complete: after its deadline, or at once
    /// if the listing became void or the token's agent account changed since the buy (the sale
    /// can no longer complete). Anyone may call; the escrow goes to the buyer. Ends the listing.
    function refund(uint256 tokenId) external;

    /// @notice Withdraw the caller's deferred payments (payments that could not be pushed) to `to`.
    function withdraw(address payable to) external;

    // ----------------------------------------------------------------- views

    /// @notice The NFT this market sells.
    function nft() external view returns (IAgentNFT);

    /// @notice The listing of `tokenId` (all zero if none).
    function listingOf(uint256 tokenId) external view returns (Listing memory);

    /// @notice Whether `tokenId`'s listing stands: listed, the seller still owns the token in the
    /// listed epoch, the market may move it and, once bought, the token's agent account has not
    /// changed since the buy.
    function isLive(uint256 tokenId) external view returns (bool);

    /// @notice The pending sale's record of the token's agent account: its address and its
    /// ERC-6551 state at the buy (0 for an account not deployed then). Both zero if no sale is
    /// pending. {complete} requires the account's state to still be `state`.
    function accountStateAtBuy(uint256 tokenId) external view returns (address account, uint256 state);

    /// @notice Deferred payments `payee` can {withdraw}.
    function owed(address payee) external view returns (uint256);
}
