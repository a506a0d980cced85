"""The methods of the paper as (model, train logits, eval logits) triples.

- ``unimodal:<m>``: encoder + head on modality m alone (pre-training stage);
- ``late_fusion``: late-fusion model trained jointly from scratch;
- ``late_fusion_pretrained``: the same, initialised from uni-modal checkpoints;
- ``mma``: initialised from uni-modal checkpoints, trained with per-sample
  missing-modality augmentation;
- ``moddrop``: the late-fusion model trained jointly from scratch with the
  same per-sample augmentation as ``mma`` (ModDrop-style modality dropout):
  what augmentation does without uni-modal pre-training;
- ``umt``: Uni-Modal Teacher (Du et al., ICML'23): the late-fusion model
  trained jointly from scratch, its encoders' features distilled toward
  the frozen uni-modal models' (``train/distill.py``);
- ``prompts``: missing-aware prompts (Lee et al., CVPR'23): the
  pre-trained towers (the uni-modal checkpoints' encoders) frozen, one set of
  learnable prompt tokens per presence pattern in the first
  ``prompts.depth`` layers of each transformer tower (``models/prompts.py``),
  only the prompts and the heads trained, on the run's training-time
  missingness (no augmentation). A modality whose encoder is no transformer
  with the ``extra_tokens`` hook (a CNN) gets no prompts: its frozen encoder
  and trained head only;
- ``ume``: eval-only ensemble, the sum of the uni-modal models' logits over
  the modalities each example has;
- ``ume_mma``: ``ume`` or ``mma``, chosen on validation (``eval/results.py``);
- ``ume_umt``: ``ume`` or ``umt`` by Du et al.'s rule, read on validation
  (``eval/results.py``).

Each receives what it needs: the model config (``config.model``), the
dataset's spec and the run's ``MaskingSpec``, never the whole config.
"""
import dataclasses
import functools
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ume_jax.data import DatasetSpec
from ume_jax.eval import decomposed
from ume_jax.infra import mesh as mesh_lib
from ume_jax.config import rules
from ume_jax.missing import masking as masking_lib
from ume_jax.missing.masking import SUBSTITUTES, MaskingSpec
from ume_jax.models import LateFusionClassifier, UniModalClassifier
from ume_jax.models import classifier, prompts
from ume_jax.train import distill, frozen_prefix, seeds

FUSION_METHODS = ("late_fusion", "moddrop", "late_fusion_pretrained", "mma",
                  "umt", "prompts")
PRETRAINED_INIT = ("late_fusion_pretrained", "mma", "prompts")
# Trained with MMA's per-sample missing-modality augmentation (one mask
# draw for both: masking.train_present with the run's key).
AUGMENTED = ("moddrop", "mma")
# Trained from scratch with the frozen uni-modal encoders as teachers (they
# read the pre-training stage's checkpoints, as PRETRAINED_INIT do).
DISTILLED = ("umt",)
# Frozen towers with learnable per-pattern prompt tokens (models/prompts.py).
PROMPTED = ("prompts",)
# What ``prompts`` never trains: every encoder (its prompts live beside
# them, ``<m>_prompts``; heads and learned missing tokens train).
PROMPTED_FROZEN = (r"[^/]+_encoder/.*",)

# The ``model`` section; encoders are checked against the dataset.
MODEL_KEYS = {
    "encoders": None,
    "fusion": rules.one_of(*classifier.FUSIONS),
    "substitute": rules.one_of(*SUBSTITUTES),
    "missing_logits": rules.one_of(*classifier.MISSING_LOGITS),
    # Temperature-scale each uni-modal model on validation: in ``ume`` and
    # in the heads sum_logits fusion starts from (eval/calibration.py).
    "calibrate": rules.boolean,
}


@dataclasses.dataclass(frozen=True)
class Method:
  """What a training stage or an evaluation needs to know about a method."""
  name: str
  model: nn.Module
  example_inputs: Callable[[int], tuple]   # batch size -> model.init args
  train_logits: Callable[[Any, dict, Any], jnp.ndarray]
  eval_logits: Callable[[Any, dict, jnp.ndarray], jnp.ndarray]
  fingerprint: dict
  # Per-example loss weights of a training batch (None: all count).
  example_weights: Callable[[dict], jnp.ndarray] | None = None
  # (params, batch, key) -> (logits, {name: weighted extra loss}): the
  # training forward where the loss has more than the task's term (None:
  # ``train_logits`` and the task loss alone).
  train_terms: Callable[[Any, dict, Any], tuple] | None = None
  # Parameters kept beside the model's own (``umt``'s frozen teachers,
  # under ``distill.TEACHER``); None: the model's parameters only.
  teachers: distill.Teachers | None = None
  # Parameter path regexes never trained whatever the config says
  # (``optim.with_frozen``).
  frozen_paths: tuple[str, ...] = ()
  # How it trains from cached frozen encoder prefixes
  # (``train/frozen_prefix.py``); None: it cannot.
  prefix: frozen_prefix.Hooks | None = None

  def boxed_params(self, key: jax.Array) -> Any:
    """Fresh parameters, still boxed with their logical axis names."""
    inputs = self.example_inputs(1)
    params = self.model.init(key, *inputs)["params"]
    if self.teachers is None:
      return params
    # Its own key: the student's initialisation is late_fusion's.
    return {**params, distill.TEACHER: self.teachers.init(
        jax.random.fold_in(key, 1), inputs[0])}


def abstract_params(method: Method, mesh) -> Any:
  """Parameter ShapeDtypeStructs carrying their mesh shardings (no memory)."""
  boxed = jax.eval_shape(method.boxed_params, seeds.init_key(0))
  return mesh_lib.abstract_like(nn.meta.unbox(boxed),
                                mesh_lib.param_shardings(boxed, mesh))


def _zeros(spec: DatasetSpec, m: str, batch: int) -> np.ndarray:
  return np.zeros((batch,) + tuple(spec.input_shapes[m]),
                  spec.input_dtypes.get(m, "float32"))


def _encoder(model_cfg, m: str) -> tuple[str, dict]:
  enc = model_cfg.encoders[m]
  return enc.name, dict(enc.get("kwargs", {}) or {})


def unimodal(model_cfg, spec: DatasetSpec, m: str,
             masking: MaskingSpec) -> Method:
  name, kwargs = _encoder(model_cfg, m)
  model = UniModalClassifier(name, kwargs, spec.num_classes)

  def train_logits(params, batch, key):
    del key
    return model.apply({"params": params}, batch[m])

  index = spec.modalities.index(m)

  def general(params, batch, present):
    inputs = masking.inputs(batch, present, unimodal=True)
    return model.apply({"params": params}, inputs[m])

  def real(params, batch):
    return model.apply({"params": params}, batch[m])

  def substitute(params, batch):
    inputs = masking.inputs(batch, _nothing_present(batch), unimodal=True)
    return model.apply({"params": params}, inputs[m])

  def assemble(params, pieces, present):
    del params
    return jnp.where(present[:, index, None], pieces["real"], pieces["sub"])

  eval_logits = decomposed.Decomposed(
      general, lambda params: {"real": (real, params),
                               "sub": (substitute, params)}, assemble)

  def example_weights(batch):
    # An example without modality m teaches its uni-modal model nothing.
    return masking.training_present(batch)[:, index].astype(jnp.float32)

  def prefix_train_logits(params, batch, key, prefix):
    del key   # absent inputs are weighted out, never substituted
    return model.apply({"params": params}, batch[m],
                       start=prefix.starts.get(m, 0))

  return Method(
      f"unimodal:{m}", model, lambda b: (_zeros(spec, m, b),), train_logits,
      eval_logits,
      {"method": f"unimodal:{m}", "encoder": name, "encoder_kwargs": kwargs,
       "input_shape": list(spec.input_shapes[m]),
       "num_classes": spec.num_classes},
      example_weights,
      prefix=frozen_prefix.Hooks({m: (name, kwargs, "encoder")},
                                 prefix_train_logits))


def fusion(model_cfg, spec: DatasetSpec, method: str,
           masking: MaskingSpec,
           distill_weight: float = distill.DEFAULT_WEIGHT,
           prompt_cfg: Mapping | None = None) -> Method:
  """``distill_weight``: ``umt``'s distillation loss weight
  (``config.umt.distill_weight``); ``prompt_cfg``: ``prompts``' ``length``
  and ``depth`` (``config.prompts``, default ``prompts.DEFAULTS``); other
  methods ignore them."""
  if method not in FUSION_METHODS:
    raise ValueError(f"Unknown fusion method {method!r}; expected one of"
                     f" {FUSION_METHODS}")
  mods = spec.modalities
  encoders = {m: _encoder(model_cfg, m) for m in mods}
  prompt = {**prompts.DEFAULTS, **dict(prompt_cfg or {})}
  prompted = (prompts.check(encoders, mods, int(prompt["depth"]))
              if method in PROMPTED else ())
  model = LateFusionClassifier(
      mods, encoders, spec.num_classes, fusion=model_cfg.fusion,
      substitute=masking.substitute, missing_logits=model_cfg.missing_logits,
      prompted=prompted, prompt_length=int(prompt["length"]),
      prompt_depth=int(prompt["depth"]))
  augment = method in AUGMENTED

  def forward(params, batch, present):
    return model.apply({"params": params}, masking.inputs(batch, present),
                       present)

  def encode(params, batch):
    return model.apply({"params": params}, batch, None, encode_only=True)

  def encode_substitutes(params, batch):
    inputs = masking.inputs(batch, _nothing_present(batch))
    return model.apply({"params": params}, inputs, None, encode_only=True)

  def parts(params):
    if masking.substitute == "learned":   # the token stands in, in the head
      return {"real": (encode, params)}
    return {"real": (encode, params), "sub": (encode_substitutes, params)}

  def assemble(params, pieces, present):
    features = pieces["real"]
    if "sub" in pieces:
      features = {m: jnp.where(present[:, i, None], features[m],
                               pieces["sub"][m]) for i, m in enumerate(mods)}
    return model.apply({"params": params}, None, present, encoded=features)

  def train_present(batch, key):
    present = masking.training_present(batch)
    if augment:
      present = masking.augmented_present(key, present)
    return present

  def train_logits(params, batch, key):
    return forward(params, batch, train_present(batch, key))

  def prefix_train_logits(params, batch, key, prefix):
    present = train_present(batch, key)
    cached = frozen_prefix.substitute(batch, present, mods, prefix)
    inputs = {**masking.inputs(batch, present, skip=tuple(prefix.starts)),
              **{m: cached[m] for m in prefix.starts}}
    return model.apply({"params": params}, inputs, present,
                       starts=dict(prefix.starts))

  # Prompted towers take prompt tokens in their frozen layers: not cached.
  hooks = frozen_prefix.Hooks(
      {m: (*encoders[m], f"{m}_encoder") for m in mods if m not in prompted},
      prefix_train_logits, functools.partial(_fill, masking))

  def example_inputs(b):
    return ({m: _zeros(spec, m, b) for m in mods},
            np.ones((b, len(mods)), np.bool_))

  fingerprint = {
      "method": method, "modalities": list(mods),
      "encoders": {m: list(e) for m, e in encoders.items()},
      "input_shapes": {m: list(spec.input_shapes[m]) for m in mods},
      "num_classes": spec.num_classes, "fusion": model_cfg.fusion,
      "substitute": masking.substitute,
      "missing_logits": model_cfg.missing_logits}
  if method in PROMPTED:
    # The prompts depend on the whole pattern, so an encoder's output is
    # no longer the same in every scenario: the general evaluation path.
    fingerprint["prompts"] = {"modalities": list(prompted),
                              "length": int(prompt["length"]),
                              "depth": int(prompt["depth"])}
    return Method(method, model, example_inputs, train_logits, forward,
                  fingerprint, frozen_paths=PROMPTED_FROZEN, prefix=hooks)
  eval_logits = decomposed.Decomposed(forward, parts, assemble)
  if method in DISTILLED:
    return _distilled(Method(method, model, example_inputs, train_logits,
                             eval_logits, fingerprint),
                      encoders, masking, float(distill_weight))
  return Method(method, model, example_inputs, train_logits, eval_logits,
                fingerprint, prefix=hooks)


def _fill(masking: MaskingSpec, m: str, x: np.ndarray):
  """The fusion models' substitute of absent inputs ``x`` of ``m`` (None
  for ``learned``: the model swaps features instead)."""
  if masking.substitute == "learned":
    return None
  means = None if masking.means is None else {m: masking.means[m]}
  return masking_lib.substitute_inputs(
      {m: x}, np.zeros((x.shape[0], 1), bool), (m,), masking.substitute,
      means)[m]


def _distilled(method: Method, encoders: Mapping, masking: MaskingSpec,
               weight: float) -> Method:
  """``method`` (late fusion, no augmentation) with frozen uni-modal
  teachers and the feature distillation loss (``train/distill.py``)."""
  teachers = distill.Teachers(encoders)
  model, mods = method.model, masking.modalities

  def train_terms(params, batch, key):
    del key   # Du et al.'s UMT drops no modality
    present = masking.training_present(batch)
    # One student forward, split where the features are: they are both
    # the fused logits' input and the distilled quantity.
    features = model.apply({"params": params}, masking.inputs(batch, present),
                           None, encode_only=True)
    logits = model.apply({"params": params}, None, present, encoded=features)
    # The teacher sees what its uni-modal model would: the same real input
    # where present (absent rows are masked out of the loss).
    targets = teachers.features(
        params[distill.TEACHER],
        masking.inputs(batch, present, unimodal=True))
    return logits, {"distill": weight * distill.feature_mse(
        features, targets, present, mods)}

  return dataclasses.replace(method, train_terms=train_terms,
                             teachers=teachers,
                             frozen_paths=distill.FROZEN_PATHS)


def _nothing_present(batch: dict) -> jnp.ndarray:
  """A presence mask with every modality absent: the substitutes' inputs."""
  return jnp.zeros_like(batch["present"], dtype=jnp.bool_)


def ume_logits(unimodal_methods: Mapping[str, Method], spec: DatasetSpec,
               temperatures: Mapping[str, float] | None = None):
  """Eval logits of the Uni-Modal Ensemble over ``{m: params}``.

  Absent modalities are left out of the sum (the ensemble view): an
  ensemble member without its input has nothing to say. With
  ``temperatures`` each member's logits are divided by its own (a
  calibrated sum: no over-confident member outvotes the others).
  """
  scale = {m: 1.0 / float((temperatures or {}).get(m, 1.0))
           for m in spec.modalities}
  members = {m: unimodal_methods[m].eval_logits for m in spec.modalities}

  def parts(params_by_modality):
    # The members' own real-input pieces: evaluated beside them, computed
    # once for both.
    return {m: members[m].parts(params_by_modality[m])["real"]
            for m in spec.modalities}

  def assemble(params_by_modality, pieces, present):
    del params_by_modality
    total = 0.0
    for i, m in enumerate(spec.modalities):
      logits = pieces[m] * scale[m]
      total = total + logits * present[:, i, None].astype(logits.dtype)
    return total

  def general(params_by_modality, batch, present):
    own = {m: fn(p, batch) for m, (fn, p) in parts(params_by_modality).items()}
    return assemble(params_by_modality, own, present)

  return decomposed.Decomposed(general, parts, assemble)
