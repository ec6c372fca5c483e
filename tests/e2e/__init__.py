"""Multi-process end-to-end tests: real nodes on 127.0.0.1, checked through the CLI and RPC only."""
