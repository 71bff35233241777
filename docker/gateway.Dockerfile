# The gateway: docker build -f docker/gateway.Dockerfile -t mallgate .
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY devices ./devices
COPY sync ./sync
COPY cloud_api ./cloud_api
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
# dialout: the POS serial ports mapped into the container belong to that group.
RUN useradd --system --uid 10001 --user-group --groups dialout \
        --home-dir /var/lib/mallgate --create-home mallgate
COPY --from=build /wheels /wheels
# Runtime dependencies only, as binary wheels: no compiler or test tools in the image.
RUN pip install --no-cache-dir --only-binary :all: /wheels/*.whl && rm -rf /wheels
COPY config/example-mall.toml /etc/mallgate/mallgate.toml

USER mallgate
WORKDIR /var/lib/mallgate
VOLUME /var/lib/mallgate
EXPOSE 8080
# Inside a container the API listens on every interface; publish the port with care.
ENV MALLGATE__HTTP__HOST=0.0.0.0 \
    MALLGATE__STORE__PATH=/var/lib/mallgate/mallgate.db
HEALTHCHECK --interval=30s --timeout=3s CMD python -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
ENTRYPOINT ["mallgate"]
CMD ["run", "--config", "/etc/mallgate/mallgate.toml"]
