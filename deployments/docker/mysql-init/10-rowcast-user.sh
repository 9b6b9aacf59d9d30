# Creates rowcast's MySQL accounts. Mounted into /docker-entrypoint-initdb.d of
# every MySQL container (master and replicas alike: any node can be promoted),
# so the image's entrypoint runs it once, when the data directory is created.
#
# It is a .sh rather than a .sql file only to take the password from the
# environment (ROWCAST_DB_PASSWORD); the SQL below is all it does. Keep this
# file NOT executable: the entrypoint then sources it, which provides
# docker_process_sql (root over the init server's socket).

rowcast_init_user() {
	if ! declare -F docker_process_sql >/dev/null; then
		echo "10-rowcast-user.sh: must be sourced by the mysql image's entrypoint (make the file non-executable)" >&2
		return 1
	fi
	if [ -z "${ROWCAST_DB_PASSWORD:-}" ]; then
		echo "10-rowcast-user.sh: ROWCAST_DB_PASSWORD is not set" >&2
		return 1
	fi
	# Quote the password for a single-quoted SQL literal.
	local pw=${ROWCAST_DB_PASSWORD//\\/\\\\}
	pw=${pw//\'/\'\'}
	docker_process_sql --database=mysql <<-EOSQL
		-- Accounts are not replicated data: keep them out of the binlog, so
		-- rowcast never streams them and they add nothing to the node's GTID set.
		SET SESSION sql_log_bin = 0;
		CREATE USER 'rowcast'@'%' IDENTIFIED BY '${pw}';
		-- What rowcast needs on MySQL 8.4, on every node:
		--   REPLICATION SLAVE        stream the binlog (COM_BINLOG_DUMP_GTID)
		--   REPLICATION CLIENT       SHOW BINARY LOGS / BINARY LOG STATUS, SHOW REPLICA
		--                            STATUS: positions, retention, resume checks
		--   SELECT                   read tables; information_schema column types
		--   INSERT, UPDATE, DELETE   sink workers apply row changes on replicas
		--   CREATE, DROP, ALTER,     replay DDL on replicas; rowcast's own checkpoint
		--   INDEX, REFERENCES        tables in the bookkeeping schema
		--   CREATE TEMPORARY TABLES  staging tables for batched applies
		--   LOCK TABLES              consistent table snapshots
		--   SHOW VIEW, TRIGGER       replay views and triggers
		GRANT REPLICATION SLAVE, REPLICATION CLIENT,
		      SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES,
		      CREATE TEMPORARY TABLES, LOCK TABLES, SHOW VIEW, TRIGGER
		      ON *.* TO 'rowcast'@'%';
		-- Dynamic privileges:
		--   CONNECTION_ADMIN         write through read_only=ON on replicas; KILL other
		--                            users' sessions when fencing an old master
		--   SYSTEM_VARIABLES_ADMIN   SET GLOBAL read_only when protecting replicas,
		--                            fencing and promoting
		GRANT CONNECTION_ADMIN, SYSTEM_VARIABLES_ADMIN ON *.* TO 'rowcast'@'%';
		-- One account per job, which rowcast.yaml uses (docs/SECURITY.md, "Accounts"),
		-- the same password here. This stack replicates every database, so the
		-- sinks' data privileges are ON *.*; in production grant them on the
		-- replicated databases and the bookkeeping schema only.
		CREATE USER 'rowcast_reader'@'%' IDENTIFIED BY '${pw}';
		GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT, RELOAD ON *.* TO 'rowcast_reader'@'%';
		GRANT SELECT, INSERT, UPDATE, CREATE ON \`rowcast\`.* TO 'rowcast_reader'@'%';
		CREATE USER 'rowcast_sink'@'%' IDENTIFIED BY '${pw}';
		GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES,
		      CREATE TEMPORARY TABLES, LOCK TABLES, SHOW VIEW, TRIGGER
		      ON *.* TO 'rowcast_sink'@'%';
		GRANT CONNECTION_ADMIN, SYSTEM_VARIABLES_ADMIN ON *.* TO 'rowcast_sink'@'%';
		GRANT CREATE ROUTINE, ALTER ROUTINE ON \`rowcast\`.* TO 'rowcast_sink'@'%';
		CREATE USER 'rowcast_admin'@'%' IDENTIFIED BY '${pw}';
		GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'rowcast_admin'@'%';
		GRANT CONNECTION_ADMIN, SYSTEM_VARIABLES_ADMIN ON *.* TO 'rowcast_admin'@'%';
		GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX ON \`rowcast\`.* TO 'rowcast_admin'@'%';
	EOSQL
}

rowcast_init_user
