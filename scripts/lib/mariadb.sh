# shellcheck shell=bash
# MariaDB nodes db1 (master), db2, db3 (replicas): one mariadbd each, all state in
# $STATE_DIR/<name>/ (my.cnf, data/, tmp/, mariadbd.sock, mariadbd.pid, error.log).
# db4, optional (`scripts/stack start db4`), is TLS-only (require_secure_transport): its CA and
# server certificate for 127.0.0.1 are made with openssl in $STATE_DIR/db4/tls/.

MARIADB_START_TIMEOUT=60
MARIADB_STOP_TIMEOUT=60

mariadb_port() {
	case $1 in db1) echo "$DB1_PORT" ;; db2) echo "$DB2_PORT" ;; db3) echo "$DB3_PORT" ;; db4) echo "$DB4_PORT" ;; esac
}
mariadb_tls_only() { [[ $1 == db4 ]]; }
mariadb_tls_dir() { echo "$STATE_DIR/$1/tls"; }
mariadb_ca() { echo "$(mariadb_tls_dir "$1")/ca.pem"; }
mariadb_server_id() { echo "${1#db}"; }
mariadb_dir() { echo "$STATE_DIR/$1"; }
mariadb_log() { echo "$STATE_DIR/$1/error.log"; }

mariadb_pid() {
	local dir
	dir=$(mariadb_dir "$1")
	read_pid "$dir/mariadbd.pid" "--defaults-file=$dir/my.cnf"
}

# mariadb_tcp NAME ARGS...: the mariadb client over TCP to NAME; verified TLS on a TLS-only node.
mariadb_tcp() {
	local name=$1 tls=()
	shift
	! mariadb_tls_only "$name" || tls=(--ssl --ssl-ca="$(mariadb_ca "$name")" --ssl-verify-server-cert)
	mariadb -h127.0.0.1 -P"$(mariadb_port "$name")" "${tls[@]}" "$@"
}

# mariadb_answers NAME: root gets an answer over TCP.
mariadb_answers() {
	local out
	out=$(mariadb_tcp "$1" -uroot --connect-timeout=2 -N -B -e 'SELECT 1' 2>/dev/null) || return 1
	[[ $out == 1 ]]
}

# mariadb_tls_cnf NAME: the TLS-only group appended to a TLS-only node's my.cnf (the template,
# which clone/clonetest and the benchmarks read too, stays the same for every node).
mariadb_tls_cnf() {
	local dir
	dir=$(mariadb_tls_dir "$1")
	cat <<-EOF

		[mariadbd]
		# TLS only: every TCP connection must be encrypted (the unix socket counts as secure).
		require_secure_transport    = ON
		ssl_ca                      = $dir/ca.pem
		ssl_cert                    = $dir/server.pem
		ssl_key                     = $dir/server-key.pem
		tls_version                 = TLSv1.2,TLSv1.3
	EOF
}

# mariadb_make_certs NAME: a CA, and a server certificate for 127.0.0.1 and localhost signed
# by it, unless both exist (so tests keep trusting the CA across restarts).
mariadb_make_certs() {
	local dir
	dir=$(mariadb_tls_dir "$1")
	[[ ! -s $dir/ca.pem || ! -s $dir/server.pem ]] || return 0
	mkdir -p "$dir" || return 1
	(
		set -e
		cd "$dir"
		umask 077
		openssl ecparam -name prime256v1 -genkey -noout -out ca-key.pem
		openssl req -x509 -new -key ca-key.pem -sha256 -days 3650 -subj "/CN=rowcast local stack CA $1" \
			-config <(printf '[req]\ndistinguished_name=dn\nx509_extensions=ca\n[dn]\n[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n') \
			-out ca.pem
		openssl ecparam -name prime256v1 -genkey -noout -out server-key.pem
		openssl req -new -key server-key.pem -subj "/CN=127.0.0.1" -out server.csr \
			-config <(printf '[req]\ndistinguished_name=dn\n[dn]\n')
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -sha256 -days 825 \
			-extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n') \
			-out server.pem
		rm -f server.csr
		chmod 644 ca.pem
	) >"$dir/openssl.log" 2>&1 || {
		log "error: $1: making the TLS certificates failed, log: $dir/openssl.log"
		show_log_tail "$dir/openssl.log"
		rm -f "$dir/ca.pem" "$dir/server.pem"
		return 1
	}
}

# Quote a string for a single-quoted SQL literal.
sql_quote() { local s=${1//\\/\\\\}; printf "'%s'" "${s//\'/\'\'}"; }

# The accounts, applied at every start with sql_log_bin=0: they never reach the binlog, so
# rowcast does not stream them and the replicas' GTID history stays empty.
mariadb_bootstrap_sql() {
	local pw host
	pw=$(sql_quote "$DB_PASSWORD")
	host=$(uname -n)
	cat <<-SQL
		SET SESSION sql_log_bin = 0;
		-- mariadb-install-db also creates root@<hostname>; useless (and warned about at every
		-- start) with skip-name-resolve.
		$([[ $host == localhost ]] || echo "DROP USER IF EXISTS 'root'@$(sql_quote "$host");")
		-- Tests and operators: root over TCP from 127.0.0.1, no password, everything.
		CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
		ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '';
		GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
		-- rowcast itself, with only what it needs, on every node (any node may be master or
		-- replica):
		--   SELECT                       read tables: initial copy, comparisons, table
		--                                definitions in information_schema (JSON columns)
		--   INSERT, UPDATE, DELETE       sink workers apply row changes on replicas
		--   CREATE, DROP, ALTER, INDEX,  replay DDL on replicas (tables, indexes, foreign
		--   REFERENCES                   keys), create rowcast's own checkpoint tables
		--   CREATE TEMPORARY TABLES      staging tables for batched applies
		--   LOCK TABLES                  consistent table snapshots
		--   SHOW VIEW                    read view definitions to replay them
		--   TRIGGER                      replay CREATE/DROP TRIGGER
		--   REPLICATION SLAVE            stream the binlog (COM_BINLOG_DUMP); without it the
		--                                server answers 1045 "Access denied"
		--   BINLOG MONITOR               SHOW BINARY LOGS, SHOW MASTER STATUS, SHOW BINLOG
		--                                EVENTS: positions and retention
		--   READ_ONLY ADMIN              write through read_only=ON on replicas, and SET
		--                                GLOBAL read_only when fencing/promoting
		--   CONNECTION ADMIN             KILL other users' sessions (fence writers on the old
		--                                master: KILL id / KILL USER), extra connection when
		--                                max_connections is reached
		--   SLAVE MONITOR                SHOW SLAVE STATUS: check no native replication runs
		--                                on a node before writing to / promoting it
		--   BINLOG REPLAY                sinks: apply rows as row events (BINLOG statement),
		--                                ~40% less replica CPU than SQL; without it, SQL
		-- (Listing other users' sessions in SHOW PROCESSLIST would need PROCESS; not granted.)
		CREATE USER IF NOT EXISTS 'rowcast'@'127.0.0.1' IDENTIFIED BY $pw;
		ALTER USER 'rowcast'@'127.0.0.1' IDENTIFIED BY $pw;
		REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'rowcast'@'127.0.0.1';
		GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES,
		      CREATE TEMPORARY TABLES, LOCK TABLES, SHOW VIEW, TRIGGER, CREATE ROUTINE, ALTER ROUTINE,
		      REPLICATION SLAVE, BINLOG MONITOR, READ_ONLY ADMIN, CONNECTION ADMIN,
		      SLAVE MONITOR, BINLOG REPLAY
		      ON *.* TO 'rowcast'@'127.0.0.1';
		$(mariadb_role_accounts_sql "$pw")
	SQL
}

# The accounts deployments/local/rowcast.yaml uses, one per job (docs/SECURITY.md,
# "Accounts"; `rowcast config validate --check-grants` checks them). The local stack
# replicates whatever databases tests create, so data privileges are ON *.*; in
# production they are granted on the replicated databases and the bookkeeping schema.
mariadb_role_accounts_sql() {
	local pw=$1 user
	for user in rowcast_reader rowcast_sink rowcast_admin; do
		cat <<-SQL
			CREATE USER IF NOT EXISTS '$user'@'127.0.0.1' IDENTIFIED BY $pw;
			ALTER USER '$user'@'127.0.0.1' IDENTIFIED BY $pw;
			REVOKE ALL PRIVILEGES, GRANT OPTION FROM '$user'@'127.0.0.1';
		SQL
	done
	cat <<-SQL
		-- The reader: stream the binlog, list binlogs, read the tables (snapshots, types).
		GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT, SHOW VIEW ON *.* TO 'rowcast_reader'@'127.0.0.1';
		-- ... and keep the snapshot requests in the bookkeeping schema's snapshots table.
		GRANT SELECT, INSERT, UPDATE, CREATE ON \`rowcast\`.* TO 'rowcast_reader'@'127.0.0.1';
		-- The sinks: apply rows and DDL, keep checkpoints in the bookkeeping schema, hold
		-- replicas read-only (READ_ONLY ADMIN), apply rows as row events (BINLOG REPLAY),
		-- install wait_for (CREATE/ALTER ROUTINE).
		GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES,
		      CREATE TEMPORARY TABLES, LOCK TABLES, SHOW VIEW, TRIGGER, CREATE ROUTINE, ALTER ROUTINE,
		      READ_ONLY ADMIN, BINLOG REPLAY, SLAVE MONITOR
		      ON *.* TO 'rowcast_sink'@'127.0.0.1';
		-- Promotion, fencing, rejoin: read_only, see and kill the old master's writers,
		-- the epoch index and the lease in the bookkeeping schema.
		GRANT READ_ONLY ADMIN, CONNECTION ADMIN, PROCESS, SLAVE MONITOR, BINLOG MONITOR
		      ON *.* TO 'rowcast_admin'@'127.0.0.1';
		GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX ON \`rowcast\`.* TO 'rowcast_admin'@'127.0.0.1';
	SQL
}

# mariadb_launch NAME: write my.cnf, create the datadir if needed, start mariadbd (no wait).
mariadb_launch() {
	local name=$1 dir port cnf
	dir=$(mariadb_dir "$name")
	port=$(mariadb_port "$name")
	cnf=$dir/my.cnf
	if ((${#dir} + 14 > 107)); then
		die "$name: socket path $dir/mariadbd.sock is too long for a unix socket; set ROWCAST_STATE_DIR"
	fi
	require_port_free "$name" "$port" || return 1
	# (Called in a condition, where set -e does not apply: check each step.)
	mkdir -p "$dir/tmp" || return 1
	! mariadb_tls_only "$name" || mariadb_make_certs "$name" || return 1
	render "$LIB_DIR/mariadb.cnf.in" "$cnf" NAME="$name" DIR="$dir" PORT="$port" \
		SERVER_ID="$(mariadb_server_id "$name")" USER="$(id -un)" || return 1
	! mariadb_tls_only "$name" || mariadb_tls_cnf "$name" >>"$cnf" || return 1

	# A datadir counts only once mariadb-install-db finished (marker); a half-made one is redone.
	if [[ ! -f $dir/data/.rowcast-initialized ]]; then
		rm -rf "$dir/data" && mkdir -p "$dir/data" || return 1
		if ! mariadb-install-db --defaults-file="$cnf" --auth-root-authentication-method=normal \
			--skip-test-db --skip-name-resolve >"$dir/install-db.log" 2>&1; then
			log "error: $name: mariadb-install-db failed, log: $dir/install-db.log"
			show_log_tail "$dir/install-db.log"
			return 1
		fi
		touch "$dir/data/.rowcast-initialized" || return 1
	fi
	spawn "$name" "$dir/mariadbd.pid" "$dir/mariadbd.out" mariadbd --defaults-file="$cnf"
}

# mariadb_await NAME: wait until it answers, then create the accounts and check them.
mariadb_await() {
	local name=$1 dir port cnf pid deadline out
	dir=$(mariadb_dir "$name")
	port=$(mariadb_port "$name")
	cnf=$dir/my.cnf
	deadline=$(($(now_ms) + MARIADB_START_TIMEOUT * 1000))
	until mariadb-admin --defaults-file="$cnf" --connect-timeout=1 ping >/dev/null 2>&1; do
		if ! pid=$(mariadb_pid "$name"); then
			log "error: $name: mariadbd exited during startup"
			show_log_tail "$(mariadb_log "$name")"
			show_log_tail "$dir/mariadbd.out" 10
			return 1
		fi
		if (($(now_ms) > deadline)); then
			log "error: $name: no answer after ${MARIADB_START_TIMEOUT}s"
			show_log_tail "$(mariadb_log "$name")"
			return 1
		fi
		sleep 0.1
	done
	if ! out=$(mariadb_bootstrap_sql | mariadb --defaults-file="$cnf" -N -B 2>&1); then
		log "error: $name: creating the accounts failed: $out"
		return 1
	fi
	local user
	for user in rowcast rowcast_reader rowcast_sink rowcast_admin; do
		if ! out=$(mariadb_tcp "$name" -u"$user" -p"$DB_PASSWORD" -N -B \
			-e 'SELECT CURRENT_USER()' 2>&1) || [[ $out != "$user@127.0.0.1" ]]; then
			log "error: $name: $user cannot log in over TCP: $out"
			return 1
		fi
	done
	mariadb_answers "$name" || { log "error: $name: root cannot log in over TCP"; return 1; }
}

mariadb_stop() {
	local name=$1 dir pid marker
	dir=$(mariadb_dir "$name")
	marker="--defaults-file=$dir/my.cnf"
	pid=$(mariadb_pid "$name") || return 0
	# Clean shutdown over the socket; SIGTERM (same effect) if the socket does not answer.
	if ! timeout "$MARIADB_STOP_TIMEOUT" mariadb-admin --defaults-file="$dir/my.cnf" \
		--connect-timeout=2 shutdown >/dev/null 2>&1; then
		stop_pid "$name" "$pid" "$marker" "$MARIADB_STOP_TIMEOUT"
	fi
	if ! wait_pid_gone "$pid" "$marker" "$MARIADB_STOP_TIMEOUT"; then
		stop_pid "$name" "$pid" "$marker" 5
	fi
	rm -f "$dir/mariadbd.pid"
}

mariadb_info() {
	local name=$1 port role=replica dir
	port=$(mariadb_port "$name")
	dir=$(mariadb_dir "$name")
	[[ $name != db1 ]] || role=master
	if mariadb_tls_only "$name"; then
		printf '%-10s %s, server_id %s\n' "$name" "MariaDB, TLS only, on 127.0.0.1:$port" "$(mariadb_server_id "$name")"
		printf '%-10s rowcast DSN: rowcast:%s@tcp(127.0.0.1:%s)/ with tls: {ca_file: %s}\n' '' "$DB_PASSWORD" "$port" "$(mariadb_ca "$name")"
		printf '%-10s root:        mariadb -h127.0.0.1 -P%s -uroot --ssl-ca=%s --ssl-verify-server-cert\n' '' "$port" "$(mariadb_ca "$name")"
		printf '%-10s socket %s, log %s\n' '' "$dir/mariadbd.sock" "$(mariadb_log "$name")"
		return
	fi
	printf '%-10s %s, server_id %s\n' "$name" "MariaDB $role on 127.0.0.1:$port" "$(mariadb_server_id "$name")"
	printf '%-10s rowcast DSN: rowcast:%s@tcp(127.0.0.1:%s)/\n' '' "$DB_PASSWORD" "$port"
	printf '%-10s root:        mariadb -h127.0.0.1 -P%s -uroot\n' '' "$port"
	printf '%-10s socket %s, log %s\n' '' "$dir/mariadbd.sock" "$(mariadb_log "$name")"
}
