"""Evaluation: every method under every scenario, metrics, the ``ume_mma``
choice and ceilings, and the files a run reports. Imports nothing from
``ume_jax.train``."""
