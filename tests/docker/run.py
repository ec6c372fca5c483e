"""``make test-docker``: the root docker-compose.yml devnet, run for real on a local Docker engine.

Steps (each a check printed ``ok`` or ``FAIL``; the last line counts them):

1. The engine: use a running one, else (as root) install Debian's ``docker.io``,
   ``docker-compose`` (v1.29) and ``debootstrap`` when missing and start
   ``dockerd`` (no iptables; overlay2, else vfs), remembering its pid.
2. A base image: ``CSTAKE_BASE_IMAGE`` if set, else ``cstake-base:bookworm``,
   built once with debootstrap from the machine's Debian mirror and kept by
   name, so a second run reuses it (no image registry is reachable here).
3. The project's image (``docker-compose build``, the build steps on the host
   network with the host's extra certificate authorities); its size and user.
4. ``docker-compose up``: four nodes commit identical blocks; the time to the
   first block is reported.
5. A partition: node3 is cut off with ``docker network disconnect`` for 20 s;
   the other three keep committing, node3 does not; reconnected, it catches up
   on the same chain.
6. ``--profile joiner``: a fifth validator joins, enters the active set and
   proposes and signs blocks.
7. ``docker-compose down -v`` always, and the engine this run started is
   stopped (that pid only).

Without root (or off Linux) nothing can run: it says so and exits 0.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
PROJECT = "cstake-dockertest"
"""The compose project name: every container, network and volume of this run carries it."""
BASE_IMAGE = "cstake-base:bookworm"
NODES = 4
PARTITION_S = 20.0
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
T = TypeVar("T")


class DockerTestError(Exception):
    """A step could not be carried out (the engine, a build, a timeout)."""


class EngineUnavailable(DockerTestError):
    """This machine cannot run a Docker engine (not installable, or dockerd cannot start): a skip."""


# --- processes and output -------------------------------------------------------------------


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def run(*args: str, timeout: float = 600.0, env: dict[str, str] | None = None, check: bool = True,
        capture: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), cwd=REPO, env=env, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL, capture_output=capture)
    if check and proc.returncode != 0:
        tail = (proc.stderr or "")[-3000:] if capture else ""
        raise DockerTestError(f"{' '.join(args[:4])} ... exited {proc.returncode}: {tail}")
    return proc


def wait_for(get: Callable[[], T | None], timeout: float, what: str, interval: float = 1.0) -> T:
    """Call ``get`` until it returns something other than None (errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last_error = ""
    errors = tries = 0
    error_at = 0.0
    while time.monotonic() < deadline:
        tries += 1
        try:
            value = get()
        except (OSError, ValueError, KeyError, DockerTestError) as exc:
            errors += 1
            last_error, error_at = str(exc), time.monotonic()
        else:
            if value is not None:
                return value
        time.sleep(interval)
    # An error of the first seconds (a node's RPC not listening yet) is no cause of a later timeout:
    # say how old the last one is, and how many of the tries failed.
    detail = (f" (last error {time.monotonic() - error_at:.0f} s ago: {last_error}; {errors} of {tries} tries "
              "failed)" if errors else f" ({tries} tries, none failed)")
    raise DockerTestError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")


class Checks:
    """Named checks: each prints ok or FAIL with its detail; the run fails if any failed."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        log(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
        return ok


# --- the engine -----------------------------------------------------------------------------


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return run("docker", "info", timeout=30, check=False).returncode == 0


def install_engine() -> None:
    wanted = [("dockerd", "docker.io"), ("docker-compose", "docker-compose"), ("debootstrap", "debootstrap")]
    missing = [pkg for tool, pkg in wanted if shutil.which(tool) is None]
    if missing:
        log(f"installing {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            run("apt-get", "update", "-qq", env=env, timeout=600)
            run("apt-get", "install", "-y", "-qq", *missing, env=env, timeout=600)
        except (DockerTestError, OSError, subprocess.TimeoutExpired) as exc:
            raise EngineUnavailable(f"could not install {' '.join(missing)}: {exc}") from exc


@contextmanager
def engine() -> Iterator[int | None]:
    """A Docker engine for the run: a running one (None), or one started here (its pid), stopped after."""
    if engine_answers():
        log("using the running Docker engine")
        yield None
        return
    install_engine()
    proc: subprocess.Popen[bytes] | None = None
    log_file = open(Path(os.environ.get("TMPDIR", "/tmp")) / "cstake-dockerd.log", "ab")  # noqa: SIM115
    try:
        for driver in ("overlay2", "vfs"):
            proc = subprocess.Popen(
                ["dockerd", "--iptables=false", "--ip-masq=false", f"--storage-driver={driver}"],
                stdout=log_file, stderr=log_file, stdin=subprocess.DEVNULL, start_new_session=True,
            )
            try:
                wait_for(lambda: True if engine_answers() else None, 60, f"dockerd ({driver})")
                log(f"started dockerd (pid {proc.pid}, storage driver {driver})")
                break
            except DockerTestError:
                stop_pid(proc)
                proc = None
        if proc is None:
            raise EngineUnavailable("dockerd did not start with overlay2 nor vfs (see cstake-dockerd.log)")
        yield proc.pid
    finally:
        if proc is not None:
            stop_pid(proc)
            log(f"stopped dockerd (pid {proc.pid})")
        log_file.close()


def stop_pid(proc: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """Stop the process this run started, by its pid only."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# --- images ---------------------------------------------------------------------------------


def image_exists(name: str) -> bool:
    return run("docker", "image", "inspect", name, check=False, timeout=30).returncode == 0


def debian_mirror() -> str:
    """The machine's Debian mirror, from its apt sources (deb822 or one-line form)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"]:
                urls = [w for w in words[1:] if "://" in w]
                if urls and "security" not in urls[0]:
                    return urls[0]
    return "http://deb.debian.org/debian"


def build_base_image() -> str:
    """A local Debian base image (kept by name between runs), unless CSTAKE_BASE_IMAGE names one."""
    given = os.environ.get("CSTAKE_BASE_IMAGE")
    if given:
        return given
    if image_exists(BASE_IMAGE):
        log(f"base image {BASE_IMAGE} is cached")
        return BASE_IMAGE
    rootfs = Path(os.environ.get("TMPDIR", "/tmp")) / f"cstake-rootfs-{os.getpid()}"
    try:
        log(f"debootstrap bookworm from {debian_mirror()}")
        run("debootstrap", "--variant=minbase",
            "--include=python3,python3-venv,python3-pip,libgmp10,ca-certificates",
            "bookworm", str(rootfs), debian_mirror(), timeout=900)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", BASE_IMAGE], stdin=tar.stdout, capture_output=True,
                                  text=True, timeout=600, check=False)
        if tar.stdout is not None:
            tar.stdout.close()
        tar.wait(timeout=60)
        if imported.returncode != 0:
            raise DockerTestError(f"docker import failed: {imported.stderr}")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return BASE_IMAGE


def compose_env(base: str) -> dict[str, str]:
    """The build settings of docker-compose.yml: the base, the host network, the host's extra CAs."""
    extra = "".join(p.read_text() for p in sorted(EXTRA_CA_DIR.glob("*.crt"))) if EXTRA_CA_DIR.is_dir() else ""
    return {**os.environ, "CSTAKE_BASE_IMAGE": base, "CSTAKE_BUILD_NETWORK": "host",
            "CSTAKE_EXTRA_CA_CERTS": extra}


def compose(env: dict[str, str], *args: str, timeout: float = 600.0, check: bool = True,
            capture: bool = True) -> subprocess.CompletedProcess[str]:
    return run("docker-compose", "-p", PROJECT, "--profile", "joiner", *args, env=env, timeout=timeout,
               check=check, capture=capture)


# --- the chain, over RPC ----------------------------------------------------------------------


def rpc_url(i: int) -> str:
    return f"http://127.0.0.1:{26657 + 10 * i}"


def rpc(url: str, method: str, params: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        answer = json.loads(resp.read())
    if "error" in answer:
        raise DockerTestError(f"{method}: {answer['error']}")
    return answer["result"]


def container(name: str) -> str:
    return f"{PROJECT}_{name}_1"


def exec_rpc(name: str, method: str, params: dict[str, Any] | None = None) -> Any:
    """RPC from inside a container (works while it is cut off from every network)."""
    code = ("import json, sys, urllib.request as u; r = u.Request('http://127.0.0.1:26657', "
            "data=sys.argv[1].encode(), headers={'Content-Type': 'application/json'}); "
            "print(u.urlopen(r, timeout=5).read().decode())")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}})
    out = run("docker", "exec", container(name), "python3", "-c", code, body, timeout=30)
    return json.loads(out.stdout)["result"]


def height(i: int) -> int:
    return int(rpc(rpc_url(i), "status")["latest_height"])


def heights() -> list[int]:
    return [height(i) for i in range(NODES)]


def block_hash(url: str, h: int) -> str:
    return str(rpc(url, "block", {"height": h})["hash"])


def same_blocks(urls: list[str], top: int) -> list[int]:
    """Heights in 1..top where the nodes' block hashes differ (empty: one chain)."""
    return [h for h in range(1, top + 1) if len({block_hash(u, h) for u in urls}) != 1]


# --- the steps ------------------------------------------------------------------------------


def check_image(checks: Checks, times: dict[str, float]) -> None:
    size = int(run("docker", "image", "inspect", "cstake:dev", "--format", "{{.Size}}").stdout.strip())
    times["image_mb"] = round(size / 1e6, 1)
    user = run("docker", "run", "--rm", "--entrypoint", "id", "cstake:dev", "-u").stdout.strip()
    checks.check("the image runs as a non-root user", user == "10001", f"uid {user}")
    compiler = run("docker", "run", "--rm", "--entrypoint", "sh", "cstake:dev", "-c",
                   "command -v gcc cc || true").stdout.strip()
    checks.check("the image has no compiler", compiler == "", compiler)
    checks.check("the image is small", size < 600e6, f"{size / 1e6:.0f} MB")


def check_devnet(checks: Checks, times: dict[str, float]) -> None:
    started = time.monotonic()
    wait_for(lambda: True if min(heights()) >= 1 else None, 240, "every node's first block")
    times["up_to_first_block_s"] = round(time.monotonic() - started, 1)
    target = max(heights()) + 5
    wait_for(lambda: True if min(heights()) >= target else None, 120, f"every node at height {target}")
    diverged = same_blocks([rpc_url(i) for i in range(NODES)], target)
    checks.check(f"{NODES} nodes commit identical blocks 1..{target}", diverged == [],
                 f"differ at {diverged}" if diverged else "")
    health = []
    for i in range(NODES):
        with urllib.request.urlopen(rpc_url(i) + "/health", timeout=5) as resp:
            health.append(resp.status)
    checks.check("every node's /health answers 200", health == [200] * NODES, str(health))


def check_partition(checks: Checks, env: dict[str, str]) -> None:
    network = f"{PROJECT}_devnet"
    victim = container("node3")
    others = [rpc_url(i) for i in range(3)]
    before = [height(i) for i in range(3)]
    cut_at = int(exec_rpc("node3", "status")["latest_height"])
    run("docker", "network", "disconnect", network, victim)
    try:
        time.sleep(PARTITION_S)
        during = [height(i) for i in range(3)]
        isolated = int(exec_rpc("node3", "status")["latest_height"])
    finally:
        run("docker", "network", "connect", "--ip", "172.28.0.13", network, victim)
    progressed = min(d - b for d, b in zip(during, before, strict=True))
    checks.check("the three connected nodes keep committing while node3 is cut off", progressed >= 3,
                 f"heights {before} -> {during}")
    checks.check("node3 commits nothing while cut off", isolated <= cut_at + 1, f"{cut_at} -> {isolated}")
    target = max(during) + 2
    wait_for(lambda: True if height(3) >= target else None, 120, f"node3 catching up to height {target}")
    diverged = same_blocks([*others, rpc_url(3)], target)
    checks.check(f"node3 caught up on the same chain (height {target})", diverged == [],
                 f"differ at {diverged}" if diverged else "")


def check_joiner(checks: Checks, env: dict[str, str], times: dict[str, float]) -> None:
    started = time.monotonic()
    compose(env, "up", "-d", "joiner", timeout=300)

    def joined() -> str | None:
        out = run("docker", "logs", container("joiner"), check=False, timeout=30)
        for line in (out.stdout + out.stderr).splitlines():
            if line.startswith("joined: validator "):
                return line.split()[2]
        if run("docker", "inspect", "-f", "{{.State.Running}}", container("joiner")).stdout.strip() != "true":
            raise DockerTestError("the joiner container exited:\n" + (out.stdout + out.stderr)[-3000:])
        return None

    address = wait_for(joined, 300, "the joiner's transactions (create-validator, register-compute, bind-nft)",
                       interval=2.0)
    checks.check("the joiner created its validator and bound its own NFT", address.startswith("cs1"), address)
    url = rpc_url(4)

    def active_power() -> int | None:
        rows = rpc(url, "validators")["validators"]
        power = next((v["voting_power"] for v in rows if v["address"] == address), 0)
        return int(power) if power > 0 else None

    epoch = int(rpc(url, "params")["epoch_blocks"])
    power = wait_for(active_power, 420, "the joiner in the active set (its NFT proven, then the next epoch)",
                     interval=2.0)
    times["join_to_active_s"] = round(time.monotonic() - started, 1)
    checks.check("the fifth validator is in the active set", power > 0, f"voting power {power}, epoch {epoch}")
    since = height(0)

    def proposed_and_signed() -> tuple[int, int] | None:
        top = height(0)
        proposed = signed = 0
        for h in range(since, top + 1):
            b = rpc(rpc_url(0), "block", {"height": h})
            proposed = proposed or (h if b["header"]["proposer"] == address else 0)
            sigs = {s["validator"] for s in b["last_commit"]["signatures"]}
            signed = signed or (h if address in sigs else 0)
        return (proposed, signed) if proposed and signed else None

    proposed, signed = wait_for(proposed_and_signed, 180, "a block proposed and a commit signed by the joiner",
                                interval=3.0)
    checks.check("the fifth validator proposes and signs blocks", True,
                 f"proposed height {proposed}, signed the commit in height {signed}")


def exec_get(name: str, path: str) -> str:
    """GET ``path`` on a container's own RPC port, from inside it (no docker-proxy in the way)."""
    code = ("import sys, urllib.request as u\n"
            "try:\n    print(u.urlopen('http://127.0.0.1:26657' + sys.argv[1], timeout=5).read().decode())\n"
            "except Exception as e:\n    print(getattr(e, 'read', lambda: b'')().decode() or repr(e))")
    out = run("docker", "exec", container(name), "python3", "-c", code, path, timeout=30, check=False)
    return out.stdout + out.stderr


def save_evidence(names: list[str], why: str) -> Path:
    """Keep what a failed step leaves behind, before ``down -v`` removes it; return the folder.

    For each container: its whole ``docker logs`` (with the engine's timestamps),
    ``docker inspect``, and from inside it (no docker-proxy in the way) the
    RPC's ``status`` and ``net_info``, ``/health`` and ``/metrics``; the log
    file each node keeps in the volume (``/devnet/<node>/logs``) and its
    consensus WAL (``<node>.cs.wal``: the inputs of the height it was
    deciding); ``docker ps -a``; and ``why``.
    """
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"cstake-docker-logs-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "why.txt").write_text(why + "\n")
    ps = run("docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}", check=False,
             timeout=30)
    (folder / "ps.txt").write_text(ps.stdout + ps.stderr)
    for name in names:
        c = container(name)
        try:
            out = run("docker", "logs", "--timestamps", c, check=False, timeout=60)
            (folder / f"{name}.log").write_text(out.stdout + out.stderr)
            out = run("docker", "inspect", c, check=False, timeout=30)
            (folder / f"{name}.inspect.json").write_text(out.stdout + out.stderr)
            if name == "init":
                continue
            parts = []
            for method in ("status", "net_info"):
                try:
                    parts.append(f"== {method}\n{json.dumps(exec_rpc(name, method), indent=1)}")
                except (DockerTestError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as exc:
                    parts.append(f"== {method}\nfailed: {exc}")
            for path in ("/health", "/metrics"):
                parts.append(f"== GET {path}\n{exec_get(name, path)}")
            (folder / f"{name}.rpc.txt").write_text("\n".join(parts))
            home = "/devnet/joiner" if name == "joiner" else f"/devnet/{name}"
            out = run("docker", "exec", c, "sh", "-c", f"cat {home}/logs/node.log 2>/dev/null | tail -c 20000000",
                      check=False, timeout=60)
            if out.stdout:
                (folder / f"{name}.node.jsonl").write_text(out.stdout)
            # The consensus WAL of the height being decided: every input the driver took, in order
            # (read it with node.engine.wal.WriteAheadLog and node.engine.inputs.decode_input).
            run("docker", "cp", f"{c}:{home}/data/cs.wal", str(folder / f"{name}.cs.wal"), check=False, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            (folder / f"{name}.error.txt").write_text(repr(exc))
    log(f"evidence of the failure saved in {folder}")
    return folder


def show_logs(names: list[str]) -> None:
    for name in names:
        out = run("docker", "logs", "--tail", "15", container(name), check=False, timeout=30)
        log(f"--- {name} (last lines) ---\n{(out.stdout + out.stderr)[-2500:]}")


def main() -> int:
    if sys.platform != "linux" or os.geteuid() != 0:
        print("test-docker: skipped: it installs and starts a Docker engine, which needs root on Linux")
        return 0
    checks = Checks()
    times: dict[str, float] = {}
    all_names = ["init", *[f"node{i}" for i in range(NODES)], "joiner"]
    began = time.monotonic()
    try:
        with engine():
            t = time.monotonic()
            base = build_base_image()
            times["base_image_s"] = round(time.monotonic() - t, 1)
            env = compose_env(base)
            config = compose(env, "config", "-q", check=False)
            checks.check("docker-compose config accepts docker-compose.yml", config.returncode == 0, config.stderr)
            compose(env, "down", "-v", "--remove-orphans", check=False, timeout=120)  # a previous run's leftovers
            try:
                t = time.monotonic()
                compose(env, "build", timeout=1800)
                times["build_s"] = round(time.monotonic() - t, 1)
                check_image(checks, times)
                compose(env, "up", "-d", *[f"node{i}" for i in range(NODES)], timeout=300)
                check_devnet(checks, times)
                # The joiner needs only a live chain: a failed partition step does not skip it.
                steps: list[tuple[str, Callable[[], None], list[str]]] = [
                    ("the partition of node3", lambda: check_partition(checks, env), ["node3"]),
                    ("the joining validator", lambda: check_joiner(checks, env, times), ["node0", "joiner"]),
                ]
                for what, step, names in steps:
                    try:
                        step()
                    except DockerTestError as exc:
                        checks.check(what, False, str(exc))
                        save_evidence(all_names, f"{what}: {exc}")
                        show_logs(names)
            except DockerTestError as exc:
                checks.check("the docker devnet run", False, str(exc))
                save_evidence(all_names, f"the docker devnet run: {exc}")
                show_logs(["init", *[f"node{i}" for i in range(NODES)]])
            finally:
                down = compose(env, "down", "-v", "--remove-orphans", check=False, timeout=300)
                checks.check("docker-compose down -v", down.returncode == 0,
                             "" if down.returncode == 0 else down.stderr[-500:])
    except EngineUnavailable as exc:
        # The machine does not allow it (no package, no privileges for dockerd): said, not failed.
        print(f"test-docker: skipped: this machine cannot run a Docker engine: {exc}")
        return 0
    except DockerTestError as exc:
        checks.check("the Docker engine and images", False, str(exc))
    times["total_s"] = round(time.monotonic() - began, 1)
    log("figures: " + json.dumps(times))
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
