# Production image: `docker build -t messenger-gateway .`
# Runs `gateway run -c /etc/gateway/bridge_config.yaml`; mount your config there and
# set the secrets it references (${...}) as environment variables.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md bridge_config.yaml ./
COPY gateway ./gateway
COPY adapters ./adapters
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --create-home --home-dir /var/lib/gateway --uid 10001 gateway
COPY --from=build /install /usr/local
COPY bridge_config.yaml /etc/gateway/bridge_config.yaml
USER gateway
WORKDIR /var/lib/gateway
ENV PYTHONUNBUFFERED=1
EXPOSE 8080
# Inside a container the server must listen on all interfaces: set server.listen to
# 0.0.0.0:8080 in the mounted config.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"
ENTRYPOINT ["gateway"]
CMD ["run", "-c", "/etc/gateway/bridge_config.yaml"]
