"""A small JSON-RPC 2.0 client for the node's RPC (aiohttp), with timeouts and clear errors.

Failures are ``node.errors.RPCClientError``: ``NodeUnreachable`` when nothing
answers, ``RPCCallError`` (with the method, code, message and data) when the
node answers with a JSON-RPC error.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from typing import Any

import aiohttp

from node.errors import NodeUnreachable, ProofError, RPCCallError, RPCClientError


def normalise_url(url: str) -> str:
    """Return ``url`` with a scheme (``127.0.0.1:26657`` -> ``http://127.0.0.1:26657``)."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


class RPCClient:
    """Calls one node. Use as ``async with RPCClient(url) as c: await c.call("status")``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = normalise_url(url)
        self.timeout = timeout
        self._session = session
        self._own_session = session is None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> RPCClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, body: Any, timeout: float | None) -> Any:
        limit = self.timeout if timeout is None else timeout
        try:
            async with self._get_session().post(
                self.url + "/",
                data=json.dumps(body, separators=(",", ":")),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=limit),
            ) as resp:
                text = await resp.text()
                status = resp.status
        except TimeoutError as exc:
            raise NodeUnreachable(f"the node at {self.url} did not answer within {limit:g} s") from exc
        except aiohttp.ClientConnectorError as exc:
            err = exc.os_error
            reason = os.strerror(err.errno).lower() if err is not None and err.errno else str(exc)
            raise NodeUnreachable(f"cannot reach the node at {self.url}: {reason}") from exc
        except aiohttp.ClientError as exc:
            raise NodeUnreachable(f"cannot reach the node at {self.url}: {exc}") from exc
        if status == 204:
            return None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise RPCClientError(
                f"the node at {self.url} answered HTTP {status} with a body that is not JSON"
            ) from exc
        if status != 200 and not (isinstance(doc, dict) and "error" in doc):
            raise RPCClientError(f"the node at {self.url} answered HTTP {status}")
        return doc

    @staticmethod
    def _unwrap(method: str, doc: Any) -> Any:
        if not isinstance(doc, dict):
            raise RPCClientError(f"{method}: malformed JSON-RPC response")
        if "error" in doc:
            err = doc["error"] if isinstance(doc["error"], dict) else {}
            raise RPCCallError(
                method, int(err.get("code", 0)), str(err.get("message", "unknown error")), err.get("data")
            )
        if "result" not in doc:
            raise RPCClientError(f"{method}: JSON-RPC response without a result")
        return doc["result"]

    async def call(self, method: str, params: Any = None, *, timeout: float | None = None) -> Any:
        """Call ``method``; return its result or raise RPCCallError / NodeUnreachable."""
        req: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            req["params"] = params
        return self._unwrap(method, await self._post(req, timeout))

    async def batch(
        self, calls: Sequence[tuple[str, Any]], *, timeout: float | None = None
    ) -> list[Any]:
        """Call several methods in one request; each item is a result or an RPCCallError."""
        if not calls:
            return []
        reqs = []
        for method, params in calls:
            req: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
            if params is not None:
                req["params"] = params
            reqs.append(req)
        doc = await self._post(reqs, timeout)
        if isinstance(doc, dict):  # the whole batch was refused
            self._unwrap("batch", doc)
        if not isinstance(doc, list):
            raise RPCClientError("batch: malformed JSON-RPC response")
        by_id = {d.get("id"): d for d in doc if isinstance(d, dict)}
        out: list[Any] = []
        for req, (method, _) in zip(reqs, calls, strict=True):
            item = by_id.get(req["id"])
            try:
                out.append(self._unwrap(method, item))
            except RPCCallError as exc:
                out.append(exc)
        return out


# --- client-side verification of state proofs ------------------------------------------------


def verify_account_proof(address: bytes, answer: dict[str, Any], header_state_root: bytes) -> None:
    """Check an ``account`` answer made with ``prove=true`` without trusting the node that sent it.

    ``header_state_root`` is the ``state_root`` of the header of block ``proof.height + 1``
    (a header the caller trusts: its commit was checked, or it came from several nodes). Checks
    that the proof's root is that root, that the key is this address's account key, that the
    value is the account record the answer reports (absent: a zero account), and that the proof
    links key and value to the root. Raises ``ProofError`` naming what does not hold.
    """
    from consensus.errors import ConsensusError
    from consensus.records import EMPTY_ACCOUNT, Account
    from consensus.state import Keys
    from consensus.state_proof import StateProof, validate_state_proof

    try:
        proof = answer["proof"]
        root = _unhex(proof["state_root"])
        key = _unhex(proof["key"])
        value = None if proof["value"] is None else _unhex(proof["value"])
        state_proof = StateProof.decode(_unhex(proof["proof"]))
    except (KeyError, TypeError, ValueError, ConsensusError) as exc:
        raise ProofError(f"the answer carries no readable proof: {exc}") from exc
    if root != header_state_root:
        raise ProofError("the proof's state root is not the one the trusted header carries")
    if key != Keys.account(address):
        raise ProofError("the proof is for another key than this address's account")
    try:
        account = EMPTY_ACCOUNT if value is None else Account.decode(value)
    except ConsensusError as exc:
        raise ProofError(f"the proven value is not an account record: {exc}") from exc
    if (account.balance, account.nonce) != (answer.get("balance"), answer.get("nonce")):
        raise ProofError("the balance or nonce reported differs from the proven account record")
    try:
        validate_state_proof(root, key, value, state_proof)
    except ConsensusError as exc:
        raise ProofError(f"the proof does not link the account to the state root: {exc}") from exc


def _unhex(text: Any) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x"):
        raise ValueError("expected 0x-hex")
    return bytes.fromhex(text[2:])
