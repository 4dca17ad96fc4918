# Multi-stage build: compile with the Rust toolchain, run from a slim Debian as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin guidang \
    && mkdir -p /data && chown guidang:guidang /data
COPY --from=build /src/target/release/guidang /usr/local/bin/guidang
USER guidang
WORKDIR /data
ENV GUIDANG_DATA_DIR=/data \
    GUIDANG_LISTEN=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["guidang"]
CMD ["serve"]
