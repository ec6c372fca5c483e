"""Key files on disk: written 0600 and fsynced, refused when others can read them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from consensus.crypto import PrivateKey
from consensus.keystore import decode_keystore, encode_keystore
from node.errors import InvalidKeyFile


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 holding ``data``, durably; refuse to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise InvalidKeyFile(f"{path} already exists; refusing to overwrite a key") from exc
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_private_file(path: Path) -> bytes:
    """Return the contents of a key file after checking nobody else can read it."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise InvalidKeyFile(f"key file {path} does not exist (run `cstake init`)") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidKeyFile(
            f"key file {path} is readable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run `chmod 600 {path}`"
        )
    return path.read_bytes()


def save_keystore(path: Path, key: PrivateKey, passphrase: str | None) -> None:
    """Write ``key`` as a keystore file (encrypted unless ``passphrase`` is None)."""
    text = encode_keystore(key, passphrase, salt=os.urandom(16), nonce=os.urandom(12))
    write_private_file(path, text.encode("utf-8"))


def load_keystore(path: Path, passphrase: str | None) -> PrivateKey:
    """Read and decrypt a keystore file."""
    return decode_keystore(read_private_file(path).decode("utf-8"), passphrase)
