"""Local stand-ins for external services (an SMTP sink, a webhook receiver) for demos,
tests and benchmarks. Real servers on loopback, not mocks."""
