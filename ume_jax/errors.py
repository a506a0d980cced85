"""The errors a user can cause and fix: each module raises its own, main
prints them as one paragraph instead of a traceback."""
from ume_jax.infra.checkpoint import CheckpointError
from ume_jax.config.checks import ConfigError
from ume_jax.data import DataError
from ume_jax.infra.mesh import MeshError
from ume_jax.infra.workdir_lock import WorkdirLockedError
from ume_jax.train.provenance import ProvenanceError
from ume_jax.train.trainer import TrainingError
from ume_jax.weights import WeightsError

USER_ERRORS = (CheckpointError, ConfigError, DataError, MeshError,
               ProvenanceError,
               TrainingError, WeightsError, WorkdirLockedError)
