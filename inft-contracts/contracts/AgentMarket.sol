// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IAgentAccount, IAgentAccountFactory} from "./interfaces/IAgentAccount.sol";
import {IAgentMarket} from "./interfaces/IAgentMarket.sol";
import {IAgentNFT} from "./interfaces/IAgentNFT.sol";
import {IERC6551Account} from "./interfaces/IERC6551.sol";

/// @title AgentMarket
/// @notice Fixed-price ETH market for private agent tokens: the key rotation completes the sale
/// and pays the ERC-2981 royalty and the seller in the same transaction (see IAgentMarket).
///
/// Payments are pushed, with a pull fallback: the royalty receiver, the seller and a refunded
/// buyer are sent their wei in the transaction that owes it, with at most {PAYOUT_GAS} gas and
/// without copying return data; if the send fails, the amount is credited to the payee for
/// {withdraw}. So a sale pays out at once in the normal case, and a payee that reverts or burns
/// gas (a creator's contract, say) cannot block a sale, a cancel or a refund. Every external
/// function that changes state is `nonReentrant` and follows checks-effects-interactions: a
/// listing is deleted before the NFT, a payee or a buyer contract (its ERC-721 receiver hook)
/// is called.
///
/// Fair exchange: the new keys reach the buyer only in the completion that pays the seller. The
/// completion takes only an oracle attestation (a receiver's acceptance would be signed after the
/// buyer saw keys it could open, and it could refuse to sign and take a refund), sealed to the
/// key the buyer committed at the buy and bound to this market and the price; no receiver hook
/// runs. So a buyer who could open the keys has paid, and nothing the buyer does after paying
/// (a new sealing key, a reverting contract, a cancelled nonce) stops the completion before the
/// deadline. See inft-contracts/README.md, "Selling an agent".
///
/// The token's agent account is sold with the token (its funds follow it), so a buy records the
/// account's ERC-6551 state and a completion requires it unchanged: otherwise the seller (or its
/// agent, or a grantee) could empty the account after the buyer paid and still be paid.
contract AgentMarket is IAgentMarket, IERC165, ReentrancyGuardTransient {
    /// @notice Shortest completion window a seller may give itself.
    uint32 public constant MIN_WINDOW = 5 minutes;
    /// @notice Longest completion window (the buyer's escrow is locked at most this long).
    uint32 public constant MAX_WINDOW = 30 days;
    /// @notice Gas forwarded with a pushed payment; a payee needing more is credited instead.
    uint256 public constant PAYOUT_GAS = 50_000;

    /// @inheritdoc IAgentMarket
    IAgentNFT public immutable nft;

    /// @dev The token's agent account and its ERC-6551 state at the buy, in one slot (a state
    /// counter does not reach 2**96: every step of it is a transaction). Written by every buy and
    /// read only while a sale is pending, so a completed sale leaves it for the next buy to
    /// overwrite (cheaper than clearing it).
    struct AccountSnapshot {
        address account;
        uint96 state;
    }

    mapping(uint256 tokenId => Listing) private _listings;
    mapping(address payee => uint256) private _owed;
    mapping(uint256 tokenId => AccountSnapshot) private _accountAtBuy;

    /// @param nft_ the AgentNFT whose tokens are sold here
    constructor(IAgentNFT nft_) {
        if (address(nft_) == address(0)) revert ZeroAddress();
        nft = nft_;
    }

    // -------------------------------------------------------------- listing

    /// @inheritdoc IAgentMarket
    function list(uint256 tokenId, uint256 price, uint32 window) external nonReentrant {
        if (price == 0) revert ZeroPrice();
        if (window < MIN_WINDOW || window > MAX_WINDOW) revert BadWindow(window);
        if (IERC721(address(nft)).ownerOf(tokenId) != msg.sender) revert NotSeller(tokenId, msg.sender);
        if (!_approved(tokenId, msg.sender)) revert MarketNotApproved(tokenId);
        Listing storage l = _listings[tokenId];
        // A pending sale (of this seller, or a void one of an earlier owner) must end first.
        if (l.buyer != address(0)) revert SalePending(tokenId, l.buyer);

        uint64 epoch = nft.epochOf(tokenId);
        _listings[tokenId] = Listing({
            seller: msg.sender,
            epoch: epoch,
            window: window,
            price: price,
            buyer: address(0),
            deadline: 0,
            sealingKey: bytes32(0)
        });
        emit Listed(tokenId, msg.sender, price, window, epoch);
    }

    /// @inheritdoc IAgentMarket
    function cancel(uint256 tokenId) external nonReentrant {
        Listing memory l = _listings[tokenId];
        if (l.seller == address(0)) revert NotListed(tokenId);
        if (l.seller != msg.sender) revert NotSeller(tokenId, msg.sender);
        delete _listings[tokenId];
        emit Cancelled(tokenId, msg.sender);
        if (l.buyer != address(0)) {
            emit Refunded(tokenId, l.buyer, l.price);
            _pay(l.buyer, l.price);
        }
    }

    // --------------------------------------------------------------- buying

    /// @inheritdoc IAgentMarket
    function buy(uint256 tokenId, bytes32 sealingKey, uint32 window) external payable nonReentrant {
        Listing storage l = _listings[tokenId];
        address seller = l.seller;
        if (seller == address(0)) revert NotListed(tokenId);
        if (l.buyer != address(0)) revert SalePending(tokenId, l.buyer);
        if (msg.value != l.price) revert WrongPayment(l.price, msg.value);
        if (window != l.window) revert WrongWindow(l.window, window);
        if (msg.sender == seller) revert SellerIsBuyer(seller);
        if (!_live(tokenId, seller, l.epoch)) revert ListingVoid(tokenId);
        bytes32 published = nft.sealingKeyOf(msg.sender);
        if (sealingKey == bytes32(0) || sealingKey != published) revert SealingKeyMismatch(sealingKey, published);

        // What the buyer pays for includes the agent account as it is now: record its state, and
        // refuse while a spender of the seller could empty it without changing that state.
        address account = _accountOf(tokenId);
        uint256 state = _accountState(account);
        if (account.code.length != 0) {
            uint256 open = IAgentAccount(account).openApprovals().length;
            if (open != 0) revert AccountApprovalsOpen(account, open);
        }

        uint64 deadline = uint64(block.timestamp) + l.window;
        l.buyer = msg.sender;
        l.deadline = deadline;
        l.sealingKey = sealingKey;
        _accountAtBuy[tokenId] = AccountSnapshot({account: account, state: SafeCast.toUint96(state)});
        emit Bought(tokenId, msg.sender, seller, msg.value, sealingKey, deadline);
        emit AccountStateRecorded(tokenId, account, state);
    }

    /// @inheritdoc IAgentMarket
    function complete(
        uint256 tokenId,
        IAgentNFT.DataEntries calldata data,
        address newAgent,
        IAgentNFT.Proof calldata proof
    ) external nonReentrant {
        Listing memory l = _listings[tokenId];
        if (l.buyer == address(0)) revert NoPendingSale(tokenId);
        if (block.timestamp > l.deadline) revert SaleExpired(l.deadline, block.timestamp);
        if (!_live(tokenId, l.seller, l.epoch)) revert ListingVoid(tokenId);
        (address account, uint256 expected, uint256 actual) = _accountAtBuyAndNow(tokenId);
        if (actual != expected) revert AccountChanged(account, expected, actual);
        (address receiver, uint256 royalty) = IERC2981(address(nft)).royaltyInfo(tokenId, l.price);
        if (royalty > l.price) revert RoyaltyTooHigh(royalty, l.price);
        // No receiver to pay: the seller keeps the whole price.
        if (receiver == address(0)) royalty = 0;

        // Effects before any call: a second completion (or a reentrant one) finds no sale.
        delete _listings[tokenId];
        emit Sold(tokenId, l.seller, l.buyer, l.price, receiver, royalty);

        // The NFT checks the oracle's attestation over (seller, buyer, old and new data, the key
        // the buyer committed at the buy, new agent, this market, the price, nonce, deadline);
        // it runs no receiver hook, so the buyer cannot make this fail once the keys are public.
        nft.sellWithProof(l.buyer, tokenId, l.sealingKey, l.price, data, newAgent, proof);

        _pay(receiver, royalty);
        _pay(l.seller, l.price - royalty);
    }

    /// @inheritdoc IAgentMarket
    function refund(uint256 tokenId) external nonReentrant {
        Listing memory l = _listings[tokenId];
        if (l.buyer == address(0)) revert NoPendingSale(tokenId);
        // Due at the deadline, or at once when the sale can no longer complete (a void listing,
        // a changed agent account): the buyer's remedy never waits on the seller.
        if (block.timestamp <= l.deadline && _live(tokenId, l.seller, l.epoch) && !_accountChanged(tokenId)) {
            revert RefundNotDue(l.deadline, block.timestamp);
        }
        delete _listings[tokenId];
        emit Refunded(tokenId, l.buyer, l.price);
        _pay(l.buyer, l.price);
    }

    /// @inheritdoc IAgentMarket
    function withdraw(address payable to) external nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        uint256 amount = _owed[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _owed[msg.sender] = 0;
        emit Withdrawn(msg.sender, to, amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert WithdrawFailed(to, amount);
    }

    // ----------------------------------------------------------------- views

    /// @inheritdoc IAgentMarket
    function listingOf(uint256 tokenId) external view returns (Listing memory) {
        return _listings[tokenId];
    }

    /// @inheritdoc IAgentMarket
    function isLive(uint256 tokenId) external view returns (bool) {
        Listing storage l = _listings[tokenId];
        return l.seller != address(0) && _live(tokenId, l.seller, l.epoch)
            && (l.buyer == address(0) || !_accountChanged(tokenId));
    }

    /// @inheritdoc IAgentMarket
    function accountStateAtBuy(uint256 tokenId) external view returns (address account, uint256 state) {
        if (_listings[tokenId].buyer == address(0)) return (address(0), 0);
        AccountSnapshot memory snap = _accountAtBuy[tokenId];
        return (snap.account, snap.state);
    }

    /// @inheritdoc IAgentMarket
    function owed(address payee) external view returns (uint256) {
        return _owed[payee];
    }

    /// @inheritdoc IERC165
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == type(IAgentMarket).interfaceId || interfaceId == type(IERC165).interfaceId;
    }

    // -------------------------------------------------------------- internal

    /// @dev The market may move the token for `owner` (token approval or operator).
    function _approved(uint256 tokenId, address owner) private view returns (bool) {
        IERC721 n = IERC721(address(nft));
        return n.getApproved(tokenId) == address(this) || n.isApprovedForAll(owner, address(this));
    }

    /// @dev The listing stands: `seller` owns the token, in the listed epoch, and the market is approved.
    function _live(uint256 tokenId, address seller, uint64 epoch) private view returns (bool) {
        return IERC721(address(nft)).ownerOf(tokenId) == seller && nft.epochOf(tokenId) == epoch
            && _approved(tokenId, seller);
    }

    /// @dev The token's agent account: the one account the NFT trusts for it (zero if the NFT has
    /// no account factory, so no account).
    function _accountOf(uint256 tokenId) private view returns (address) {
        IAgentAccountFactory f = nft.accountFactory();
        return address(f) == address(0) ? address(0) : f.accountOf(tokenId);
    }

    /// @dev The ERC-6551 state of `account`; 0 for an address without code (nothing can leave an
    /// account before it is deployed, and its first `execute` moves the state above 0) or one
    /// that does not answer.
    function _accountState(address account) private view returns (uint256 state) {
        bytes4 selector = IERC6551Account.state.selector;
        assembly ("memory-safe") {
            mstore(0x00, selector)
            let ok := staticcall(gas(), account, 0x00, 0x04, 0x00, 0x20)
            if and(ok, gt(returndatasize(), 0x1f)) { state := mload(0x00) }
        }
    }

    /// @dev The pending sale's account, its state at the buy and its state now.
    function _accountAtBuyAndNow(uint256 tokenId)
        private
        view
        returns (address account, uint256 expected, uint256 actual)
    {
        AccountSnapshot memory snap = _accountAtBuy[tokenId];
        account = snap.account;
        expected = snap.state;
        actual = account == address(0) ? 0 : _accountState(account);
    }

    /// @dev The pending sale's agent account changed since the buy.
    function _accountChanged(uint256 tokenId) private view returns (bool) {
        (, uint256 expected, uint256 actual) = _accountAtBuyAndNow(tokenId);
        return actual != expected;
    }

    /// @dev Push `amount` to `payee` with {PAYOUT_GAS} and no return-data copy; on failure
    /// credit it for {withdraw}. Callers have finished their effects.
    function _pay(address payee, uint256 amount) private {
        if (amount == 0) return;
        bool ok;
        uint256 gasLimit = PAYOUT_GAS;
        assembly ("memory-safe") {
            ok := call(gasLimit, payee, amount, 0, 0, 0, 0)
        }
        if (ok) {
            emit Paid(payee, amount);
        } else {
            _owed[payee] += amount;
            emit PaymentDeferred(payee, amount);
        }
    }
}

