//! The market an agent trades on: Uniswap V2 pool maths, on-chain snapshots, and a seeded price
//! process that moves the pool so there is something to trade.

use alloy::eips::BlockId;
use alloy::primitives::{Address, I256, U256};
use alloy::providers::{DynProvider, Provider};
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
}

impl MarketSnapshot {
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

/// Reads [`MarketSnapshot`]s of one market for one agent.
#[derive(Clone, Debug)]
pub struct MarketReader {
    provider: DynProvider,
    market: Market,
    nft: Address,
    token_id: U256,
    holder: Address,
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
        }
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
        })
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
        let router = UniswapV2Router02::new(self.market.router, &self.provider);
        let swap = router.swapExactTokensForTokens(
            amount_in,
            U256::ZERO,
            vec![token_in, token_out],
            self.trader,
            U256::MAX,
        );
        // Simulated first: a revert reason beats a bare failed receipt.
        swap.call()
            .await
            .map_err(TradingError::call("price process swap simulation"))?;
        let gas = swap
            .estimate_gas()
            .await
            .map_err(TradingError::call("price process gas estimate"))?;
        let receipt = swap
            .gas(swap_gas_limit(gas))
            .send()
            .await
            .map_err(TradingError::call("price process swap"))?
            .get_receipt()
            .await
            .map_err(|e| TradingError::Chain(format!("price process swap: {e}")))?;
        if !receipt.status() {
            return Err(TradingError::Chain(format!(
                "price process swap {} reverted ({amount_in} of {token_in})",
                receipt.transaction_hash
            )));
        }
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
