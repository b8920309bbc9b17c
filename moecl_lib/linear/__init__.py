"""The linear model of the paper: Algorithm 1 on Definition-1 data, simulated.

Owns the task pool and round data (``tasks``), the result type shared by every
simulator (``results``), the linear experts (``experts``), the router's rules
(``routing``: routing rule, router gradient, gap termination test), the random streams
(``rng``, ``streams``) and draws of a block of rounds (``draws``), the batched engine
(``engine``) with its two round loops (``loop_numpy``, with the block bases of
``bases``; ``loop_numba``, driving the compiled kernel ``kernel``), the naive per-run
reference the engine is tested against (``reference``) and the simulation under a
forced routing (``forced``).

May import: ``moecl_lib.config`` and ``moecl_lib.theory``; never ``analysis``, ``deep``,
``expert_gate``, ``claims``, ``figures`` or ``tools``.
"""
