"""The Expert Gate baseline (Aljundi et al., CVPR 2017), deep and linear.

Owns the autoencoder gate, experts and LwF training (``gate``), its experiments on
image streams (``experiments``) and the linear Expert Gate on the paper's linear data
(``linear``).

May import: ``moecl_lib.config``, ``moecl_lib.linear``, ``moecl_lib.analysis``,
``moecl_lib.deep`` and ``moecl_lib.figures``.
"""
