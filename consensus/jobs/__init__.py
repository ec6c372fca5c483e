"""The job marketplace: users buy verified compute from staked providers (docs/jobs.md).

- ``types``: transaction bodies (submit, result, challenge, cancel, set price) and records;
- ``kinds`` and ``registry``: the job-kind interface and the known kinds
  (``matmul``: exact integer matrix products, Freivalds on opened rows;
  ``iterate``: a multi-step computation disputed by bisection);
- ``handlers``: the transactions' state rules;
- ``market``: assignment, deadlines, faults and settlement at the end of each block;
- ``store``: the state keys.
"""
