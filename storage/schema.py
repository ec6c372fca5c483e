"""Every storage key is built here, and nowhere else.

Each key starts with the schema version byte, then a one-byte family tag.
Heights are fixed-width unsigned 64-bit big-endian so that LevelDB's bytewise
order is height order and range scans walk heights in sequence.

| family | key                                  | value                                      |
| ------ | ------------------------------------ | ------------------------------------------ |
| meta   | V "m" name                           | schema version, head, earliest, tree root  |
| block  | V "b" height                         | encoded block bytes                        |
| bhash  | V "k" height                         | block hash (32 bytes)                      |
| height | V "h" block hash                     | height (u64 BE)                            |
| commit | V "c" height                         | encoded commit bytes                       |
| root   | V "r" height                         | state root after that height (32 bytes)    |
| txlist | V "x" height                         | the height's tx hashes, concatenated       |
| tx     | V "t" tx hash                        | canonical msgpack [height, index, code, log] |
| state  | V "s" logical key                    | value bytes (owned by consensus)           |
| node   | V "n" depth(1 byte) packed prefix    | trie page (even depth), lone branch (odd)  |

The address index (storage/tx_index.py) lives in its own database (data/txindex),
rebuilt from the blocks when behind, so the block store's atomic height write
stays as it is:

| family  | key                                          | value                      |
| ------- | -------------------------------------------- | -------------------------- |
| meta    | V "m" "indexed"                              | last indexed height (u64)  |
| addrtx  | V "a" address(20) height(u64) index(u32 BE)  | tx hash (32 bytes)         |
"""

from __future__ import annotations

import struct

#: Bumped whenever the meaning or layout of any key or value changes.
SCHEMA_VERSION = 1
VERSION_PREFIX = bytes((SCHEMA_VERSION,))

HEIGHT_LEN = 8
MAX_HEIGHT = (1 << 64) - 1
HASH_LEN = 32

_META = VERSION_PREFIX + b"m"
BLOCK_PREFIX = VERSION_PREFIX + b"b"
BLOCK_HASH_PREFIX = VERSION_PREFIX + b"k"
HEIGHT_BY_HASH_PREFIX = VERSION_PREFIX + b"h"
COMMIT_PREFIX = VERSION_PREFIX + b"c"
ROOT_PREFIX = VERSION_PREFIX + b"r"
TX_PREFIX = VERSION_PREFIX + b"t"
TX_LIST_PREFIX = VERSION_PREFIX + b"x"
STATE_PREFIX = VERSION_PREFIX + b"s"
NODE_PREFIX = VERSION_PREFIX + b"n"
ADDR_TX_PREFIX = VERSION_PREFIX + b"a"
ADDRESS_LEN = 20

#: The schema version this data directory was written with (one byte).
SCHEMA_KEY = b"\x00schema"  # deliberately outside every version prefix: readable by any version
HEAD_KEY = _META + b"head"
EARLIEST_KEY = _META + b"earliest"
TREE_ROOT_KEY = _META + b"tree_root"
INDEXED_HEIGHT_KEY = _META + b"indexed"

_U64 = struct.Struct(">Q")


def encode_height(height: int) -> bytes:
    """Return ``height`` as 8 bytes big-endian (range-checked)."""
    if not 0 <= height <= MAX_HEIGHT:
        raise ValueError(f"height {height} is outside 0..2^64-1")
    return _U64.pack(height)


def decode_height(data: bytes) -> int:
    """Return the height stored as 8 bytes big-endian."""
    if len(data) != HEIGHT_LEN:
        raise ValueError(f"a stored height is {len(data)} bytes, expected {HEIGHT_LEN}")
    return int(_U64.unpack(data)[0])


def block_key(height: int) -> bytes:
    return BLOCK_PREFIX + encode_height(height)


def block_hash_key(height: int) -> bytes:
    return BLOCK_HASH_PREFIX + encode_height(height)


def height_by_hash_key(block_hash: bytes) -> bytes:
    return HEIGHT_BY_HASH_PREFIX + block_hash


def commit_key(height: int) -> bytes:
    return COMMIT_PREFIX + encode_height(height)


def root_key(height: int) -> bytes:
    return ROOT_PREFIX + encode_height(height)


def tx_list_key(height: int) -> bytes:
    return TX_LIST_PREFIX + encode_height(height)


def tx_key(tx_hash: bytes) -> bytes:
    return TX_PREFIX + tx_hash


def state_key(key: bytes) -> bytes:
    return STATE_PREFIX + key


def node_key(depth: int, key_hash: bytes) -> bytes:
    """Return the key of the trie branch at ``depth`` nibbles on ``key_hash``'s path.

    The prefix is packed two nibbles a byte; with an odd depth the unused low
    nibble of the last byte is zeroed, and the depth byte keeps packings of
    different depths apart.
    """
    packed = key_hash[: (depth + 1) >> 1]
    if depth & 1:
        packed = packed[:-1] + bytes((packed[-1] & 0xF0,))
    return NODE_PREFIX + bytes((depth,)) + packed


def addr_tx_prefix(address: bytes) -> bytes:
    """The address index's prefix of every entry of ``address`` (20 bytes)."""
    if len(address) != ADDRESS_LEN:
        raise ValueError(f"an address is {ADDRESS_LEN} bytes, got {len(address)}")
    return ADDR_TX_PREFIX + address


def addr_tx_key(address: bytes, height: int, index: int) -> bytes:
    """The address index's key of the ``index``-th tx of ``height`` concerning ``address``."""
    if not 0 <= index < 1 << 32:
        raise ValueError(f"tx index {index} is outside 0..2^32-1")
    return addr_tx_prefix(address) + encode_height(height) + index.to_bytes(4, "big")


def decode_addr_tx_key(key: bytes) -> tuple[int, int]:
    """(height, index) of an address index key."""
    tail = key[len(ADDR_TX_PREFIX) + ADDRESS_LEN :]
    if len(tail) != HEIGHT_LEN + 4:
        raise ValueError(f"an address index key has a {len(tail)}-byte tail, expected {HEIGHT_LEN + 4}")
    return decode_height(tail[:HEIGHT_LEN]), int.from_bytes(tail[HEIGHT_LEN:], "big")
