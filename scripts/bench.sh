#!/usr/bin/env bash
# make bench: starts a fresh stack (chatd, coreapp, webapp) on its own ports
# and databases, runs wabench against it, prints the table and writes
# bench-result-<engine>.json, then stops the stack. WA_DB_ENGINE (SQLITE or
# MYSQL, default MYSQL) picks the storage engine; make bench runs both. Extra
# arguments go to wabench, e.g. `make bench ARGS="-messages 20000 -concurrency 64"`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
export WA_DB_ENGINE=${WA_DB_ENGINE:-MYSQL}
WA_DB_ENGINE=${WA_DB_ENGINE^^}
if [ "$WA_DB_ENGINE" = MYSQL ]; then
	export WA_DB_HOSTNAME=${WA_DB_HOSTNAME:-127.0.0.1}
	export WA_DB_PORT=${WA_DB_PORT:-3306}
	export WA_DB_USERNAME=${WA_DB_USERNAME:-root}
	export WA_DB_PASSWORD=${WA_DB_PASSWORD:-}
fi
export WA_DB_NAME=openwaba_bench WA_CHATD_DB_NAME=chatd_bench
export WA_WEB_PORT=${BENCH_WEB_PORT:-19090} WA_CORE_PORT=${BENCH_CORE_PORT:-16250}
# The benchmark measures the machine, not on-prem's request rate limits
# (50/s for messages): they are off here.
export WA_RATE_LIMIT_MESSAGES=${WA_RATE_LIMIT_MESSAGES:-off} WA_RATE_LIMIT_DEFAULT=${WA_RATE_LIMIT_DEFAULT:-off}
export WA_CORE_METRICS_PORT=${BENCH_CORE_METRICS_PORT:-16261}
export WA_CORE_ENDPOINT=127.0.0.1:$WA_CORE_PORT WA_CHAT_HOST=127.0.0.1
export WA_CHAT_PORT=${BENCH_CHAT_PORT:-15222} WA_CHAT_FALLBACK_PORT=${BENCH_FALLBACK_PORT:-15443}
export WA_CHATD_ADMIN_PORT=${BENCH_ADMIN_PORT:-15280} WA_CHATD_MEDIA_PORT=${BENCH_MEDIA_PORT:-15281}
export WA_LOG_FORMAT=json WA_LOG_LEVEL=${WA_LOG_LEVEL:-warn}
export WA_DATA_DIR=$(mktemp -d)
# coreapp's media volume (chatd keeps its blobs in $WA_DATA_DIR/media).
export WA_MEDIA_DIR=$WA_DATA_DIR/wamedia
# chatd writes the network root key there at start; coreapp pins it.
export WA_CHAT_ROOT_KEY_FILE=$WA_DATA_DIR/chat-root.pub
logs=$(mktemp -d)
# PROFILE=1: CPU and allocation profiles of chatd, coreapp and webapp for
# the whole run (package db/procprofile), in bench-profiles/<engine>/.
if [ "${PROFILE:-}" = 1 ]; then
	export WA_PROFILE_DIR=$PWD/bench-profiles/${WA_DB_ENGINE,,}
	rm -rf "$WA_PROFILE_DIR"
fi
# On MySQL wabench reads the server's status counters (statements,
# commits, fsyncs, redo bytes per message).
dsn_args=()
if [ "$WA_DB_ENGINE" = MYSQL ]; then
	dsn_args=(-mysql-dsn "$WA_DB_USERNAME${WA_DB_PASSWORD:+:$WA_DB_PASSWORD}@tcp($WA_DB_HOSTNAME:$WA_DB_PORT)/")
fi

# SQLite: the files are made fresh in the new $WA_DATA_DIR.
if [ "$WA_DB_ENGINE" = MYSQL ]; then
	mysql_cmd=(mysql)
	command -v mysql >/dev/null || mysql_cmd=(mariadb)
	"${mysql_cmd[@]}" -h "$WA_DB_HOSTNAME" -P "$WA_DB_PORT" -u "$WA_DB_USERNAME" ${WA_DB_PASSWORD:+-p"$WA_DB_PASSWORD"} \
		-e "DROP DATABASE IF EXISTS $WA_DB_NAME; DROP DATABASE IF EXISTS $WA_CHATD_DB_NAME;"
fi
result=bench-result-${WA_DB_ENGINE,,}.json
echo "== make bench on $WA_DB_ENGINE"

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WA_DATA_DIR"
}
trap cleanup EXIT INT TERM
"$BIN/chatd" 2>"$logs/chatd.log" & pids+=($!); chatd_pid=$!
for _ in $(seq 1 300); do
	[ -s "$WA_CHAT_ROOT_KEY_FILE" ] && break
	kill -0 "$chatd_pid" 2>/dev/null || { echo "chatd exited during start-up; log: $logs/chatd.log" >&2; exit 1; }
	sleep 0.2
done
"$BIN/coreapp" 2>"$logs/coreapp.log" & pids+=($!); core_pid=$!
"$BIN/webapp" >"$logs/webapp.log" 2>&1 & pids+=($!); web_pid=$!
for _ in $(seq 1 300); do
	curl -ks -o /dev/null "https://127.0.0.1:$WA_WEB_PORT/v1/health" && break
	sleep 0.2
done
"$BIN/wabench" -api "https://127.0.0.1:$WA_WEB_PORT" \
	-network "127.0.0.1:$WA_CHAT_PORT,127.0.0.1:$WA_CHAT_FALLBACK_PORT" -admin "127.0.0.1:$WA_CHATD_ADMIN_PORT" \
	-pids "chatd=$chatd_pid,coreapp=$core_pid,webapp=$web_pid" -json "$result" "${dsn_args[@]}" -rate "${BENCH_RATE:-1000}" "$@" \
	|| { echo "wabench failed; process logs in $logs" >&2; exit 1; }
# Stop the stack now so that the profiles are written.
cleanup
trap - EXIT INT TERM
echo "JSON: $result; process logs: $logs${WA_PROFILE_DIR:+; profiles: $WA_PROFILE_DIR}"
