# syntax=docker/dockerfile:1
# cometd-bridge: the image holds exactly what `npm pack` ships (built here) plus the production dependencies.
#
#   docker build -t cometd-bridge .
#   docker run --rm -p 127.0.0.1:8080:8080 -e COMETD_BRIDGE_URL=http://upstream:8080/cometd \
#     -e COMETD_BRIDGE_TOKEN=$(openssl rand -hex 32) cometd-bridge
#   docker run --rm -p 127.0.0.1:8080:8080 --read-only -v bridge-data:/data \
#     -v $PWD/bridge.yaml:/etc/cometd-bridge/bridge.yaml:ro -e COMETD_BRIDGE_CONFIG=/etc/cometd-bridge/bridge.yaml cometd-bridge
#
# Configuration, later wins: the built-in defaults < the image's defaults (container/defaults.json, named by
# COMETD_BRIDGE_DEFAULTS: listen 0.0.0.0:8080, dataDir /data, shutdownTimeoutMs 8000) < your config file
# (COMETD_BRIDGE_CONFIG) < COMETD_BRIDGE_* variables < flags. So a mounted file's listen, dataDir and
# shutdownTimeoutMs are the ones used. docs/configuration.md has the details.
#
# It listens on 0.0.0.0 inside the container, so it needs caller tokens (-e COMETD_BRIDGE_TOKEN=… or auth.tokens
# in a file) or an explicit COMETD_BRIDGE_ALLOW_UNAUTHENTICATED=true; otherwise it refuses to start (exit 78).
# With no session configured it runs the embedded demo. See docs/security.md.
ARG NODE_VERSION=24

# ---- build: compile, then pack and unpack the package (its `files` decide what the image gets)
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json LICENSE README.md ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY client-core ./client-core
COPY config ./config
COPY server ./server
RUN npm run build && npm pack --ignore-scripts --pack-destination . && mkdir pkg && tar -xzf cometd-bridge-*.tgz -C pkg --strip-components=1

# ---- deps: the package plus its production dependencies (faye is one: the demo upstream runs on it)
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY --from=build /src/pkg ./
COPY package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && rm package-lock.json && npm cache clean --force

# ---- runtime: tini as PID 1 (reaps children, passes SIGTERM on), a non-root user, read-only application files
FROM node:${NODE_VERSION}-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    COMETD_BRIDGE_DEFAULTS=/app/container/defaults.json
WORKDIR /app
COPY --from=deps --chown=root:root /app ./
COPY --chown=root:root container/defaults.json ./container/defaults.json
# replay checkpoints (sessions with replay.enabled) go to /data, the only place the bridge writes: with
# --read-only (compose: read_only: true) mount a volume there to keep them across containers
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
# the official image's unprivileged user (uid 1000); the application files stay owned by root, read-only for it
USER node
EXPOSE 8080
# SIGTERM starts the graceful shutdown; shutdownTimeoutMs (8 s here) fits Docker's default 10 s grace
STOPSIGNAL SIGTERM
# probes /healthz on the listen address and port of the same configuration (defaults, file, env)
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "dist/server/ops/healthcheck.js"]
ENTRYPOINT ["/usr/bin/tini", "--"]
# a young generation of 2 MB semi-spaces (V8 grows it to 16 MB under load): streaming large messages, the
# daemon's RSS grows by 35-45 MB instead of 80-125 MB (docs/BENCHMARKS.md, streaming memory); as `npm start`
CMD ["node", "--max-semi-space-size=2", "dist/server/main.js"]
