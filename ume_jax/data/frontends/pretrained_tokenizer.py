"""A pre-trained model's own tokenizer, read from its Hugging Face snapshot.

``data.tokenizer = "snapshot"`` with ``data.tokenizer_path`` = the snapshot
folder (holding ``tokenizer.json``, as a CLIP / BERT / ViT-text snapshot
does) or that file itself. The file is read with the ``tokenizers``
library only (no transformers, no download), so the ids are those the
pre-trained text tower was trained on.

Truncation: ``enable_truncation(max_length=data.max_len)``. The library
truncates the text, never the template's special tokens, so a long text
still ends with BERT's ``[SEP]`` or CLIP's ``<|endoftext|>``. Padding: none
here (a padding setting in the file is switched off); the pipeline's
``text_tokenizer.encode`` right-pads with id 0, the project's convention (an
all-zero row is an absent text). For BERT id 0 is ``[PAD]``; for CLIP it is
the ordinary token "!", so a mask that CLIP's tower derives from ``ids != 0``
would also hide real "!" tokens: CLIP's text tower should mask by position
(up to its end token) rather than by id.
"""

import os
import pathlib

import tokenizers

from ume_jax.data.errors import DataError
from ume_jax.weights import hf_snapshot

FILE = "tokenizer.json"
PATH_KEY = "data.tokenizer_path"
_EXPECTED = (f"Expected a Hugging Face snapshot folder holding {FILE} (e.g."
             " the folder of openai/clip-vit-base-patch16 or"
             f" bert-base-uncased), or the {FILE} file itself.")


def resolve(path, key: str = PATH_KEY) -> pathlib.Path:
  """``path`` (a snapshot folder, the hub cache's model folder, or the
  file itself) as the file's Path; DataError naming the path, ``key`` and
  what is expected otherwise."""
  return pathlib.Path(hf_snapshot.snapshot_file(path, FILE, key, DataError,
                                                file_ok=True))


def load(path, max_len: int, key: str = PATH_KEY) -> tokenizers.Tokenizer:
  """The tokenizer of ``path`` (see ``resolve``), truncating to ``max_len``
  ids (special tokens kept), not padding.

  Raises:
    DataError: the file is missing or unreadable (naming it and the parse
      error), or ``max_len`` leaves no room beside the special tokens.
  """
  file = resolve(path, key)
  try:
    tok = tokenizers.Tokenizer.from_file(os.fspath(file))
  except Exception as e:  # pylint: disable=broad-except  (Rust errors)
    raise DataError(f"{key}: {os.fspath(file)!r} cannot be read as a Hugging"
                    f" Face {FILE} ({type(e).__name__}: {e}). {_EXPECTED}"
                    ) from None
  specials = (tok.post_processor.num_special_tokens_to_add(False)
              if tok.post_processor is not None else 0)
  if int(max_len) <= specials:
    # The library does not truncate at all when the special tokens alone
    # exceed max_length; cutting afterwards would drop the end token.
    raise DataError(f"data.max_len = {max_len} leaves no room for text in"
                    f" the tokenizer of {os.fspath(file)!r}, which adds"
                    f" {specials} special tokens to each text; set"
                    f" data.max_len > {specials}.")
  tok.no_padding()
  tok.enable_truncation(max_length=int(max_len))
  return tok


def vocab_size(tok: tokenizers.Tokenizer) -> int:
  """Ids the tokenizer can emit (added tokens included): what the text
  tower's embedding table must hold."""
  return int(tok.get_vocab_size(with_added_tokens=True))
