"""adgm_tf: Auxiliary Deep Generative Models (Maaløe et al., 2016) in TF2 / Keras 3."""

import setuptools

# The set tested together (see BUILD.md, "Dependencies"); constraints.txt
# pins every transitive version of the tested environment.
INSTALL_REQUIRES = [
    "tensorflow==2.21.*",
    "keras==3.15.*",
    "tensorflow-probability==0.25.*",
    "tf-keras==2.21.*",          # TFP 0.25 refuses to import without it
    "tensorboard==2.21.*",       # TF 2.21 no longer pulls it in
    "tensorflow-datasets==4.9.10",
    "etils[epath]",              # tfds download_and_prepare needs it
    "importlib_resources",       # idem, missing from a plain install
    "absl-py>=2.1",
    "numpy>=2.0,<3",
    "matplotlib>=3.8",
]

EXTRAS = {
    # scikit-learn: its 8x8 digits are the real data of the "your own data"
    # example and tests (README), installed with the package, no download.
    "test": ["pytest>=8", "tensorflow-serving-api==2.21.*", "scikit-learn>=1.4"],
    "lint": ["ruff>=0.6"],
}

setuptools.setup(
    name="adgm_tf",
    version="0.1.0",
    description=("Auxiliary Deep Generative Models for semi-supervised "
                 "classification in TensorFlow 2 / Keras 3"),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["adgm_tf", "adgm_tf.*"]),
    py_modules=["launch"],
    python_requires=">=3.10,<3.14",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    license="Apache-2.0",
)
