# Image of the accent pipeline's Kubeflow Pipelines steps: every TFX component (standard and
# custom) runs from it, so the package and all its dependencies are installed here.
#   docker build -t REGISTRY/accent-pipeline:TAG .
# tensorflow/tfx:1.16.0 brings Python 3.10 and TFX 1.16 with its TensorFlow, Beam and TFMA stack;
# the pins of setup.py and requirements-post.txt then give the same environment as .venv.
FROM tensorflow/tfx:1.16.0

WORKDIR /opt/accent-pipeline

COPY setup.py pyproject.toml requirements-post.txt requirements-nodeps.txt ./
COPY pipeline/ pipeline/
COPY components/ components/
COPY schemas/ schemas/

# Not editable: the code lands in site-packages, wherever a step's working directory is.
# Second step as in the Makefile: tensorflow-hub 0.16.1 and tf-keras over tfx's own pins;
# third: model-card-toolkit without its outdated pins.
# The "web" extra (Gradio) makes the same image run the web page (`accent-pipeline web`,
# kubernetes/base/web-deployment.yaml); it moves none of the pins above. The demo and test extras
# stay out: they are dev only. Written "./[web]": hadolint (DL3013) takes "./" for a local path.
RUN pip install --no-cache-dir "./[web]" \
    && pip install --no-cache-dir -r requirements-post.txt \
    && pip install --no-cache-dir --no-deps -r requirements-nodeps.txt
