# shellcheck shell=bash
# ClickHouse server (Debian's clickhouse-server, 18.16 on Debian 12) with its own config; all
# state in $STATE_DIR/clickhouse/ (config.xml, users.xml, data/, tmp/, user_files/,
# format_schemas/, log/, clickhouse.pid, clickhouse.out).

CLICKHOUSE_START_TIMEOUT=60
CLICKHOUSE_STOP_TIMEOUT=60
CLICKHOUSE_DIR=$STATE_DIR/clickhouse
CLICKHOUSE_CONFIG=$CLICKHOUSE_DIR/config.xml

clickhouse_pid() { read_pid "$CLICKHOUSE_DIR/clickhouse.pid" "$CLICKHOUSE_CONFIG"; }
clickhouse_log() { echo "$CLICKHOUSE_DIR/log/clickhouse-server.err.log"; }

# clickhouse_answers: /ping says "Ok." and SELECT 1 works over HTTP.
clickhouse_answers() {
	local url=http://127.0.0.1:$CLICKHOUSE_HTTP_PORT out
	out=$(curl -sS --max-time 3 "$url/ping" 2>/dev/null) || return 1
	[[ $out == Ok. ]] || return 1
	out=$(curl -sS --max-time 3 --data-binary 'SELECT 1' "$url/" 2>/dev/null) || return 1
	[[ $out == 1 ]]
}

clickhouse_launch() {
	require_port_free clickhouse-http "$CLICKHOUSE_HTTP_PORT" || return 1
	require_port_free clickhouse-tcp "$CLICKHOUSE_TCP_PORT" || return 1
	# (Called in a condition, where set -e does not apply: check each step.)
	mkdir -p "$CLICKHOUSE_DIR"/{data,tmp,user_files,format_schemas,log} || return 1
	render "$LIB_DIR/clickhouse-config.xml.in" "$CLICKHOUSE_CONFIG" DIR="$CLICKHOUSE_DIR" \
		HTTP_PORT="$CLICKHOUSE_HTTP_PORT" TCP_PORT="$CLICKHOUSE_TCP_PORT" || return 1
	render "$LIB_DIR/clickhouse-users.xml.in" "$CLICKHOUSE_DIR/users.xml" || return 1
	# Foreground process (no --daemon): its pid is the one spawn records.
	spawn clickhouse "$CLICKHOUSE_DIR/clickhouse.pid" "$CLICKHOUSE_DIR/clickhouse.out" \
		clickhouse-server --config-file="$CLICKHOUSE_CONFIG"
}

clickhouse_await() {
	local deadline
	deadline=$(($(now_ms) + CLICKHOUSE_START_TIMEOUT * 1000))
	until clickhouse_answers; do
		if ! clickhouse_pid >/dev/null; then
			log "error: clickhouse: the server exited during startup"
			show_log_tail "$(clickhouse_log)"
			show_log_tail "$CLICKHOUSE_DIR/clickhouse.out" 15
			return 1
		fi
		if (($(now_ms) > deadline)); then
			log "error: clickhouse: no answer after ${CLICKHOUSE_START_TIMEOUT}s"
			show_log_tail "$CLICKHOUSE_DIR/log/clickhouse-server.log"
			return 1
		fi
		sleep 0.1
	done
}

clickhouse_stop() {
	local pid
	pid=$(clickhouse_pid) || return 0
	stop_pid clickhouse "$pid" "$CLICKHOUSE_CONFIG" "$CLICKHOUSE_STOP_TIMEOUT"
	rm -f "$CLICKHOUSE_DIR/clickhouse.pid"
}

clickhouse_info() {
	printf '%-10s %s\n' clickhouse "ClickHouse $(clickhouse_version) HTTP http://127.0.0.1:$CLICKHOUSE_HTTP_PORT/ (user default, no password), TCP 127.0.0.1:$CLICKHOUSE_TCP_PORT"
	printf '%-10s query: curl -sS http://127.0.0.1:%s/ --data-binary '"'SELECT 1'"'\n' '' "$CLICKHOUSE_HTTP_PORT"
	printf '%-10s log %s\n' '' "$CLICKHOUSE_DIR/log/clickhouse-server.log"
}

clickhouse_version() {
	curl -sS --max-time 3 --data-binary 'SELECT version()' "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT/" 2>/dev/null || echo '?'
}
