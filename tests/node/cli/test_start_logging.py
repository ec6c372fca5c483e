"""``cstake start`` writes its log where config.toml's ``[log] file`` says, relative to the home.

The setting once resolved against the home in node/config.py but against the
working directory in the start command; both now use ``NodeConfig.log_file``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from node.cli.lifecycle import load_start_settings
from node.config import default_config, parse_config, write_config
from node.errors import CommandError

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _set_log_file(config_file: Path, value: str) -> None:
    text = config_file.read_text()
    assert 'file = ""' in text
    config_file.write_text(text.replace('file = ""', f'file = "{value}"', 1))


def test_load_start_settings_resolves_the_log_file_against_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    write_config(home / "config.toml", default_config("n"))
    _set_log_file(home / "config.toml", "custom.log")
    monkeypatch.chdir(elsewhere)
    for home_arg in (str(home), "../home"):
        settings = load_start_settings(home_arg)
        assert settings.log_file == home.resolve() / "custom.log"
        assert settings.log_file == settings.config.log_file(home)
        assert settings.home.root == home.resolve()


def test_load_start_settings_defaults_to_logs_node_log(tmp_path: Path) -> None:
    write_config(tmp_path / "config.toml", parse_config({"node": {"logs_dir": "var/log"}}))
    assert load_start_settings(str(tmp_path)).log_file == tmp_path.resolve() / "var" / "log" / "node.log"


def test_invalid_load_start_settings_names_the_config(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"^config: cannot read config file .*config\.toml"):
        load_start_settings(str(tmp_path))


def _run_until_healthy(proc: subprocess.Popen[bytes], rpc_port: int) -> tuple[bytes, bytes]:
    """Wait for /health on ``rpc_port``, stop the node with SIGTERM; return (stdout, stderr). Kills it on failure."""
    try:
        deadline = time.monotonic() + 60
        healthy = False
        while time.monotonic() < deadline and not healthy and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{rpc_port}/health", timeout=2) as resp:
                    healthy = resp.status == 200
            except OSError:
                time.sleep(0.3)
        assert healthy, f"the node never became healthy on port {rpc_port} (exit {proc.poll()})"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        return out, err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.mark.multiprocess
def test_start_from_another_directory_logs_into_the_home(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "node.cli.main"]
    rpc_port, p2p_port = _free_port(), _free_port()
    subprocess.run(
        [*cli, "init", "--home", str(home), "--unencrypted", "--rpc-port", str(rpc_port),
         "--p2p-port", str(p2p_port)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    _set_log_file(home / "config.toml", "custom.log")
    proc = subprocess.Popen(
        [*cli, "start", "--home", "../home"], cwd=elsewhere, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    _run_until_healthy(proc, rpc_port)
    assert not (elsewhere / "custom.log").exists(), "the log went to the working directory"
    log = home / "custom.log"
    assert log.exists(), "no log file in the home"
    assert "node stopped" in log.read_text()


@pytest.mark.multiprocess
def test_start_with_env_override_and_json_logs_on_stdout(tmp_path: Path) -> None:
    """CSTAKE_RPC_LISTEN moves the RPC; --log-format json writes JSON lines (with start-up fields) to stdout."""
    import json

    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "node.cli.main"]
    written_port, env_port, p2p_port = _free_port(), _free_port(), _free_port()
    subprocess.run(
        [*cli, "init", "--home", str(home), "--unencrypted", "--rpc-port", str(written_port),
         "--p2p-port", str(p2p_port)],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    text = (home / "config.toml").read_text()
    assert "# Human name of this node" in text, "init did not write the commented template"
    proc = subprocess.Popen(
        [*cli, "start", "--home", str(home), "--log-format", "json"],
        env={**env, "CSTAKE_RPC_LISTEN": f"127.0.0.1:{env_port}"}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    out, _ = _run_until_healthy(proc, env_port)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "msg"} <= set(d) for d in lines)
    assert any(d.get("rpc") == f"http://127.0.0.1:{env_port}" for d in lines), "no start-up line naming the RPC"
    assert any("chain_id" in d and "version" in d for d in lines)
