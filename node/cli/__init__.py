"""The ``cstake`` command line: one module per command group, assembled by node/cli/main.py.

common.py holds what every command shares and imports no other command
module; the command modules import common.py and never each other. Nothing
is imported here, so ``import node.cli.common`` (as the load generator does)
loads no command.
"""
