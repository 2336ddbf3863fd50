# The streaming server (CPU by default), with the checkpoints in checkpoints/ baked in or mounted:
#   docker build -t telugu-s2s .
#   docker run -d -p 127.0.0.1:8000:8000 -v s2s-state:/app/data/state telugu-s2s
# GPU: --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128, then
#   docker run --gpus all ... telugu-s2s python -m telugu_s2s.serve host=0.0.0.0 port=8000 engine.device=cuda
# See docs/deployment.md (TLS proxy in front; the page needs https for the microphone).
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1

# libsndfile for soundfile; espeak-ng comes inside the espeakng-loader wheel
RUN apt-get update && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# torch first, from the chosen index: an unpinned torch from PyPI is the multi-GB CUDA build
RUN pip install --index-url ${TORCH_INDEX} torch==${TORCH_VERSION}
COPY pyproject.toml README.md ./
COPY src ./src
COPY conf ./conf
COPY checkpoints ./checkpoints
RUN pip install -e . && useradd --create-home s2s && mkdir -p data/state logs && chown -R s2s data logs

USER s2s
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
# Inside the container the server must listen on all interfaces; publish the port on the
# host's 127.0.0.1 only and put the TLS proxy in front.
CMD ["python", "-m", "telugu_s2s.serve", "host=0.0.0.0", "port=8000"]
