//! The market an agent trades on: Uniswap V2 pool maths, on-chain snapshots, and a seeded price
//! process that moves the pool so there is something to trade.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, I256, U256, U512};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, TransactionReceipt};
use alloy::sol_types::SolEvent;
use inft_contracts::bindings::{AgentNFT, TestToken, UniswapV2Pair, UniswapV2Router02};
use inft_contracts::deploy::Market;
use serde::{Deserialize, Serialize};

use super::TradingError;

/// Basis points in one whole.
pub const BPS: u32 = 10_000;

/// `UniswapV2Library.getAmountOut`: what `amount_in` buys from a pool with these reserves,
/// after the 0.3% fee, with the router's exact integer maths (rounding down). `None` when the
/// input or a reserve is zero (the router reverts) or the result does not fit.
pub fn get_amount_out(amount_in: U256, reserve_in: U256, reserve_out: U256) -> Option<U256> {
    if amount_in.is_zero() || reserve_in.is_zero() || reserve_out.is_zero() {
        return None;
    }
    let with_fee = amount_in.checked_mul(U256::from(997u64))?;
    let numerator = with_fee.checked_mul(reserve_out)?;
    let denominator = reserve_in
        .checked_mul(U256::from(1000u64))?
        .checked_add(with_fee)?;
    Some(numerator / denominator)
}

/// `amount * (10_000 - bps) / 10_000`, rounding down: the least output accepted under a
/// slippage bound of `bps`.
pub fn apply_slippage(amount: U256, bps: u32) -> U256 {
    let keep = U256::from(BPS.saturating_sub(bps.min(BPS)));
    amount.saturating_mul(keep) / U256::from(BPS)
}

/// What `amount` is worth in the other token at the pool's mid price (no fee, no impact).
pub fn mid_value(amount: U256, reserve_from: U256, reserve_to: U256) -> U256 {
    if reserve_from.is_zero() {
        return U256::ZERO;
    }
    amount.saturating_mul(reserve_to) / reserve_from
}

/// `a * b / d` rounding down, without overflow in the product (saturating at `U256::MAX`; zero
/// when `d` is zero).
pub fn mul_div(a: U256, b: U256, d: U256) -> U256 {
    if d.is_zero() {
        return U256::ZERO;
    }
    let wide: U512 = a.widening_mul(b) / U512::from(d);
    wide.saturating_to::<U256>()
}

/// How many bits the pair's UQ112x112 prices are shifted by.
pub const Q112_BITS: usize = 112;

/// The price of `from` in `to` as the Uniswap V2 pair's accumulators count it: UQ112x112
/// (`reserve_to * 2^112 / reserve_from`, rounding down; zero for an empty reserve).
pub fn price_x112(reserve_from: U256, reserve_to: U256) -> U256 {
    if reserve_from.is_zero() {
        return U256::ZERO;
    }
    mul_div(reserve_to, U256::from(1u8) << Q112_BITS, reserve_from)
}

/// How far `price` is from `reference`, in bps of `reference` (`u32::MAX` when the reference
/// is zero).
pub fn deviation_bps(price: U256, reference: U256) -> u32 {
    if reference.is_zero() {
        return u32::MAX;
    }
    let diff = if price > reference {
        price - reference
    } else {
        reference - price
    };
    u32::try_from(mul_div(diff, U256::from(BPS), reference)).unwrap_or(u32::MAX)
}

/// A token amount (18 decimals) as a float, for prompts and signals only: every check that
/// guards funds uses integers.
pub fn to_units(amount: U256) -> f64 {
    // u128 covers every realistic balance; larger values saturate.
    let raw = u128::try_from(amount).unwrap_or(u128::MAX);
    raw as f64 / 1e18
}

/// A gas limit for a Uniswap V2 swap estimated at `estimate`. The estimate runs in a block
/// with the last swap's timestamp, where the pair skips updating its price accumulators; mined
/// one second later it writes them (up to two fresh storage slots, ~45k gas), so a plain
/// estimate can run out of gas.
pub fn swap_gas_limit(estimate: u64) -> u64 {
    estimate.saturating_add(estimate / 4).saturating_add(60_000)
}

/// Swaps `amount_in` of `path[0]` (already approved to `router`) for `path[1]`, paid to `to`,
/// with no minimum out, and waits for the receipt: a market move by another trader (the noise
/// trader, a test), which its errors name so they are not taken for the agent's own swap.
/// Simulated first (a revert reason beats a bare failed receipt), and sent with
/// [`swap_gas_limit`].
pub async fn swap_exact_in<P: Provider>(
    provider: &P,
    router: Address,
    path: [Address; 2],
    amount_in: U256,
    to: Address,
) -> Result<TransactionReceipt, TradingError> {
    let router = UniswapV2Router02::new(router, provider);
    let swap = router.swapExactTokensForTokens(amount_in, U256::ZERO, path.to_vec(), to, U256::MAX);
    swap.call()
        .await
        .map_err(TradingError::call("market move simulation"))?;
    let gas = swap
        .estimate_gas()
        .await
        .map_err(TradingError::call("market move gas estimate"))?;
    let receipt = swap
        .gas(swap_gas_limit(gas))
        .send()
        .await
        .map_err(TradingError::call("market move swap"))?
        .get_receipt()
        .await
        .map_err(|e| TradingError::Chain(format!("market move swap: {e}")))?;
    if !receipt.status() {
        return Err(TradingError::Chain(format!(
            "market move swap {} reverted ({amount_in} of {})",
            receipt.transaction_hash, path[0]
        )));
    }
    Ok(receipt)
}

/// Equity in quote: the quote balance plus the base balance at the pool's mid price.
pub fn equity_quote(
    balance_base: U256,
    balance_quote: U256,
    reserve_base: U256,
    reserve_quote: U256,
) -> U256 {
    balance_quote.saturating_add(mid_value(balance_base, reserve_base, reserve_quote))
}

/// `to - from` as a signed amount (saturating), e.g. a PnL from two equities.
pub fn signed_diff(to: U256, from: U256) -> I256 {
    I256::try_from(to)
        .unwrap_or(I256::MAX)
        .saturating_sub(I256::try_from(from).unwrap_or(I256::MAX))
}

/// `s` cut to `max` characters, with `…` when it was longer.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// Default length of the window a [`Twap`] averages over (see `Policy::twap_window_secs`).
pub const DEFAULT_TWAP_WINDOW_SECS: u64 = 1_800;

/// The time-weighted average price of base in quote over a window ending at a snapshot, from
/// the Uniswap V2 pair's price accumulators (`price0CumulativeLast`/`price1CumulativeLast`,
/// `blockTimestampLast`). A price pushed in the snapshot's own block counts for no time, one
/// held for a few blocks for a few seconds of the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Twap {
    /// Average quote per base, UQ112x112 (the accumulators' unit).
    pub price_x112: U256,
    /// Chain time the window starts at.
    pub from_timestamp: u64,
    /// Seconds averaged: the configured window, or less when the pool (or the state the node
    /// keeps) is younger; 0 when there is no history yet (then the price of the oldest state).
    pub secs: u64,
}

/// The pair's state at one block, as its accumulators need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairState {
    /// Base reserve.
    pub reserve_base: U256,
    /// Quote reserve.
    pub reserve_quote: U256,
    /// `price{0,1}CumulativeLast` of base in quote (UQ112x112 × seconds, wrapping).
    pub cumulative: U256,
    /// `blockTimestampLast` (the pair keeps it modulo 2^32).
    pub last_update: u32,
}

impl PairState {
    /// The accumulator at chain time `t` (at or after the state's last update), as the pair
    /// would write it: the current price accrues from the last update to `t`.
    pub fn cumulative_at(&self, t: u64) -> U256 {
        // The pair counts time in uint32, wrapping; so does this difference.
        let elapsed = (t as u32).wrapping_sub(self.last_update);
        self.cumulative.wrapping_add(
            price_x112(self.reserve_base, self.reserve_quote).wrapping_mul(U256::from(elapsed)),
        )
    }
}

/// The average of two accumulator readings `(cumulative, time)`, `None` if no time passed.
pub fn average_x112(old: (U256, u64), new: (U256, u64)) -> Option<U256> {
    let secs = new.1.checked_sub(old.1).filter(|s| *s > 0)?;
    Some(new.0.wrapping_sub(old.0) / U256::from(secs))
}

/// The market, the agent's holdings and its token's pause flag, read at one block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketSnapshot {
    /// The block the values were read at.
    pub block: u64,
    /// That block's timestamp (seconds).
    pub timestamp: u64,
    /// The traded asset.
    pub base: Address,
    /// The quote token (PnL is counted in it).
    pub quote: Address,
    /// The router trades go through.
    pub router: Address,
    /// The pair.
    pub pair: Address,
    /// Pool reserve of the base token.
    pub reserve_base: U256,
    /// Pool reserve of the quote token.
    pub reserve_quote: U256,
    /// Who holds the agent's funds (its token-bound account).
    pub holder: Address,
    /// The holder's base balance.
    pub balance_base: U256,
    /// The holder's quote balance.
    pub balance_quote: U256,
    /// Whether the token's owner paused the agent on chain.
    pub paused: bool,
    /// The pool's time-weighted average price over the window up to this block (`None` when
    /// the pool has no usable state: no liquidity).
    pub twap: Option<Twap>,
}

impl MarketSnapshot {
    /// Quote per base at the pool's mid price, UQ112x112.
    pub fn spot_x112(&self) -> U256 {
        price_x112(self.reserve_base, self.reserve_quote)
    }

    /// `amount` of `token` valued in quote at the TWAP (`None` without one; zero for a token
    /// outside the pair).
    pub fn twap_quote_value(&self, token: Address, amount: U256) -> Option<U256> {
        let twap = self.twap?;
        Some(if token == self.quote {
            amount
        } else if token == self.base {
            mul_div(amount, twap.price_x112, U256::from(1u8) << Q112_BITS)
        } else {
            U256::ZERO
        })
    }

    /// `amount` of `token` valued in quote at the higher of the mid price and the TWAP: what
    /// the caps count, so a price pushed down cannot make a large sell look small.
    pub fn cap_value(&self, token: Address, amount: U256) -> U256 {
        let spot = self.quote_value(token, amount);
        self.twap_quote_value(token, amount)
            .map_or(spot, |twap| twap.max(spot))
    }

    /// Quote per base at the pool's mid price, as a float (prompts and signals only).
    pub fn price(&self) -> f64 {
        let base = to_units(self.reserve_base);
        if base == 0.0 {
            return 0.0;
        }
        to_units(self.reserve_quote) / base
    }

    /// The reserves ordered as `(reserve of token_in, reserve of token_out)`, if the pair is
    /// made of exactly these two tokens.
    pub fn reserves_for(&self, token_in: Address, token_out: Address) -> Option<(U256, U256)> {
        if token_in == self.base && token_out == self.quote {
            Some((self.reserve_base, self.reserve_quote))
        } else if token_in == self.quote && token_out == self.base {
            Some((self.reserve_quote, self.reserve_base))
        } else {
            None
        }
    }

    /// The holder's balance of `token` (zero for a token outside the pair).
    pub fn balance_of(&self, token: Address) -> U256 {
        if token == self.base {
            self.balance_base
        } else if token == self.quote {
            self.balance_quote
        } else {
            U256::ZERO
        }
    }

    /// `amount` of `token` valued in quote at the mid price.
    pub fn quote_value(&self, token: Address, amount: U256) -> U256 {
        if token == self.quote {
            amount
        } else if token == self.base {
            mid_value(amount, self.reserve_base, self.reserve_quote)
        } else {
            U256::ZERO
        }
    }

    /// The holder's equity in quote: quote balance plus base at the mid price.
    pub fn equity_quote(&self) -> U256 {
        equity_quote(
            self.balance_base,
            self.balance_quote,
            self.reserve_base,
            self.reserve_quote,
        )
    }
}

/// Blocks per `eth_getLogs` request when scanning for flows (providers cap the range).
const LOG_BLOCKS: u64 = 5_000;

/// Money that moved into or out of the agent's account by anything other than a swap through
/// the traded pair: a top-up, a withdrawal, a royalty settlement, a gift.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The block it happened in.
    pub block: u64,
    /// Its transaction.
    pub tx_hash: B256,
    /// The token moved (base or quote).
    pub token: Address,
    /// Into the account (`true`) or out of it.
    pub incoming: bool,
    /// How much.
    pub amount: U256,
    /// Its value in quote at the pool's mid price at the end of `block` (at the snapshot's
    /// price when the node no longer has that block's state).
    pub value_quote: U256,
}

/// An ERC-20 `Transfer` touching the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountTransfer {
    /// The block.
    pub block: u64,
    /// The transaction.
    pub tx_hash: B256,
    /// The log's index in its block.
    pub log_index: u64,
    /// The token.
    pub token: Address,
    /// Sender.
    pub from: Address,
    /// Receiver.
    pub to: Address,
    /// Amount.
    pub amount: U256,
}

/// The transfers of `holder` that are not a swap through `pair`. A transaction is a swap when
/// the holder both pays the pair and is paid by the pair in it (what the router's
/// `swapExactTokensForTokens` does, whoever sent it); in a swap the two legs are trading,
/// everything else (a lone payment to the pair included) is money moving in or out.
pub fn external_transfers(
    transfers: &[AccountTransfer],
    holder: Address,
    pair: Address,
) -> Vec<AccountTransfer> {
    let mut legs: HashMap<B256, (bool, bool)> = HashMap::new();
    for t in transfers {
        let e = legs.entry(t.tx_hash).or_default();
        e.0 |= t.from == holder && t.to == pair;
        e.1 |= t.from == pair && t.to == holder;
    }
    transfers
        .iter()
        .filter(|t| t.from != t.to)
        .filter(|t| {
            let swap = legs
                .get(&t.tx_hash)
                .is_some_and(|(paid, got)| *paid && *got);
            let with_pair = t.from == pair || t.to == pair;
            !(swap && with_pair)
        })
        .copied()
        .collect()
}

/// Reads [`MarketSnapshot`]s of one market for one agent.
#[derive(Clone, Debug)]
pub struct MarketReader {
    provider: DynProvider,
    market: Market,
    nft: Address,
    token_id: U256,
    holder: Address,
    twap_window_secs: u64,
    /// A block at or before the start of the next TWAP window (windows only move forward).
    twap_hint: Arc<AtomicU64>,
}

impl MarketReader {
    /// A reader of `market` for token `token_id` of the AgentNFT `nft`, whose funds `holder`
    /// (its token-bound account) holds.
    pub fn new(
        provider: DynProvider,
        market: Market,
        nft: Address,
        token_id: U256,
        holder: Address,
    ) -> Self {
        Self {
            provider,
            market,
            nft,
            token_id,
            holder,
            twap_window_secs: DEFAULT_TWAP_WINDOW_SECS,
            twap_hint: Arc::default(),
        }
    }

    /// Averages the [`Twap`] over `secs` seconds (the owner's `Policy::twap_window_secs`).
    pub fn with_twap_window(mut self, secs: u64) -> Self {
        self.twap_window_secs = secs;
        // Clones share the search hint; another window needs its own.
        self.twap_hint = Arc::default();
        self
    }

    /// The market.
    pub fn market(&self) -> &Market {
        &self.market
    }

    /// The account holding the agent's funds.
    pub fn holder(&self) -> Address {
        self.holder
    }

    /// The provider the reader reads through.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// Reads the pool, the holder's balances and the pause flag, all at the latest block.
    pub async fn snapshot(&self) -> Result<MarketSnapshot, TradingError> {
        let p = &self.provider;
        let block = p
            .get_block(BlockId::latest())
            .await
            .map_err(TradingError::rpc("eth_getBlockByNumber"))?
            .ok_or_else(|| TradingError::Chain("no latest block".into()))?;
        let at = BlockId::number(block.header.number);
        let pair = UniswapV2Pair::new(self.market.pair, p);
        let token0 = pair
            .token0()
            .block(at)
            .call()
            .await
            .map_err(TradingError::call("pair.token0"))?;
        let reserves = pair
            .getReserves()
            .block(at)
            .call()
            .await
            .map_err(TradingError::call("pair.getReserves"))?;
        let (r0, r1) = (
            U256::from(reserves._reserve0),
            U256::from(reserves._reserve1),
        );
        let (reserve_base, reserve_quote) = if token0 == self.market.base_token {
            (r0, r1)
        } else {
            (r1, r0)
        };
        let balance = |token: Address| async move {
            TestToken::new(token, p)
                .balanceOf(self.holder)
                .block(at)
                .call()
                .await
                .map_err(TradingError::call("balanceOf"))
        };
        let balance_base = balance(self.market.base_token).await?;
        let balance_quote = balance(self.market.quote_token).await?;
        let paused = AgentNFT::new(self.nft, p)
            .isPaused(self.token_id)
            .block(at)
            .call()
            .await
            .map_err(TradingError::call("isPaused"))?;
        let base_is_token0 = token0 == self.market.base_token;
        let now = self.pair_state(block.header.number, base_is_token0).await?;
        let twap = match now {
            Some(now) => {
                self.twap(
                    block.header.number,
                    block.header.timestamp,
                    now,
                    base_is_token0,
                )
                .await?
            }
            None => None,
        };
        Ok(MarketSnapshot {
            block: block.header.number,
            timestamp: block.header.timestamp,
            base: self.market.base_token,
            quote: self.market.quote_token,
            router: self.market.router,
            pair: self.market.pair,
            reserve_base,
            reserve_quote,
            holder: self.holder,
            balance_base,
            balance_quote,
            paused,
            twap,
        })
    }

    /// The pair's reserves and base-in-quote accumulator at `block`; `None` when the pair has
    /// no liquidity (or no code) there, or the node keeps no state for that block.
    pub async fn pair_state(
        &self,
        block: u64,
        base_is_token0: bool,
    ) -> Result<Option<PairState>, TradingError> {
        let pair = UniswapV2Pair::new(self.market.pair, &self.provider);
        let at = BlockId::number(block);
        let Ok(reserves) = pair.getReserves().block(at).call().await else {
            return Ok(None);
        };
        let cumulative = if base_is_token0 {
            pair.price0CumulativeLast().block(at).call().await
        } else {
            pair.price1CumulativeLast().block(at).call().await
        };
        let Ok(cumulative) = cumulative else {
            return Ok(None);
        };
        let (r0, r1) = (
            U256::from(reserves._reserve0),
            U256::from(reserves._reserve1),
        );
        if r0.is_zero() || r1.is_zero() {
            return Ok(None);
        }
        let (reserve_base, reserve_quote) = if base_is_token0 { (r0, r1) } else { (r1, r0) };
        Ok(Some(PairState {
            reserve_base,
            reserve_quote,
            cumulative,
            last_update: reserves._blockTimestampLast,
        }))
    }

    async fn block_timestamp(&self, block: u64) -> Result<u64, TradingError> {
        Ok(self
            .provider
            .get_block(BlockId::number(block))
            .await
            .map_err(TradingError::rpc("eth_getBlockByNumber"))?
            .ok_or_else(|| TradingError::Chain(format!("no block {block}")))?
            .header
            .timestamp)
    }

    /// The TWAP over the window ending at block `latest` (timestamp `now`, pair state
    /// `current`): the accumulator now less the accumulator at the window's start, read from
    /// the chain at the block that was current then (`eth_call` at a past block), over the
    /// seconds between. When the pool (or the node's state) is younger than the window, the
    /// window starts at the oldest block with usable state.
    async fn twap(
        &self,
        latest: u64,
        now: u64,
        current: PairState,
        base_is_token0: bool,
    ) -> Result<Option<Twap>, TradingError> {
        let start = now.saturating_sub(self.twap_window_secs);
        // The first block at or after the window's start with usable state: both conditions
        // only ever turn true going forward, so a binary search finds it.
        let usable = |b: u64| async move {
            if self.block_timestamp(b).await? < start {
                return Ok::<_, TradingError>(None);
            }
            self.pair_state(b, base_is_token0).await
        };
        let mut lo = self.twap_hint.load(Ordering::Relaxed).min(latest);
        let mut hi = latest;
        let mut found = (latest, current);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match usable(mid).await? {
                Some(state) => {
                    found = (mid, state);
                    hi = mid;
                }
                None => lo = mid + 1,
            }
        }
        let (first, first_state) = found;
        self.twap_hint.store(first, Ordering::Relaxed);
        let first_time = self.block_timestamp(first).await?;
        // The block before holds from its own time until `first`: if it has state, the window
        // starts exactly at `start`, its price accruing up to then.
        let (from_cumulative, from_time) = match first.checked_sub(1) {
            Some(before) if first_time > start => {
                match self.pair_state(before, base_is_token0).await? {
                    Some(state) => (state.cumulative_at(start), start),
                    None => (first_state.cumulative_at(first_time), first_time),
                }
            }
            _ => (
                first_state.cumulative_at(first_time.max(start)),
                first_time.max(start),
            ),
        };
        let now_cumulative = current.cumulative_at(now);
        let price_x112 = average_x112((from_cumulative, from_time), (now_cumulative, now))
            .unwrap_or_else(|| price_x112(first_state.reserve_base, first_state.reserve_quote));
        Ok(Some(Twap {
            price_x112,
            from_timestamp: from_time,
            secs: now.saturating_sub(from_time),
        }))
    }

    /// Every [`Flow`] of the account in blocks `after + 1 ..= snapshot.block`: its ERC-20
    /// `Transfer`s of base and quote that are not swaps through the pair
    /// ([`external_transfers`]), each valued at the pool's mid price at the end of its block.
    pub async fn flows(
        &self,
        after: u64,
        snapshot: &MarketSnapshot,
    ) -> Result<Vec<Flow>, TradingError> {
        let tokens = vec![self.market.base_token, self.market.quote_token];
        let mut transfers = BTreeMap::new();
        let mut from = after.saturating_add(1);
        while from <= snapshot.block {
            let to = from.saturating_add(LOG_BLOCKS - 1).min(snapshot.block);
            let filter = Filter::new()
                .address(tokens.clone())
                .event_signature(TestToken::Transfer::SIGNATURE_HASH)
                .from_block(from)
                .to_block(to);
            let sent = filter.clone().topic1(self.holder.into_word());
            let received = filter.topic2(self.holder.into_word());
            for filter in [sent, received] {
                let logs = self
                    .provider
                    .get_logs(&filter)
                    .await
                    .map_err(TradingError::rpc("eth_getLogs Transfer"))?;
                for log in logs {
                    let (Some(block), Some(tx_hash), Some(log_index)) =
                        (log.block_number, log.transaction_hash, log.log_index)
                    else {
                        continue;
                    };
                    let Ok(ev) = TestToken::Transfer::decode_log(&log.inner) else {
                        continue;
                    };
                    transfers.insert(
                        (block, log_index),
                        AccountTransfer {
                            block,
                            tx_hash,
                            log_index,
                            token: log.inner.address,
                            from: ev.data.from,
                            to: ev.data.to,
                            amount: ev.data.value,
                        },
                    );
                }
            }
            from = to.saturating_add(1);
        }
        let transfers: Vec<AccountTransfer> = transfers.into_values().collect();
        let external = external_transfers(&transfers, self.holder, self.market.pair);
        let base_is_token0 = self.market.base_token < self.market.quote_token;
        let mut prices: HashMap<u64, (U256, U256)> = HashMap::new();
        let mut flows = Vec::with_capacity(external.len());
        for t in &external {
            let reserves = match prices.get(&t.block) {
                Some(r) => *r,
                None => {
                    let r = self
                        .pair_state(t.block, base_is_token0)
                        .await?
                        .map_or((snapshot.reserve_base, snapshot.reserve_quote), |s| {
                            (s.reserve_base, s.reserve_quote)
                        });
                    prices.insert(t.block, r);
                    r
                }
            };
            let value_quote = if t.token == snapshot.quote {
                t.amount
            } else {
                mid_value(t.amount, reserves.0, reserves.1)
            };
            flows.push(Flow {
                block: t.block,
                tx_hash: t.tx_hash,
                token: t.token,
                incoming: t.to == self.holder,
                amount: t.amount,
                value_quote,
            });
        }
        Ok(flows)
    }
}

/// A deterministic pseudo-random generator (SplitMix64): the same seed gives the same market.
#[derive(Clone, Debug)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// One move of the [`PriceProcess`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceMove {
    /// Whether the trader bought base (price up) or sold it (price down).
    pub buy_base: bool,
    /// What it paid in.
    pub amount_in: U256,
    /// The swap transaction.
    pub tx_hash: alloy::primitives::B256,
}

/// A noise trader that swaps pseudo-randomly against the pool, deterministically from a seed:
/// a trend that persists for a few moves, with sizes up to `max_move_bps` of the input reserve.
///
/// The trader's provider must sign for an account holding both tokens ([`Self::prepare`]
/// approves the router once).
#[derive(Debug)]
pub struct PriceProcess {
    provider: DynProvider,
    trader: Address,
    market: Market,
    rng: SeededRng,
    max_move_bps: u32,
    trend_up: bool,
}

impl PriceProcess {
    /// A process trading from `trader` (whose key `provider` signs with), seeded by `seed`.
    pub fn new(provider: DynProvider, trader: Address, market: Market, seed: u64) -> Self {
        let mut rng = SeededRng::new(seed);
        let trend_up = rng.below(2) == 0;
        Self {
            provider,
            trader,
            market,
            rng,
            max_move_bps: 150,
            trend_up,
        }
    }

    /// Largest single move, in bps of the input reserve (default 150 = 1.5%).
    pub fn with_max_move_bps(mut self, bps: u32) -> Self {
        self.max_move_bps = bps.clamp(1, 5_000);
        self
    }

    /// Approves the router to spend the trader's tokens.
    pub async fn prepare(&self) -> Result<(), TradingError> {
        for token in [self.market.base_token, self.market.quote_token] {
            let receipt = TestToken::new(token, &self.provider)
                .approve(self.market.router, U256::MAX)
                .send()
                .await
                .map_err(TradingError::call("approve"))?
                .get_receipt()
                .await
                .map_err(|e| TradingError::Chain(format!("approve: {e}")))?;
            if !receipt.status() {
                return Err(TradingError::Chain("trader approve reverted".into()));
            }
        }
        Ok(())
    }

    /// Makes one pseudo-random swap and waits for it to be mined.
    pub async fn step(&mut self) -> Result<PriceMove, TradingError> {
        // The trend flips with probability 1/4 per move.
        if self.rng.below(4) == 0 {
            self.trend_up = !self.trend_up;
        }
        // Against the trend one move in three, so the walk is noisy.
        let buy_base = if self.rng.below(3) == 0 {
            !self.trend_up
        } else {
            self.trend_up
        };
        let pair = UniswapV2Pair::new(self.market.pair, &self.provider);
        let reserves = pair
            .getReserves()
            .call()
            .await
            .map_err(TradingError::call("pair.getReserves"))?;
        let token0 = pair
            .token0()
            .call()
            .await
            .map_err(TradingError::call("pair.token0"))?;
        let (r0, r1) = (
            U256::from(reserves._reserve0),
            U256::from(reserves._reserve1),
        );
        let (rb, rq) = if token0 == self.market.base_token {
            (r0, r1)
        } else {
            (r1, r0)
        };
        let bps = 1 + self.rng.below(u64::from(self.max_move_bps));
        let balance = |token: Address| {
            let provider = &self.provider;
            let trader = self.trader;
            async move {
                TestToken::new(token, provider)
                    .balanceOf(trader)
                    .call()
                    .await
                    .map_err(TradingError::call("balanceOf"))
            }
        };
        let size = |reserve: U256| reserve.saturating_mul(U256::from(bps)) / U256::from(BPS);
        let (quote_held, base_held) = (
            balance(self.market.quote_token).await?,
            balance(self.market.base_token).await?,
        );
        // A trader out of one token trades the other way (and the trend turns with it).
        let buy_base = match (buy_base, quote_held.is_zero(), base_held.is_zero()) {
            (true, true, false) | (false, false, true) => {
                self.trend_up = !self.trend_up;
                !buy_base
            }
            (_, true, true) => {
                return Err(TradingError::Chain("the noise trader holds nothing".into()));
            }
            _ => buy_base,
        };
        let (token_in, token_out, amount_in) = if buy_base {
            (
                self.market.quote_token,
                self.market.base_token,
                size(rq).min(quote_held),
            )
        } else {
            (
                self.market.base_token,
                self.market.quote_token,
                size(rb).min(base_held),
            )
        };
        let receipt = swap_exact_in(
            &self.provider,
            self.market.router,
            [token_in, token_out],
            amount_in,
            self.trader,
        )
        .await?;
        Ok(PriceMove {
            buy_base,
            amount_in,
            tx_hash: receipt.transaction_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e18(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
    }

    #[test]
    fn amount_out_matches_the_router_formula() {
        // 1 base into 1,000/1,000,000: 997 * 1e6 / (1000 * 1000 + 997) in exact integers.
        let out = get_amount_out(e18(1), e18(1_000), e18(1_000_000)).unwrap();
        let expected = e18(1) * U256::from(997u64) * e18(1_000_000)
            / (e18(1_000) * U256::from(1000u64) + e18(1) * U256::from(997u64));
        assert_eq!(out, expected);
        assert!(out < e18(997) && out > e18(995));
        // Degenerate pools and zero input give nothing rather than a division by zero.
        assert_eq!(get_amount_out(U256::ZERO, e18(1), e18(1)), None);
        assert_eq!(get_amount_out(e18(1), U256::ZERO, e18(1)), None);
        assert_eq!(get_amount_out(U256::MAX, U256::MAX, U256::MAX), None);
    }

    #[test]
    fn slippage_and_value_helpers() {
        assert_eq!(
            apply_slippage(U256::from(10_000u64), 50),
            U256::from(9_950u64)
        );
        assert_eq!(apply_slippage(U256::from(10_000u64), 20_000), U256::ZERO);
        assert_eq!(mid_value(e18(2), e18(1_000), e18(1_000_000)), e18(2_000));
        assert_eq!(mid_value(e18(2), U256::ZERO, e18(1)), U256::ZERO);
    }

    #[test]
    fn swaps_through_the_pair_are_trading_and_everything_else_is_a_flow() {
        let (holder, pair) = (Address::repeat_byte(0xAC), Address::repeat_byte(0x99));
        let (base, quote) = (Address::repeat_byte(0xBB), Address::repeat_byte(0x44));
        let t = |tx: u8, token, from, to| AccountTransfer {
            block: u64::from(tx),
            tx_hash: B256::repeat_byte(tx),
            log_index: 0,
            token,
            from,
            to,
            amount: e18(1),
        };
        let funder = Address::repeat_byte(0xF0);
        let splitter = Address::repeat_byte(0x5E);
        let all = [
            t(1, base, holder, pair),      // a swap (whoever sent it): trading
            t(1, quote, pair, holder),     //   its other leg
            t(2, quote, funder, holder),   // a top-up
            t(3, quote, holder, splitter), // a royalty settlement
            t(4, base, holder, pair),      // a payment to the pair that is no swap
            t(5, base, holder, holder),    // to itself: nothing moves
        ];
        let flows = external_transfers(&all, holder, pair);
        let txs: Vec<u8> = flows.iter().map(|f| f.tx_hash.0[0]).collect();
        assert_eq!(txs, [2, 3, 4]);
    }

    #[test]
    fn the_twap_ignores_a_price_pushed_in_the_latest_block() {
        let fair = price_x112(e18(1_000), e18(1_000_000));
        assert_eq!(fair, U256::from(1_000u64) << Q112_BITS);
        // Thirty minutes at the fair price, then a swap pushes the price down at t = 2,800: the
        // pair accrues the old price up to the swap, the new one only from then on.
        let old = PairState {
            reserve_base: e18(1_000),
            reserve_quote: e18(1_000_000),
            cumulative: U256::MAX - U256::from(5u64), // the accumulators wrap
            last_update: 1_000,
        };
        let pushed = PairState {
            reserve_base: e18(1_300),
            reserve_quote: e18(769_231),
            cumulative: old.cumulative_at(2_800),
            last_update: 2_800,
        };
        let avg = |t| {
            average_x112(
                (old.cumulative_at(1_000), 1_000),
                (pushed.cumulative_at(t), t),
            )
        };
        assert_eq!(avg(2_800), Some(fair));
        // Held for 18 seconds of the 1,818, the pushed price moves the average by ~0.4%.
        let later = avg(2_818).unwrap();
        assert!(deviation_bps(later, fair) < 50, "{later}");
        assert!(deviation_bps(pushed_spot(&pushed), fair) > 4_000);
        assert_eq!(average_x112((U256::ZERO, 5), (U256::ZERO, 5)), None);
    }

    fn pushed_spot(s: &PairState) -> U256 {
        price_x112(s.reserve_base, s.reserve_quote)
    }

    #[test]
    fn rng_is_deterministic_per_seed() {
        let a: Vec<u64> = {
            let mut r = SeededRng::new(5);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = SeededRng::new(5);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut c = SeededRng::new(6);
        assert_eq!(a, b);
        assert_ne!(a[0], c.next_u64());
        assert_eq!(SeededRng::new(1).below(0), 0);
    }
}
