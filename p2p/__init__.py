"""How nodes talk: the peer-to-peer layer, and its contract with node/.

node/ programs against ``p2p.interface.Transport``. Two implementations:

* ``p2p.host.Libp2pTransport(config)``: real networking. py-libp2p 0.8.1 runs
  under trio in its own thread (``p2p.host.bridge.TrioThread``); every call
  crosses through bounded, thread-safe hand-offs. TCP, Noise only, Yamux only,
  GossipSub ``/meshsub/1.2.0``, 1.1.0 with older peers (1 s heartbeat, adaptive
  gossip off, the library's 10 msg/s spam limit replaced by our token buckets,
  equivocation memory bounded to digests, peer scoring on, IDONTWANT sent on
  arrival for messages of 16 KiB or more only), one connection per peer. Nothing
  outside p2p/ sees trio or libp2p types; errors are ``p2p.errors.P2PError``.
* ``p2p.memory.MemoryTransport(config, hub, peer_id=None)``: many nodes in one
  process on a ``MemoryHub(drop=, delay=, clock=, schedule=)``, with the same
  gate, verdicts and penalties; for node tests and deterministic simulations.
  The hooks take ``(sender, receiver, kind)`` (seed your own randomness inside
  them); ``clock`` and ``schedule(delay, fn)`` put deliveries, rate limits and
  bans on a simulation's manual clock (request timeouts stay on the loop's).

Configuration: ``p2p.config.P2PConfig`` (frozen; ``validate()`` raises
``ConfigError``): ``chain_id``, ``key_path`` (the peer key: a 32-byte Ed25519
seed, created 0600 if absent, refused if group/other may read it; the peer id
``12D3KooW...`` is stable across restarts), ``listen_host``/``listen_port``,
``bootstrap`` (multiaddrs ending ``/p2p/<peer id>``), ``max_peers``,
``max_message_bytes`` (gossip cap, default 1 MiB), ``max_frame_bytes``
(request/response frame cap, default 8 MiB, so blocks larger than gossip allows
travel over block sync), ``max_request_blocks``/``max_request_bytes``,
``request_timeout``, ``rate_limits`` (per peer and gossip kind; the proposal
topic's in bytes, from ``compute_rate_limits(max_block_bytes)``, and never penalising),
``request_rate``, ``tx_batch_*``, ``reconnect_min``/``reconnect_max``
(``persistent_reconnect_max`` for bootstrap peers),
``keepalive_interval``/``keepalive_timeout``/``keepalive_misses``,
``peer_exchange_interval``, ``gil_switch_interval`` (the transport lowers
Python's GIL switch interval to 0.5 ms at start, process-wide, because the
libp2p thread and the node's loop hand work to each other all the time; None
leaves it alone). ``p2p.keys.peer_id_from_seed`` gives the peer id for
``cstake keys show``.

Wire names (``p2p.config``): topics ``/cstake/<chain-id>/{tx,proposal,vote,
attestation,evidence}/1``; protocols ``/cstake/<chain-id>/status/1``,
``/cstake/<chain-id>/blocks/1``, ``/cstake/<chain-id>/peers/1`` (peer
exchange: each node tells its peers where the others listen, so a devnet
bootstrapped from one address becomes a full mesh) and
``/cstake/<chain-id>/ping/1`` (keep-alive: 8 bytes echoed). Every gossip message is a
canonical msgpack ``p2p.envelope.Envelope(version=1, kind, payload)``; p2p
never looks inside ``payload``.

Lifecycle::

    t = Libp2pTransport(config)            # or MemoryTransport(config, hub)
    t.subscribe("vote", validate_vote, on_vote)   # before or after start
    t.add_event_handler(on_peer_event)     # PeerConnected / PeerDisconnected / PeerPenalised
    await t.start()                        # listens, dials bootstrap peers (with backoff)
    await t.publish("vote", vote_bytes)    # MessageTooLarge over the cap; no loopback
    ...
    await t.stop()                         # no thread or task left behind

Gossip validation: ``validator(peer_id: str, payload: bytes) -> Verdict | Reject`` (plain
or ``async``; runs on the node's asyncio loop; async ones time out after 5 s).
``Verdict.ACCEPT``: delivered to ``handler(peer_id, payload)`` (plain or async,
one task per topic, in arrival order) and relayed. ``IGNORE``: dropped, not
relayed, no penalty (stale, duplicate, not yet useful). ``REJECT``: dropped,
not relayed, and the forwarding peer is penalised: use it only for faults an
honest peer never relays (bad signature, malformed), never for state-dependent
failures. A validator may name the fault with ``Reject(reason)`` instead,
``reason`` an entry of the penalty table ``p2p.scoring.PENALTY`` (a plain
REJECT counts as ``"rejected"``). Before any validator runs, the gate drops (and counts, and
penalises) messages over the size cap, over the sender's token bucket, or not
a canonical envelope of the topic's kind. A validator that raises is a bug in
the node: the message is ignored and counted as ``validator_error``.

Transactions: ``p2p.txbatch.TxGossip(transport, tx_validator[, tx_handler])``
subscribes to the tx topic. ``submit(tx_bytes)`` queues one encoded tx and
returns at once; a batch is published at ``tx_batch_max_txs`` txs, at
``tx_batch_max_bytes`` (32 KiB, well under Yamux's 64 KiB frame) or
``tx_batch_delay`` (5 ms) after its first tx; ``await flush()``/``close()``.
Received batches are split and ``tx_validator`` runs per tx; accepted txs go
to ``tx_handler`` one by one, if there is one (the node's validator admits
them into its mempool itself). The batch is REJECTed (penalised, not relayed)
if malformed or if any tx is REJECTed; otherwise ACCEPTed (relayed) if any tx
was accepted, else IGNOREd.

Requests: ``set_request_handler(protocol, handler)`` with
``handler(peer_id, request) -> list[bytes]`` (plain or async; raise to refuse);
``await request(peer_id, protocol, data, timeout=, max_frames=,
max_frame_bytes=) -> list[bytes]`` raises ``RequestTimeout``,
``PeerUnavailable``, ``BadPeerData`` (too many or oversize frames) or
``RequestFailed``. Inbound requests are rate-limited per peer.

Block sync (``p2p.blocksync``): ``BlockSyncServer(transport, provider)`` with
``provider.get_status() -> (height, block_hash, earliest_height)`` and
``provider.get_blocks(start, end) -> [(block_bytes, commit_bytes), ...]`` (plain
or async). ``BlockSyncClient(transport)``: ``fetch_status(peer)``,
``fetch_statuses()``, ``fetch_blocks(peer, start, end)`` (one bounded request)
and ``fetch_range(start, end, verify=...)``, which splits the range into
requests of ``max_request_blocks``, sends each to a peer whose status covers
it, retries on the next peer after a timeout or failure, and calls
``verify(frame)`` (``BlockFrame(height, block, commit)``) for each block; a
``verify`` that raises ``ConsensusError`` or ``BadPeerData`` gets the peer
penalised and disconnected, and the chunk is fetched elsewhere
(``NoPeersAvailable`` when nobody can serve it). To report a peer found bad
later: ``transport.report_peer(peer_id, "bad_data", disconnect=True)``.

Connections that die, and partitions that heal (``p2p.host.liveness``): a
link that goes down sends no FIN or RST, so both ends would keep a half-open
connection for many minutes and the kernel's retransmission backoff would
delay traffic long after the link is back. Every connected peer is pinged
every ``keepalive_interval`` (1 s); a ping that gets no answer within
``keepalive_timeout`` (2.5 s) while *nothing at all* was read from the peer
counts as a miss (a slow or lossy link that still carries bytes is alive);
after ``keepalive_misses`` (3) misses in a row the connection is aborted (its
socket closed first, so nothing waits on the dead peer), the node gets
``PeerDisconnected`` and the dialer takes over. When a peer connects again
while we still hold an older connection to it (older than 2 s), the new one
wins and the old one is aborted (a half-open connection the peer gave up).
Redials: persistent peers (the bootstrap list) are always redialled, with
backoff doubling from ``reconnect_min`` up to ``persistent_reconnect_max`` (3
s); exchanged peers up to ``reconnect_max``. Any new connection (in or out)
means links are back: every persistent peer not connected is redialled at
once, whatever its backoff. Measured on 4 validators in network namespaces
(tests/e2e/test_partition.py): one of four cut off for 30 s converges 3-5 s
after the heal, two of four resume committing about 2 s after the heal.

Slots (``p2p.peers``, ``p2p.host.slots``), against eclipses: inbound peers are
capped at ``max_peers - outbound_slots`` (default a quarter, at most 8, kept
for our own dials); a persistent peer always gets a slot, evicting the
lowest-scored inbound non-persistent peer when full; outbound and persistent
peers are never evicted. Exchanged addresses go into a bounded book (16 new
per answer, 32 unverified per source, 256 in all) that expires entries unseen
for 10 minutes, lowers an entry's score on a failed dial and drops a source's
entries when it is penalised; only connected peers are passed on. The swarm's
own auto-connector is off, so no dial bypasses the slots.

Scores and bans (``p2p.scoring``): GossipSub's scorer (first deliveries, time
in mesh, invalid messages, behaviour) plus our own decaying penalty ledger;
below ``DISCONNECT_SCORE`` a peer is disconnected and banned for
``BAN_SECONDS``. ``get_peer_score(peer_id)`` reads it.

Counters: ``transport.stats`` (``p2p.stats.P2PStats``; ``snapshot()`` gives a
dict) has bytes and messages in/out, deliveries, requests, peers (connected,
totals, refused at the peer limit or banned), penalties, malformed frames, and
``dropped`` by reason (oversize, malformed, rate, rejected, score, ignored,
queue_full, outbound_full, validator_error);
``TxGossip.stats`` has the batch counters. Export them as Prometheus counters.

Logging: py-libp2p's warnings reach the ``p2p.libp2p`` logger, at most 5 per
message template per 10 s; our own modules log under ``p2p.*``.

Test tools live outside the package: ``python -m tests.kit.p2p_node`` is a standalone p2p node driven by JSON lines
(the multi-process tests and ``bench/p2p.py`` use it); ``tests.kit.p2p_synthetic`` makes
chains with real Ed25519 commits for sync tests.

Imports: p2p/ imports consensus/ (codec, crypto, hashing, errors) only; it never
imports node/ or storage/.
"""
