"""Writes the tiny Hugging Face parity fixtures for the Flax BERT, ViT and CLIP.

The reference is Hugging Face transformers itself (PyTorch, CPU, float32).
Nothing comes from the hub: every model is built here from a config typed into
this script, random-initialised from fixed seeds, and saved in Hugging Face
snapshot form (``config.json``, ``model.safetensors``, ``tokenizer.json``,
``preprocessor_config.json``), so the Flax ports load these folders the way
they load a downloaded snapshot. It needs torch, so it runs once, by hand, in
a throwaway venv outside the repository (ume_jax never imports torch):

  python3 -m venv /tmp/ref_hf
  /tmp/ref_hf/bin/pip install torch==2.13.0   # the CPU wheel; always pin it
  /tmp/ref_hf/bin/pip install transformers==5.18.0 safetensors tokenizers \\
      numpy Pillow
  HF_HUB_OFFLINE=1 /tmp/ref_hf/bin/python scripts/make_hf_fixtures.py

(run from the repository root; the fixtures in the repository were made with
torch 2.13.0+cpu, transformers 5.18.0, tokenizers 0.23.3, safetensors 0.8.0,
numpy 2.4.6, Pillow 13.0.0, huggingface-hub 2.4.0, Python 3.11, on CPU, no
torchvision.) With transformers 4.57.6 instead (``pip install
transformers==4.57.6``, tokenizers 0.22.2; the script passes the 4.x
constructor arguments where 5.x renamed them) it writes the same weights,
ids, images and reference arrays bit for bit; only the JSON files differ
(``transformers_version``, and 4.x serialises tokenizer.json's special
tokens as normalized and CLIP's pre-tokenizer regex without the two special
tokens, which changes no id here).

Rerunning gives byte-identical files (fixed seeds). It deletes and rewrites
the whole ``tests/fixtures/hf/`` (``--out`` writes elsewhere), about 1 MB:

  bert_tiny/   BertForPreTraining (pooler and ``cls.*`` heads; keys carry the
               ``bert.`` prefix, like bert-base-uncased): hidden 32, 2 layers,
               4 heads, intermediate 64, 64 positions, 2 types, gelu, eps
               1e-12, and a lowercase WordPiece vocabulary of ``BERT_VOCAB``
               ([PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, punctuation,
               digits, letters, ##letters, ##digits, suffixes, common words;
               271 entries; accents stripped as bert-base-uncased does).
    config.json, model.safetensors, tokenizer.json, tokenizer_config.json
    reference.npz
      texts              <U (6,)
      input_ids          int32 (6, 16)  padding="max_length", truncation=True,
                                        max_length=16 (pad id 0)
      attention_mask     int32 (6, 16)
      last_hidden_state  float32 (6, 16, 32)  model.bert(input_ids,
                                        attention_mask, token_type_ids=0)
      pooler_output      float32 (6, 32)

  vit_tiny/    ViTModel with its pooler (the form of
               google/vit-base-patch16-224-in21k: no prefix, ``pooler.*``):
               hidden 32, 2 layers, 4 heads, intermediate 64, image 32,
               patch 8 (16 patches + [CLS] = 17 tokens), gelu, eps 1e-12,
               qkv_bias.
    config.json, model.safetensors, preprocessor_config.json
               (ViTImageProcessor: resize to 32x32, resample=2 bilinear,
               rescale 1/255, mean = std = 0.5)
    reference.npz
      images_uint8       uint8 (4, 40, 48, 3)  seeded random HWC images
      pixel_values       float32 (4, 3, 32, 32)  the image processor's output
      last_hidden_state  float32 (4, 17, 32)
      pooler_output      float32 (4, 32)

  clip_tiny/   CLIPModel: text hidden 32, 2 layers, 4 heads, intermediate 64,
               16 positions, quick_gelu, eps 1e-5, bos 0 / eos 2 / pad 1 (the
               legacy ids of the openai/clip-vit-* config.json files: with
               eos_token_id == 2 HF pools the text at argmax(input_ids), which
               is <|endoftext|> because the vocabulary ends with
               <|startoftext|>, <|endoftext|> as its two last ids, as the real
               one does); vision hidden 48, 2 layers, 4 heads, intermediate
               96, image 32, patch 8 (17 tokens), quick_gelu, eps 1e-5;
               projection_dim 24. The tokenizer is a byte-level BPE in CLIP's
               layout (the 256 byte symbols, the same with ``</w>``, merges
               made from ``CLIP_WORDS``, then the two special tokens: 679
               ids, <|startoftext|> = 677, <|endoftext|> = 678; as in the
               real vocabulary, id 0 is "!", a real token).
    config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
    preprocessor_config.json (CLIPImageProcessor: shortest edge 32,
               resample=3 bicubic, centre crop 32x32, rescale 1/255, the CLIP
               mean/std)
    reference.npz
      texts                     <U (6,)
      input_ids                 int32 (6, 16)  padding="max_length",
                                truncation=True, max_length=16; the tokenizer
                                pads with its pad token <|endoftext|> (the
                                last id, 678), as the hub CLIP tokenizers
                                do; the causal mask keeps every position up
                                to <|endoftext|>, and so the pooled output,
                                independent of the pad id; only
                                text_last_hidden_state at the pad positions
                                depends on it
      attention_mask            int32 (6, 16)
      text_last_hidden_state    float32 (6, 16, 32)  model.text_model(
                                input_ids, attention_mask)
      text_pooler_output        float32 (6, 32)
      text_embeds               float32 (6, 24)  text_projection(pooler),
                                not normalised
      images_uint8              uint8 (4, 40, 56, 3)  (non-square: the
                                shortest-edge resize and the crop matter)
      pixel_values              float32 (4, 3, 32, 32)
      vision_last_hidden_state  float32 (4, 17, 48)
      vision_pooler_output      float32 (4, 48)  post_layernorm([CLS])
      image_embeds              float32 (4, 24)  visual_projection(pooler)

    In transformers 5.x ``get_text_features`` / ``get_image_features`` return
    a ``BaseModelOutputWithPooling`` whose ``pooler_output`` is the projected
    embedding (4.x returned the tensor), so the embeddings are taken
    explicitly as ``text_projection(text_model(...).pooler_output)`` and
    ``visual_projection(vision_model(...).pooler_output)``, and checked
    against ``get_*_features``.

  full_size/<name>/ for vit-base-patch16-224 (ViTForImageClassification, 1000
               labels: ``vit.`` prefix, no pooler, ``classifier.*``),
               clip-vit-base-patch16, clip-vit-base-patch32,
               clip-vit-large-patch14 (CLIPModel) and bert-base-uncased
               (BertForPreTraining): ``config.json``, the published
               hyper-parameters typed in below (``FULL_SIZE``), and
               ``shapes.json``, {key: shape} of every tensor that
               ``save_pretrained`` writes, for the coverage test. They come
               from the model built on the meta device (no weights
               allocated) by ``saved_shapes``, which repeats save_pretrained's
               steps on state_dict(): drop ``_keys_to_ignore_on_save`` and
               the tied copies, then (5.x) map the module names back to the
               checkpoint names. Two checks: on the tiny models it gives
               exactly the names and shapes of the file save_pretrained
               wrote, and for each full-size model its names are exactly
               those that save_pretrained writes for a same-structure model
               (same class, layer counts, vocabulary and positions, tiny
               widths) saved for real in a temporary folder.

               In transformers 5.18 the ``position_ids`` buffers (BERT, CLIP
               text and vision) and BERT's ``token_type_ids`` buffer are
               non-persistent: not in state_dict(), not written. BERT's
               ``cls.predictions.decoder.weight`` is tied to
               ``bert.embeddings.word_embeddings.weight`` and
               ``cls.predictions.decoder.bias`` to ``cls.predictions.bias``:
               save_pretrained writes only the latter of each pair (the run
               prints the keys each model's state_dict has that the file
               lacks). transformers 5.x names ViT's modules anew
               (``layers.N.attention.q_proj``, ``mlp.fc1``) but
               save_pretrained writes the original checkpoint names
               (``encoder.layer.N.attention.attention.query``,
               ``intermediate.dense``); the files and shapes.json carry the
               original ones. Files on the hub, written by older versions,
               may differ from what this version writes (e.g. a
               ``*.position_ids`` buffer, the tied
               ``cls.predictions.decoder.weight``, BERT's legacy
               ``LayerNorm.gamma`` / ``beta`` names): not checked here.

The tiny models' weights are not left at HF's initialisation (which sets
every bias and LayerNorm shift to 0 and every LayerNorm scale to 1, and draws
weights with std 0.02, which makes attention nearly uniform). Each model is
built after torch.manual_seed, saved, and then every tensor of its
model.safetensors is redrawn from a seeded generator in the sorted order of
the file's keys (``redraw_snapshot``; so the values do not depend on how a
transformers version names its modules): matrices, embeddings and convolution
kernels N(0, 1/fan_in), biases and LayerNorm shifts 0.1 N(0, 1), LayerNorm
scales 1 + 0.1 N(0, 1); CLIP's logit_scale keeps its init value
(log(1/0.07) = 2.6592). A port that drops a bias, swaps a LayerNorm's scale
and shift, or scales attention wrongly fails the comparison. The reference
outputs come from the model that ``from_pretrained`` loads back from the
folder.

The image processors are transformers 5.x's PIL backends
(``ViTImageProcessorPil``, ``CLIPImageProcessorPil``: the PIL resize of the
4.x "slow" processors; the torchvision backend, used when torchvision is
installed, resizes differently); the script asks for them by name.

After writing, the script checks each folder: ``tokenizers.Tokenizer.
from_file(tokenizer.json)`` with ``enable_truncation(16)`` gives the recorded
ids at the attention-mask positions (both tokenizers' own truncation keeps
the end token, [SEP] / <|endoftext|>, as the last kept id: truncation makes
room for the special tokens), reloading with
``from_pretrained`` (local path) reproduces the outputs, and it prints the
keys and shapes ``safetensors.numpy.load_file`` finds.

  --full_size_random DIR   (not used for the committed fixtures; DIR outside
      the repository) writes instead a full-size random-initialised CLIP
      ViT-B/16 snapshot: the published config of FULL_SIZE
      ["clip-vit-base-patch16"], CLIPModel(config) with HF's own random init,
      save_pretrained (model.safetensors about 600 MB), the tiny CLIP
      tokenizer's tokenizer.json (rebuilt here, identical to the fixture's;
      its vocabulary is tiny, so the ids stay far below 49408) and the
      preprocessor_config.json of the real CLIP ViT-B/16 (shortest edge 224,
      crop 224x224, bicubic, CLIP mean/std); then loads it back with
      CLIPModel.from_pretrained(DIR).
"""
import argparse
import json
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import safetensors.numpy  # noqa: E402
import safetensors.torch  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig, BertForPreTraining, CLIPConfig, CLIPModel, ViTConfig,
    ViTForImageClassification, ViTModel)

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "tests", "fixtures", "hf")
MAX_LEN = 16
SEED = 0
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# ---------------------------------------------------------------- BERT ----
BERT_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BERT_PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
BERT_WORDS = (
    "the a an of to and in is it that for on with as was at by be this are "
    "from or not but have has had he she they we you i his her their its "
    "one two three all some more most very can will would do does did so "
    "if then there here what which who when where how why up down out over "
    "under again also just only new old good bad big small long short "
    "quick brown fox jumps lazy dog dogs cat cats man woman men women child "
    "photo picture image video sound music guitar piano playing plays play "
    "red green blue black white yellow car cars house tree trees water sky "
    "sun day night time year world hello yes no sentence word words text "
    "tokenizer model deep learning zebra zebras street city park run runs "
    "running walk walking sit sitting eat eating food table chair bird").split()
BERT_SUFFIXES = ["##s", "##es", "##ed", "##ing", "##er", "##ly", "##tion",
                 "##al", "##ness", "##ment", "##able", "##est"]
BERT_VOCAB = list(dict.fromkeys(
    BERT_SPECIAL + BERT_PUNCT + list("0123456789")
    + list("abcdefghijklmnopqrstuvwxyz")
    + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    + BERT_SUFFIXES + BERT_WORDS))
BERT_TEXTS = (
    "A photo of a cat.",
    "",
    "The quick brown fox jumps over the lazy dog, again and again and again"
    " until the sun is down.",
    "Hello, WORLD! 42 dogs?",
    "Café naïve zebras walking quickly",
    "深 🙂 unknowable things",
)

# ---------------------------------------------------------------- CLIP ----
CLIP_WORDS = (
    "a an the of to and in is on with photo picture image cat cats dog dogs "
    "man woman two three red blue green black white car house tree sky "
    "water playing guitar quick brown fox jumps over lazy hello world again "
    "diagram painting sketch close up of at night day street city park bird "
    "ing ed er es s").split()
CLIP_TEXTS = (
    "a photo of a cat",
    "",
    "the quick brown fox jumps over the lazy dog again and again and again"
    " until night",
    "A PHOTO of 2 Dogs!!",
    "café 🙂 naïve",
    "  hello\tworld   again ",
)
CLIP_BOS, CLIP_EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode():
  """GPT-2/CLIP's byte -> printable unicode map, in CLIP's vocabulary order."""
  bs = (list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1)))
  cs = bs[:]
  n = 0
  for b in range(256):
    if b not in bs:
      bs.append(b)
      cs.append(256 + n)
      n += 1
  return dict(zip(bs, [chr(c) for c in cs]))


def clip_vocab_and_merges():
  """A tiny CLIP-layout BPE: bytes, bytes + </w>, merges, then the specials."""
  byte_symbols = list(bytes_to_unicode().values())
  vocab = byte_symbols + [s + "</w>" for s in byte_symbols]
  merges = []
  byte_map = bytes_to_unicode()
  for word in CLIP_WORDS:
    symbols = [byte_map[b] for b in word.encode("utf-8")]
    symbols[-1] += "</w>"
    # A left-to-right chain of merges that builds the whole word.
    current = symbols[0]
    for nxt in symbols[1:]:
      merge = (current, nxt)
      current = current + nxt
      if merge not in merges:
        merges.append(merge)
  for left, right in merges:
    vocab.append(left + right)
  vocab = list(dict.fromkeys(vocab))
  vocab += [CLIP_BOS, CLIP_EOS]
  assert len(set(vocab)) == len(vocab)
  return {tok: i for i, tok in enumerate(vocab)}, merges


# ----------------------------------------------------------- full size ----
def _clip_config(vision_hidden, vision_layers, vision_heads, vision_mlp, patch,
                 text_hidden, text_heads, text_mlp, projection_dim):
  return dict(
      text_config=dict(vocab_size=49408, hidden_size=text_hidden,
                       num_hidden_layers=12, num_attention_heads=text_heads,
                       intermediate_size=text_mlp, max_position_embeddings=77,
                       hidden_act="quick_gelu", layer_norm_eps=1e-5,
                       bos_token_id=0, eos_token_id=2, pad_token_id=1,
                       projection_dim=projection_dim),
      vision_config=dict(hidden_size=vision_hidden,
                         num_hidden_layers=vision_layers,
                         num_attention_heads=vision_heads,
                         intermediate_size=vision_mlp, image_size=224,
                         patch_size=patch, num_channels=3,
                         hidden_act="quick_gelu", layer_norm_eps=1e-5,
                         projection_dim=projection_dim),
      projection_dim=projection_dim, logit_scale_init_value=2.6592)


# name -> (model class, config class, published hyper-parameters)
FULL_SIZE = {
    "vit-base-patch16-224": (
        ViTForImageClassification, ViTConfig,
        dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
             intermediate_size=3072, image_size=224, patch_size=16,
             num_channels=3, hidden_act="gelu", layer_norm_eps=1e-12,
             qkv_bias=True, num_labels=1000)),
    "clip-vit-base-patch16": (
        CLIPModel, CLIPConfig,
        _clip_config(768, 12, 12, 3072, 16, 512, 8, 2048, 512)),
    "clip-vit-base-patch32": (
        CLIPModel, CLIPConfig,
        _clip_config(768, 12, 12, 3072, 32, 512, 8, 2048, 512)),
    "clip-vit-large-patch14": (
        CLIPModel, CLIPConfig,
        _clip_config(1024, 24, 16, 4096, 14, 768, 12, 3072, 768)),
    "bert-base-uncased": (
        BertForPreTraining, BertConfig,
        dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
             num_attention_heads=12, intermediate_size=3072,
             max_position_embeddings=512, type_vocab_size=2,
             hidden_act="gelu", layer_norm_eps=1e-12, pad_token_id=0)),
}


# ------------------------------------------------------------- helpers ----
def _accepts(cls, name):
  import inspect
  return name in inspect.signature(cls.__init__).parameters


def image_processor_class(name):
  """The PIL backend by name (5.x), else the 4.x class (PIL already)."""
  return getattr(transformers, name + "Pil", None) or getattr(transformers,
                                                              name)


def is_layer_norm_weight(name):
  module = name.rsplit(".", 1)[0].lower()
  return name.endswith(".weight") and ("layernorm" in module.replace("_", "")
                                       or "layrnorm" in module
                                       or module.endswith("norm"))


def redraw_snapshot(model, folder, seed):
  """Saves ``model``, redraws every tensor of the file, returns it reloaded.

  The values are drawn in the sorted order of the file's keys (the
  checkpoint names), so they do not depend on how a transformers version
  names or orders its modules; the reference outputs come from the model
  that ``from_pretrained`` loads from the folder, as a port would.
  """
  model.save_pretrained(folder, safe_serialization=True)
  path = os.path.join(folder, "model.safetensors")
  tensors = safetensors.torch.load_file(path)
  gen = torch.Generator().manual_seed(seed)
  for key in sorted(tensors):
    t = tensors[key]
    assert t.dtype == torch.float32, (key, t.dtype)
    if t.ndim == 0:  # CLIP's logit_scale: keep the init value
      continue
    noise = torch.randn(t.shape, generator=gen, dtype=torch.float32)
    if is_layer_norm_weight(key):
      value = 1.0 + 0.1 * noise
    elif t.ndim == 1:
      value = 0.1 * noise
    else:
      fan_in = int(np.prod(t.shape[1:])) if t.ndim == 4 else t.shape[-1]
      value = noise / float(np.sqrt(fan_in))
    tensors[key] = value.contiguous()
  safetensors.torch.save_file(tensors, path, metadata={"format": "pt"})
  return type(model).from_pretrained(folder).eval()


def safetensors_keys(folder):
  return safetensors.numpy.load_file(os.path.join(folder, "model.safetensors"))


def saved_shapes(model):
  """{key: shape} that save_pretrained writes, and the state_dict keys dropped.

  It follows save_pretrained's steps on state_dict() without touching the
  values, so it works on a model built on the meta device: drop
  _keys_to_ignore_on_save and the tied copies, then (transformers 5.x) undo
  the weight renaming, since 5.x writes the original checkpoint names (its
  ViT modules are named ``layers.N.attention.q_proj``, the file keeps
  ``encoder.layer.N.attention.attention.query``).
  """
  state = model.state_dict()
  for key in model._keys_to_ignore_on_save or ():
    state.pop(key, None)
  names = set(state)
  try:
    from transformers.modeling_utils import remove_tied_weights_from_state_dict
    state = remove_tied_weights_from_state_dict(state, model)
  except ImportError:  # 4.x: tied keys, from the config's declarations
    tied = getattr(model, "_tied_weights_keys", None) or []
    if getattr(model.config, "tie_word_embeddings", True):
      for key in list(state):
        if any(key.endswith(t) for t in tied):
          del state[key]
  dropped = sorted(names - set(state))
  try:
    from transformers.core_model_loading import revert_weight_conversion
    state = revert_weight_conversion(model, state)
  except ImportError:  # 4.x: the module names are the file names
    pass
  return {k: list(v.shape) for k, v in sorted(state.items())}, dropped


def meta_model(model_cls, config, **kwargs):
  with torch.device("meta"):
    return model_cls(config, **kwargs)


def report_saved_keys(model, folder, **kwargs):
  """Checks saved_shapes (on a meta twin) against the file; prints the keys."""
  saved = safetensors_keys(folder)
  expected, dropped = saved_shapes(meta_model(type(model), model.config,
                                              **kwargs))
  got = {k: list(v.shape) for k, v in sorted(saved.items())}
  assert got == expected, (sorted(set(got) ^ set(expected)))
  assert all(v.dtype == np.float32 for v in saved.values())
  renamed = len(set(model.state_dict()) - set(dropped) - set(got))
  print(f"  {folder}: {len(saved)} float32 tensors in model.safetensors "
        f"(= saved_shapes on the meta-built model); state_dict() keys not "
        f"written (tied): {dropped}; state_dict() keys written under another "
        f"name: {renamed}")
  for key in sorted(saved):
    print(f"    {key} {list(saved[key].shape)}")


def clean_tokenizer_files(folder, keep=("tokenizer.json",
                                        "tokenizer_config.json")):
  for name in ("vocab.txt", "vocab.json", "merges.txt",
               "special_tokens_map.json", "added_tokens.json"):
    if name not in keep and os.path.exists(os.path.join(folder, name)):
      os.remove(os.path.join(folder, name))


def as_np(t, dtype=np.float32):
  return t.detach().cpu().numpy().astype(dtype)


def seeded_images(seed, shape):
  return np.random.default_rng(seed).integers(0, 256, size=shape,
                                              dtype=np.uint8)


# ------------------------------------------------------------ tokenizers --
def build_bert_tokenizer(tmp):
  path = os.path.join(tmp, "vocab.txt")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(BERT_VOCAB) + "\n")
  cls = transformers.BertTokenizerFast
  # 5.x ignores vocab_file= in __init__ (it takes vocab=, a path or a dict).
  kwargs = dict(vocab=path) if _accepts(cls, "vocab") else dict(vocab_file=path)
  tok = cls(do_lower_case=True, model_max_length=64, **kwargs)
  assert len(tok) == len(BERT_VOCAB), (len(tok), len(BERT_VOCAB))
  assert tok.pad_token_id == 0
  return tok


def build_clip_tokenizer(tmp):
  vocab, merges = clip_vocab_and_merges()
  vocab_path = os.path.join(tmp, "vocab.json")
  merges_path = os.path.join(tmp, "merges.txt")
  with open(vocab_path, "w", encoding="utf-8") as f:
    json.dump(vocab, f, ensure_ascii=False)
  with open(merges_path, "w", encoding="utf-8") as f:
    f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
  cls = transformers.CLIPTokenizerFast
  if _accepts(cls, "vocab"):  # 5.x: vocab= / merges= (dict and list here)
    tok = cls(vocab=vocab, merges=merges, model_max_length=77)
  else:
    tok = cls(vocab_file=vocab_path, merges_file=merges_path,
              model_max_length=77)
  assert len(tok) == len(vocab), (len(tok), len(vocab))
  assert tok.eos_token_id == len(vocab) - 1
  assert tok.bos_token_id == len(vocab) - 2
  return tok


def encode(tok, texts):
  enc = tok(list(texts), padding="max_length", truncation=True,
            max_length=MAX_LEN, return_tensors="np")
  ids = enc["input_ids"].astype(np.int32)
  mask = enc["attention_mask"].astype(np.int32)
  assert ids.shape == (len(texts), MAX_LEN), ids.shape
  return ids, mask


# ---------------------------------------------------------------- models --
def write_bert(out):
  folder = os.path.join(out, "bert_tiny")
  os.makedirs(folder, exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    tok = build_bert_tokenizer(tmp)
  tok.save_pretrained(folder)  # before any call: no padding state in the file
  clean_tokenizer_files(folder)
  ids, mask = encode(tok, BERT_TEXTS)

  config = BertConfig(vocab_size=len(BERT_VOCAB), hidden_size=32,
                      num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64,
                      type_vocab_size=2, hidden_act="gelu",
                      layer_norm_eps=1e-12, pad_token_id=0)
  torch.manual_seed(SEED)
  model = redraw_snapshot(BertForPreTraining(config), folder, SEED + 1)
  with torch.no_grad():
    o = model.bert(torch.from_numpy(ids).long(),
                   attention_mask=torch.from_numpy(mask).long(),
                   token_type_ids=torch.zeros(ids.shape, dtype=torch.long))
  arrays = dict(texts=np.array(BERT_TEXTS), input_ids=ids, attention_mask=mask,
                last_hidden_state=as_np(o.last_hidden_state),
                pooler_output=as_np(o.pooler_output))
  np.savez(os.path.join(folder, "reference.npz"), **arrays)
  report_saved_keys(model, folder)
  return folder


def write_vit(out):
  folder = os.path.join(out, "vit_tiny")
  os.makedirs(folder, exist_ok=True)
  config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, image_size=32, patch_size=8,
                     num_channels=3, hidden_act="gelu", layer_norm_eps=1e-12,
                     qkv_bias=True)
  torch.manual_seed(SEED)
  model = redraw_snapshot(ViTModel(config, add_pooling_layer=True), folder,
                          SEED + 2)
  proc = image_processor_class("ViTImageProcessor")(
      size={"height": 32, "width": 32}, image_mean=[0.5] * 3,
      image_std=[0.5] * 3, resample=2)
  proc.save_pretrained(folder)
  images = seeded_images(SEED + 3, (4, 40, 48, 3))
  pixels = proc(list(images), return_tensors="np")["pixel_values"]
  pixels = np.asarray(pixels, np.float32)
  assert pixels.shape == (4, 3, 32, 32), pixels.shape
  with torch.no_grad():
    o = model(torch.from_numpy(pixels))
  arrays = dict(images_uint8=images, pixel_values=pixels,
                last_hidden_state=as_np(o.last_hidden_state),
                pooler_output=as_np(o.pooler_output))
  assert arrays["last_hidden_state"].shape == (4, 17, 32)
  np.savez(os.path.join(folder, "reference.npz"), **arrays)
  report_saved_keys(model, folder, add_pooling_layer=True)
  return folder


def clip_processor(edge):
  return image_processor_class("CLIPImageProcessor")(
      size={"shortest_edge": edge}, crop_size={"height": edge, "width": edge},
      do_center_crop=True, resample=3, image_mean=CLIP_MEAN,
      image_std=CLIP_STD)


def projected(out):
  """get_*_features' result: a tensor (4.x) or an output object (5.x)."""
  if isinstance(out, torch.Tensor):
    return out
  return out.pooler_output


def write_clip(out):
  folder = os.path.join(out, "clip_tiny")
  os.makedirs(folder, exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    tok = build_clip_tokenizer(tmp)
  tok.save_pretrained(folder)
  clean_tokenizer_files(folder)
  ids, mask = encode(tok, CLIP_TEXTS)
  print(f"  CLIP pad id for padding='max_length': {tok.pad_token_id} "
        f"({tok.pad_token}); vocab size {len(tok)}")

  config = CLIPConfig(
      text_config=dict(vocab_size=len(tok), hidden_size=32,
                       num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=16,
                       hidden_act="quick_gelu", layer_norm_eps=1e-5,
                       bos_token_id=0, eos_token_id=2, pad_token_id=1,
                       projection_dim=24),
      vision_config=dict(hidden_size=48, num_hidden_layers=2,
                         num_attention_heads=4, intermediate_size=96,
                         image_size=32, patch_size=8, hidden_act="quick_gelu",
                         layer_norm_eps=1e-5, projection_dim=24),
      projection_dim=24)
  torch.manual_seed(SEED)
  model = redraw_snapshot(CLIPModel(config), folder, SEED + 4)
  proc = clip_processor(32)
  proc.save_pretrained(folder)
  images = seeded_images(SEED + 5, (4, 40, 56, 3))
  pixels = np.asarray(proc(list(images), return_tensors="np")["pixel_values"],
                      np.float32)
  assert pixels.shape == (4, 3, 32, 32), pixels.shape

  t_ids, t_mask = torch.from_numpy(ids).long(), torch.from_numpy(mask).long()
  with torch.no_grad():
    text = model.text_model(input_ids=t_ids, attention_mask=t_mask)
    text_embeds = model.text_projection(text.pooler_output)
    vision = model.vision_model(pixel_values=torch.from_numpy(pixels))
    image_embeds = model.visual_projection(vision.pooler_output)
    text_features = model.get_text_features(input_ids=t_ids,
                                            attention_mask=t_mask)
    image_features = model.get_image_features(
        pixel_values=torch.from_numpy(pixels))
  np.testing.assert_allclose(as_np(projected(text_features)),
                             as_np(text_embeds), atol=1e-6)
  np.testing.assert_allclose(as_np(projected(image_features)),
                             as_np(image_embeds), atol=1e-6)
  arrays = dict(texts=np.array(CLIP_TEXTS), input_ids=ids, attention_mask=mask,
                text_last_hidden_state=as_np(text.last_hidden_state),
                text_pooler_output=as_np(text.pooler_output),
                text_embeds=as_np(text_embeds),
                images_uint8=images, pixel_values=pixels,
                vision_last_hidden_state=as_np(vision.last_hidden_state),
                vision_pooler_output=as_np(vision.pooler_output),
                image_embeds=as_np(image_embeds))
  assert arrays["vision_last_hidden_state"].shape == (4, 17, 48)
  np.savez(os.path.join(folder, "reference.npz"), **arrays)
  report_saved_keys(model, folder)
  return folder


def tiny_twin(config_cls, hp):
  """The same structure (layers, vocabulary, positions) with tiny widths."""
  hp = json.loads(json.dumps(hp))
  subs = ([hp["text_config"], hp["vision_config"]] if "text_config" in hp
          else [hp])
  for sub in subs:
    sub["hidden_size"] = 2 * sub["num_attention_heads"]
    sub["intermediate_size"] = 4
    if "projection_dim" in sub:
      sub["projection_dim"] = 4
  if "projection_dim" in hp:
    hp["projection_dim"] = 4
  return config_cls(**hp)


def write_full_size(out):
  for name, (model_cls, config_cls, hp) in FULL_SIZE.items():
    folder = os.path.join(out, "full_size", name)
    os.makedirs(folder, exist_ok=True)
    config = config_cls(**hp)
    config.architectures = [model_cls.__name__]
    config.to_json_file(os.path.join(folder, "config.json"))
    shapes, dropped = saved_shapes(meta_model(model_cls, config))
    # The key set checked against a real save_pretrained of a same-structure
    # model with tiny widths.
    with tempfile.TemporaryDirectory() as tmp:
      torch.manual_seed(SEED)
      twin = model_cls(tiny_twin(config_cls, hp))
      twin.save_pretrained(tmp, safe_serialization=True)
      saved = set(safetensors_keys(tmp))
      del twin
    assert saved == set(shapes), sorted(saved ^ set(shapes))
    with open(os.path.join(folder, "shapes.json"), "w") as f:
      json.dump(shapes, f, indent=0, sort_keys=True)
      f.write("\n")
    n = sum(int(np.prod(s)) for s in shapes.values())
    print(f"  {folder}: {len(shapes)} tensors, {n} parameters; "
          f"state_dict() keys not written (tied): {dropped}")


# ---------------------------------------------------------------- checks --
def check_tokenizer(folder, end_token):
  ref = np.load(os.path.join(folder, "reference.npz"))
  tok = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
  assert tok.padding is None, tok.padding
  tok.enable_truncation(MAX_LEN)
  end_id = tok.token_to_id(end_token)
  for text, ids, mask in zip(ref["texts"], ref["input_ids"],
                             ref["attention_mask"]):
    got = tok.encode(str(text)).ids
    n = int(mask.sum())
    assert got == list(ids[:n]), (text, got, ids[:n])
    assert got[-1] == end_id, (text, got)
  whole = tokenizers.Tokenizer.from_file(os.path.join(folder,
                                                     "tokenizer.json"))
  truncated = [str(t) for t in ref["texts"]
               if len(whole.encode(str(t)).ids) > MAX_LEN]
  assert truncated
  print(f"  {folder}/tokenizer.json: ids match at the mask positions; the "
        f"last kept id is {end_token} ({end_id}) in every row, also in the "
        f"truncated {truncated!r}")


def check_reload(folder, kind):
  ref = np.load(os.path.join(folder, "reference.npz"))
  with torch.no_grad():
    if kind == "bert":
      m = BertForPreTraining.from_pretrained(folder).eval()
      ids = torch.from_numpy(ref["input_ids"]).long()
      o = m.bert(ids, attention_mask=torch.from_numpy(ref["attention_mask"]),
                 token_type_ids=torch.zeros_like(ids))
      pairs = [(o.last_hidden_state, "last_hidden_state"),
               (o.pooler_output, "pooler_output")]
    elif kind == "vit":
      m = ViTModel.from_pretrained(folder).eval()
      o = m(torch.from_numpy(ref["pixel_values"]))
      pairs = [(o.last_hidden_state, "last_hidden_state"),
               (o.pooler_output, "pooler_output")]
      p = image_processor_class("ViTImageProcessor").from_pretrained(folder)
      np.testing.assert_array_equal(
          p(list(ref["images_uint8"]), return_tensors="np")["pixel_values"],
          ref["pixel_values"])
    else:
      m = CLIPModel.from_pretrained(folder).eval()
      ids = torch.from_numpy(ref["input_ids"]).long()
      mask = torch.from_numpy(ref["attention_mask"]).long()
      pixels = torch.from_numpy(ref["pixel_values"])
      o = m(input_ids=ids, attention_mask=mask, pixel_values=pixels)
      text = m.text_model(input_ids=ids, attention_mask=mask)
      vision = m.vision_model(pixel_values=pixels)
      pairs = [(text.last_hidden_state, "text_last_hidden_state"),
               (text.pooler_output, "text_pooler_output"),
               (vision.last_hidden_state, "vision_last_hidden_state"),
               (vision.pooler_output, "vision_pooler_output")]
      # forward()'s text_embeds / image_embeds are the normalised ones.
      for key in ("text_embeds", "image_embeds"):
        ref_unit = ref[key] / np.linalg.norm(ref[key], axis=-1, keepdims=True)
        np.testing.assert_allclose(as_np(getattr(o, key)), ref_unit, atol=1e-6)
      p = image_processor_class("CLIPImageProcessor").from_pretrained(folder)
      np.testing.assert_array_equal(
          p(list(ref["images_uint8"]), return_tensors="np")["pixel_values"],
          ref["pixel_values"])
  for value, key in pairs:
    np.testing.assert_array_equal(as_np(value), ref[key])
  print(f"  {folder}: from_pretrained reproduces the reference outputs")


def write_full_size_random(out):
  _, config_cls, hp = FULL_SIZE["clip-vit-base-patch16"]
  os.makedirs(out, exist_ok=True)
  torch.manual_seed(SEED)
  model = CLIPModel(config_cls(**hp)).eval()
  model.save_pretrained(out, safe_serialization=True)
  with tempfile.TemporaryDirectory() as tmp:
    build_clip_tokenizer(tmp).save_pretrained(tmp + "/t")
    shutil.copy(os.path.join(tmp, "t", "tokenizer.json"), out)
  clip_processor(224).save_pretrained(out)
  del model
  with safetensors.safe_open(os.path.join(out, "model.safetensors"),
                             framework="np") as f:
    written = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
  expected, _ = saved_shapes(meta_model(CLIPModel, config_cls(**hp)))
  assert written == expected, sorted(set(written) ^ set(expected))
  back = CLIPModel.from_pretrained(out)
  n = sum(p.numel() for p in back.parameters())
  print(f"{out}: its {len(written)} tensors have the names and shapes of "
        f"full_size/clip-vit-base-patch16/shapes.json; "
        f"CLIPModel.from_pretrained loads it back ({n} parameters, "
        f"model.safetensors "
        f"{os.path.getsize(os.path.join(out, 'model.safetensors'))} bytes)")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default=OUT_DIR)
  parser.add_argument("--full_size_random", metavar="DIR", default=None,
                      help="write only a full-size random CLIP ViT-B/16 "
                      "snapshot to DIR (outside the repository)")
  args = parser.parse_args()
  print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"tokenizers {tokenizers.__version__}, numpy {np.__version__}")
  if args.full_size_random:
    write_full_size_random(args.full_size_random)
    return
  torch.use_deterministic_algorithms(True)
  out = os.path.abspath(args.out)
  if os.path.isdir(out):
    shutil.rmtree(out)
  bert = write_bert(out)
  vit = write_vit(out)
  clip = write_clip(out)
  write_full_size(out)
  check_tokenizer(bert, "[SEP]")
  check_tokenizer(clip, CLIP_EOS)
  check_reload(bert, "bert")
  check_reload(vit, "vit")
  check_reload(clip, "clip")
  total = 0
  for root, _, files in os.walk(out):
    for f in files:
      total += os.path.getsize(os.path.join(root, f))
  print(f"{out}: {total} bytes in all")


if __name__ == "__main__":
  main()
