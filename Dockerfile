# bedrock-meter image: the proxy, the Bedrock simulator and the shipped rate table.
#   docker build -t bedrock-meter:dev .                   (the runtime stage, the default)
#   docker build --target traffic -t bedrock-meter-traffic:dev .   (the demo's boto3 loop)
# docker-compose.yml builds both. The build stage runs exactly the README's steps.

# --- build: scripts/install-deps, then scripts/build release -----------------------------------
FROM debian:12 AS build
# install-deps checks that python3 can import boto3 (the test suite's client). Debian's boto3 is
# too old for Bedrock Runtime but passes that check, and nothing in this stage runs the tests.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-boto3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so editing the source does not invalidate this layer.
COPY scripts/install-deps scripts/
RUN scripts/install-deps && rm -rf /var/lib/apt/lists/*
COPY . .
RUN scripts/build release bedrock-meter bedrock-sim \
 && deploy/runtime-packages.sh build/release/bin/bedrock-meter \
        build/release/bin/bedrock-sim > /runtime-packages

# --- traffic: the demo's traffic generator (docker-compose profile "demo") ---------------------
FROM debian:12-slim AS traffic
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Bedrock Runtime (Converse, CountTokens) needs a recent boto3: the version the tests use.
RUN python3 -m venv /opt/boto3 && /opt/boto3/bin/pip install --no-cache-dir boto3==1.43.11
ENV PATH=/opt/boto3/bin:$PATH
COPY scripts/demo_traffic.py /opt/demo/demo_traffic.py
RUN useradd --system --no-create-home traffic
USER traffic
CMD ["python3", "/opt/demo/demo_traffic.py", "http://bedrock-meter:8080"]

# --- runtime: the two binaries and the rate table --------------------------------------------
FROM debian:12-slim AS runtime
COPY --from=build /runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && xargs -a /tmp/runtime-packages env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
COPY --from=build /src/build/release/bin/bedrock-meter /usr/local/bin/bedrock-meter
COPY --from=build /src/build/release/bin/bedrock-sim /usr/local/bin/bedrock-sim
# /srv/bedrock-meter: configs are mounted here (deploy/bedrock-meter/), the rate table ships in
# rates/ (configs name it relative to themselves), the ledger lives in data/ (a volume).
RUN useradd --system --home-dir /srv/bedrock-meter --shell /usr/sbin/nologin bedrock-meter \
 && mkdir -p /srv/bedrock-meter/rates /srv/bedrock-meter/data \
 && chown bedrock-meter:bedrock-meter /srv/bedrock-meter/data
COPY config/rates/bedrock.yaml /srv/bedrock-meter/rates/bedrock.yaml
COPY config/examples/ /usr/share/doc/bedrock-meter/examples/
COPY deploy/bedrock-meter/ /srv/bedrock-meter/
USER bedrock-meter
WORKDIR /srv/bedrock-meter
# 8080: the Bedrock endpoint; 9464: admin (/metrics, /healthz, /readyz).
EXPOSE 8080 9464
# SIGTERM drains in-flight streams (limits.shutdown_grace) and exits 0.
STOPSIGNAL SIGTERM
CMD ["bedrock-meter", "serve", "--config", "/srv/bedrock-meter/bedrock.yaml"]
