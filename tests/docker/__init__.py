"""The docker devnet, run for real: ``make test-docker`` (``python -m tests.docker``)."""
