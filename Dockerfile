# driftline: one image for the worker, the API and the CLI.
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
RUN pip install .
RUN useradd --create-home driftline && mkdir -p /data && chown driftline /data
USER driftline
ENV DRIFTLINE_DATA_DIR=/data
ENTRYPOINT ["driftline"]
CMD ["--help"]
