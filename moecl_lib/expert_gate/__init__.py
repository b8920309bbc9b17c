"""The Expert Gate baseline (Aljundi et al., CVPR 2017), deep and linear.

Owns the learner (``gate``: overview and :class:`ExpertGate`; its knobs in
``gate_config``, the autoencoder gate in ``autoencoders``, the experts and LwF training
in ``experts``), its experiments on image tasks (``experiments``: classic protocol and
relatedness study; ``baselines``: single-model baselines and gate evaluation;
``round_stream``: oracle router and summaries on the round stream) and the linear Expert
Gate on the paper's linear data (``linear``).

May import: ``moecl_lib.config``, ``moecl_lib.linear``, ``moecl_lib.analysis``,
``moecl_lib.deep`` and ``moecl_lib.figures``.
"""
