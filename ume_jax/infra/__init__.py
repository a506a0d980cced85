"""Infrastructure: device mesh and shardings, checkpoints (the only Orbax
import), the multi-process runtime, preemption notices, logs, the workdir
lock, and the workdir's file operations (``paths``: local or ``gs://``)."""
