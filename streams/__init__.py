"""streams: the processors (``windows``, ``labels``, ``alerts``, ``retrain_policy``), the topology
that wires them (``topology``), the two runtimes (``embedded``, ``kafka_runtime``), the store
(``store``) and the HTTP API (``api``). Processors never touch Kafka, HTTP or a database."""
