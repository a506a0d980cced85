#!/usr/bin/env python3
"""Calibration proxy for ``avdigits.npz``: train one tiny CNN per modality.

Usage::

    .venv/bin/python scripts/check_avdigits.py [--path ume_jax/data/assets/avdigits.npz]

Trains a small Flax CNN on the train split of each modality alone (image, then
audio), picks the epoch with the best validation accuracy and reports
validation/test accuracy there. The asset is calibrated so that image test
accuracy is >= 95% and audio test accuracy (held-out voices) lands roughly in
65-85%, i.e. audio is learnable but clearly the weaker modality. Also checks the
npz layout. Takes ~10 min on 2 CPU cores; needs jax, flax, optax.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

SPLITS = ("train", "validation", "test")


class TinyCNN(nn.Module):
    """Two conv blocks + MLP head; deliberately the same for both modalities."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for features in (32, 64):
            x = nn.relu(nn.Conv(features, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), (2, 2))
        x = x.reshape(x.shape[0], -1)
        x = nn.Dropout(0.3, deterministic=not train)(x)
        x = nn.relu(nn.Dense(128)(x))
        return nn.Dense(10)(x)


def check_layout(data: np.lib.npyio.NpzFile) -> dict:
    """Assert the documented keys/dtypes/shapes; return the parsed meta."""
    meta = json.loads(str(data["meta"]))
    for split in SPLITS:
        n = meta["splits"][split]["num_examples"]
        assert data[f"image_{split}"].shape == (n, 28, 28) and data[f"image_{split}"].dtype == np.uint8
        assert data[f"audio_{split}"].shape == (n, 40, 40) and data[f"audio_{split}"].dtype == np.uint8
        assert data[f"label_{split}"].shape == (n,) and data[f"label_{split}"].dtype == np.uint8
        assert data[f"voice_{split}"].shape == (n,) and data[f"voice_{split}"].dtype == np.int16
    voices = {s: {meta["voices"][i] for i in np.unique(data[f"voice_{s}"])} for s in SPLITS}
    assert not voices["train"] & voices["test"] and not voices["train"] & voices["validation"]
    assert not voices["validation"] & voices["test"]
    return meta


def accuracy(predict, params, x: np.ndarray, y: np.ndarray) -> float:
    return float(jnp.mean(jnp.argmax(predict({"params": params}, x), -1) == y))


def train_modality(x: dict, y: dict, seed: int, epochs: int, batch: int = 128) -> dict:
    """Adam on train; return val/test accuracy at the best-validation epoch."""
    model = TinyCNN()
    key = jax.random.PRNGKey(seed)
    params = model.init(key, x["train"][:1])["params"]
    predict = jax.jit(model.apply)  # jit once; re-wrapping per call would recompile
    tx = optax.adam(1e-3)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, xb, yb, rng):
        def loss_fn(p):
            logits = model.apply({"params": p}, xb, train=True, rngs={"dropout": rng})
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    rng = np.random.default_rng(seed)
    best = {"validation": -1.0}
    for epoch in range(epochs):
        order = rng.permutation(len(y["train"]))
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i:i + batch]
            key, sub = jax.random.split(key)
            params, opt_state = step(params, opt_state, x["train"][idx], y["train"][idx], sub)
        val = accuracy(predict, params, x["validation"], y["validation"])
        if val > best["validation"]:
            best = {"epoch": epoch + 1, "validation": val,
                    "test": accuracy(predict, params, x["test"], y["test"])}
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", default="ume_jax/data/assets/avdigits.npz")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    data = np.load(args.path)
    meta = check_layout(data)
    print("sizes:", {s: meta["splits"][s]["num_examples"] for s in SPLITS})
    y = {s: data[f"label_{s}"].astype(np.int32) for s in SPLITS}
    results = {}
    for modality in ("image", "audio"):
        # uint8 -> [0, 1] floats with a channel axis, (N, H, W, 1).
        x = {s: data[f"{modality}_{s}"][..., None].astype(np.float32) / 255.0 for s in SPLITS}
        results[modality] = train_modality(x, y, args.seed, args.epochs)
        print(modality, json.dumps(results[modality]), flush=True)
    gap = results["image"]["test"] - results["audio"]["test"]
    print(f"image-audio test gap: {100 * gap:.1f} points")
    ok = results["image"]["test"] >= 0.95 and 0.5 <= results["audio"]["test"] and gap >= 0.05
    print("calibration target met" if ok else "calibration target NOT met")


if __name__ == "__main__":
    main()
