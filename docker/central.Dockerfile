# The reference central server: docker build -f docker/central.Dockerfile -t mallgate-central .
# Runs `mallgate central serve` on PostgreSQL (MALLGATE_CENTRAL_DSN) or SQLite in its volume.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY devices ./devices
COPY sync ./sync
COPY cloud_api ./cloud_api
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10002 --user-group --home-dir /var/lib/mallgate-central \
        --create-home mallgate-central
COPY --from=build /wheels /wheels
# Runtime dependencies only, as binary wheels: no compiler in the image.
RUN pip install --no-cache-dir --only-binary :all: /wheels/*.whl && rm -rf /wheels

USER mallgate-central
# One JSON object per log line for the collector, personal data masked (a terminal run of
# `mallgate central serve` outside the image stays readable).
ENV MALLGATE_CENTRAL_LOG_FORMAT=json
WORKDIR /var/lib/mallgate-central
VOLUME /var/lib/mallgate-central
EXPOSE 8090
HEALTHCHECK --interval=30s --timeout=3s CMD python -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8090/healthz', timeout=2)"
ENTRYPOINT ["mallgate", "central"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8090", "--db", "/var/lib/mallgate-central/central.db"]
