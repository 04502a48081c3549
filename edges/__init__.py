"""The shared edges every layer above talks through: Kafka (producer, consumers, topics, the
clients' SCRAM access), private files (0600, outside git), hashed tokens, and the one-line
outage report of a service that is down. Below the configuration; above the kernel."""
