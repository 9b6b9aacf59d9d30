# shellcheck shell=bash disable=SC2034  # settings are used by the other files
# Shared helpers for scripts/stack: settings, logging, pid files, process spawning, waiting,
# package installation. Sourced, never executed. Everything works under `set -euo pipefail`.
#
# Note on pipelines: under pipefail, `producer | grep -q` can fail with SIGPIPE when grep exits
# early, so this code captures output into variables or lets grep read everything.

# ---------------------------------------------------------------------------------------------
# Settings (environment overrides)
# ---------------------------------------------------------------------------------------------
STATE_DIR=${ROWCAST_STATE_DIR:-$REPO_ROOT/.stack}
CACHE_DIR=${ROWCAST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rowcast}
DB1_PORT=${ROWCAST_DB1_PORT:-3307}
DB2_PORT=${ROWCAST_DB2_PORT:-3308}
DB3_PORT=${ROWCAST_DB3_PORT:-3309}
DB4_PORT=${ROWCAST_DB4_PORT:-3310}
KAFKA_PORT=${ROWCAST_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${ROWCAST_KAFKA_CONTROLLER_PORT:-9093}
CLICKHOUSE_HTTP_PORT=${ROWCAST_CLICKHOUSE_HTTP_PORT:-8123}
CLICKHOUSE_TCP_PORT=${ROWCAST_CLICKHOUSE_TCP_PORT:-9000}
DB_PASSWORD=${ROWCAST_DB_PASSWORD:-rowcast}
# The changelog signing key of the local stack (kafka.signing in deployments/local/rowcast.yaml):
# a fixed one, for local use only.
SIGNING_KEY=${ROWCAST_SIGNING_KEY:-rowcast-local-signing-key-not-for-production}

# Make relative overrides absolute: the services are started with other working directories.
[[ $STATE_DIR == /* ]] || STATE_DIR=$PWD/$STATE_DIR
[[ $CACHE_DIR == /* ]] || CACHE_DIR=$PWD/$CACHE_DIR

LIB_DIR=$REPO_ROOT/scripts/lib
KAFKA_TEMPLATE_DIR=$REPO_ROOT/scripts/kafka

ALL_SERVICES=(db1 db2 db3 kafka clickhouse)
# Started only by `start NAME`, stopped by `down` too: db4 is a TLS-only MariaDB.
OPTIONAL_SERVICES=(db4)

# /usr/sbin holds mariadbd and clickhouse-server; not always on a non-login PATH.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin:/sbin ;; esac

# Bash 5.2: keep '&' literal in ${var//pat/repl}.
shopt -u patsub_replacement 2>/dev/null || true

# ---------------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------------
log()  { printf '%s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

now_ms() { date +%s%3N; }
# elapsed START_MS -> "1.234s"
elapsed() { local d=$(( $(now_ms) - $1 )); printf '%d.%03ds' $((d / 1000)) $((d % 1000)); }

# show_log_tail FILE [LINES]: path plus the last lines of a log, for failures.
show_log_tail() {
	local f=$1 n=${2:-30}
	if [[ -s $f ]]; then
		log "---- last $n lines of $f ----"
		tail -n "$n" "$f" >&2 || true
		log "---- end of $f ----"
	else
		log "(log $f is empty or missing)"
	fi
}

# ---------------------------------------------------------------------------------------------
# Templates: @KEY@ placeholders replaced by values.
# render TEMPLATE OUTPUT KEY=VALUE...
# ---------------------------------------------------------------------------------------------
render() {
	local tmpl=$1 out=$2 text kv
	shift 2
	text=$(<"$tmpl")
	for kv in "$@"; do
		text=${text//"@${kv%%=*}@"/"${kv#*=}"}
	done
	if [[ $text =~ @[A-Z][A-Z0-9_]*@ ]]; then
		die "template $tmpl: placeholder ${BASH_REMATCH[0]} has no value"
	fi
	printf '%s\n' "$text" >"$out.tmp"
	mv -f "$out.tmp" "$out"
}

# ---------------------------------------------------------------------------------------------
# Processes. Each service has a pid file written by `spawn`; a pid counts as ours only if the
# process is alive (not a zombie) and its command line names our config file, so a stale pid
# file (reboot, crash, pid reuse) is never mistaken for a running service and nothing else is
# ever signalled.
# ---------------------------------------------------------------------------------------------

# pid_alive PID MARKER: true if PID runs and its cmdline contains MARKER.
pid_alive() {
	local pid=$1 marker=$2 stat cmdline
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	stat=${stat##*) }                     # field 3 onwards; comm may contain spaces
	[[ ${stat%% *} != Z ]] || return 1    # zombie
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"$marker"* ]]
}

# read_pid PIDFILE MARKER: print the pid if the process is alive and ours.
read_pid() {
	local pid
	[[ -f $1 ]] || return 1
	pid=$(<"$1") || return 1
	pid_alive "$pid" "$2" || return 1
	printf '%s\n' "$pid"
}

# spawn NAME PIDFILE OUTFILE CMD ARGS...: start CMD detached (own session, parent is init, stdin
# /dev/null, stdout+stderr to OUTFILE, truncated) and write its pid to PIDFILE. The pid is
# written by the shell that then execs CMD, so it is CMD's pid and known immediately.
spawn() {
	local name=$1 pidfile=$2 out=$3
	shift 3
	rm -f "$pidfile"
	: >"$out"
	# shellcheck disable=SC2016
	setsid -f bash -c 'echo $$ >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" \
		</dev/null >>"$out" 2>&1 9>&- # fd 9 is the stack lock: the daemon must not keep it
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s $pidfile ]] && return 0
		sleep 0.05
	done
	die "$name: could not start $1 (no pid file $pidfile)"
}

# stop_pid NAME PID MARKER TIMEOUT_S: SIGTERM, wait, SIGKILL after TIMEOUT_S; wait until gone.
stop_pid() {
	local name=$1 pid=$2 marker=$3 timeout=$4
	kill -TERM "$pid" 2>/dev/null || true
	wait_pid_gone "$pid" "$marker" "$timeout" && return 0
	warn "$name (pid $pid) still running ${timeout}s after SIGTERM: sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	wait_pid_gone "$pid" "$marker" 10 || die "$name (pid $pid) survived SIGKILL"
}

# wait_pid_gone PID MARKER TIMEOUT_S
wait_pid_gone() {
	local pid=$1 marker=$2 deadline=$(( $(now_ms) + $3 * 1000 ))
	while pid_alive "$pid" "$marker"; do
		(( $(now_ms) < deadline )) || return 1
		sleep 0.1
	done
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	# shellcheck disable=SC2016
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# require_port_free NAME PORT: fail with a helpful message if a foreign process holds PORT.
require_port_free() {
	local name=$1 port=$2
	port_open "$port" || return 0
	log "error: $name: port $port on 127.0.0.1 is already in use by another process:"
	if command -v ss >/dev/null; then ss -ltnp "sport = :$port" >&2 || true; fi
	log "stop that process or choose another port (see scripts/stack help)."
	return 1
}

# ---------------------------------------------------------------------------------------------
# Packages: install only what is missing (Debian/Ubuntu apt).
# ---------------------------------------------------------------------------------------------

# java_ok: a java >= 17 is on PATH (Kafka 4 needs 17).
java_ok() {
	command -v java >/dev/null || return 1
	local v
	v=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')
	[[ $v =~ ^[0-9]+$ ]] && ((v >= 17))
}

# ensure_packages SERVICE...: check the commands the given services need; apt-get install the
# packages of the missing ones (apt-get update first).
ensure_packages() {
	local -A want=()
	local svc
	for svc in "$@"; do
		case $svc in
		db1 | db2 | db3 | db4)
			command -v mariadbd >/dev/null || want[mariadb-server]=1
			command -v mariadb-install-db >/dev/null || want[mariadb-server]=1
			command -v mariadb >/dev/null || want[mariadb-client]=1
			command -v mariadb-admin >/dev/null || want[mariadb-client]=1
			[[ $svc != db4 ]] || command -v openssl >/dev/null || want[openssl]=1
			;;
		kafka)
			java_ok || want[openjdk-17-jre-headless]=1
			command -v mvn >/dev/null || want[maven]=1
			command -v openssl >/dev/null || want[openssl]=1
			;;
		haproxy)
			command -v haproxy >/dev/null || want[haproxy]=1
			;;
		clickhouse)
			command -v clickhouse-server >/dev/null || want[clickhouse-server]=1
			command -v clickhouse-client >/dev/null || want[clickhouse-client]=1
			command -v curl >/dev/null || want[curl]=1
			;;
		esac
	done
	((${#want[@]} > 0)) || return 0

	local pkgs=("${!want[@]}") sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || die "missing packages (${pkgs[*]}) and not root: install them"
		sudo=(sudo)
	fi
	command -v apt-get >/dev/null || die "missing packages (${pkgs[*]}) and no apt-get: install them"
	log "installing: ${pkgs[*]}"
	# The packages' own services (mariadb on 3306, clickhouse on 8123/9000) must not be started
	# by their postinst scripts: they would take our ports. policy-rc.d exit 101 = "do not
	# start" (honoured by invoke-rc.d and deb-systemd-invoke); only while we install, and only
	# if the machine has none of its own.
	local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# temporary, from rowcast scripts/stack\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 755 "$policy"
		made_policy=1
	fi
	{
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
			"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
	} || rc=$?
	((made_policy == 0)) || "${sudo[@]}" rm -f "$policy"
	((rc == 0)) || die "apt-get install ${pkgs[*]} failed (exit $rc)"
	if [[ -n ${want[openjdk-17-jre-headless]:-} ]] && ! java_ok; then
		# Another, older java may come first on PATH.
		local j
		for j in /usr/lib/jvm/java-17-openjdk-*/bin; do PATH=$j:$PATH; done
		java_ok || die "java 17 installed but not found on PATH"
	fi
}
