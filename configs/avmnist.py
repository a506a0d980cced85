"""UME-MMA on AV-MNIST from your own files (MultiBench's on-disk form).

Run the whole method (prepares the dataset into data.data_dir on first use):

  python -m ume_jax.main --config=configs/avmnist.py --workdir=/tmp/ume_avmnist \
      --config.data.manual_dir=/path/to/avmnist

``manual_dir`` is MultiBench's avmnist folder (image/train_data.npy,
image/test_data.npy, audio/train_data.npy, audio/test_data.npy,
train_labels.npy, test_labels.npy); see ``ume_jax/data/datasets/avmnist.py``. A CPU
smoke run (a few hundred training steps in all, small encoders):
``--config=configs/avmnist.py:small``.

Hyper-parameters. From MultiBench (github.com/pliang279/MultiBench):
``examples/multimedia/avmnist_simple_late_fusion.py`` trains late fusion
(concat) for 30 epochs with ``torch.optim.SGD``, lr 0.1, weight_decay 1e-4;
``avmnist_unimodal_{0,1}.py`` train each uni-modal model for 20 epochs with
the same optimiser; ``datasets/avmnist/get_data.py`` batches 40 examples;
``training_structures/Supervised_Learning.py`` clips the gradient norm at 8
and passes no momentum (so plain SGD) and no schedule (constant lr).
Hence: pre-train 20 epochs, late_fusion (from scratch) 30 epochs, SGD without
momentum, lr 0.1 constant (final_lr_fraction 1.0), weight decay 1e-4,
clip 8, batch 40.

Our choices (not in MultiBench): 100 warm-up steps (our strided encoders
are not MultiBench's LeNets, and a short warm-up keeps lr 0.1 from
diverging at the start); fine-tuning from the uni-modal models
(late_fusion_pretrained, mma: MultiBench has no such stage) for 10 epochs at
lr 0.1 with the encoders at 0.1x, as configs/default.py does; the encoders
(ume_jax/models/cnn.py) - image as default.py, audio four stride-2 convs
(16, 32, 64, 64) taking 112x112 down to 7x7; MultiBench keeps the epoch with
the best validation accuracy, we keep the last.
"""
import ml_collections

from ume_jax.config import common


def get_config(arg=None):
  variants = common.parse_variants(arg, ("small",), "configs/avmnist.py")
  c = common.base()
  c.data = ml_collections.ConfigDict(dict(
      name="avmnist",
      manual_dir="",         # MultiBench's avmnist folder (needed to prepare)
      data_dir="",           # "" -> ~/.cache/ume_jax/tensorflow_datasets
      validation_size=5000,  # last rows of train -> validation (MultiBench)
      worker_count=0, augment=False,
      cache_in_memory=False))  # 0.9 GB as uint8; True if you have the RAM
  c.model.encoders.audio.kwargs = dict(channels=(16, 32, 64, 64),
                                       strides=(2, 2, 2, 2))
  common.set_epochs(c, pretrain=20, scratch=30, finetune=10)
  common.update_stages(c, batch_size=40)
  common.set_optimizers(c, name="sgd", learning_rate=0.1, warmup_steps=100,
                        momentum=0.0, grad_clip_norm=8.0,
                        final_lr_fraction=1.0)
  c.eval.batch_size = 500
  c.checkpoint.every_steps = 2000
  c.log_every_steps = 200

  if "small" in variants:
    # ~200 steps in all (5 runs x 40), small encoders: minutes on a CPU.
    # Evaluation still covers every validation/test example.
    c.model.encoders.image.kwargs = dict(channels=(8, 16), strides=(2, 2),
                                         feature_dim=32)
    c.model.encoders.audio.kwargs = dict(channels=(8, 16, 16),
                                         strides=(4, 2, 2), feature_dim=32)
    common.smoke_run(c, num_steps=40, batch_size=40, warmup_steps=5)
    c.checkpoint.every_steps = 20
  return c
