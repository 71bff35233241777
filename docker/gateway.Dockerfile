# The gateway: docker build -f docker/gateway.Dockerfile -t mallgate .
FROM python:3.11-slim-bookworm

RUN useradd --system --home-dir /var/lib/mallgate --create-home mallgate
WORKDIR /opt/mallgate
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY devices ./devices
COPY sync ./sync
COPY cloud_api ./cloud_api
COPY config ./config
RUN pip install --no-cache-dir . && cp config/example-mall.toml /etc/mallgate.toml

USER mallgate
VOLUME /var/lib/mallgate
EXPOSE 8080
# Inside a container the API listens on every interface; publish the port with care.
ENV MALLGATE__HTTP__HOST=0.0.0.0 \
    MALLGATE__STORE__PATH=/var/lib/mallgate/mallgate.db
HEALTHCHECK --interval=30s --timeout=3s CMD python -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
ENTRYPOINT ["mallgate"]
CMD ["run", "--config", "/etc/mallgate.toml"]
