# gw-ops image for the distributed stack (docker-compose.yaml): Airflow 3 + gw-ops.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/gw-ops
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
RUN pip install --no-deps -e .

RUN useradd --uid 50000 --create-home airflow && mkdir -p /opt/airflow /data && chown -R airflow /opt/airflow /data
USER airflow
