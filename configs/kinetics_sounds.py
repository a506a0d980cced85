"""UME-MMA on Kinetics-Sounds from your extracted clips (31 classes; see
ume_jax/data/datasets/kinetics_sounds.py).

  python scripts/extract_av_clips.py --dataset=kinetics_sounds \
      --videos=/data/ks_videos --lists=OGM-GE/data/KineticSound \
      --out=/data/ks_clips
  python -m ume_jax.main --config=configs/kinetics_sounds.py \
      --workdir=/tmp/ume_ks --config.data.manual_dir=/data/ks_clips

Hyper-parameters are configs/ave.py's (both follow OGM-GE's defaults: ResNet-18
encoders, 3 frames, SGD momentum 0.9, lr 1e-3, weight decay 1e-4, batch 64,
100 epochs); see there for what is ours. Kinetics-Sounds has no validation
list in OGM-GE: ``data.validation_fraction`` (0.1) of train is held out
deterministically. ``:small`` is the CPU smoke run; ``:whisper`` swaps the
audio encoder for the pre-trained Whisper tiny.en (see configs/ave.py), and
variants combine (``:whisper,small``).
"""
from ume_jax.config import av_clips


def get_config(arg=None):
  return av_clips.get_config("kinetics_sounds", arg)
