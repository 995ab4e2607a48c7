#!/usr/bin/env bash
# Usage: e2e/run-with-playground.sh BOT-COMMAND...      (what `make run` calls)
# Runs the bot command and, when Node.js and the local Agents Playground (npm
# @microsoft/m365agentsplayground, installed by `make setup`) are there, the Playground pointed at
# http://127.0.0.1:$PORT/api/messages. Prints the URL to open. When the bot stops (Ctrl-C, a signal,
# or on its own), the Playground is stopped too: no process is left behind.
# Env: PORT (bot, default 3978), PLAYGROUND_PORT (default 56150; if busy the Playground takes another
# one, and the URL printed is the real one). Offline: no telemetry, no browser opened by it.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PORT="${PORT:-3978}"
PLAYGROUND_PORT="${PLAYGROUND_PORT:-56150}"
PLAYGROUND="$ROOT/node_modules/.bin/agentsplayground"

[ $# -gt 0 ] || { echo "usage: $0 BOT-COMMAND..." >&2; exit 2; }
if ! command -v node >/dev/null 2>&1; then
  exec "$@"  # no Node.js: just the bot
fi
if [ ! -x "$PLAYGROUND" ]; then
  echo "Agents Playground not installed (run \`make setup\` with npm available): serving the bot only."
  exec "$@"
fi

mkdir -p "$ROOT/var"
LOG="$ROOT/var/agentsplayground.log"
: >"$LOG"
set -m  # each child in its own process group, so that we can stop all it started
( cd "$ROOT/var" && exec env TEAMSAPPTESTER_BROWSER=none APPLICATION_INSIGHTS_NO_STATSBEAT=true \
    M365_AGENTS_PLAYGROUND_CONFIG_PATH="$ROOT/e2e/.m365agentsplayground.yml" \
    M365_AGENTS_PLAYGROUND_LOGFILE="$ROOT/var/agentsplayground-internal.log" \
    "$PLAYGROUND" start -p "$PLAYGROUND_PORT" -e "http://127.0.0.1:$PORT/api/messages" --disable-telemetry ) \
  </dev/null >>"$LOG" 2>&1 &
pg=$!
"$@" </dev/null &
bot=$!
set +m

alive() { kill -0 "$1" 2>/dev/null; }
stop_group() {  # stop_group PID SIGNAL: signal the group, wait up to 10 s, then SIGKILL it
  local pid=$1 sig=$2 i
  alive "$pid" || { wait "$pid" 2>/dev/null; return; }
  kill -"$sig" -- -"$pid" 2>/dev/null || kill -"$sig" "$pid" 2>/dev/null
  for i in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && kill -KILL -- -"$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
rc=0
finish() {
  trap - INT TERM HUP EXIT
  stop_group "$bot" "${1:-TERM}"
  stop_group "$pg" TERM
  exit "$rc"
}
trap 'rc=130; finish INT' INT
trap 'rc=143; finish TERM' TERM
trap 'rc=129; finish TERM' HUP
trap 'finish TERM' EXIT

# Wait (while the bot runs) for the Playground's "Listening on N": a busy port makes it pick another.
url=""
for _ in $(seq 300); do
  if port=$(grep -oE 'Listening on [0-9]+' "$LOG" | grep -oE '[0-9]+$' | head -1) && [ -n "$port" ]; then
    url="http://localhost:$port"; break
  fi
  alive "$pg" && alive "$bot" || break
  sleep 0.1
done
# A config the Playground rejects only shows ~0.3 s after "Listening on": make sure it is still up.
for _ in $(seq 15); do [ -n "$url" ] && alive "$pg" || break; sleep 0.1; done
alive "$pg" || url=""
if [ -n "$url" ] && alive "$bot"; then
  note=""; [ "$port" != "$PLAYGROUND_PORT" ] && note=" (port $PLAYGROUND_PORT was busy)"
  echo "Microsoft 365 Agents Playground: open $url$note — chatting as Alex Wilber, the demo admin; type \`licenses\`."
  echo "  (its log: var/agentsplayground.log; it stops with the bot)"
elif alive "$bot"; then
  echo "warning: the Agents Playground did not start; serving the bot only. Its output:"
  tail -n 20 "$LOG" | sed 's/^/  | /'
fi

wait "$bot"; rc=$?
# The bot stopped on its own (exit or crash): stop the Playground too (EXIT trap).
exit "$rc"
