# syntax=docker/dockerfile:1
# realtime-hub container image (docs/OPERATIONS.md, "Docker").
#
# Stage 1 compiles the release binary with the same command CI's release build
# runs (`scripts/test` runs `cargo build --release`; the only binary target is
# realtime-hub, and --locked keeps the image on Cargo.lock). Stage 2 carries that
# one binary and the default config, runs as an unprivileged user, and checks
# its own health with the binary itself (no curl in the image).

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Only what the binary is built from (.dockerignore keeps the context to these).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
RUN cargo build --release --locked --bin realtime-hub

FROM debian:bookworm-slim
# CA roots: cluster mode over rediss:// (managed Redis) verifies the server.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 hub \
 && useradd --system --uid 10001 --gid hub --no-create-home --shell /usr/sbin/nologin hub
COPY --from=build /src/target/release/realtime-hub /usr/local/bin/realtime-hub
# The configuration directory: mount your own over it (it must contain hub.toml),
# or keep this copy of config/default.toml and override keys with HUB_* env.
COPY config/default.toml /etc/realtime-hub/hub.toml
# The durable store (storage.path, "data" relative to the working directory):
# a volume, so a new container on the same volume keeps every room's epoch,
# history, keyed state and idempotency keys. One hub per volume (it is locked).
RUN mkdir -p /var/lib/realtime-hub/data && chown -R hub:hub /var/lib/realtime-hub
WORKDIR /var/lib/realtime-hub
VOLUME ["/var/lib/realtime-hub/data"]
USER hub:hub
EXPOSE 8080
# Configuration through the environment (README "Configuration"):
#   HUB_<SECTION>__<KEY>   any config key, e.g. HUB_ROOMS__DECLARE=alpha,beta,
#                          HUB_AUTH__API_KEYS=k1,k2, HUB_SERVER__SHUTDOWN_GRACE_S=10
#   RUST_LOG               log filter (info; realtime_hub::access=debug adds an access log)
#   HUB_LOG_FORMAT         text (default) or json: one JSON object per line
#   HUB_URL                where `realtime-hub status|rooms|publish|healthcheck` connect;
#                          set it when HUB_SERVER__BIND moves the port off 8080
ENV RUST_LOG=info \
    HUB_LOG_FORMAT=text
# GET /healthz through the binary; it gives up after 5 s by itself. Plain HTTP
# only: with server.tls_cert set, override this (or terminate TLS at a proxy).
HEALTHCHECK --interval=10s --timeout=6s --start-period=5s --retries=3 \
    CMD ["realtime-hub", "healthcheck"]
# SIGTERM drains (1001 to every socket) and exits within server.shutdown_grace_s
# (10 s by default): give `docker stop` more than that, e.g. `docker stop -t 15`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/realtime-hub"]
CMD ["--config", "/etc/realtime-hub/hub.toml"]
