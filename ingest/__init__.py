"""Protocol edges: what any transport admits (the contract, pure, with validation), the MQTT
bridge and command relay (mqtt/), and HJ 212 over TCP (hj212/). Each validates, normalises
and produces to Kafka; what it cannot take goes to the dead-letter topic with its reason."""
