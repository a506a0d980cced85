"""The whole method, stage by stage: pre-train -> fine-tune -> evaluate.

``run(config, workdir)`` is what ``main.py`` calls. ``config.stage`` picks one
stage or ``all``. Layout of a workdir::

  pretrain/<modality>/   uni-modal checkpoints + metrics.jsonl + events
  <method>/              late_fusion, late_fusion_pretrained, mma
  results.json, results.md, robustness.png
"""
import functools
import os

import jax

from ume_jax import methods
from ume_jax.config import checks as config_checks
from ume_jax.eval import evaluation
from ume_jax.infra import preemption
from ume_jax.train import warm_start
from ume_jax.eval import report
from ume_jax.eval import results as results_lib
from ume_jax.missing import scenarios as scenarios_lib
from ume_jax.infra import mesh as mesh_lib
from ume_jax.train import trainer
from ume_jax import data as data_lib
from ume_jax.eval import metrics
from ume_jax.infra.logs import announce
from ume_jax.weights import graft


def _stage_seed(config, offset: int) -> int:
  return int(config.seed) + offset


def pretrain(config, workdir, dataset, mesh, unimodal):
  for i, (m, method) in enumerate(unimodal.items()):
    init = graft.initializer({m: config.model.encoders[m]},
                             lambda _: "encoder")
    trainer.train(method, config.pretrain, dataset=dataset, mesh=mesh,
                  directory=warm_start.unimodal_dir(workdir, m),
                  seed=_stage_seed(config, i), init_params=init,
                  checkpoint_cfg=config.checkpoint,
                  log_every_steps=config.log_every_steps)


def finetune(config, workdir, dataset, mesh, unimodal, means):
  pretrain_root = config.finetune.get("pretrained_dir") or workdir
  for name in config.methods:
    method = methods.fusion(config, dataset.spec, name, means)
    # From scratch: the encoders' own pre-trained weights, if configured.
    init = graft.initializer(config.model.encoders, lambda m: f"{m}_encoder")
    stage_cfg = config.scratch
    if name in methods.PRETRAINED_INIT:
      stage_cfg = config.finetune
      init = functools.partial(
          warm_start.load_into_fusion, pretrain_root=pretrain_root,
          unimodal_methods=unimodal,
          load_heads=config.model.fusion == "sum_logits")
    trainer.train(method, stage_cfg, dataset=dataset, mesh=mesh,
                  directory=os.path.join(workdir, name),
                  seed=_stage_seed(config, 100), init_params=init,
                  checkpoint_cfg=config.checkpoint,
                  log_every_steps=config.log_every_steps)


def _evaluators(config, root, dataset, mesh, unimodal, means):
  """method name -> (eval_logits, params restored from checkpoints)."""
  out = {}
  for m, method in unimodal.items():
    params = warm_start.load_params(warm_start.unimodal_dir(root, m), method,
                                    trainer.abstract_params(method, mesh))
    out[method.name] = (method.eval_logits, params)
  out["ume"] = (methods.ume_logits(unimodal, dataset.spec),
                {m: out[f"unimodal:{m}"][1] for m in unimodal})
  for name in config.methods:
    method = methods.fusion(config, dataset.spec, name, means)
    params = warm_start.load_params(os.path.join(root, name), method,
                                    trainer.abstract_params(method, mesh))
    out[name] = (method.eval_logits, params)
  return out


def evaluate(config, workdir, dataset, mesh, unimodal, means) -> dict:
  root = config.eval.get("checkpoint_dir") or workdir
  spec = dataset.spec
  scenarios = scenarios_lib.build_scenarios(spec.modalities,
                                            config.eval.missing_rates)
  evaluators = _evaluators(config, root, dataset, mesh, unimodal, means)
  by_split = {}
  for split in ("validation", "test"):
    announce(f"evaluating {len(evaluators)} methods x {len(scenarios)}"
             f" scenarios on {split} ({spec.split_sizes[split]} examples)")
    by_split[split] = evaluation.evaluate(
        evaluators, dataset=dataset, split=split, scenarios=scenarios,
        batch_size=config.eval.batch_size, mesh=mesh,
        mask_seed=config.eval.mask_seed)
  names = metrics.metric_names(spec.multilabel)
  primary = config.eval.get("primary_metric") or names[0]
  return results_lib.assemble(spec.name, names, primary, spec.modalities,
                              scenarios, by_split["validation"],
                              by_split["test"])


def run(config, workdir: str) -> dict | None:
  """Runs ``config.stage`` in ``workdir``; returns results when evaluated."""
  config_checks.check_config(config)
  dataset = data_lib.get_dataset(config.data)
  config_checks.check_against_dataset(config, dataset.spec)
  mesh = mesh_lib.build_mesh(config.mesh)
  config_checks.check_against_mesh(config, mesh)
  announce(f"mesh {dict(mesh.shape)} on {mesh.size} devices")
  means = (dataset.modality_means() if config.model.substitute == "mean"
           else None)
  unimodal = {m: methods.unimodal(config, dataset.spec, m, means)
              for m in dataset.spec.modalities}
  with preemption.notices():
    if config.stage in ("all", "pretrain"):
      pretrain(config, workdir, dataset, mesh, unimodal)
    if config.stage in ("all", "finetune"):
      finetune(config, workdir, dataset, mesh, unimodal, means)
    if config.stage not in ("all", "eval"):
      return None
    results = evaluate(config, workdir, dataset, mesh, unimodal, means)
  if jax.process_index() == 0:   # every process holds the same results
    table = report.write_results(results, workdir)
    print(table, flush=True)
  return results
