"""Test tooling shared by driftline's test suite (real Kafka broker, ...)."""
