#!/usr/bin/env bash
# Topic ACLs for a rowcast changelog: who may write it, who may read it.
# docs/SECURITY.md, "Signed changelog", says why; the signatures hold whatever the ACLs allow,
# and the ACLs keep a stray writer from filling the topic (and the sinks' skip tables) at all.
#
#   deployments/kafka-acls.sh [--dry-run]
#
# Principals (one per role; with SASL they are the users, with mTLS the certificates' names):
#   ROWCAST_WRITER_PRINCIPAL   rowcast pipeline / rowcast run (the reader; also promotes in
#                              failover.mode auto)             default User:rowcast-pipeline
#   ROWCAST_PROMOTE_PRINCIPAL  whoever runs `rowcast promote`   default User:rowcast-promote
#   ROWCAST_READER_PRINCIPALS  sinks, status, replay, verify, rejoin, tail (space separated)
#                                                               default User:rowcast-sink
# and the cluster: KAFKA_BOOTSTRAP (default 127.0.0.1:9092), ROWCAST_TOPIC (default
# rowcast.local.changelog), KAFKA_ACLS (default kafka-acls.sh on PATH), KAFKA_ADMIN_CONFIG (a
# --command-config file for an admin principal, when the cluster needs one).
#
# The brokers need an authorizer (KRaft: authorizer.class.name=
# org.apache.kafka.metadata.authorizer.StandardAuthorizer) and allow.everyone.if.no.acl.found=false,
# or these ACLs restrict nothing. rowcast uses no consumer group: readers need no group ACL.
set -euo pipefail

bootstrap=${KAFKA_BOOTSTRAP:-127.0.0.1:9092}
topic=${ROWCAST_TOPIC:-rowcast.local.changelog}
acls=${KAFKA_ACLS:-kafka-acls.sh}
writer=${ROWCAST_WRITER_PRINCIPAL:-User:rowcast-pipeline}
promote=${ROWCAST_PROMOTE_PRINCIPAL:-User:rowcast-promote}
read -r -a readers <<<"${ROWCAST_READER_PRINCIPALS:-User:rowcast-sink}"

run() {
	local cmd=("$acls" --bootstrap-server "$bootstrap")
	[[ -n ${KAFKA_ADMIN_CONFIG:-} ]] && cmd+=(--command-config "$KAFKA_ADMIN_CONFIG")
	cmd+=("$@")
	if [[ ${DRY_RUN:-} == 1 ]]; then
		printf '%q ' "${cmd[@]}"
		printf '\n'
	else
		"${cmd[@]}"
	fi
}

[[ ${1:-} == --dry-run ]] && DRY_RUN=1

# Writers: the reader and promote produce (WRITE), and read the topic back (READ: the resume
# walk, epoch records, the promotion's checks) and its settings (DESCRIBE, DESCRIBE_CONFIGS:
# rowcast checks min.insync.replicas and the rest at every start).
for p in "$writer" "$promote"; do
	run --add --allow-principal "$p" --operation WRITE --operation READ --operation DESCRIBE \
		--operation DESCRIBE_CONFIGS --topic "$topic"
done
# The reader creates the topic when it is missing; create it beforehand instead to leave this out.
run --add --allow-principal "$writer" --operation CREATE --topic "$topic"

# Readers: everything else only reads.
for p in "${readers[@]}"; do
	run --add --allow-principal "$p" --operation READ --operation DESCRIBE --operation DESCRIBE_CONFIGS \
		--topic "$topic"
done

# Nobody else gets WRITE: with allow.everyone.if.no.acl.found=false, principals without an
# ALLOW are refused. (A DENY for User:* would deny the writers too: DENY wins in Kafka.)
