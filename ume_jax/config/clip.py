"""CLIP's towers as a config building block (``configs/mmimdb.py:clip``,
``configs/food101.py:clip``): the image and text encoders, tokenizer and
image front end all from ONE Hugging Face snapshot folder, the config key
``hf_snapshot`` (e.g. ``--config.hf_snapshot=~/.cache/huggingface/hub/
models--openai--clip-vit-base-patch16``).

The folder gives each tower's architecture (its ``config.json``: B/32, B/16,
L/14 alike), weights (``model.safetensors``), the tokenizer
(``tokenizer.json``) and the image resize, crop and normalisation
(``preprocessor_config.json``). ``hf_snapshot`` is one value referenced by
the four keys that read it (``model.encoders.{image,text}.weights_path``,
``data.tokenizer_path``, ``data.image_processor``), so setting it sets them
all.

Frozen towers, as the CLIP-based missing-modality papers use them (Deep
Correlated Prompting, AOEPT): no gradient is computed for either tower, so
uni-modal pre-training is a linear probe per modality and fusion trains its
heads. Their features are computed once per training example and cached
with the prepared data (``frozen_prefix_cache``), so each step runs the
heads only. ``tuned=True`` moves the towers too, at 1/100 of the heads'
rate (and runs them in every step).

Every fusion method runs on these towers, the field's baselines included
(``BASELINE_METHODS``): ``moddrop``, ``umt`` and ``prompts`` (missing-aware
prompts in both towers, ``ume_jax/models/prompts.py``), so their numbers
and UME-MMA's share the backbone, the masks and the metric code.
"""
import ml_collections

from ume_jax.config import common

# Both towers, in the uni-modal models (encoder/...) and in fusion
# (<m>_encoder/...).
TOWERS = r"(.*_)?encoder/.*"
CONTEXT = 77   # CLIP's text context (its position table)
# The ablation ladder's fusion methods and the field's baselines, in order.
BASELINE_METHODS = ("late_fusion", "moddrop", "late_fusion_pretrained",
                    "mma", "umt", "prompts")


def apply_variants(c, variants, config_file: str) -> None:
  """``:clip`` (and ``:clip,tuned``) of an image+text config."""
  if "tuned" in variants and "clip" not in variants:
    raise ValueError(f"{config_file}: variant 'tuned' moves the CLIP towers;"
                     " use it with 'clip' (':clip,tuned').")
  if "clip" in variants:
    use_clip(c, small="small" in variants, tuned="tuned" in variants)


def use_clip(c, *, small: bool = False, tuned: bool = False,
             image: str = "image", text: str = "text") -> None:
  """Sets ``c``'s ``image`` and ``text`` encoders and front ends to the CLIP
  snapshot at ``c.hf_snapshot``; ``tuned`` moves the towers, ``small`` is
  the CI smoke run (whose tiny test snapshot has a 16-token context)."""
  snapshot = ml_collections.FieldReference("", field_type=str)
  c.hf_snapshot = snapshot
  max_len = 16 if small else CONTEXT
  c.model.encoders[image] = common.encoder(
      "clip_vision", weights="hf_clip_vision", weights_path=snapshot)
  c.model.encoders[text] = common.encoder(
      "clip_text", dict(max_len=max_len), weights="hf_clip_text",
      weights_path=snapshot)
  c.data.update(dict(tokenizer="snapshot", max_len=max_len, image_size=(),
                     augment=False))
  c.data.tokenizer_path = snapshot
  c.data.image_processor = snapshot
  c.methods = BASELINE_METHODS
  # Frozen towers: their features are computed once per training example
  # (ume_jax/train/frozen_prefix.py); only the heads run in each step.
  c.frozen_prefix_cache = not tuned
  if not small:
    # Our choices: heads train fast on frozen features; 5 / 5 / 3 epochs,
    # batch 64, AdamW 1e-3 with 100 warm-up steps.
    common.set_epochs(c, pretrain=5, scratch=5, finetune=3)
    common.update_stages(c, batch_size=64, optim_values=dict(
        learning_rate=1e-3, warmup_steps=100))
    c.eval.batch_size = 128
    # Each validation runs both towers over the split once per scenario
    # (about 20 min for MM-IMDB's on a 2-core CPU): a few per run.
    c.validation.every_steps = 500
  rate = 0.01 if tuned else 0.0
  for s in common.stages(c):
    s.optim.lr_multipliers = ((TOWERS, rate),)
