# The service image used by docker-compose.yml (server mode).
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sematic_metrics ./sematic_metrics
COPY schema ./schema
RUN pip install --no-cache-dir ".[server]" && useradd --system --home-dir /home/sematic --create-home sematic
USER sematic
WORKDIR /home/sematic
ENV SEMATIC_METRICS_HOST=0.0.0.0 \
    SEMATIC_METRICS_DATA_DIR=/home/sematic/data
EXPOSE 8000
CMD ["sematic-metrics", "serve"]
