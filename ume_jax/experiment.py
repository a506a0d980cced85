"""The whole method, stage by stage: pre-train -> fine-tune -> evaluate.

``run(config, workdir)`` is what ``main.py`` calls. ``config.stage`` picks one
stage or ``all``. ``setup(config)`` is everything a run builds before it
trains (checks, dataset, mesh, methods); ``training_runs`` lists the runs a
config trains, each with its config section, directory and seed; the
ahead-of-time check (``aot_check.py``) reuses both. Layout of a workdir::

  pretrain/<modality>/   uni-modal checkpoints + metrics.jsonl + events
  <method>/              late_fusion, late_fusion_pretrained, mma, ...
  results.json, results.md, robustness.png

With ``config.num_seeds = N > 1`` the whole method runs N times, seed k in
``seed_<k>/`` (that layout, its own results files, resumable on its own),
and the workdir's results aggregate them (``eval/results.combine``).
"""
import dataclasses
import functools
import os
from typing import Any, Callable, Sequence

import jax

from ume_jax import data as data_lib
from ume_jax import methods as methods_lib
from ume_jax.config import checks as config_checks
from ume_jax.config import common, rules
from ume_jax.eval import (calibration, evaluation, metrics, pattern_choice,
                          report)
from ume_jax.eval import results as results_lib
from ume_jax.infra import checkpoint, logs, paths, preemption, workdir_lock
from ume_jax.infra import mesh as mesh_lib
from ume_jax.infra.logs import announce
from ume_jax.missing import masking
from ume_jax.missing import scenarios as scenarios_lib
from ume_jax.missing.masking import MaskingSpec
from ume_jax.models import prompts
from ume_jax.train import (aot, distill, frozen_prefix, provenance, seeds,
                           trainer, validation, warm_start)
from ume_jax.weights import graft

# The config section holding each fusion method's budget and optimizer:
# trained from scratch, or fine-tuned from the uni-modal checkpoints.
# (Every uni-modal model trains under ``pretrain``.)
SECTION_OF = {name: "finetune" if name in methods_lib.PRETRAINED_INIT
              else "scratch" for name in methods_lib.FUSION_METHODS}


STAGES = ("all", "pretrain", "finetune", "eval")

# Every key of a config, each declared by the module that reads it.
CONFIG_SCHEMA = {
    "seed": rules.integer(),
    "num_seeds": rules.integer(1),
    "stage": rules.one_of(*STAGES),
    "log_every_steps": rules.integer(1),
    "methods": rules.each(rules.one_of(*methods_lib.FUSION_METHODS)),
    "data": None,     # the dataset's own keys: checked by its loader
    # One Hugging Face snapshot folder that several keys read
    # (ume_jax/config/clip.py); absent from configs without one.
    "hf_snapshot": rules.text,
    "mesh": mesh_lib.CONFIG_KEYS,
    "model": methods_lib.MODEL_KEYS,
    "mma": masking.MMA_KEYS,
    "umt": distill.CONFIG_KEYS,
    "prompts": prompts.CONFIG_KEYS,
    "train_missing": masking.TRAIN_MISSING_KEYS,
    **{section: trainer.STAGE_KEYS for section in common.STAGE_SECTIONS},
    "eval": evaluation.CONFIG_KEYS,
    "checkpoint": checkpoint.CONFIG_KEYS,
    "validation": validation.CONFIG_KEYS,
    frozen_prefix.CONFIG_KEY: rules.boolean,
}


def unimodal_dir(root: str, modality: str) -> str:
  return os.path.join(root, "pretrain", modality)


@dataclasses.dataclass(frozen=True)
class Methods:
  """The methods a config defines, built once."""
  unimodal: dict[str, methods_lib.Method]   # modality -> its uni-modal model
  fusion: dict[str, methods_lib.Method]     # config.methods, in order
  masking: MaskingSpec


def build_methods(config, spec: data_lib.DatasetSpec,
                  means=None) -> Methods:
  masking_spec = MaskingSpec.from_config(config, spec, means)
  return Methods(
      unimodal={m: methods_lib.unimodal(config.model, spec, m, masking_spec)
                for m in spec.modalities},
      fusion={name: methods_lib.fusion(config.model, spec, name, masking_spec,
                                       _distill_weight(config),
                                       config.get("prompts"))
              for name in config.methods},
      masking=masking_spec)


def _distill_weight(config) -> float:
  return float((config.get("umt") or {}).get("distill_weight",
                                             distill.DEFAULT_WEIGHT))


@dataclasses.dataclass(frozen=True)
class Setup:
  config: Any
  dataset: data_lib.Dataset
  mesh: jax.sharding.Mesh
  methods: Methods
  # Fitted temperatures per (pre-training root, checkpoints read): the
  # warm starts and the evaluation of one replicate fit them once.
  temperatures: dict = dataclasses.field(default_factory=dict, repr=False,
                                         compare=False)


def setup(config, devices: Sequence | None = None) -> Setup:
  """Checks ``config`` (with the architectures of its pre-trained
  encoders filled in), then builds its dataset, mesh and methods."""
  config = graft.with_architectures(config)
  config_checks.check_config(config, CONFIG_SCHEMA)
  frozen_prefix.check_config(config)
  dataset = data_lib.get_dataset(config.data)
  config_checks.check_against_dataset(config, dataset.spec,
                                      dataset.vocab_sizes)
  mesh = mesh_lib.build_mesh(config.mesh, devices)
  config_checks.check_against_mesh(config, mesh)
  means = (dataset.modality_means() if config.model.substitute == "mean"
           else None)
  return Setup(config, dataset, mesh,
               build_methods(config, dataset.spec, means))


@dataclasses.dataclass(frozen=True)
class TrainingRun:
  """One call to ``trainer.train``."""
  stage: str          # the config.stage that runs it: pretrain | finetune
  section: str        # config section: pretrain | scratch | finetune
  method: methods_lib.Method
  directory: str
  seed: int
  init_params: Callable[[Any], Any] | None
  modalities: tuple[str, ...]            # whose encoders it trains
  upstream: dict[str, str] = dataclasses.field(default_factory=dict)


def training_runs(s: Setup, workdir: str, seed: int | None = None
                  ) -> list[TrainingRun]:
  """Every training run of the config, in the order they run; ``seed``
  (default ``config.seed``) is the replicate's seed."""
  config = s.config
  seed = config.seed if seed is None else seed
  runs = []
  for i, (m, method) in enumerate(s.methods.unimodal.items()):
    init = graft.initializer({m: config.model.encoders[m]},
                             lambda _: "encoder")
    runs.append(TrainingRun("pretrain", "pretrain", method,
                            unimodal_dir(workdir, m),
                            seeds.pretrain_seed(seed, i), init, (m,)))
  pretrain_root = _replicate_dir(config.finetune.get("pretrained_dir"),
                                 config, seed) or workdir
  for name, method in s.methods.fusion.items():
    upstream = {}
    if SECTION_OF[name] == "finetune":
      upstream = {m: unimodal_dir(pretrain_root, m) for m in s.methods.unimodal}
      init = functools.partial(
          warm_start.load_into_fusion,
          unimodal={m: (upstream[m], u)
                    for m, u in s.methods.unimodal.items()},
          load_heads=config.model.fusion == "sum_logits",
          select=_select(config),
          temperatures=functools.partial(_fit_temperatures, s, pretrain_root))
    else:   # from scratch: the encoders' own pre-trained weights, if any
      init = graft.initializer(config.model.encoders,
                               lambda m: f"{m}_encoder")
      if name in methods_lib.DISTILLED:   # + the frozen uni-modal teachers
        upstream = {m: unimodal_dir(pretrain_root, m)
                    for m in s.methods.unimodal}
        init = _then(init, functools.partial(
            warm_start.load_teachers,
            unimodal={m: (upstream[m], u)
                      for m, u in s.methods.unimodal.items()},
            select=_select(config)))
    runs.append(TrainingRun("finetune", SECTION_OF[name], method,
                            os.path.join(workdir, name),
                            seeds.fusion_seed(seed), init,
                            tuple(s.methods.unimodal), upstream))
  return runs


def _then(first: Callable | None, second: Callable) -> Callable:
  """``params -> second(first(params))`` (``first`` may be None)."""
  return second if first is None else lambda p: second(first(p))


# Data settings that say where the data is, how fast it is read or how many
# unreadable files preparation tolerates, not what it is: a run moved to
# another data_dir or read with more workers is the same training (files
# that were dropped show in the spec's split sizes).
_DATA_LOCATION_KEYS = ("data_dir", "manual_dir", "worker_count",
                       "worker_buffer_size", "read_threads", "cache_in_memory",
                       "max_bad_fraction")


def data_identity(s: Setup) -> dict:
  """What the data is, wherever it lives."""
  return {"spec": dataclasses.asdict(s.dataset.spec),
          "config": {k: v for k, v in s.config.data.to_dict().items()
                     if k not in _DATA_LOCATION_KEYS}}


def fingerprint(s: Setup, run: TrainingRun) -> dict:
  """Everything the run's trained state depends on (``provenance.py``);
  runs it starts from are named by their recorded identity, so this is
  computed right before the run trains."""
  config = s.config
  section = config[run.section].to_dict()
  section.pop("pretrained_dir", None)
  out = {
      "method": run.method.fingerprint,
      "training": section,
      "seed": run.seed,
      "train_missing": config.train_missing.to_dict(),
      "weights": {m: {k: config.model.encoders[m].get(k, "")
                      for k in ("weights", "weights_path")}
                  for m in run.modalities},
      "data": data_identity(s),
  }
  if config.get("validation") is not None:
    # Which checkpoint is the best (and, with patience, where training
    # stopped) depends on when validation runs.
    out["validation"] = config.validation.to_dict()
  if run.method.name in methods_lib.AUGMENTED:
    out["drop_probs"] = config.mma.drop_probs.to_dict()
  if run.method.name in methods_lib.DISTILLED:
    out["distill_weight"] = _distill_weight(config)
  if run.upstream:
    out["initialised_from"] = {
        m: (provenance.read(d) or {}).get("identity", "unrecorded")
        for m, d in run.upstream.items()}
  return out


def _replicate_dir(root: str, config, seed: int) -> str:
  """Where replicate ``seed`` lives under ``root`` ("" stays "")."""
  if not root or int(config.num_seeds) == 1:
    return root
  k = (seed - int(config.seed)) // seeds.REPLICATE_STRIDE
  return os.path.join(root, f"seed_{k}")


def train(s: Setup, workdir: str, stage: str, seed: int) -> None:
  """Trains every run of ``stage`` (resuming finished ones is a no-op)."""
  config = s.config
  for run in training_runs(s, workdir, seed):
    if run.stage == stage:
      trainer.train(run.method, config[run.section], dataset=s.dataset,
                    mesh=s.mesh, directory=run.directory, seed=run.seed,
                    init_params=run.init_params,
                    checkpoint_cfg=config.checkpoint,
                    log_every_steps=config.log_every_steps,
                    provenance_record=(fingerprint(s, run),
                                       config.to_dict()),
                    validate=_validator(s, run),
                    validation_cfg=config.get("validation"),
                    prefix_cache=frozen_prefix.settings(config,
                                                        data_identity(s)))


def _select(config) -> str:
  """Which checkpoint of a run the next stage reads (``validation.py``)."""
  return (config.get("validation") or {}).get("select", "last")


def _validator(s: Setup, run: TrainingRun):
  """``params -> scores`` of ``run`` on the validation split: the primary
  metric with every modality present and, for fusion methods, with each
  fixed subset missing, and their mean (``"score"``)."""
  config, spec = s.config, s.dataset.spec
  fixed = scenarios_lib.build_scenarios(spec.modalities, (), ())  # full first
  scenarios = fixed if run.stage == "finetune" else fixed[:1]
  primary = (config.eval.get("primary_metric")
             or metrics.metric_names(spec.multilabel)[0])
  method = run.method

  def validate(params):
    by_scenario = evaluation.evaluate(
        {method.name: (method.eval_logits, params)}, dataset=s.dataset,
        split="validation", scenarios=scenarios,
        batch_size=config.eval.batch_size, mesh=s.mesh,
        mask_seed=config.eval.mask_seed,
        decompose=config.eval.decompose)[method.name]
    scores = {sc.name: by_scenario[sc.name][primary] for sc in scenarios}
    return {**scores, "score": sum(scores.values()) / len(scores)}

  return validate


def restore_params(directory: str, method: methods_lib.Method,
                   abstract_params: Any) -> Any:
  """The latest parameters of ``method`` saved in ``directory``, on the
  shardings ``abstract_params`` carries."""
  params, _ = checkpoint.restore_params(directory, method.fingerprint,
                                        abstract_params)
  return params


def _restore(s: Setup, run_dir: str, method: methods_lib.Method) -> Any:
  """The parameters of the run in ``run_dir`` that ``validation.select``
  picks (its best or its last checkpoint)."""
  directory, _ = validation.chosen(run_dir, _select(s.config))
  return restore_params(directory, method,
                        methods_lib.abstract_params(method, s.mesh))


def _run_dirs(s: Setup, root: str) -> dict[str, str]:
  """Trained method name -> its run directory under ``root``."""
  return {**{u.name: unimodal_dir(root, m)
             for m, u in s.methods.unimodal.items()},
          **{name: os.path.join(root, name) for name in s.methods.fusion}}


def _fit_temperatures(s: Setup, root: str, params: dict | None = None
                      ) -> dict[str, float]:
  """Per modality, the temperature minimising its uni-modal model's NLL on
  the validation split (``params`` {m: params}, else restored from
  ``root``); {} unless ``model.calibrate``. Fitted once per set of
  checkpoints; a fit at the search's edge uses T = 1 (no evidence)."""
  if not s.config.model.get("calibrate"):
    return {}
  read = tuple((m, validation.chosen(unimodal_dir(root, m), _select(s.config)),
                (validation.read_record(unimodal_dir(root, m)) or {}).get(
                    "step")) for m in s.methods.unimodal)
  key = (paths.name(root), read)
  if key not in s.temperatures:
    out = {}
    for m, u in s.methods.unimodal.items():
      p = (params or {}).get(m)
      if p is None:
        p = _restore(s, unimodal_dir(root, m), u)
      logits, labels = evaluation.predict(
          u.eval_logits, p, dataset=s.dataset, split="validation",
          batch_size=s.config.eval.batch_size, mesh=s.mesh)
      out[m] = calibration.fit_temperature(
          logits, labels, s.dataset.spec.multilabel, at_bound=1.0)
    s.temperatures[key] = out
  return dict(s.temperatures[key])


def load_evaluators(s: Setup, root: str) -> tuple[dict, dict[str, float]]:
  """(method name -> (eval_logits, params restored from checkpoints), the
  uni-modal models' temperatures ``ume`` is calibrated with)."""
  dirs = _run_dirs(s, root)
  methods = {**{u.name: u for u in s.methods.unimodal.values()},
             **s.methods.fusion}
  out = {name: (method.eval_logits, _restore(s, dirs[name], method))
         for name, method in methods.items()}
  unimodal = s.methods.unimodal
  members = {m: out[f"unimodal:{m}"][1] for m in unimodal}
  temperatures = _fit_temperatures(s, root, members)
  out["ume"] = (methods_lib.ume_logits(unimodal, s.dataset.spec,
                                       temperatures), members)
  return out, temperatures


def evaluate(s: Setup, workdir: str, seed: int) -> dict:
  """One replicate's results (``eval/results.assemble``)."""
  config, spec = s.config, s.dataset.spec
  root = _replicate_dir(config.eval.get("checkpoint_dir"), config,
                        seed) or workdir
  scenarios = scenarios_lib.build_scenarios(
      spec.modalities, config.eval.missing_rates, config.eval.missing_types)
  evaluators, temperatures = load_evaluators(s, root)
  by_split = {}
  for split in ("validation", "test"):
    announce(f"evaluating {len(evaluators)} methods x {len(scenarios)}"
             f" scenarios on {split} ({spec.split_sizes[split]} examples)")
    by_split[split] = evaluation.evaluate(
        evaluators, dataset=s.dataset, split=split, scenarios=scenarios,
        batch_size=config.eval.batch_size, mesh=s.mesh,
        mask_seed=config.eval.mask_seed,
        decompose=config.eval.decompose)
  names = metrics.metric_names(spec.multilabel)
  primary = config.eval.get("primary_metric") or names[0]
  choice = _evaluate_per_pattern(s, evaluators, scenarios, by_split, primary)
  results = results_lib.assemble(
      spec.name, names, primary, spec.modalities, scenarios,
      by_split["validation"], by_split["test"], spec.split_sizes["test"])
  results = results_lib.with_robustness(results)
  results["best_per_pattern_choice"] = choice
  results["temperatures"] = temperatures
  results["protocol"] = _protocol(s)
  results["provenance"] = _provenance(s, root, results)
  results["code"] = provenance.code_version()
  return results


def _evaluate_per_pattern(s: Setup, evaluators: dict, scenarios,
                          by_split: dict, primary: str) -> dict:
  """Chooses ``best_per_pattern`` on validation, then scores it on both
  splits into ``by_split`` (``eval/pattern_choice.py``)."""
  mods = s.dataset.spec.modalities
  choice = pattern_choice.choose(by_split["validation"], primary, mods,
                                 scenarios)
  fn, members = pattern_choice.composite(
      choice, {n: evaluators[n][0] for n in evaluators}, mods)
  composite = {pattern_choice.NAME: (fn, {n: evaluators[n][1]
                                          for n in members})}
  for split, table in by_split.items():
    table.update(evaluation.evaluate(
        composite, dataset=s.dataset, split=split, scenarios=scenarios,
        batch_size=s.config.eval.batch_size, mesh=s.mesh,
        mask_seed=s.config.eval.mask_seed,
        decompose=s.config.eval.decompose))
  return choice


def _provenance(s: Setup, root: str, results: dict) -> dict:
  """Per method, the record of the training its numbers come from."""
  def record(directory):
    r = provenance.read(directory) or {}
    _, which = validation.chosen(directory, _select(s.config))
    best = validation.read_record(directory) or {}
    return {"directory": directory, "identity": r.get("identity"),
            "fingerprint": r.get("fingerprint"), "config": r.get("config"),
            "frozen_prefix": r.get("frozen_prefix"),
            "checkpoint": which,
            "best_step": best.get("step") if which == "best" else None}
  out = {f"unimodal:{m}": record(unimodal_dir(root, m))
         for m in s.methods.unimodal}
  out["ume"] = {"members": [f"unimodal:{m}" for m in s.methods.unimodal]}
  out.update({name: record(os.path.join(root, name))
              for name in s.methods.fusion})
  out["ume_mma"] = {"same_as": results["ume_mma_choice"]["chosen"]}
  if results.get("ume_umt_choice"):
    out["ume_umt"] = {"same_as": results["ume_umt_choice"]["chosen"]}
  out[pattern_choice.NAME] = {"per_pattern": {
      name: c["chosen"]
      for name, c in results["best_per_pattern_choice"].items()}}
  return out


def _protocol(s: Setup) -> dict:
  """The missing-modality settings the results were measured under."""
  config = s.config
  tm = config.train_missing
  absent = s.methods.masking.train_absent
  mods = s.dataset.spec.modalities
  return {
      "substitute": config.model.substitute,
      "train_missing": (
          {"type": tm.type, "ratio": float(tm.ratio)} if tm.type else
          {"rates": {m: float(r) for m, r in (tm.rates or {}).items()
                     if float(r) > 0}}) | {"seed": int(tm.seed)},
      "train_present_fraction": {
          m: 1.0 if absent is None else float(1 - absent[:, i].mean())
          for i, m in enumerate(mods)},
      "eval_mask_seed": int(config.eval.mask_seed),
      "split_sizes": dict(s.dataset.spec.split_sizes)}


def compile_check(config, devices: Sequence | None = None) -> list[dict]:
  """Compiles every train step of ``config`` for a mesh over ``devices``
  (``aot_check.py``), training nothing."""
  s = setup(config, devices)
  # The runs' directories are never touched: only methods and sections.
  return [dict(stage=run.section, mesh=dict(s.mesh.shape),
               **aot.compile_step(run.method, config[run.section], s.dataset,
                                  s.mesh))
          for run in training_runs(s, workdir="")]


def replicates(config, workdir: str) -> list[tuple[int, str]]:
  """(seed, directory) of every replicate of the method."""
  n = int(config.num_seeds)
  return [(seeds.replicate_seed(config.seed, k),
           workdir if n == 1 else os.path.join(workdir, f"seed_{k}"))
          for k in range(n)]


def _check_writable(workdir: str) -> None:
  probe = paths.join(workdir, f".write_test.{os.getpid()}")
  try:
    paths.makedirs(workdir)
    paths.write_text(probe, "")
    paths.remove(probe)
    paths.require_clients(workdir)
  except ImportError as e:   # gs:// without its client libraries
    raise config_checks.ConfigError(
        f"--workdir {workdir!r}: this Python cannot use that storage ({e})."
        " A gs:// workdir needs the `gcs` extra: pip install -e '.[gcs]'"
        " (gcsfs, through which etils.epath - Orbax's path library -"
        " reaches GCS where TensorFlow is absent, and google-cloud-storage,"
        " which Orbax asks about the bucket).") from None
  except OSError as e:
    raise config_checks.ConfigError(
        f"--workdir {workdir!r} is not a writable directory ({e}); checkpoints,"
        " logs and results go there: give one you can write to.") from None


def check_prerequisites(s: Setup, workdir: str) -> None:
  """Before anything trains: the checkpoints ``config.stage`` reads exist
  (``finetune`` reads the uni-modal ones, ``eval`` every method's)."""
  config = s.config
  needed = []
  for seed, directory in replicates(config, workdir):
    if config.stage == "finetune" and any(
        name in methods_lib.PRETRAINED_INIT + methods_lib.DISTILLED
        for name in s.methods.fusion):
      root = _replicate_dir(config.finetune.get("pretrained_dir"), config,
                            seed) or directory
      needed += [unimodal_dir(root, m) for m in s.methods.unimodal]
    if config.stage == "eval":
      root = _replicate_dir(config.eval.get("checkpoint_dir"), config,
                            seed) or directory
      needed += [unimodal_dir(root, m) for m in s.methods.unimodal]
      needed += [os.path.join(root, name) for name in s.methods.fusion]
  checkpoint.require_saved_steps(needed)


def run(config, workdir: str) -> dict | None:
  """Runs ``config.stage`` in ``workdir``; returns results when evaluated."""
  if jax.process_index() == 0:
    _check_writable(workdir)   # before any data is read or prepared
  with workdir_lock.held(workdir):   # one run per workdir (process 0's lock)
    return _run(config, workdir)


def _run(config, workdir: str) -> dict | None:
  s = setup(config)
  check_prerequisites(s, workdir)
  announce(f"mesh {dict(s.mesh.shape)} on {s.mesh.size} devices")
  per_seed, reps = [], replicates(config, workdir)
  with preemption.notices():
    for seed, directory in reps:
      for stage in ("pretrain", "finetune"):
        if config.stage in ("all", stage):
          train(s, directory, stage, seed)
      if config.stage in ("all", "eval"):
        per_seed.append(evaluate(s, directory, seed))
        if len(reps) > 1:
          _write(per_seed[-1], directory, show=False)
  if not per_seed:
    return None
  results = results_lib.combine(per_seed, [seed for seed, _ in reps])
  _write(results, workdir, show=True)
  announce(logs.results_line(os.path.join(workdir, "results.json")))
  return results


def _write(results: dict, directory: str, show: bool) -> None:
  """results.json, results.md and the plot; the test metrics also to
  TensorBoard (``test/<method>/<scenario>/<metric>``, ``:`` written ``_``:
  TensorBoard tags allow no colon)."""
  if jax.process_index() == 0:   # every process holds the same results
    table = report.write_results(results, directory)
    if show:
      print(table, flush=True)
  logs.write_summary(directory, {
      f"test/{method}/{scenario}/{metric}".replace(":", "_"): value
      for method, rows in results["methods"].items()
      for scenario, values in rows.items()
      for metric, value in values.items()})
