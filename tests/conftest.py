"""Test session setup: 8 fake CPU devices, parsed absl flags.

XLA reads the device count once, when the backend starts, so this must run
before anything imports jax's backend; pytest imports conftest first.
"""
import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from absl import flags  # noqa: E402

# grain's worker processes read absl flags; tests do not go through app.run.
flags.FLAGS.mark_as_parsed()
