"""Package definition of the accent-recognition TFX pipeline."""

from setuptools import find_packages, setup

# The stack that resolves on Python 3.10 (see README, "Set-up").
# tensorflow-hub and tf-keras are pinned in requirements-post.txt: tfx declares
# tensorflow-hub 0.15, which cannot import on TF 2.16, so they go in a second step.
INSTALL_REQUIRES = [
    "tfx[kfp]==1.16.0",
    "tensorflow==2.16.2",
    "apache-beam[gcp]==2.59.0",
    "tensorflow-model-analysis==0.47.1",
    "tensorflow-io==0.37.1",
    "tensorflow-serving-api==2.16.1",
    "kfp==2.5.0",
    # The Tuner's search (components/tuner/); tfx requires it too, this pins the version it was tested with.
    "keras-tuner==1.4.8",
    "dill",
    "h5py",
    "scipy",
    # Resampling (components/audio.py): libsoxr, about 4 times faster than scipy's resample_poly.
    "soxr==1.1.0",
    # The model card's figures; below 3.10, which needs numpy 2.
    "matplotlib<3.10",
    "typing_extensions",
]

# The demo corpus (`accent-pipeline demo-corpus`, `make demo`) speaks with eSpeak NG; the pipeline
# image does not need it.
DEMO_REQUIRES = [
    "espeakng-loader",
]

# The web page (`accent-pipeline web`): Gradio, which installs beside the pinned stack without moving a pin.
WEB_REQUIRES = [
    "gradio==6.31.0",
]

# kfp-kubernetes 1.0.0 is the last release for kfp < 2.6 and protobuf 3; the tests parse the
# compiled Kubernetes platform spec with its KubernetesExecutorConfig proto.
# selenium drives Debian's chromium in the web page's browser test; 4.32.0 is its last release that
# accepts urllib3 1.x, which kfp 2.5 requires (4.33 and later need urllib3 2).
TEST_REQUIRES = [
    "pytest",
    "ruff",
    "kfp-kubernetes==1.0.0",
    "selenium==4.32.0",
]

setup(
    name="accent-pipeline",
    version="0.1.0",
    description="TFX pipeline that recognises English accents from speech with YAMNet embeddings.",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*", "schemas"]),
    package_data={"components.yamnet": ["*.csv"], "schemas": ["*.pbtxt"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES, "demo": DEMO_REQUIRES, "web": WEB_REQUIRES},
    entry_points={"console_scripts": ["accent-pipeline=pipeline.cli:main"]},
)
