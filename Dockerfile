# Multi-stage build: compile with the Rust toolchain, run from a slim Debian as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own: a change to the sources does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked && rm -rf src
# Everything the binary embeds: sources, migrations, schemas, console templates and assets.
COPY src ./src
COPY migrations ./migrations
COPY schemas ./schemas
COPY templates ./templates
COPY static ./static
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

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
# Ready when the database and the object store answer (/readyz); bash's /dev/tcp, no curl needed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["guidang"]
CMD ["serve"]
