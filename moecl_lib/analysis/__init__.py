"""Reading simulations: metrics, routing diagnostics, convergence, sweeps, settings.

Owns the continual-learning metrics (``metrics``), the routing diagnostics of a
simulated router (``routing``: routing matrices, purity, expert sets, loads, gate
gaps), convergence rounds and states of recorded runs (``convergence``), the
orchestration of families of simulations (``sweeps``) and the named settings with the
calibration of Propositions 1-3 (``calibration``).

May import: ``moecl_lib.config``, ``moecl_lib.theory`` and ``moecl_lib.linear``.
"""
