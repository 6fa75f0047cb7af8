# syntax=docker/dockerfile:1
# Multi-stage build of realtime-hub: the builder compiles the same release binary
# the README builds (`cargo build --release --locked`), the runtime image carries
# only that binary and its default config, and runs as a non-root user.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
RUN cargo build --release --locked --bin realtime-hub

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin hub
COPY --from=build /src/target/release/realtime-hub /usr/local/bin/realtime-hub
COPY config /etc/realtime-hub
USER hub
EXPOSE 8080
ENV RUST_LOG=info
# Mount your own config over /etc/realtime-hub, or override keys with HUB_* env.
ENTRYPOINT ["/usr/local/bin/realtime-hub"]
CMD ["--config", "/etc/realtime-hub/default.toml"]
