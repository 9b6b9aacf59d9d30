# shellcheck shell=bash
# Apache Kafka, single-node KRaft (broker + controller in one JVM). The jars come once from
# Maven Central (scripts/kafka/pom.xml) into $CACHE_DIR/kafka-$KAFKA_VERSION/libs; all state is
# in $STATE_DIR/kafka/ (server.properties, data/, logs/server.log, kafka.pid, kafka.out).
#
# Main classes (checked in the 4.3.1 jars): broker kafka.Kafka (kafka_2.13), storage format
# kafka.tools.StorageTool (kafka_2.13), topics org.apache.kafka.tools.TopicCommand (kafka-tools),
# SCRAM users kafka.admin.ConfigCommand (kafka_2.13).
#
# Two client listeners: PLAINTEXT on $KAFKA_PORT (what the tests use) and SASL_SSL on
# $KAFKA_SASL_PORT: TLS with a certificate of the stack's own CA ($KAFKA_TLS_DIR/ca.pem, made
# with openssl), SASL PLAIN (user in the JAAS config) and SCRAM-SHA-256/512 (user created with
# ConfigCommand), one user $KAFKA_SASL_USER for all three.

KAFKA_VERSION=4.3.1 # keep in step with kafka.version in scripts/kafka/pom.xml
KAFKA_START_TIMEOUT=120
KAFKA_STOP_TIMEOUT=60
KAFKA_HEAP=(-Xmx512m -Xms512m)
# -Djdk.nio.maxCachedBufferSize (kafka_launch): without it every network thread keeps a
# direct buffer as large as the largest request it read, and a few big rows exhaust the
# direct memory (OutOfMemoryError: Cannot reserve ... bytes of direct buffer memory).

KAFKA_HOME=$CACHE_DIR/kafka-$KAFKA_VERSION
KAFKA_LIBS=$KAFKA_HOME/libs
KAFKA_DIR=$STATE_DIR/kafka
KAFKA_CONFIG=$KAFKA_DIR/server.properties
KAFKA_LOG=$KAFKA_DIR/logs/server.log
KAFKA_SASL_PORT=${ROWCAST_KAFKA_SASL_PORT:-$((KAFKA_PORT + 10))}
KAFKA_SASL_USER=${ROWCAST_KAFKA_SASL_USER:-rowcast}
KAFKA_SASL_PASSWORD=${ROWCAST_KAFKA_SASL_PASSWORD:-rowcast-kafka}
KAFKA_TLS_DIR=$KAFKA_DIR/tls

kafka_pid() { read_pid "$KAFKA_DIR/kafka.pid" "$KAFKA_CONFIG"; }
kafka_log() { echo "$KAFKA_LOG"; }

# kafka_answers: the broker answers a Kafka ApiVersions request (v0, correlation id 42) on the
# PLAINTEXT port. Pure bash, no JVM: fast enough for `status`.
kafka_answers() {
	local reply
	# shellcheck disable=SC2016
	reply=$(timeout 3 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
		# size 17 | api_key 18 (ApiVersions) | version 0 | correlation id 42 | client id "rowcast"
		printf "\x00\x00\x00\x11\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x07rowcast" >&3
		head -c 8 <&3 | od -An -tx1' "$KAFKA_PORT" 2>/dev/null) || return 1
	reply=${reply//[$' \n']/}
	[[ ${reply:8:8} == 0000002a ]]
}

# kafka_ensure_jars: download the broker and tools once (marker holds the pom's checksum, so a
# half download or a changed pom is fetched again).
kafka_ensure_jars() {
	local pom=$REPO_ROOT/scripts/kafka/pom.xml sum t0
	sum=$(sha256sum "$pom" | cut -d' ' -f1)
	if [[ -f $KAFKA_HOME/.complete && $(<"$KAFKA_HOME/.complete") == "$sum" && -d $KAFKA_LIBS ]]; then
		return 0
	fi
	t0=$(now_ms)
	log "kafka: downloading Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS ..."
	mkdir -p "$KAFKA_HOME"
	rm -rf "$KAFKA_LIBS" "$KAFKA_LIBS.tmp" "$KAFKA_HOME/.complete"
	if ! mvn -B -ntp -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$KAFKA_LIBS.tmp" >"$KAFKA_HOME/mvn.log" 2>&1; then
		log "error: kafka: Maven download failed, log: $KAFKA_HOME/mvn.log"
		show_log_tail "$KAFKA_HOME/mvn.log"
		return 1
	fi
	[[ -f $KAFKA_LIBS.tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || die "kafka: kafka_2.13-$KAFKA_VERSION.jar missing after download"
	mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
	echo "$sum" >"$KAFKA_HOME/.complete"
	log "kafka: jars ready ($(du -sh "$KAFKA_LIBS" | cut -f1), $(elapsed "$t0"))"
}

# kafka_run CLASS ARGS...: run a Kafka command-line class with the cached jars.
kafka_run() {
	kafka_ensure_jars || return 1
	java -Xmx256m -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$REPO_ROOT/scripts/kafka/tools-log4j2.xml" \
		-cp "$KAFKA_LIBS/*" "$@"
}

# kafka_launch: write server.properties, format the log dir the first time, start the broker.
kafka_launch() {
	require_port_free kafka "$KAFKA_PORT" || return 1
	require_port_free kafka-controller "$KAFKA_CONTROLLER_PORT" || return 1
	require_port_free kafka-sasl "$KAFKA_SASL_PORT" || return 1
	kafka_check_sasl_user || return 1
	# (Called in a condition, where set -e does not apply: check each step.)
	kafka_ensure_jars || return 1
	mkdir -p "$KAFKA_DIR/logs" || return 1
	kafka_make_certs || return 1
	render "$KAFKA_TEMPLATE_DIR/server.properties.in" "$KAFKA_CONFIG" \
		PORT="$KAFKA_PORT" CONTROLLER_PORT="$KAFKA_CONTROLLER_PORT" DATA_DIR="$KAFKA_DIR/data" \
		SASL_PORT="$KAFKA_SASL_PORT" TLS_DIR="$KAFKA_TLS_DIR" \
		SASL_USER="$KAFKA_SASL_USER" SASL_PASSWORD="$KAFKA_SASL_PASSWORD" || return 1
	chmod 600 "$KAFKA_CONFIG" || return 1 # it holds the PLAIN user's password
	cp -f "$KAFKA_TEMPLATE_DIR/log4j2.xml" "$KAFKA_DIR/log4j2.xml" || return 1

	if [[ ! -f $KAFKA_DIR/data/meta.properties ]]; then
		local cluster_id
		rm -rf "$KAFKA_DIR/data" "$KAFKA_DIR/scram-users"
		cluster_id=$(kafka_run kafka.tools.StorageTool random-uuid 2>"$KAFKA_DIR/logs/format.log") ||
			{ show_log_tail "$KAFKA_DIR/logs/format.log"; return 1; }
		local scram
		mapfile -t scram < <(kafka_scram_args)
		if ! kafka_run kafka.tools.StorageTool format --cluster-id "$cluster_id" \
			--config "$KAFKA_CONFIG" --standalone "${scram[@]}" >>"$KAFKA_DIR/logs/format.log" 2>&1; then
			log "error: kafka: formatting the log dir failed"
			show_log_tail "$KAFKA_DIR/logs/format.log"
			return 1
		fi
		kafka_scram_sum >"$KAFKA_DIR/scram-users"
	fi

	# Readiness looks for "Kafka Server started" only in what this start logs.
	stat -c %s "$KAFKA_LOG" >"$KAFKA_DIR/log-offset" 2>/dev/null || echo 0 >"$KAFKA_DIR/log-offset"
	spawn kafka "$KAFKA_DIR/kafka.pid" "$KAFKA_DIR/kafka.out" \
		java "${KAFKA_HEAP[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
		-Djdk.nio.maxCachedBufferSize=262144 \
		-Djava.awt.headless=true -Dkafka.logs.dir="$KAFKA_DIR/logs" \
		-Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.xml" \
		-cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONFIG"
}

# kafka_started_logged: "Kafka Server started" appears after the offset saved at launch.
kafka_started_logged() {
	local off=0 size hits
	[[ -f $KAFKA_LOG ]] || return 1
	[[ -f $KAFKA_DIR/log-offset ]] && off=$(<"$KAFKA_DIR/log-offset")
	size=$(stat -c %s "$KAFKA_LOG")
	((size >= off)) || off=0 # rolled over meanwhile
	hits=$(tail -c +"$((off + 1))" "$KAFKA_LOG" | grep -c -F 'Kafka Server started' || true)
	((hits > 0))
}

# kafka_await [verify]: wait for the log line and the port; with "verify", list topics too.
kafka_await() {
	local deadline out
	deadline=$(($(now_ms) + KAFKA_START_TIMEOUT * 1000))
	until kafka_started_logged && port_open "$KAFKA_PORT" && port_open "$KAFKA_SASL_PORT"; do
		if ! kafka_pid >/dev/null; then
			log "error: kafka: the broker exited during startup"
			show_log_tail "$KAFKA_LOG"
			show_log_tail "$KAFKA_DIR/kafka.out" 15
			return 1
		fi
		if (($(now_ms) > deadline)); then
			log "error: kafka: not ready after ${KAFKA_START_TIMEOUT}s"
			show_log_tail "$KAFKA_LOG"
			return 1
		fi
		sleep 0.2
	done
	[[ ${1:-} == verify ]] || return 0
	if ! out=$(kafka_run org.apache.kafka.tools.TopicCommand \
		--bootstrap-server "127.0.0.1:$KAFKA_PORT" --list 2>&1); then
		log "error: kafka: TopicCommand --list failed: $out"
		show_log_tail "$KAFKA_LOG"
		return 1
	fi
	kafka_scram_users
}

# kafka_check_sasl_user: the user and password go into a JAAS string and ConfigCommand's
# list syntax unquoted, so they must not hold the characters those treat specially.
kafka_check_sasl_user() {
	local v
	for v in "$KAFKA_SASL_USER" "$KAFKA_SASL_PASSWORD"; do
		if [[ -z $v || $v == *[][\\\",=\ \']* ]]; then
			log "error: kafka: ROWCAST_KAFKA_SASL_USER and ROWCAST_KAFKA_SASL_PASSWORD must be non-empty, without spaces, quotes, backslashes, commas, '=' or brackets"
			return 1
		fi
	done
}

# kafka_make_certs: the stack's CA, the broker's certificate (127.0.0.1 and localhost) and a
# client certificate, once: a second run keeps them (clients may hold the CA already).
kafka_make_certs() {
	local d=$KAFKA_TLS_DIR
	[[ -s $d/ca.pem && -s $d/broker-keystore.pem && -s $d/client.pem && -s $d/client.key ]] && return 0
	log "kafka: making the SASL_SSL listener's certificates in $d"
	rm -rf "$d" && mkdir -p "$d" && chmod 700 "$d" || return 1
	(
		cd "$d" || exit 1
		umask 077
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rowcast local stack CA" \
			-keyout ca.key -out ca.pem &&
			kafka_sign_cert broker "/CN=localhost" "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth" &&
			kafka_sign_cert client "/CN=$KAFKA_SASL_USER" "extendedKeyUsage=clientAuth" &&
			cat broker.key broker.pem >broker-keystore.pem
	) >"$KAFKA_DIR/logs/certs.log" 2>&1 || {
		log "error: kafka: openssl failed"
		show_log_tail "$KAFKA_DIR/logs/certs.log"
		rm -rf "$d"
		return 1
	}
}

# kafka_sign_cert NAME SUBJECT EXTENSIONS: NAME.key (PKCS#8, unencrypted) and NAME.pem signed
# by ca.key, in the current directory.
kafka_sign_cert() {
	openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" &&
		printf '%s\n' "$3" >"$1.ext" &&
		openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
			-extfile "$1.ext" -out "$1.pem" &&
		rm -f "$1.csr" "$1.ext"
}

# kafka_scram_users: create or update the SCRAM-SHA-256/512 credentials of the SASL user in a
# log dir formatted without them or for another password (a log dir formatted by this script
# has them: kafka_scram_args). The marker says which user and password are set.
kafka_scram_users() {
	local mech out
	[[ -f $KAFKA_DIR/scram-users && $(<"$KAFKA_DIR/scram-users") == "$(kafka_scram_sum)" ]] && return 0
	for mech in SCRAM-SHA-256 SCRAM-SHA-512; do # one credential per request
		if ! out=$(kafka_run kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
			--alter --entity-type users --entity-name "$KAFKA_SASL_USER" \
			--add-config "$mech=[password=$KAFKA_SASL_PASSWORD]" 2>&1); then
			log "error: kafka: creating the $mech user $KAFKA_SASL_USER failed: $out"
			return 1
		fi
	done
	kafka_scram_sum >"$KAFKA_DIR/scram-users"
}

# kafka_scram_sum: the marker's content for the current user and password.
kafka_scram_sum() { printf '%s:%s' "$KAFKA_SASL_USER" "$KAFKA_SASL_PASSWORD" | sha256sum | cut -d' ' -f1; }

# kafka_scram_args: StorageTool format's arguments that create the SCRAM user.
kafka_scram_args() {
	local mech
	for mech in SCRAM-SHA-256 SCRAM-SHA-512; do
		printf '%s\n' --add-scram "$mech=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]"
	done
}

kafka_stop() {
	local pid
	pid=$(kafka_pid) || return 0
	# SIGTERM = controlled shutdown; SIGKILL after KAFKA_STOP_TIMEOUT.
	stop_pid kafka "$pid" "$KAFKA_CONFIG" "$KAFKA_STOP_TIMEOUT"
	rm -f "$KAFKA_DIR/kafka.pid"
}

kafka_info() {
	printf '%-10s %s\n' kafka "Kafka $KAFKA_VERSION (KRaft) bootstrap 127.0.0.1:$KAFKA_PORT, controller 127.0.0.1:$KAFKA_CONTROLLER_PORT"
	printf '%-10s SASL_SSL 127.0.0.1:%s (PLAIN, SCRAM-SHA-256/512, user %s), CA %s\n' '' "$KAFKA_SASL_PORT" "$KAFKA_SASL_USER" "$KAFKA_TLS_DIR/ca.pem"
	printf '%-10s topics: %s kafka-topics --create --topic T --partitions 1\n' '' "$REPO_ROOT/scripts/stack"
	printf '%-10s log %s\n' '' "$KAFKA_LOG"
}
