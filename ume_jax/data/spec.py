"""Static description of a dataset, shared by every dataset in the registry."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What the model needs to know about a dataset before seeing any data.

  Attributes:
    name: registry name, e.g. "avdigits".
    modalities: modality names in canonical order; `present[:, i]` of a batch
      refers to `modalities[i]`.
    input_shapes: per-example float32 shape of each modality after
      preprocessing, e.g. {"image": (28, 28, 1), "audio": (40, 40, 1)}.
    num_classes: number of classes.
    multilabel: if True `label` is float32 (B, num_classes) multi-hot,
      otherwise int32 (B,).
    split_sizes: number of examples per split.
    input_dtypes: per-modality dtype where not float32, e.g. {"text":
      "int32"} for token ids (padding id 0, so the "zeros" substitute of an
      absent text is an all-padding sequence).
  """

  name: str
  modalities: tuple[str, ...]
  input_shapes: dict[str, tuple[int, ...]]
  num_classes: int
  multilabel: bool
  split_sizes: dict[str, int]
  input_dtypes: dict[str, str] = dataclasses.field(default_factory=dict)
