"""UME-MMA on the embedded audio-visual digits dataset (``avdigits``).

Run the whole method (pre-train -> fine-tune -> evaluate):

  python -m ume_jax.main --config=configs/default.py --workdir=/tmp/ume_default

One stage alone: ``--config.stage=pretrain|finetune|eval``. A laptop smoke run
(a few hundred steps in all): ``--config=configs/default.py:small``. The
settings themselves are ``ume_jax.config.common.base()``, which every other
config starts from, plus the ``moddrop`` baseline (``ume_jax/methods.py``).

``:hard`` (combinable: ``:hard,small``): the harder regime, where neither
modality dominates. On avdigits as shipped the image model alone is
near-perfect (~97.5% test accuracy, audio ~77%): the image decides almost
every pair, so fusion has little to add, and the objection the paper's
reviewers raised - that fusion is often no better than the best uni-modal
model - cannot be examined. ``:hard`` degrades the images the way AV-MNIST
degrades MNIST: ``data.image_pca_components = HARD_IMAGE_PCA_COMPONENTS``
keeps only the images' leading principal components (fitted on the train
split when the dataset is prepared, into its own folder
``avdigits/pca<k>/``; ``ume_jax/data/datasets/avdigits.py``), so neither
modality dominates. Audio and everything else are as in the default.
Another k: ``--config.data.image_pca_components=K`` after ``:hard`` (the
default config has no such key, so its runs are unchanged).

k was chosen on the VALIDATION split only (no test numbers were looked at),
aiming the image-only uni-modal model's validation accuracy at 60-75%.
Measured with

  python -m ume_jax.main --config=configs/default.py:hard \\
      --config.data.image_pca_components=K --config.stage=pretrain \\
      --workdir=/tmp/hard_kK --config.data.data_dir=/tmp/avd_pca_data

(8 pre-training epochs per modality, CPU) and the pre-trained image model
(``pretrain/image``, restored with ``experiment.restore_params``) scored by
``eval.evaluation.evaluate`` on the validation split (1,000 examples,
``full`` scenario), seed 0:

  k      2     3     4     5     6     8    12    16   (0: off)
  image  47.6  53.1  66.7  77.1  82.1  89.4  93.5  94.8  96.9
  kept   17.6  23.7  29.1  33.8  38.1  44.5  53.8  60.3  100

(validation accuracy %; "kept": % of the train images' variance the k
components hold). The audio model, which k does not touch, scored 85.6%
on validation in every run (its ~77% test figure is lower: validation and
test are spoken by different held-out accents). A second seed
(``--config.seed=1``): k = 4 66.2%, k = 5 76.5%, audio 85.7%. k = 4 is the
only k inside the 60-75% target (k = 5 is above it, k = 3 below), so
``:hard`` sets k = 4.
"""
from ume_jax.config import common

# The harder regime's image principal components (see the docstring).
HARD_IMAGE_PCA_COMPONENTS = 4


def get_config(arg=None):
  variants = common.parse_variants(arg, ("small", "hard"),
                                   "configs/default.py")
  c = common.base()
  # The ablation ladder's second rung (results.md): mma's augmentation
  # without the pre-trained start.
  c.methods = ("late_fusion", "moddrop", "late_fusion_pretrained", "mma")
  if "hard" in variants:
    c.data.image_pca_components = HARD_IMAGE_PCA_COMPONENTS
  if "small" in variants:
    common.smoke_run(c, num_steps=30, batch_size=64)
  return c
