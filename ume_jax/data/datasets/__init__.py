"""The datasets, one module per family; each has a ``load(data_config)``
factory for the registry and prepares itself with ``ume_jax.data.prepare``."""
