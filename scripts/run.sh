#!/usr/bin/env bash
# Runs the sandbox stack in the foreground: chatd (the network), one coreapp
# and one webapp, logging to this terminal. Ctrl-C stops all three.
# Every setting can be overridden from the environment (see README.md).
#
# Storage: with no WA_DB_* settings everything lives in SQLite files in
# $WA_DATA_DIR (nothing to install). WA_DB_ENGINE=MYSQL, or a WA_DB_HOSTNAME,
# selects MySQL/MariaDB.
#
# WA_SANDBOX_AUTOREGISTER=1 also logs in as admin once ready (setting the
# password to WA_SANDBOX_ADMIN_PASSWORD, or to one generated and kept in
# $WA_DATA_DIR/sandbox-admin-password) and registers the sandbox number
# WA_SANDBOX_CC + WA_SANDBOX_PHONE (1 5550100) with the code from chatd.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}

if [ -z "${WA_DB_ENGINE:-}" ]; then
	if [ -n "${WA_DB_HOSTNAME:-}" ]; then WA_DB_ENGINE=MYSQL; else WA_DB_ENGINE=SQLITE; fi
fi
export WA_DB_ENGINE=${WA_DB_ENGINE^^}
if [ "$WA_DB_ENGINE" = MYSQL ]; then
	export WA_DB_HOSTNAME=${WA_DB_HOSTNAME:-127.0.0.1}
	export WA_DB_PORT=${WA_DB_PORT:-3306}
	export WA_DB_USERNAME=${WA_DB_USERNAME:-root}
	export WA_DB_PASSWORD=${WA_DB_PASSWORD:-}
fi
export WA_DB_NAME=${WA_DB_NAME:-openwaba}
export WA_CHATD_DB_NAME=${WA_CHATD_DB_NAME:-chatd}
export WA_WEB_PORT=${WA_WEB_PORT:-9090}
export WA_CORE_PORT=${WA_CORE_PORT:-6250}
export WA_CORE_ENDPOINT=${WA_CORE_ENDPOINT:-127.0.0.1:$WA_CORE_PORT}
export WA_CHAT_HOST=${WA_CHAT_HOST:-127.0.0.1}
export WA_CHAT_PORT=${WA_CHAT_PORT:-5222}
export WA_CHAT_FALLBACK_PORT=${WA_CHAT_FALLBACK_PORT:-5443} # 443 needs root; compose uses 443
export WA_CHATD_ADMIN_PORT=${WA_CHATD_ADMIN_PORT:-5280}
export WA_CHATD_MEDIA_PORT=${WA_CHATD_MEDIA_PORT:-5281} # HTTPS media server; phones find it on the chat host
export WA_DATA_DIR=${WA_DATA_DIR:-$PWD/data}
# coreapp's media volume (chatd keeps its encrypted blobs in $WA_DATA_DIR/media).
export WA_MEDIA_DIR=${WA_MEDIA_DIR:-$WA_DATA_DIR/wamedia}
export WA_LOG_FORMAT=${WA_LOG_FORMAT:-text}
mkdir -p "$WA_DATA_DIR"
# chatd writes the network root key there at start; coreapp pins it.
root_file="$WA_DATA_DIR/chat-root.pub"
if [ -z "${WA_CHAT_ROOT_KEY:-}" ]; then
	export WA_CHAT_ROOT_KEY_FILE=${WA_CHAT_ROOT_KEY_FILE:-$root_file}
fi

command -v curl >/dev/null || { echo "make run: curl is missing (it waits for the API with it): install it, e.g. apt-get install curl" >&2; exit 1; }

# MySQL must answer before anything starts.
if [ "$WA_DB_ENGINE" = MYSQL ] && ! (exec 3<>"/dev/tcp/$WA_DB_HOSTNAME/$WA_DB_PORT") 2>/dev/null; then
	cat >&2 <<MSG
make run: no MySQL/MariaDB answers at $WA_DB_HOSTNAME:$WA_DB_PORT.
Start one (e.g. 'sudo systemctl start mariadb', or 'docker compose up -d db'
with WA_DB_PASSWORD=testpass WA_DB_PORT=33060), or point WA_DB_HOSTNAME,
WA_DB_PORT, WA_DB_USERNAME and WA_DB_PASSWORD at yours. Or unset WA_DB_ENGINE
and WA_DB_HOSTNAME to keep everything in SQLite files in $WA_DATA_DIR.
MSG
	exit 1
fi
if [ "$WA_DB_ENGINE" = MYSQL ]; then
	storage="MySQL at $WA_DB_HOSTNAME:$WA_DB_PORT (databases $WA_DB_NAME, $WA_CHATD_DB_NAME)"
else
	storage="SQLite files in ${WA_DB_DIR:-$WA_DATA_DIR} ($WA_DB_NAME.db, $WA_CHATD_DB_NAME.db)"
fi

pids=()
stop() {
	trap - INT TERM EXIT
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
stopping=0
trap 'stopping=1' INT TERM
trap stop EXIT

# A key file left by an earlier run may belong to another chatd database:
# wait for this chatd to write its own before coreapp reads it.
rm -f "$root_file"
"$BIN/chatd" & pids+=($!)
for _ in $(seq 1 600); do
	[ "$stopping" = 1 ] && exit 0
	[ -s "$root_file" ] && break
	if ! kill -0 "${pids[0]}" 2>/dev/null; then
		echo "make run: chatd exited during start-up (see the log above)" >&2
		exit 1
	fi
	sleep 0.2
done
"$BIN/coreapp" & pids+=($!)
"$BIN/webapp" & pids+=($!)
# The web phone: customer phones in the browser (loopback only).
export WA_WEBPHONE_PORT=${WA_WEBPHONE_PORT:-9091}
"$BIN/waphone" --network "127.0.0.1:$WA_CHAT_PORT,127.0.0.1:$WA_CHAT_FALLBACK_PORT" \
	--root-key-file "$root_file" --admin "127.0.0.1:$WA_CHATD_ADMIN_PORT" \
	serve --dir "$WA_DATA_DIR/webphone" --listen "127.0.0.1:$WA_WEBPHONE_PORT" >/dev/null & pids+=($!)

url="https://127.0.0.1:$WA_WEB_PORT"
cc=${WA_SANDBOX_CC:-1}
phone=${WA_SANDBOX_PHONE:-5550100}
for _ in $(seq 1 600); do
	[ "$stopping" = 1 ] && exit 0
	for p in "${pids[@]}"; do
		if ! kill -0 "$p" 2>/dev/null; then
			echo "make run: a process exited during start-up (see the log above)" >&2
			exit 1
		fi
	done
	if curl -ks -o /dev/null "$url/v1/health"; then break; fi
	sleep 0.2
done

# json_field NAME: the first string value of "NAME" in the JSON on stdin.
json_field() { sed -n 's/.*"'"$1"'" *: *"\([^"]*\)".*/\1/p' | head -n1; }

# autoregister logs in as admin and registers cc+phone; it prints what it
# did (the banner shows it) and never stops the stack.
autoregister() {
	local pw_file="$WA_DATA_DIR/sandbox-admin-password" pw token code status
	pw=${WA_SANDBOX_ADMIN_PASSWORD:-}
	if [ -z "$pw" ] && [ -s "$pw_file" ]; then pw=$(cat "$pw_file"); fi
	local generated=""
	if [ -z "$pw" ]; then
		# The policy wants a digit, an upper- and a lower-case letter and a symbol.
		pw="Sb1-$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 16)"
		generated=1
	fi
	token=$(curl -ks -X POST "$url/v1/users/login" -u admin:secret -H 'Content-Type: application/json' \
		-d "{\"new_password\":\"$pw\"}" | json_field token)
	if [ -n "$token" ] && [ -n "$generated" ]; then
		(umask 077 && printf '%s\n' "$pw" >"$pw_file")
	fi
	if [ -z "$token" ]; then
		token=$(curl -ks -X POST "$url/v1/users/login" -u "admin:$pw" | json_field token)
	fi
	if [ -z "$token" ]; then
		echo "autoregister: cannot log in as admin: set WA_SANDBOX_ADMIN_PASSWORD to its password"
		return
	fi
	status=$(curl -ks -o /dev/null -w '%{http_code}' -X POST "$url/v1/account" -H "Authorization: Bearer $token" \
		-H 'Content-Type: application/json' -d "{\"cc\":\"$cc\",\"phone_number\":\"$phone\",\"method\":\"sms\"}")
	if [ "$status" = 202 ]; then
		code=$(curl -s "http://127.0.0.1:$WA_CHATD_ADMIN_PORT/sandbox/codes/$cc$phone" | json_field code)
		status=$(curl -ks -o /dev/null -w '%{http_code}' -X POST "$url/v1/account/verify" -H "Authorization: Bearer $token" \
			-H 'Content-Type: application/json' -d "{\"code\":\"$code\"}")
	fi
	if [ "$status" != 201 ]; then
		echo "autoregister: registering +$cc$phone failed (HTTP $status); register by hand as below"
		return
	fi
	echo "registered"
}

registered=""
if [ "${WA_SANDBOX_AUTOREGISTER:-0}" = 1 ]; then
	registered=$(autoregister)
	[ "$registered" = registered ] || { echo "$registered" >&2; registered=""; }
fi
if [ -n "$registered" ]; then
	pw_hint=${WA_SANDBOX_ADMIN_PASSWORD:+'$WA_SANDBOX_ADMIN_PASSWORD'}
	pw_hint=${pw_hint:-"\$(cat $WA_DATA_DIR/sandbox-admin-password)"}
	steps=$(cat <<STEPS
 1. The admin password is set and the sandbox number +$cc$phone is registered
    (WA_SANDBOX_AUTOREGISTER=1). Get a token:
    TOKEN=\$(curl -ks -X POST $url/v1/users/login -u "admin:$pw_hint" | sed 's/.*"token":"\([^"]*\)".*/\1/')
 2. Point the webhook at your receiver:
    curl -k -X PATCH $url/v1/settings/application -H "Authorization: Bearer \$TOKEN" \\
         -H 'Content-Type: application/json' -d '{"webhooks":{"url":"https://your.receiver/hook"}}'
STEPS
)
else
	steps=$(cat <<STEPS
 1. First login: the admin password must be changed; choose your own (8-64
    characters with upper and lower case, a digit and a symbol):
    read -rsp 'New admin password: ' PW; echo
    TOKEN=\$(curl -ks -X POST $url/v1/users/login -u admin:secret -H 'Content-Type: application/json' \\
         -d "{\"new_password\":\"\$PW\"}" | sed 's/.*"token":"\([^"]*\)".*/\1/')
 2. Register the business number (code from the sandbox network), or start
    with WA_SANDBOX_AUTOREGISTER=1 to have it done:
    curl -k -X POST $url/v1/account -H "Authorization: Bearer \$TOKEN" \\
         -H 'Content-Type: application/json' -d '{"cc":"$cc","phone_number":"$phone","method":"sms"}'
    curl -s http://127.0.0.1:$WA_CHATD_ADMIN_PORT/sandbox/codes/$cc$phone
    curl -k -X POST $url/v1/account/verify -H "Authorization: Bearer \$TOKEN" \\
         -H 'Content-Type: application/json' -d '{"code":"<code>"}'
STEPS
)
fi

cat <<MSG

================================================================================
 openwaba is running.   API: $url   (self-signed certificate: use curl -k)
 Storage: $storage

$steps
 3. Web phone: http://127.0.0.1:$WA_WEBPHONE_PORT/
    create a customer phone there and chat with +$cc$phone as the customer sees it.
    Or a terminal phone (it pins the network root key in $root_file; attachments
    go through chatd's media server on port $WA_CHATD_MEDIA_PORT: /file PATH [TYPE] [CAPTION]):
    $BIN/waphone --network 127.0.0.1:$WA_CHAT_PORT,127.0.0.1:$WA_CHAT_FALLBACK_PORT,tls://127.0.0.1:$WA_CHAT_FALLBACK_PORT \\
         --root-key-file $root_file --admin 127.0.0.1:$WA_CHATD_ADMIN_PORT \\
         --home /tmp/phone1 register 15551234567
    $BIN/waphone --home /tmp/phone1
 4. Metrics (Prometheus text): https://127.0.0.1:$WA_WEB_PORT/metrics (a token, or
    Authorization: Apikey \$WA_API_KEY), coreapp http://127.0.0.1:${WA_CORE_METRICS_PORT:-6261}/metrics,
    chatd http://127.0.0.1:$WA_CHATD_ADMIN_PORT/metrics; dashboard: deploy/grafana/openwaba.json.
 Ctrl-C stops everything. README.md has the full walk-through.
================================================================================

MSG

# Stay in the foreground until Ctrl-C or until one process ends.
wait -n "${pids[@]}" || true
if [ "$stopping" = 1 ]; then
	echo "stopping…"
	exit 0
fi
echo "make run: a process exited; stopping the others" >&2
exit 1
