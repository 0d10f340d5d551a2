#!/usr/bin/env bash
# Runs a high-availability sandbox in the foreground: chatd (the network),
# three coreapps (node ids core1, core2, core3) and two webapps on one
# database, logging to this terminal. Ctrl-C stops everything.
#
# Unlike scripts/run.sh, a coreapp or webapp that ends does not stop the
# others: kill one (kill -9 $(cat data/run/core1.pid)) and watch another node
# take over its connection slots; `kill -HUP $(cat data/run/run-ha.pid)`
# starts every ended node again. Every setting can be overridden from the
# environment (see README.md and docs/deployment.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}

export WA_DB_ENGINE=${WA_DB_ENGINE:-MYSQL}
export WA_DB_HOSTNAME=${WA_DB_HOSTNAME:-127.0.0.1}
export WA_DB_PORT=${WA_DB_PORT:-3306}
export WA_DB_USERNAME=${WA_DB_USERNAME:-root}
export WA_DB_PASSWORD=${WA_DB_PASSWORD:-}
export WA_DB_NAME=${WA_DB_NAME:-openwaba}
export WA_CHATD_DB_NAME=${WA_CHATD_DB_NAME:-chatd}
# The first webapp's port; the second listens on the next one.
WA_WEB_PORT=${WA_WEB_PORT:-9090}
# The first coreapp's gRPC port; the others listen on the next two.
WA_CORE_PORT=${WA_CORE_PORT:-6250}
export WA_CORE_ENDPOINT=${WA_CORE_ENDPOINT:-127.0.0.1:$WA_CORE_PORT,127.0.0.1:$((WA_CORE_PORT + 1)),127.0.0.1:$((WA_CORE_PORT + 2))}
export WA_CHAT_HOST=${WA_CHAT_HOST:-127.0.0.1}
export WA_CHAT_PORT=${WA_CHAT_PORT:-5222}
export WA_CHAT_FALLBACK_PORT=${WA_CHAT_FALLBACK_PORT:-5443} # 443 needs root; compose uses 443
export WA_CHATD_ADMIN_PORT=${WA_CHATD_ADMIN_PORT:-5280}
export WA_CHATD_MEDIA_PORT=${WA_CHATD_MEDIA_PORT:-5281} # HTTPS media server; phones find it on the chat host
export WA_DATA_DIR=${WA_DATA_DIR:-$PWD/data}
# The media volume every coreapp shares (chatd keeps its encrypted blobs in
# $WA_DATA_DIR/media).
export WA_MEDIA_DIR=${WA_MEDIA_DIR:-$WA_DATA_DIR/wamedia}
export WA_LOG_FORMAT=${WA_LOG_FORMAT:-text}
mkdir -p "$WA_DATA_DIR"
# chatd writes the network root key there at start; coreapp pins it.
root_file="$WA_DATA_DIR/chat-root.pub"
if [ -z "${WA_CHAT_ROOT_KEY:-}" ]; then
	export WA_CHAT_ROOT_KEY_FILE=${WA_CHAT_ROOT_KEY_FILE:-$root_file}
fi

# Every coreapp must encrypt and decrypt the keys in the database with the
# same secret. It is made once and kept in $WA_DATA_DIR/keystore.secret, the
# file a single coreapp (make run) creates and reads there, so both ways of
# running share one database.
if [ -z "${WA_KEYSTORE_SECRET:-}" ]; then
	secret_file="$WA_DATA_DIR/keystore.secret"
	if [ ! -s "$secret_file" ]; then
		(umask 077 && head -c 32 /dev/urandom | base64 > "$secret_file.tmp" && mv "$secret_file.tmp" "$secret_file")
		echo "make run-ha: created the keystore secret $secret_file; keep it with the database backups" >&2
	fi
	WA_KEYSTORE_SECRET=$(tr -d '[:space:]' < "$secret_file")
	export WA_KEYSTORE_SECRET
fi

# The database must answer before anything starts.
if ! (exec 3<>"/dev/tcp/$WA_DB_HOSTNAME/$WA_DB_PORT") 2>/dev/null; then
	cat >&2 <<MSG
make run-ha: no MySQL/MariaDB answers at $WA_DB_HOSTNAME:$WA_DB_PORT.
Start one (e.g. 'sudo systemctl start mariadb', or 'docker compose up -d db'
with WA_DB_PASSWORD=testpass WA_DB_PORT=33060), or point WA_DB_HOSTNAME,
WA_DB_PORT, WA_DB_USERNAME and WA_DB_PASSWORD at yours.
MSG
	exit 1
fi

# Each process's pid goes to $WA_DATA_DIR/run/<node id>.pid.
run_dir="$WA_DATA_DIR/run"
mkdir -p "$run_dir"
if [ -s "$run_dir/run-ha.pid" ] && kill -0 "$(cat "$run_dir/run-ha.pid")" 2>/dev/null; then
	echo "make run-ha: already running (pid $(cat "$run_dir/run-ha.pid"), $run_dir/run-ha.pid)" >&2
	exit 1
fi
echo $$ > "$run_dir/run-ha.pid"
shown_run_dir=${run_dir#"$PWD"/}

nodes=(chatd core1 core2 core3 web1 web2 webphone)
# The web phone (9091 is web2's here).
WA_WEBPHONE_PORT=${WA_WEBPHONE_PORT:-9093}
declare -A pid=()

# start_node ID starts one process in the background with its own settings.
start_node() {
	local id=$1 n port
	case $id in
	chatd)
		"$BIN/chatd" &
		;;
	core*)
		n=${id#core}
		port=$((WA_CORE_PORT + n - 1))
		# The other coreapps reach this one there (wakes, handovers).
		WA_NODE_ID=$id WA_CORE_PORT=$port WA_CORE_ADVERTISE_ADDR=127.0.0.1:$port WA_DATA_DIR="$WA_DATA_DIR/$id" \
			WA_CORE_METRICS_PORT=$((${WA_CORE_METRICS_PORT:-6261} + n - 1)) "$BIN/coreapp" &
		;;
	webphone)
		"$BIN/waphone" --network "127.0.0.1:$WA_CHAT_PORT,127.0.0.1:$WA_CHAT_FALLBACK_PORT" \
			--root-key-file "$root_file" --admin "127.0.0.1:$WA_CHATD_ADMIN_PORT" \
			serve --dir "$WA_DATA_DIR/webphone" --listen "127.0.0.1:$WA_WEBPHONE_PORT" >/dev/null &
		;;
	web*)
		n=${id#web}
		WA_WEB_PORT=$((WA_WEB_PORT + n - 1)) "$BIN/webapp" &
		;;
	esac
	pid[$id]=$!
	echo "${pid[$id]}" > "$run_dir/$id.pid"
}

running() { [ -n "${pid[$1]:-}" ] && kill -0 "${pid[$1]}" 2>/dev/null; }

stop() {
	trap - INT TERM HUP EXIT
	for id in "${nodes[@]}"; do
		if running "$id"; then kill -TERM "${pid[$id]}" 2>/dev/null || true; fi
	done
	wait 2>/dev/null || true
	for id in "${nodes[@]}" run-ha; do rm -f "$run_dir/$id.pid"; done
}
stopping=0
restart=0
trap 'stopping=1' INT TERM
trap 'restart=1' HUP
trap stop EXIT

# wait_until TEXT CMD… polls CMD until it succeeds; it gives up when a
# started process ends (start-up failed) or on Ctrl-C.
wait_until() {
	local what=$1
	shift
	for _ in $(seq 1 600); do
		[ "$stopping" = 1 ] && exit 0
		"$@" && return 0
		for id in "${nodes[@]}"; do
			if [ -n "${pid[$id]:-}" ] && ! running "$id"; then
				echo "make run-ha: $id exited during start-up (see the log above)" >&2
				exit 1
			fi
		done
		sleep 0.2 || true
	done
	echo "make run-ha: $what did not happen within 2 minutes" >&2
	exit 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
answers() { curl -ks -o /dev/null "$1/v1/health"; }

# A key file left by an earlier run may belong to another chatd database:
# wait for this chatd to write its own before the coreapps read it.
rm -f "$root_file"
start_node chatd
wait_until "chatd writing $root_file" test -s "$root_file"
# core1 first: it creates the schema and the cluster's certificate and
# token; the other two then start together and find them.
start_node core1
wait_until "core1 listening on $WA_CORE_PORT" port_open "$WA_CORE_PORT"
start_node core2
start_node core3
start_node web1
start_node web2
start_node webphone
url="https://127.0.0.1:$WA_WEB_PORT"
url2="https://127.0.0.1:$((WA_WEB_PORT + 1))"
wait_until "core2 listening" port_open $((WA_CORE_PORT + 1))
wait_until "core3 listening" port_open $((WA_CORE_PORT + 2))
wait_until "the webapps answering" answers "$url"
wait_until "the webapps answering" answers "$url2"

cat <<MSG

================================================================================
 openwaba is running with 3 coreapps and 2 webapps (self-signed certificate:
 use curl -k).   API: $url   and   $url2

 1. First login: the admin password must be changed; choose your own (8-64
    characters with upper and lower case, a digit and a symbol):
    read -rsp 'New admin password: ' PW; echo
    TOKEN=\$(curl -ks -X POST $url/v1/users/login -u admin:secret -H 'Content-Type: application/json' \\
         -d "{\"new_password\":\"\$PW\"}" | sed 's/.*"token":"\([^"]*\)".*/\1/')
 2. Register the business number (code from the sandbox network):
    curl -k -X POST $url/v1/account -H "Authorization: Bearer \$TOKEN" \\
         -H 'Content-Type: application/json' -d '{"cc":"1","phone_number":"5550100","method":"sms"}'
    curl -s http://127.0.0.1:$WA_CHATD_ADMIN_PORT/sandbox/codes/15550100
    curl -k -X POST $url/v1/account/verify -H "Authorization: Bearer \$TOKEN" \\
         -H 'Content-Type: application/json' -d '{"code":"<code>"}'
 3. Web phone: http://127.0.0.1:$WA_WEBPHONE_PORT/ (customer phones in the browser).
    Or a terminal phone (it pins the network root key in $root_file):
    $BIN/waphone --network 127.0.0.1:$WA_CHAT_PORT,127.0.0.1:$WA_CHAT_FALLBACK_PORT,tls://127.0.0.1:$WA_CHAT_FALLBACK_PORT \\
         --root-key-file $root_file --admin 127.0.0.1:$WA_CHATD_ADMIN_PORT \\
         --home /tmp/phone1 register 15551234567
    $BIN/waphone --home /tmp/phone1

 Failover: every process's pid is in $shown_run_dir/<node>.pid
 (chatd, core1, core2, core3, web1, web2, webphone). Kill a node and watch another one
 take over (both webapps answer; /v1/health shows the nodes):
    kill -9 \$(cat $shown_run_dir/core1.pid)
    curl -k $url2/v1/health -H "Authorization: Bearer \$TOKEN"
 Start every ended node again:  kill -HUP \$(cat $shown_run_dir/run-ha.pid)
 Ctrl-C stops everything. README.md has the full walk-through.
================================================================================

MSG

# Stay in the foreground until Ctrl-C. A coreapp or webapp that ends is
# reported and left down (kill -HUP starts it again); without chatd there is
# no network, so its end stops everything.
while [ "$stopping" = 0 ]; do
	if [ "$restart" = 1 ]; then
		restart=0
		for id in "${nodes[@]}"; do
			if ! running "$id"; then
				echo "make run-ha: starting $id again"
				start_node "$id"
			fi
		done
	fi
	for id in "${nodes[@]}"; do
		if [ -n "${pid[$id]:-}" ] && ! running "$id"; then
			rc=0
			wait "${pid[$id]}" 2>/dev/null || rc=$?
			[ "$stopping" = 1 ] && break 2
			pid[$id]=""
			rm -f "$run_dir/$id.pid"
			if [ "$id" = chatd ]; then
				echo "make run-ha: chatd exited (status $rc); stopping the others" >&2
				exit 1
			fi
			why="status $rc"
			[ "$rc" -gt 128 ] && why="signal $((rc - 128))"
			echo "make run-ha: $id exited ($why); the other nodes keep running." \
				"Start it again: kill -HUP \$(cat $shown_run_dir/run-ha.pid)" >&2
		fi
	done
	sleep 0.5 || true
done
echo "stopping…"
exit 0
