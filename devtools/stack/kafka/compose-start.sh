#!/bin/bash
# The Kafka container of docker-compose.yml: its storage is formatted with the SCRAM accounts
# of the platform's principals (accounts can be made only there, KIP-900), then the image's own
# launcher starts the broker from the KAFKA_* variables. The passwords come from the
# environment; this file holds none. The local stack does the same in devtools/stack/services.py.
set -euo pipefail
: "${CLUSTER_ID:?}" "${KAFKA_ADMIN_PASSWORD:?}" "${KAFKA_INGEST_PASSWORD:?}"
: "${KAFKA_WORKER_PASSWORD:?}" "${KAFKA_OPS_PASSWORD:?}"

umask 077
format=/tmp/format.properties
cat >"$format" <<PROPERTIES
process.roles=broker,controller
node.id=${KAFKA_NODE_ID}
controller.quorum.voters=${KAFKA_CONTROLLER_QUORUM_VOTERS}
controller.listener.names=CONTROLLER
listeners=${KAFKA_LISTENERS}
listener.security.protocol.map=${KAFKA_LISTENER_SECURITY_PROTOCOL_MAP}
inter.broker.listener.name=${KAFKA_INTER_BROKER_LISTENER_NAME}
log.dirs=${KAFKA_LOG_DIRS}
PROPERTIES
scram() { printf 'SCRAM-SHA-256=[name=%s,password=%s]' "$1" "$2"; }
/opt/kafka/bin/kafka-storage.sh format -t "$CLUSTER_ID" -c "$format" --ignore-formatted \
  --add-scram "$(scram ecowatch-admin "$KAFKA_ADMIN_PASSWORD")" \
  --add-scram "$(scram ecowatch-ingest "$KAFKA_INGEST_PASSWORD")" \
  --add-scram "$(scram ecowatch-worker "$KAFKA_WORKER_PASSWORD")" \
  --add-scram "$(scram ecowatch-ops "$KAFKA_OPS_PASSWORD")"
rm -f "$format"

# For the health check: the admin signs in like any client.
cat >/tmp/admin.properties <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="ecowatch-admin" password="${KAFKA_ADMIN_PASSWORD}";
PROPERTIES
unset KAFKA_INGEST_PASSWORD KAFKA_WORKER_PASSWORD KAFKA_OPS_PASSWORD KAFKA_ADMIN_PASSWORD
exec /etc/kafka/docker/run
