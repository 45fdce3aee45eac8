# The code-location image: the irt_pipeline code location served over gRPC (README, "Deploying").
#
#   docker build -t irt-pipeline .                       # or, for a run launcher's own package:
#   docker build -t irt-pipeline --build-arg EXTRA_PACKAGES="dagster-k8s==0.29.27" .
#                                                        #   dagster-docker / dagster-aws likewise
#
# Its command is the one irt_pipeline_tests/deploy/ runs (only the host and port differ there):
# the webserver and the daemon reach it through deploy/workspace.yaml. It is a CMD, not an
# ENTRYPOINT: the run launchers start each run worker from this same image with their own command
# (`dagster api execute_run ...`), which an ENTRYPOINT would swallow as arguments.
#
# Environment (every container of the image: code server and run workers): DAGSTER_PG_HOST,
# DAGSTER_PG_PORT, DAGSTER_PG_USER, DAGSTER_PG_PASSWORD, DAGSTER_PG_DB and PGSSLMODE=require (the
# instance's storage, read by run workers), IRT_DATABASE_URL (the data), optionally
# IRT_IMPORT_QUIET_MINUTES, IRT_IMPORT_MAX_ATTEMPTS_PER_TICK, IRT_RECALIBRATION_CRON.
FROM python:3.11-slim

ARG EXTRA_PACKAGES=""
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home

WORKDIR /opt/dagster/app
COPY pyproject.toml README.md ./
COPY irt_pipeline ./irt_pipeline
RUN pip install --no-cache-dir . ${EXTRA_PACKAGES} \
 && mkdir -p "$DAGSTER_HOME"
# The production instance, for `dagster` commands run inside a container (run workers get the
# instance from the launcher instead).
COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml

EXPOSE 4000
CMD ["dagster", "code-server", "start", "-m", "irt_pipeline.definitions", "--location-name", "irt_pipeline", "-h", "0.0.0.0", "-p", "4000"]
