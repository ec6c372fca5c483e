"""Test vectors: canonical encodings, signatures, state roots and block hashes as JSON data files.

``data/*.json`` are for another implementation to check itself against:

* ``keys.json``: Ed25519 keys from fixed seeds (public key, address) and
  signatures of fixed payloads under every signing domain;
* ``txs.json``: one signed transaction of every kind: body fields, body,
  payload and signed encodings, transaction id;
* ``consensus.json``: prevote, precommit, nil vote and proposal: fields,
  encodings, sign payloads, signatures;
* ``chain.json``: a 4-validator genesis (tests/kit/chain.py TestChain), its
  state root, then 3 blocks with transfers: encodings, hashes and the state
  root after each.

``python -m tests.vectors generate`` rewrites them (after a deliberate change
of consensus encodings, state transition or fees); ``test_vectors.py``
recomputes everything and fails on any difference.
"""
