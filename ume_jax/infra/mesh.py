"""Where the device mesh is built and logical axes meet mesh axes.

Models name their parameter axes logically (``embed``, ``conv_out``...);
``LOGICAL_RULES`` below is the only mapping from those names to the mesh.
The batch is split over every device (data and fsdp axes together, as FSDP
does); parameters are split over ``fsdp``.
"""
import math
from typing import Any, Mapping

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ume_jax.config import rules

MESH_AXES = ("data", "fsdp")
BATCH_AXES = ("data", "fsdp")

LOGICAL_RULES = (
    ("batch", BATCH_AXES),
    ("flat", "fsdp"),
    ("embed", "fsdp"),
    ("conv_out", "fsdp"),
    ("conv_in", None),
    ("conv_height", None),
    ("conv_width", None),
    ("classes", None),
)


# The ``mesh`` section: axis sizes; ``build_mesh`` checks they fit.
CONFIG_KEYS = {"data": rules.integer(), "fsdp": rules.integer()}


class MeshError(ValueError):
  """config.mesh does not fit the devices at hand."""


def build_mesh(mesh_config: Mapping[str, int], devices=None) -> Mesh:
  """Mesh with axes ``(data, fsdp)`` sized from config; -1 fills the rest."""
  devices = list(devices if devices is not None else jax.devices())
  sizes = [int(mesh_config.get(a, 1)) for a in MESH_AXES]
  fill = [i for i, s in enumerate(sizes) if s == -1]
  fixed = math.prod(s for s in sizes if s != -1)
  if len(fill) > 1 or any(s == 0 or s < -1 for s in sizes):
    raise MeshError(f"config.mesh {dict(zip(MESH_AXES, sizes))}: sizes must be"
                     " positive, with at most one -1 (fill).")
  if fill:
    if len(devices) % fixed:
      raise MeshError(f"config.mesh {dict(zip(MESH_AXES, sizes))} cannot fill"
                       f" {len(devices)} devices: {fixed} does not divide it.")
    sizes[fill[0]] = len(devices) // fixed
  if math.prod(sizes) != len(devices):
    raise MeshError(f"config.mesh {dict(zip(MESH_AXES, sizes))} needs"
                     f" {math.prod(sizes)} devices, {len(devices)} available.")
  # Auto axes: shardings propagate through jit as in pjit; we place arrays
  # explicitly with in/out shardings instead of sharding-in-types.
  return jax.make_mesh(tuple(sizes), MESH_AXES,
                       axis_types=(jax.sharding.AxisType.Auto,) * 2,
                       devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def abstract_like(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs carrying the *current* shardings (for jitted init,
  restore and ahead-of-time compiles); no memory is allocated."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      tree, shardings)


def _fit_to_shape(spec: P, shape: tuple[int, ...], mesh: Mesh) -> P:
  """Replicates any dim the mesh axes do not divide (small heads, odd dims)."""
  fitted = []
  for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    names = axes if isinstance(axes, tuple) else (axes,) if axes else ()
    size = math.prod(mesh.shape[a] for a in names)
    fitted.append(axes if size and dim % size == 0 else None)
  return P(*fitted)


def param_shardings(boxed_abstract_params: Any, mesh: Mesh) -> Any:
  """NamedShardings for parameters annotated with logical axis names."""
  logical_specs = nn.get_partition_spec(boxed_abstract_params)
  mesh_specs = nn.logical_to_mesh(logical_specs, LOGICAL_RULES)
  shapes = nn.meta.unbox(boxed_abstract_params)
  return jax.tree.map(
      lambda spec, x: NamedSharding(mesh, _fit_to_shape(spec, x.shape, mesh)),
      mesh_specs, shapes, is_leaf=lambda s: isinstance(s, P))


def _dict_keys(key_path) -> tuple[str, ...]:
  return tuple(str(k.key) for k in key_path
               if isinstance(k, jax.tree_util.DictKey))


def like_params_shardings(tree: Any, param_shardings: Any, params: Any,
                          mesh: Mesh) -> Any:
  """Shardings for a tree holding per-parameter copies (optimizer moments).

  A leaf whose dict-key path ends with a parameter's path, and has that
  parameter's shape, gets the parameter's sharding; everything else (step
  counts, masked-out groups) is replicated. Matching by path suffix works for
  any optax state, including ``multi_transform``'s nested, masked ones.
  """
  by_path = {}
  for (path, sh), x in zip(
      jax.tree_util.tree_flatten_with_path(param_shardings)[0],
      jax.tree.leaves(params)):
    by_path[_dict_keys(path)] = (sh, x.shape)

  def pick(path, leaf):
    names = _dict_keys(path)
    for k in range(len(names)):
      hit = by_path.get(names[k:])
      if hit is not None and hit[1] == leaf.shape:
        return hit[0]
    return NamedSharding(mesh, P())

  return jax.tree_util.tree_map_with_path(pick, tree)


def sharding_summary(abstract_params: Any, shardings: Any) -> dict[str, int]:
  """Bytes of parameters that are split across devices vs replicated."""
  summary = {"sharded_bytes": 0, "replicated_bytes": 0}
  for x, s in zip(jax.tree.leaves(abstract_params), jax.tree.leaves(shardings)):
    nbytes = int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
    key = "replicated_bytes" if s.is_fully_replicated else "sharded_bytes"
    summary[key] += nbytes
  return summary


def describe_sharding(name: str, abstract_params: Any, shardings: Any) -> str:
  s = sharding_summary(abstract_params, shardings)
  total = max(1, s["sharded_bytes"] + s["replicated_bytes"])
  return (f"{name} parameters: {s['sharded_bytes'] / 1e6:.2f} MB sharded"
          f" ({100 * s['sharded_bytes'] / total:.0f}%),"
          f" {s['replicated_bytes'] / 1e6:.2f} MB replicated")
