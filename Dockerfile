# syntax=docker/dockerfile:1
#
# SyncScript Vault: one `syncscript` binary serving HTTP and Socket.IO on port 3000.
#
#   docker build -t syncscript .
#   docker run -p 3000:3000 -v syncscript-data:/data syncscript
#
# The image runs the `production` profile (config/production.toml): demo data off, session
# cookies marked `Secure` (it expects a TLS-terminating proxy in front). For a plain-http trial
# on a laptop add `-e SYNCSCRIPT_SESSION__SECURE=false -e SYNCSCRIPT_DEMO__SEED=true`.

# --- build -------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# build.rs runs `npm ci` to fetch the Socket.IO browser client that the binary embeds.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# The cache mounts keep downloaded crates and compiled dependencies between builds, so the
# binary is copied out of the cached target/ in this same step. COPY keeps the context's file
# times, which cargo would trust; touching the sources makes it rebuild the workspace's own
# crates every time (dependencies are keyed by Cargo.lock and stay cached).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    find . -path ./target -prune -o -type f -exec touch {} + \
    && cargo build --release --locked --bin syncscript \
    && install -m 0755 target/release/syncscript /usr/local/bin/syncscript

# --- run ---------------------------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 syncscript \
    && useradd --uid 10001 --gid syncscript --home-dir /app --no-create-home --no-log-init \
        --shell /usr/sbin/nologin syncscript \
    && mkdir -p /data \
    && chown syncscript:syncscript /data

COPY --from=builder /usr/local/bin/syncscript /usr/local/bin/syncscript
# The binary reads config/ relative to its working directory (and has these files built in);
# mount a different folder over /app/config, or point SYNCSCRIPT_CONFIG at a file, to override.
WORKDIR /app
COPY config/ /app/config/

ENV SYNCSCRIPT_PROFILE=production \
    SYNCSCRIPT_SERVER__HOST=0.0.0.0 \
    SYNCSCRIPT_DATABASE__URL="sqlite:///data/syncscript.db?mode=rwc"

VOLUME ["/data"]
USER syncscript:syncscript
EXPOSE 3000

# No curl in the slim image: bash's /dev/tcp sends the request and the status line is checked.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SYNCSCRIPT_SERVER__PORT:-3000} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["/usr/local/bin/syncscript"]
CMD ["serve"]
