"""Deep networks: CNN experts trained by Algorithm 1 on Fashion-MNIST streams.

Owns the dataset loading and task streams (``datasets``), the round-by-round learners
and their stream results (``learners``), the deep MoE and its single-network baseline
(``moe``) and the helpers of the deep-network studies (``study``).

May import: ``moecl_lib.config``, ``moecl_lib.linear`` (the router's rules),
``moecl_lib.analysis`` and ``moecl_lib.figures``.
"""
