"""Closed forms and exact expectations (no simulation).

Owns the isotropic single-expert formulas (``isotropic``), the exact theory of the
Definition-1 generator (``exact``) and the MoE after specialisation (``moe``: decay,
residual and cluster floors).

May import: ``moecl_lib.config`` only.
"""
