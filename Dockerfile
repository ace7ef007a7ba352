# One image for every deployment shape: the container's arguments pick the modules,
# e.g. `--modules wallet --bus kafka` (see docker-compose.yml). Without DATABASE_URL the
# process uses embedded PGlite in /app/data (fine for a one-container demo, lost with the
# container unless a volume is mounted there).

# Keep in step with bun-types in package.json.
ARG BUN_VERSION=1.4.5

# --- dependencies: production only, exactly as locked --------------------------------------
FROM oven/bun:${BUN_VERSION} AS deps
WORKDIR /app
COPY package.json bun.lock bunfig.toml ./
# kafkajs is patched (see patches/ and docs/performance.md); bun install applies patches/ while installing.
COPY patches ./patches
RUN bun install --frozen-lockfile --production

# --- runtime -------------------------------------------------------------------------------
FROM oven/bun:${BUN_VERSION} AS runtime
WORKDIR /app
ENV NODE_ENV=production

# Application files stay owned by root (read-only for the app); only ./data is writable.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json bunfig.toml tsconfig.json ./
COPY src ./src
COPY modules ./modules
COPY drizzle ./drizzle
COPY config ./config
RUN mkdir -p /app/data && chown bun:bun /app/data

USER bun
EXPOSE 8000 8001 8002
# main.ts stops cleanly on SIGTERM: servers, consumers, outbox relays, bus, database.
STOPSIGNAL SIGTERM
# Exec form: bun is PID 1 and gets the signal itself. No HEALTHCHECK here: compose
# defines one per service (the port differs); the image has no curl, use `bun -e fetch(...)`.
ENTRYPOINT ["bun", "run", "src/app/main.ts"]
