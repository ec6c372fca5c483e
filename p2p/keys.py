"""The node's peer key: an Ed25519 seed in a 0600 file, so the peer id survives restarts.

The file holds exactly the 32-byte private seed. It is created with mode
0600 if absent (atomically: written to a temporary name, then renamed), and
refused if group or others may read or write it, or if it is not 32 bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from consensus.crypto import PrivateKey
from p2p.errors import KeyFileError

SEED_LEN = 32


def load_or_create_peer_key(path: str | os.PathLike[str]) -> bytes:
    """Return the 32-byte peer key seed at ``path``, creating the file (0600) if absent."""
    p = Path(path)
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        seed = PrivateKey.generate().seed()
        tmp = p.with_name(p.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, seed)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
        return seed
    return load_peer_key(p)


def load_peer_key(path: str | os.PathLike[str]) -> bytes:
    """Return the seed in an existing key file, refusing unsafe modes and bad sizes."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise KeyFileError(f"cannot read peer key {p}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"peer key {p} is not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"peer key {p} has mode {stat.S_IMODE(st.st_mode):04o}; group/other must have no access (chmod 600)"
        )
    seed = p.read_bytes()
    if len(seed) != SEED_LEN:
        raise KeyFileError(f"peer key {p} holds {len(seed)} bytes, not a {SEED_LEN}-byte Ed25519 seed")
    return seed


def peer_id_from_seed(seed: bytes) -> str:
    """Return the libp2p peer id (``12D3KooW...``) of an Ed25519 seed."""
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    return str(ID.from_pubkey(create_new_key_pair(seed).public_key))
