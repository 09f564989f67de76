# One image for every fedembed process (SuperLink, SuperNode, index store, query gateway).
# Build: docker build -t fedembed .   (CPU torch; pass --build-arg TORCH_SPEC=... for CUDA)
FROM python:3.11-slim
ARG TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN pip install ${TORCH_SPEC}
COPY pyproject.toml README.md ./
# One folder per package, floor by floor (ARCHITECTURE.md).
COPY embedding_core embedding_core
COPY privacy privacy
COPY crypto crypto
COPY federation federation
COPY kits kits
COPY dp_training dp_training
COPY index_client index_client
COPY deployment deployment
COPY client_node client_node
COPY coordinator coordinator
COPY secure_index secure_index
COPY attacks attacks
COPY policies policies
COPY report report
COPY audit audit
COPY fedembed fedembed
# gcc builds the index's small C extension (secure_index/index/_hit_rows.c), then goes.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install . \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 fedembed
USER fedembed
ENTRYPOINT ["fedembed"]
