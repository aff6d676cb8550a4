# syntax=docker/dockerfile:1
# cometd-bridge: multi-stage build; the final image has production dependencies only and runs as `node`.
#
#   docker build -t cometd-bridge .
#   docker run --rm -p 8080:8080 -e COMETD_BRIDGE_URL=http://upstream:8080/cometd cometd-bridge
#   docker run --rm -p 8080:8080 -v $PWD/bridge.yaml:/etc/cometd-bridge/bridge.yaml:ro \
#     -e COMETD_BRIDGE_CONFIG=/etc/cometd-bridge/bridge.yaml cometd-bridge
#
# With no session configured the image runs the embedded demo (see docs/http-api.md).
# It listens on 0.0.0.0, so it needs caller tokens (-e COMETD_BRIDGE_TOKEN=… or auth.tokens in a file) or an explicit
# COMETD_BRIDGE_ALLOW_UNAUTHENTICATED=true; otherwise it refuses to start (exit 78). See docs/security.md.
ARG NODE_VERSION=24

# ---- build: compile TypeScript (dev dependencies needed here only)
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY client-core ./client-core
COPY config ./config
COPY server ./server
# the console's static files (server/http/console) go next to the compiled server, as `npm run build` does
RUN npx tsc -p tsconfig.build.json && cp -r server/http/console dist/server/http/console

# ---- deps: production dependencies only (faye is one: the demo upstream runs on it)
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# ---- runtime
FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production \
    COMETD_BRIDGE_HOST=0.0.0.0 \
    COMETD_BRIDGE_PORT=8080 \
    COMETD_BRIDGE_SHUTDOWN_TIMEOUT_MS=8000 \
    COMETD_BRIDGE_DATA_DIR=/data
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
# the official image's unprivileged user (uid 1000); the app files stay owned by root, read-only for it
# replay checkpoints (sessions with replay.enabled): mount a volume here to keep them across containers
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 8080
# SIGTERM starts the graceful shutdown; COMETD_BRIDGE_SHUTDOWN_TIMEOUT_MS (8 s) fits Docker's default 10 s grace
STOPSIGNAL SIGTERM
# slim images have no curl: node's fetch does the probe
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.COMETD_BRIDGE_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/server/main.js"]
