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

# The image's user is the one compose runs every service as (AIRFLOW_UID, a build argument
# too): it owns /data, which a new named volume copies, and writes the logs that
# docker-compose.yaml mounts from the host.  Group 0 may write as well, as in Airflow's image.
ARG AIRFLOW_UID=50000
RUN useradd --uid "${AIRFLOW_UID}" --gid 0 --create-home airflow && mkdir -p /opt/airflow/logs /data \
    && chown -R airflow:0 /opt/airflow /data && chmod -R g+rwX /opt/airflow /data
USER airflow
