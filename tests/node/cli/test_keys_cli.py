"""``cstake keys add/list/show/export/import`` through the command line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from consensus.crypto import encode_address
from node.cli.main import main
from node.keyring import derive_key

ABANDON = "abandon " * 11 + "about"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_recover_list_show_export_import(tmp_path: Path, capsys, monkeypatch) -> None:
    home = str(tmp_path / "home")
    monkeypatch.setattr("sys.stdin", io.StringIO(ABANDON + "\n"))
    code, out, err = run(capsys, "keys", "add", "alice", "--recover", "--unencrypted", "--home", home, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["address"] == encode_address(derive_key(ABANDON).address()) and "mnemonic" not in doc
    code, out, _ = run(capsys, "--home", home, "keys", "list", "--json")
    assert code == 0 and [k["name"] for k in json.loads(out)] == ["alice"]
    code, out, _ = run(capsys, "keys", "show", "alice", "--home", home)
    assert code == 0 and doc["address"] in out
    code, out, _ = run(capsys, "keys", "export", "alice", "--home", home)
    assert code == 0 and json.loads(out)["pubkey"] == doc["pubkey"]
    (tmp_path / "alice.json").write_text(out)
    other = str(tmp_path / "other")
    code, out, err = run(capsys, "keys", "import", "a2", str(tmp_path / "alice.json"), "--home", other, "--json")
    assert code == 0 and json.loads(out)["address"] == doc["address"], err


def test_add_prints_new_words_once_and_they_recover_the_key(tmp_path: Path, capsys, monkeypatch) -> None:
    home = str(tmp_path / "home")
    monkeypatch.setenv("CSTAKE_PASSPHRASE", "pass phrase")
    code, out, err = run(capsys, "keys", "add", "bob", "--words", "12", "--home", home, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["mnemonic"].split()) == 12 and doc["encrypted"] is True
    assert encode_address(derive_key(doc["mnemonic"]).address()) == doc["address"]


def test_errors_are_one_line_and_change_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    home = str(tmp_path / "home")
    monkeypatch.setattr("sys.stdin", io.StringIO("not a mnemonic\n"))
    code, _, err = run(capsys, "keys", "add", "x", "--recover", "--unencrypted", "--home", home)
    assert code == 1 and err.startswith("error:") and "BIP-39" in err
    assert not (Path(home) / "keys" / "keyring" / "x.json").exists()
    code, _, err = run(capsys, "keys", "show", "ghost", "--home", home)
    assert code == 1 and "no key named 'ghost'" in err
