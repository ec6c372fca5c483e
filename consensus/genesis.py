"""Genesis: the JSON document that starts a chain, and the state it defines.

A genesis JSON object has:

- ``chain_id`` (string), ``genesis_time_ms`` (integer, ms since the Unix epoch);
- ``preset`` (``"devnet"`` or ``"mainnet"``) and optional ``params`` overrides;
- ``accounts``: ``[{"address": "cs1...", "balance": N}]``;
- ``validators``: ``[{"address", "consensus_pubkey" ("0x" + 64 hex), "self_bond",
  "commission_bps", "moniker", "compute": [{"spec": {"device_kind": "cpu"|"gpu",
  "model", "cores", "memory_mb"}, "claimed_units", "verified_units",
  "collateral"}]}]``: genesis validators start bonded, with already-verified
  compute NFTs bound to them, so that a devnet can produce blocks at once.

``compute_genesis_state`` turns a validated genesis into the full initial
state (deterministically: the same document always gives the same bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from consensus.codec import Encodable
from consensus.crypto import PUBKEY_LEN, decode_address, encode_address
from consensus.errors import ConsensusError, GenesisError, ValidationError
from consensus.hashing import ZERO_HASH, hash32
from consensus.params import PRESETS, Params
from consensus.records import (
    NO_ADDRESS,
    Account,
    ChainHead,
    ChainInfo,
    ChainMeta,
    ComputeNFT,
    DeviceKind,
    HardwareSpec,
    NFTStatus,
    Validator,
)
from consensus.staking import compute_active_entries, process_bond
from consensus.state import DictStateReader, Keys, State, _Marker
from consensus.tx_handlers import INITIAL_REPUTATION
from consensus.txs import MAX_MONIKER_BYTES, validate_chain_id
from consensus.validator_set import compute_genesis_validator_set


@dataclass(frozen=True, slots=True)
class GenesisNFT(Encodable):
    spec: HardwareSpec
    claimed_units: int
    verified_units: int
    collateral: int


@dataclass(frozen=True, slots=True)
class GenesisValidator(Encodable):
    address: bytes
    consensus_pubkey: bytes
    self_bond: int
    commission_bps: int
    moniker: str
    compute: tuple[GenesisNFT, ...]


@dataclass(frozen=True, slots=True)
class GenesisAccount(Encodable):
    address: bytes
    balance: int


@dataclass(frozen=True, slots=True)
class Genesis(Encodable):
    """A validated genesis document."""

    chain_id: str
    genesis_time_ms: int
    params: Params
    accounts: tuple[GenesisAccount, ...]
    validators: tuple[GenesisValidator, ...]

    def hash(self) -> bytes:
        """Return the genesis hash (SHA-256 of its canonical encoding)."""
        return hash32(self.encode())

    def to_json(self) -> dict[str, Any]:
        """Return the genesis as a JSON object (params in full)."""
        return {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "params": self.params.to_json(),
            "accounts": [
                {"address": encode_address(a.address), "balance": a.balance} for a in self.accounts
            ],
            "validators": [
                {
                    "address": encode_address(v.address),
                    "consensus_pubkey": "0x" + v.consensus_pubkey.hex(),
                    "self_bond": v.self_bond,
                    "commission_bps": v.commission_bps,
                    "moniker": v.moniker,
                    "compute": [
                        {
                            "spec": {
                                "device_kind": DeviceKind.NAMES[n.spec.device_kind],
                                "model": n.spec.model,
                                "cores": n.spec.cores,
                                "memory_mb": n.spec.memory_mb,
                            },
                            "claimed_units": n.claimed_units,
                            "verified_units": n.verified_units,
                            "collateral": n.collateral,
                        }
                        for n in v.compute
                    ],
                }
                for v in self.validators
            ],
        }


def _field(obj: dict[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in obj:
        raise GenesisError(f"{where}.{name} is missing")
    value = obj[name]
    if kind is int and (type(value) is not int or value < 0):
        raise GenesisError(f"{where}.{name} must be a non-negative integer")
    if kind is str and type(value) is not str:
        raise GenesisError(f"{where}.{name} must be a string")
    if kind is list and type(value) is not list:
        raise GenesisError(f"{where}.{name} must be a list")
    if kind is dict and type(value) is not dict:
        raise GenesisError(f"{where}.{name} must be an object")
    return value


def _address(value: Any, where: str) -> bytes:
    try:
        return decode_address(value)
    except ConsensusError as exc:
        raise GenesisError(f"{where}: {exc}") from exc


def parse_genesis(doc: Any) -> Genesis:
    """Validate a parsed genesis JSON object and return it; raise GenesisError."""
    if type(doc) is not dict:
        raise GenesisError("genesis must be a JSON object")
    chain_id = _field(doc, "chain_id", str, "genesis")
    try:
        validate_chain_id(chain_id)
    except ValidationError as exc:
        raise GenesisError(f"genesis.chain_id: {exc}") from exc
    time_ms = _field(doc, "genesis_time_ms", int, "genesis")
    preset = doc.get("preset", "devnet")
    if preset not in PRESETS:
        raise GenesisError(f"genesis.preset must be one of {', '.join(sorted(PRESETS))}")
    try:
        params = Params.from_json(doc.get("params", {}), base=PRESETS[preset])
    except ValidationError as exc:
        raise GenesisError(f"genesis.params: {exc}") from exc

    accounts = []
    seen: set[bytes] = set()
    for i, a in enumerate(_field(doc, "accounts", list, "genesis")):
        where = f"genesis.accounts[{i}]"
        if type(a) is not dict:
            raise GenesisError(f"{where} must be an object")
        addr = _address(_field(a, "address", str, where), where)
        if addr in seen:
            raise GenesisError(f"{where}: duplicate account {encode_address(addr)}")
        seen.add(addr)
        accounts.append(GenesisAccount(addr, _field(a, "balance", int, where)))

    validators = []
    vseen: set[bytes] = set()
    keys_seen: set[bytes] = set()
    for i, v in enumerate(_field(doc, "validators", list, "genesis")):
        where = f"genesis.validators[{i}]"
        if type(v) is not dict:
            raise GenesisError(f"{where} must be an object")
        addr = _address(_field(v, "address", str, where), where)
        if addr in vseen:
            raise GenesisError(f"{where}: duplicate validator {encode_address(addr)}")
        vseen.add(addr)
        pk_text = _field(v, "consensus_pubkey", str, where)
        try:
            pk = bytes.fromhex(pk_text.removeprefix("0x"))
        except ValueError as exc:
            raise GenesisError(f"{where}.consensus_pubkey is not hex") from exc
        if len(pk) != PUBKEY_LEN or pk in keys_seen:
            raise GenesisError(f"{where}.consensus_pubkey must be a unique 32-byte key")
        keys_seen.add(pk)
        self_bond = _field(v, "self_bond", int, where)
        commission = v.get("commission_bps", 0)
        if type(commission) is not int or not 0 <= commission <= params.max_commission_bps:
            raise GenesisError(f"{where}.commission_bps must be in [0, {params.max_commission_bps}]")
        moniker = v.get("moniker", "")
        if type(moniker) is not str or len(moniker.encode()) > MAX_MONIKER_BYTES:
            raise GenesisError(f"{where}.moniker must be a string of at most {MAX_MONIKER_BYTES} bytes")
        nfts = []
        for j, n in enumerate(v.get("compute", [])):
            nw = f"{where}.compute[{j}]"
            if type(n) is not dict:
                raise GenesisError(f"{nw} must be an object")
            s = _field(n, "spec", dict, nw)
            kind_name = s.get("device_kind", "cpu")
            kinds = {name: code for code, name in DeviceKind.NAMES.items()}
            if kind_name not in kinds:
                raise GenesisError(f"{nw}.spec.device_kind must be 'cpu' or 'gpu'")
            spec = HardwareSpec(
                device_kind=kinds[kind_name],
                model=_field(s, "model", str, nw + ".spec"),
                cores=_field(s, "cores", int, nw + ".spec"),
                memory_mb=_field(s, "memory_mb", int, nw + ".spec"),
            )
            try:
                spec.validate_basic()
            except ValidationError as exc:
                raise GenesisError(f"{nw}: {exc}") from exc
            claimed = _field(n, "claimed_units", int, nw)
            verified = _field(n, "verified_units", int, nw)
            if verified > claimed:
                raise GenesisError(f"{nw}: verified_units exceeds claimed_units")
            collateral = _field(n, "collateral", int, nw)
            if collateral < params.min_nft_collateral:
                raise GenesisError(f"{nw}: collateral below params.min_nft_collateral")
            nfts.append(GenesisNFT(spec, claimed, verified, collateral))
        validators.append(GenesisValidator(addr, pk, self_bond, commission, moniker, tuple(nfts)))
    if not validators:
        raise GenesisError("genesis needs at least one validator")
    genesis = Genesis(chain_id, time_ms, params, tuple(accounts), tuple(validators))
    total = sum(a.balance for a in accounts) + sum(
        v.self_bond + sum(n.collateral for n in v.compute) for v in validators
    )
    if total >= 1 << 63:
        raise GenesisError("genesis supply does not fit in 63 bits")
    return genesis


def load_genesis(text: str) -> Genesis:
    """Parse and validate genesis JSON text."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GenesisError(f"genesis is not valid JSON: {exc}") from exc
    return parse_genesis(doc)


def compute_genesis_state(genesis: Genesis) -> dict[bytes, bytes | None]:
    """Return the initial state (as a change set over an empty state)."""
    state = State(DictStateReader())
    p = genesis.params
    supply = sum(a.balance for a in genesis.accounts)
    state.put_record(Keys.CHAIN_INFO, ChainInfo(genesis.chain_id, genesis.genesis_time_ms))
    state.put_record(Keys.PARAMS, p)
    state.set_head(ChainHead(0, ZERO_HASH, genesis.genesis_time_ms))
    state.set_meta(ChainMeta(0, 0, 0, 0, 0, 0))
    for a in genesis.accounts:
        state.set_account(a.address, Account(a.balance, 0))
    next_nft = 0
    for gv in genesis.validators:
        validator = Validator(
            address=gv.address,
            consensus_pubkey=gv.consensus_pubkey,
            stake=0,
            self_bond=0,
            commission_bps=gv.commission_bps,
            moniker=gv.moniker,
            jailed=0,
            jailed_until_ms=0,
            tombstoned=0,
            reputation=INITIAL_REPUTATION,
            created_height=0,
        )
        state.put_record(Keys.consensus_key(gv.consensus_pubkey), _Marker())
        process_bond(state, validator, gv.address, gv.self_bond)
        supply += gv.self_bond
        for n in gv.compute:
            state.set_nft(
                ComputeNFT(
                    id=next_nft,
                    owner=gv.address,
                    bound_validator=gv.address,
                    spec=n.spec,
                    claimed_units=n.claimed_units,
                    verified_units=n.verified_units,
                    collateral=n.collateral,
                    status=NFTStatus.ACTIVE if n.verified_units > 0 else NFTStatus.UNVERIFIED,
                    last_verified_height=0,
                    registered_height=0,
                    pending_validator=NO_ADDRESS,
                )
            )
            state.set_nft_binding(gv.address, next_nft, True)
            supply += n.collateral
            next_nft += 1
    state.set_meta(ChainMeta(supply, 0, 0, next_nft, 0, 0))
    entries = compute_active_entries(state, p)
    if not entries:
        raise GenesisError(
            "no genesis validator has voting power (each needs self_bond >= params.min_self_bond "
            "and verified compute >= params.min_verified_compute)"
        )
    vset = compute_genesis_validator_set(entries)
    state.set_validator_set(vset)
    state.put_record(Keys.valset_history(1), vset)
    return state.changes()


__all__ = ["Genesis", "compute_genesis_state", "load_genesis", "parse_genesis"]
