"""Coverage-guided fuzzing of every decoder and input boundary of the node.

Each target in ``tests.fuzz.targets`` takes one byte string and names the
exceptions it may raise (a decoder's ``DecodeError``, a p2p
``MalformedMessage``, a WAL's ``WalCorrupt`` ...). Anything else it raises is
a finding, and so is an input that takes more than a second (a hang).

``python -m tests.fuzz TARGET --runs N`` runs one target under atheris
(libFuzzer) on the corpus ``tests/fuzz/corpus/TARGET`` (seeded with valid
encodings built by ``tests.kit.chain.TestChain``: ``python -m tests.fuzz seed``);
a crash reproducer is written under ``tests/fuzz/crashes/``. ``make fuzz``
runs every target with ``FUZZ_RUNS`` inputs. The smoke test
(``tests/fuzz/test_fuzz_smoke.py``) runs each target in-process on its corpus
and a few thousand mutations of it, without atheris, as part of ``make test``.
"""
