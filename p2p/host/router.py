"""Hardened py-libp2p 0.8.1 pubsub: our admission path, guards and bounded memory.

``GuardedPubsub`` replaces two methods of the library's ``Pubsub``:

* the per-peer read loop, so a frame that is not a valid pubsub protobuf
  (which kills the whole host in 0.8.1) or exceeds the RPC cap is counted,
  penalised and ends only that peer's stream;
* ``push_msg``, so every received message goes through our gate (size,
  per-peer rate, envelope) and the node's validator with three verdicts:
  ACCEPT relays, IGNORE drops quietly, REJECT drops and penalises the
  forwarder. Own publishes are relayed without looping back to the node.

It also serialises writes per stream (0.8.1 writes Yamux frames outside the
stream lock, so two large concurrent writes interleave and corrupt the
stream) and widens the per-peer outbound queue.

``CstakeGossipSub`` keeps a digest instead of each full message for
equivocation detection, prunes the delivery log that grows per message when
adaptive gossip is off, and counts the RPCs the library drops.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import trio
from google.protobuf.message import DecodeError as ProtoDecodeError
from libp2p.io.exceptions import IOException, MessageTooLarge
from libp2p.network.connection.exceptions import RawConnError
from libp2p.network.stream.exceptions import StreamEOF, StreamError
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.score import ScoreParams, TopicScoreParams
from libp2p.pubsub.utils import maybe_consume_signed_record
from libp2p.pubsub.validators import signature_validator
from libp2p.utils.varint import read_varint_prefixed_bytes_limited

from p2p import scoring
from p2p.interface import GossipVerdict, Reject, Verdict
from p2p.stats import P2PStats

log = logging.getLogger("p2p.host.router")

#: ``(forwarder, topic, data) -> GossipVerdict``, run in the trio thread.
GossipHook = Callable[[ID, str, bytes], Awaitable[GossipVerdict]]
#: ``(peer, reason)``: a fault of a peer; ``reason`` is a key of ``scoring.PENALTY``.
FaultHook = Callable[[ID, str], None]

#: Bytes a pubsub RPC may add around the largest message (signature, key, ids, control).
RPC_OVERHEAD = 64 * 1024
#: Outbound RPCs queued per peer before py-libp2p drops (library default 32).
OUTBOUND_QUEUE = 1024
_EQUIVOCATION_MAX = 20_000
#: A message at least this large is announced with IDONTWANT to the mesh when it arrives.
IDONTWANT_MIN_BYTES = 16 * 1024
#: IDONTWANT ids remembered per peer, the oldest forgotten first.
IDONTWANT_PER_PEER = 64
#: Seconds an IDONTWANT is honoured (a relay validates a large message well within this).
IDONTWANT_TTL_S = 10.0


def make_score_params() -> ScoreParams:
    """Peer-score weights and thresholds (py-libp2p subtracts the P4 weight, so it is positive)."""
    return ScoreParams(
        p1_time_in_mesh=TopicScoreParams(weight=scoring.TIME_IN_MESH_WEIGHT, cap=scoring.TIME_IN_MESH_CAP, decay=1.0),
        p2_first_message_deliveries=TopicScoreParams(
            weight=scoring.FIRST_DELIVERY_WEIGHT, cap=scoring.FIRST_DELIVERY_CAP, decay=scoring.FIRST_DELIVERY_DECAY
        ),
        p4_invalid_messages=TopicScoreParams(
            weight=scoring.INVALID_MESSAGE_WEIGHT, cap=scoring.INVALID_MESSAGE_CAP, decay=scoring.INVALID_MESSAGE_DECAY
        ),
        p5_behavior_penalty_weight=scoring.BEHAVIOUR_WEIGHT,
        p5_behavior_penalty_decay=scoring.BEHAVIOUR_DECAY,
        p5_behavior_penalty_threshold=scoring.BEHAVIOUR_THRESHOLD,
        publish_threshold=scoring.PUBLISH_THRESHOLD,
        gossip_threshold=scoring.GOSSIP_THRESHOLD,
        graylist_threshold=scoring.GRAYLIST_THRESHOLD,
        accept_px_threshold=0.0,
    )


class CstakeGossipSub(GossipSub):
    """GossipSub /meshsub/1.2.0 (1.1.0 with older peers), bounded memory and drop counters.

    **IDONTWANT for large messages only, on arrival.** In a full mesh every node
    receives each message from the origin and again from every other relay: a
    1.3 MB proof-of-compute openings transaction crossed each node's pipes three
    times, and the proposal of the same height queued behind them (a round
    timeout at every epoch's openings). v1.2 lets a node say "I have it" to its
    mesh as soon as a message arrives, before validating it, so the relays still
    validating skip it. py-libp2p instead sends IDONTWANT for *every* message, and
    only when relaying, after validation: 2.4x the CPU for small messages and too
    late for large ones. Here the relay-time announcement is off, and
    ``GuardedPubsub.push_msg`` announces messages of at least
    ``IDONTWANT_MIN_BYTES`` as they arrive (the threshold the spec recommends).
    """

    def __init__(self, stats: P2PStats, heartbeat: int) -> None:
        super().__init__(
            protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11],
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_initial_delay=0.5,
            heartbeat_interval=heartbeat,
            time_to_live=60,
            gossip_window=3,
            gossip_history=5,
            score_params=make_score_params(),
            adaptive_gossip_enabled=False,  # stretches the heartbeat to 30-60 s in small meshes
            # The library's limit (10 msg/s per peer and topic, counting our own
            # publishes) is replaced by our token buckets in the gate.
            spam_protection_enabled=False,
            max_messages_per_topic_per_second=1e9,
            do_px=False,  # peer exchange runs over our own protocol
            max_idontwant_messages=IDONTWANT_PER_PEER,
        )
        self.stats = stats

    async def _emit_idontwant_for_message(self, msg_id: bytes, topic_ids: Iterable[str]) -> None:
        """Relay-time IDONTWANT is off: ``announce_arrival`` sends it, for large messages only."""
        return

    async def announce_arrival(self, msg_id: bytes, topic: str, skip: tuple[ID, ...]) -> None:
        """Tell the v1.2 mesh peers of ``topic`` (but ``skip``) not to send us ``msg_id``."""
        for peer_id in tuple(self.mesh.get(topic, ())):
            if peer_id in skip or self.peer_protocol.get(peer_id) != PROTOCOL_ID_V12:
                continue
            await self.emit_idontwant([msg_id], peer_id)
            self.stats.idontwant_sent += 1

    def _check_equivocation(self, msg: rpc_pb2.Message) -> bool:
        key = msg.from_id + msg.seqno
        digest = hashlib.sha256(msg.data + b"\x00".join(t.encode() for t in msg.topicIDs)).digest()
        memo = cast(dict[bytes, bytes], self.equivocation_detection)
        prev = memo.get(key)
        if prev is None:
            memo[key] = digest
            if len(memo) > _EQUIVOCATION_MAX:
                for k in list(memo)[: _EQUIVOCATION_MAX // 2]:
                    del memo[k]
            return True
        if prev != digest:
            if self.scorer is not None:
                self.scorer.penalize_equivocation(ID(msg.from_id), 100.0)
            return False
        return True

    async def handle_idontwant(self, idontwant_msg: rpc_pb2.ControlIDontWant, sender_peer_id: ID) -> None:
        """Remember the ids ``sender_peer_id`` has, with when it said so (at most ``IDONTWANT_PER_PEER``)."""
        # The library keeps a set per peer; ours is ordered by age (``in`` works the same).
        table = cast(dict[ID, Any], self.dont_send_message_ids)
        ids = table.get(sender_peer_id)
        if not isinstance(ids, OrderedDict):
            ids = table[sender_peer_id] = OrderedDict()
        now = time.monotonic()
        for msg_id in list(idontwant_msg.messageIDs)[:IDONTWANT_PER_PEER]:
            ids[msg_id] = now
            ids.move_to_end(msg_id)
        while len(ids) > IDONTWANT_PER_PEER:
            ids.popitem(last=False)

    def _prune_idontwant_entries(self) -> None:
        # py-libp2p forgets every IDONTWANT at each heartbeat, which can fall between a
        # peer's announcement and our relay of that message: forget them by age instead.
        cutoff_mono = time.monotonic() - IDONTWANT_TTL_S
        for ids in cast(dict[ID, Any], self.dont_send_message_ids).values():
            if isinstance(ids, OrderedDict):
                while ids and next(iter(ids.values())) < cutoff_mono:
                    ids.popitem(last=False)
        cutoff = time.time() - 60.0
        for lst in self.recent_message_deliveries.values():
            if lst and lst[0] < cutoff:
                lst[:] = [t for t in lst if t > cutoff]

    def _handle_dropped_rpc(self, peer_id: ID, rpc: rpc_pb2.RPC, reason: str) -> None:
        n = len(rpc.publish)
        if n:
            self.stats.drop("oversize" if reason == "oversized" else "outbound_full", n)
        super()._handle_dropped_rpc(peer_id, rpc, reason)


class _SizedQueues(dict[Any, Any]):
    """Pubsub's per-peer send queues, each given our message cap as it is created.

    py-libp2p 0.8.1 makes every peer's ``RpcQueue()`` with its own 1 MiB default and
    drops any RPC larger than that on send, whatever the inbound cap says: a message
    our cap allows (a 1.3 MB proof-of-compute openings transaction) never left the node.
    """

    def __init__(self, max_message_size: int) -> None:
        super().__init__()
        self.max_message_size = max_message_size

    def __setitem__(self, peer_id: Any, queue: Any) -> None:
        queue.max_message_size = self.max_message_size
        super().__setitem__(peer_id, queue)


class GuardedPubsub(Pubsub):
    """Pubsub whose inbound path is ours: guarded reads, gate, three-way verdicts."""

    def __init__(
        self,
        host: Any,
        router: CstakeGossipSub,
        *,
        max_message_bytes: int,
        stats: P2PStats,
        on_gossip: GossipHook,
        on_fault: FaultHook,
    ) -> None:
        super().__init__(host, router, strict_signing=True, max_inbound_rpc_size=max_message_bytes + RPC_OVERHEAD)
        # Our cap on the send side too (py-libp2p's own 1 MiB would drop a 1.3 MB openings tx).
        # Once reverted: a devnet "halted" after it, which turned out to be the stopped
        # validator holding over a third of the voting power (test_slashing_devnet now pins it).
        self.peer_queues = _SizedQueues(max_message_bytes + RPC_OVERHEAD)
        self.max_message_bytes = max_message_bytes
        self._gossipsub = router
        self.stats = stats
        self._on_gossip = on_gossip
        self._on_fault = on_fault
        self._write_locks: dict[int, trio.Lock] = {}
        self._records: dict[ID, bytes] = {}
        # Message ids are sender + seqno. py-libp2p starts the seqno counter at the
        # Unix time in *seconds*, so a node that published more than one message a
        # second restarts below seqnos its peers still remember: they drop its new
        # messages as seen, or punish them as equivocations. Start at nanoseconds, as
        # go-libp2p does: a restart always begins above every seqno used before it.
        self.counter = time.time_ns()

    # -- inbound ----------------------------------------------------------------

    async def continuously_read_stream(self, stream: Any) -> None:
        peer_id: ID = stream.muxed_conn.peer_id
        try:
            while self.manager.is_running:
                incoming = await read_varint_prefixed_bytes_limited(stream, self.max_inbound_rpc_size)
                self.stats.bytes_in += len(incoming)
                rpc = rpc_pb2.RPC()
                rpc.ParseFromString(incoming)
                if rpc.HasField("senderRecord"):
                    # Every RPC repeats the sender's signed peer record; verify a
                    # record once per peer and skip identical copies (and let the
                    # router, which checks it again for control messages, skip it).
                    record = rpc.senderRecord
                    if self._records.get(peer_id) != record:
                        if not maybe_consume_signed_record(rpc, self.host, peer_id):
                            self._on_fault(peer_id, "malformed")
                            continue
                        self._records[peer_id] = record
                    rpc.ClearField("senderRecord")
                for msg in rpc.publish:
                    self.stats.messages_in += 1
                    if self._is_subscribed_to_msg(msg) and self.manager.is_running:
                        self.manager.run_task(self.push_msg, peer_id, msg)
                if rpc.subscriptions and len(rpc.subscriptions) <= self.max_subscriptions_per_rpc:
                    for sub in rpc.subscriptions:
                        self.handle_subscription(peer_id, sub)
                if rpc.HasField("control"):
                    await self.router.handle_rpc(rpc, peer_id)
        except (ProtoDecodeError, MessageTooLarge, UnicodeDecodeError, ValueError) as exc:
            # One bad frame would kill the whole host in 0.8.1: end this peer's stream instead.
            self.stats.malformed_frames += 1
            reason = "oversize" if isinstance(exc, MessageTooLarge) else "malformed"
            self.stats.drop(reason)
            log.warning("peer %s sent a bad pubsub frame (%s); stream closed", peer_id, reason)
            self._on_fault(peer_id, "malformed_frame")
            with contextlib.suppress(Exception):
                await stream.reset()
            self._handle_dead_peer(peer_id)
        except (StreamEOF, StreamError, IOException, RawConnError):
            log.debug("pubsub stream of %s ended", peer_id)

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        own = msg_forwarder == self.my_id
        if own:
            self._mark_msg_seen(msg)
            await self.router.publish(msg_forwarder, msg)
            return
        if self.is_peer_blacklisted(msg_forwarder) or self.is_peer_blacklisted(ID(msg.from_id)):
            return
        if self._is_msg_seen(msg):
            return
        scorer = self.router.scorer  # type: ignore[attr-defined]
        topics = list(msg.topicIDs)
        if len(topics) != 1:
            self.stats.drop("malformed")
            self._on_fault(msg_forwarder, "malformed")
            return
        topic = topics[0]
        if not scorer.allow_publish(msg_forwarder, topics):
            self.stats.drop("score")
            return
        if len(msg.data) > self.max_message_bytes:
            self.stats.drop("oversize")
            scorer.on_invalid_message(msg_forwarder, topic)
            self._on_fault(msg_forwarder, "oversize")
            return
        if not signature_validator(msg):
            self.stats.drop("malformed")
            scorer.on_invalid_message(msg_forwarder, topic)
            self._on_fault(msg_forwarder, "malformed")
            return
        if ID(msg.from_id) == self.my_id:
            return  # claims to be ours but came from elsewhere
        # Seen before validation, so copies from other mesh peers are not validated again.
        self._mark_msg_seen(msg)
        if len(msg.data) >= IDONTWANT_MIN_BYTES:
            # Before validating (which takes a while for a large message): relays that
            # hear this in time do not send us a second copy.
            await self._gossipsub.announce_arrival(self.get_message_id(msg), topic, (msg_forwarder, ID(msg.from_id)))
        verdict = await self._on_gossip(msg_forwarder, topic, msg.data)
        if verdict is Verdict.ACCEPT:
            scorer.on_first_delivery(msg_forwarder, topic)
            await self.router.publish(msg_forwarder, msg)
        elif isinstance(verdict, Reject):
            scorer.on_invalid_message(msg_forwarder, topic)
            self._on_fault(msg_forwarder, verdict.reason)

    # -- outbound ---------------------------------------------------------------

    async def write_msg(self, stream: Any, rpc_msg: rpc_pb2.RPC) -> bool:
        key = id(stream)
        lock = self._write_locks.get(key)
        if lock is None:
            lock = self._write_locks[key] = trio.Lock()
        async with lock:
            ok = await super().write_msg(stream, rpc_msg)
        if ok:
            self.stats.messages_out += len(rpc_msg.publish)
            self.stats.bytes_out += rpc_msg.ByteSize()
        return ok

    async def _handle_new_peer(self, peer_id: ID) -> None:
        await super()._handle_new_peer(peer_id)
        queue = self.peer_queues.get(peer_id)
        if queue is not None:
            queue._queue.max_size = OUTBOUND_QUEUE

    def _handle_dead_peer(self, peer_id: ID) -> None:
        stream = self.peers.get(peer_id)
        if stream is not None:
            self._write_locks.pop(id(stream), None)
        self._records.pop(peer_id, None)
        super()._handle_dead_peer(peer_id)
