"""Closed forms and exact expectations (no simulation).

Owns the isotropic single-expert formulas (``isotropic``), the exact theory of the
Definition-1 generator (``exact``: overview and public names; ``exact_update`` one
update, ``exact_single`` one expert, ``exact_moe`` an MoE on a given routing), the MoE
after specialisation (``moe``: overview and public names; ``specialised_routing`` decay
and expert sets, ``post_specialisation`` curves from a realised state, ``oracle``
cluster floors and the ideal MoE) and the router's specialisation criterion
(``specialisation``).

May import: ``moecl_lib.config`` only.
"""
