# driftline: one image for the worker, the API and the CLI.

# The native extension (native/: Rust, PyO3) built into a wheel: the fast path of the
# prediction/label codec and the raw-event writer (schemas/native.py).
FROM rust:1-slim AS native
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /build && /build/bin/pip install --no-cache-dir "maturin>=1.9,<2"
COPY native /native
RUN /build/bin/maturin build --release --manifest-path /native/Cargo.toml --out /wheels

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY detectors ./detectors
COPY streams ./streams
COPY retrain ./retrain
COPY dashboards ./dashboards
COPY driftline ./driftline
COPY --from=native /wheels /wheels
RUN pip install . /wheels/*.whl && rm -rf /wheels
RUN useradd --create-home driftline && mkdir -p /data && chown driftline /data
USER driftline
ENV DRIFTLINE_DATA_DIR=/data
ENTRYPOINT ["driftline"]
CMD ["--help"]
