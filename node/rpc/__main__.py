"""``python -m node.rpc markdown|openrpc``: print the RPC description (docs/rpc.md, or the OpenRPC JSON)."""

import sys

from node.rpc.spec import main

raise SystemExit(main(sys.argv[1:]))
