#!/usr/bin/env bash
# The main job on a fresh machine: a local chain with everything deployed, a real instruct model
# (SmolLM2-135M-Instruct, fetched by scripts/setup.sh) minted as a poet agent with a memory, the
# agent run with every action logged on chain, transferred to another
# account (keys rotate, the old owner is locked out) and run by its new owner, who finds the
# agent's memory intact; an LLM and a momentum trading agent run on a moving Uniswap V2 market
# behind their owner's policy firewall; every agent audited from
# chain events and public records, with HTML reports; then the chain is stopped.
# Safe to run twice: each run uses a fresh state directory under .inft-demo/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

scripts/setup.sh
log "cargo build -p inft"
cargo build --locked -p inft
inft="${CARGO_TARGET_DIR:-$root/target}/debug/inft"

export INFT_HOME="$root/.inft-demo/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$INFT_HOME"
# Dev keystores only: anvil's well-known test keys, encrypted under a demo passphrase.
export INFT_PASSPHRASE="inft-demo-passphrase"
# Inference on every core: nothing else runs meanwhile (anvil idles between blocks).
threads=(--threads "$(nproc)")
trap '"$inft" dev down >/dev/null 2>&1 || true' EXIT

log "inft dev up: anvil + AgentNFT, verifier, action log, splitter, Uniswap V2 market"
"$inft" dev up

log "inft dev model --real: SmolLM2-135M-Instruct (Q4_1 GGUF, fetched and checked by setup)"
model=$("$inft" dev model --real)
echo "$model"

log "inft mint (alice): seal model + agent key + config, mint the INFT"
# carol (anvil's account 3) is a data contributor: 5% of the agent's earnings are hers.
carol=0x90F79bf6EB2c4f870365E785982E1f101E93b906
token=$("$inft" --json mint --account alice --model "$model" --name poet \
  --prompt "Write a short poem about the sea." --contributor "$carol=500" \
  | sed -n 's/.*"token_id":"\([0-9]*\)".*/\1/p')
[ -n "$token" ] || { echo "mint did not return a token id" >&2; exit 1; }
echo "token $token"

log "inft run (alice): 4 poems, each signed by the agent and logged on chain; the run's note goes to the agent's memory"
"$inft" run "$token" --account alice --steps 4 "${threads[@]}"

log "inft run (carol, not authorized): refused before anything is decrypted"
if "$inft" run "$token" --account carol --steps 1 "${threads[@]}"; then
  echo "carol should have been refused" >&2; exit 1
fi

log "inft transfer (alice → bob, receiver-verified): keys rotate, bob checks the new data first"
"$inft" transfer publish-key --account bob
offer="$INFT_HOME/offer.json" acceptance="$INFT_HOME/acceptance.json"
# The sender waits for the acceptance file; the receiver answers the offer file.
"$inft" transfer send "$token" --to bob --account alice \
  --offer "$offer" --acceptance "$acceptance" --wait 5m &
sender=$!
while [ ! -f "$offer" ]; do
  kill -0 "$sender" 2>/dev/null || { wait "$sender"; exit 1; }
  sleep 0.2
done
"$inft" transfer accept "$offer" --output "$acceptance" --account bob
wait "$sender"

log "inft keys rotate (bob): a fresh sealing key; the agent is re-keyed under it with a new agent key"
"$inft" keys rotate --account bob

log "inft run (bob, the new owner): the agent runs with its new key, remembers alice's run, and keeps logging"
"$inft" run "$token" --account bob --steps 2 "${threads[@]}"

log "inft run (alice, the old owner): locked out"
if "$inft" run "$token" --account alice --steps 1 "${threads[@]}"; then
  echo "alice should have been locked out" >&2; exit 1
fi

# Trading agents: the LLM agent's model decides buy / sell / hold, a fraction of its balance and
# a reason, offered only the choices the owner's firewall (HOME/trading-policy.json, written with
# defaults on first use) allows; the runtime turns the decision into an order and the firewall
# checks it before anything is signed. A momentum agent beside it is the classical baseline. Both
# token-bound accounts are funded by the dev deployer, and a seeded noise trader moves the market
# before each step.
mint_trader() {
  "$inft" --json mint --account alice --model "$model" --name "$1" \
    --kind trading --strategy "$1" | sed -n 's/.*"token_id":"\([0-9]*\)".*/\1/p'
}
log "inft mint + run (alice): an LLM trading agent (SmolLM2, told to follow the trend), 12 steps on the moving tGLD/tUSD pool"
llm_trader=$(mint_trader llm)
[ -n "$llm_trader" ] || { echo "mint did not return a token id" >&2; exit 1; }
"$inft" run "$llm_trader" --account alice --steps 12 --fund-from deployer --move-market 7 \
  "${threads[@]}"

# The firewall refuses a trade when spot is more than 500 bps from the pool's time-weighted
# average (a pushed price). The dev market's noise trader moves the price ~10% a minute, far
# faster than a real pool, so for it the owner widens that bound in the policy file.
sed -i 's/"max_twap_deviation_bps": 500/"max_twap_deviation_bps": 1500/' "$INFT_HOME/trading-policy.json"
log "inft mint + run (alice): a momentum trading agent, 12 steps; trades and refusals logged"
trader=$(mint_trader momentum)
[ -n "$trader" ] || { echo "mint did not return a token id" >&2; exit 1; }
"$inft" run "$trader" --account alice --steps 12 --fund-from deployer --move-market 8 \
  "${threads[@]}"

log "inft serve: one process hosts bob's poet and alice's momentum trader on schedules for 20 s; /agents and /metrics report them; SIGTERM finishes the steps and flushes the outbox"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$INFT_HOME/serve.toml" <<TOML
[node]
home = "$INFT_HOME"

[http]
listen = "127.0.0.1:$port"

[[agent]]
token = "$token"
account = "bob"
every_secs = 5
threads = $(nproc)

[[agent]]
token = "$trader"
account = "alice"
every_secs = 2
move_market = 9
market_maker = "deployer"
TOML
"$inft" serve --config "$INFT_HOME/serve.toml" &
serve_pid=$!
sleep 20
python3 - "$port" <<'PY'
import json, sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
for a in json.load(urllib.request.urlopen(base + "/agents")):
    last = a.get("last_action") or {}
    t = int(a['token'])
    print(f"  token {format(((t << 160) | (t >> 96)) % (1 << 256), 'x')[:8]}  {a['state']:<9} {a['steps']} steps, last seq {last.get('seq')}: {' '.join(last.get('summary', '').split())[:90]}")
metrics = urllib.request.urlopen(base + "/metrics").read().decode()
print("  /metrics:", sum(1 for l in metrics.splitlines() if l.startswith("inft_")), "inft_* samples")
PY
kill -TERM "$serve_pid"
wait "$serve_pid"   # exit 0: every step finished, every outbox flushed

log "inft audit: each agent's history rebuilt from chain events and checked; HTML reports"
# Needs no wallet: the RPC, the deployment file and the public records are enough. With
# --replay an owner also re-runs the logged inferences (same model, prompt, sampler settings
# and seed) and compares the outputs: bob the poet's, alice the LLM trader's.
"$inft" audit "$token" --html "$INFT_HOME/audit-poet.html" --replay --account bob "${threads[@]}"
"$inft" audit "$llm_trader" --html "$INFT_HOME/audit-llm-trader.html" --replay --account alice \
  "${threads[@]}"
"$inft" audit "$trader" --html "$INFT_HOME/audit-trader.html"

log "inft creations + provenance: the poet's pieces exported with proof bundles; a stranger with only an RPC URL checks one; a poem alone is found by its text"
"$inft" creations "$token" --out "$INFT_HOME/pieces"
rpc=$(sed -n 's/.*"rpc_url": *"\([^"]*\)".*/\1/p' "$INFT_HOME/node.json")
stranger=$(mktemp -d)
trap 'rm -rf "$stranger"; "$inft" dev down >/dev/null 2>&1 || true' EXIT
(cd "$stranger" && INFT_HOME="$stranger" "$inft" provenance verify \
  "$INFT_HOME/pieces/piece-1.proof.json" "$INFT_HOME/pieces/piece-1.txt" --rpc-url "$rpc")
poem=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["text"], end="")' \
  "$INFT_HOME/pieces/piece-1.txt")
"$inft" provenance --text "$poem"
if "$inft" provenance --text "Zebra ${poem#* }" >/dev/null 2>&1; then   # first word changed
  echo "an edited poem should be unknown" >&2; exit 1
fi

log "inft royalties: bob settles 1 ETH the poet earned; alice (creator, 10%) and carol (5%) are paid by the splitter"
"$inft" royalties settle "$token" --amount 1000000000000000000 --account bob
"$inft" royalties show "$token"
"$inft" royalties claim --account carol
log "inft royalties: the momentum agent's realized trading profit (audited PnL, tUSD) settles from its own account"
"$inft" royalties settle "$trader" --realized --from-agent-account --account alice

log "done: state and audit reports in $INFT_HOME"
