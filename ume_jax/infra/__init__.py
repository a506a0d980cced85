"""Infrastructure: device mesh and shardings, checkpoints (the only Orbax
import), the multi-process runtime, preemption notices, and logs."""
