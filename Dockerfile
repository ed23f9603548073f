# memgate's image: built with the locked dependency tree, run as a non-root user on a distroless
# base (no shell, no package manager: nothing for an intruder to use). The cache mounts need
# BuildKit, Docker's default builder since 23.0.
#   docker build -t memgate:0.1.0 .
#   docker run --rm --network host memgate:0.1.0     # upstream: the host's 127.0.0.1:4000

# The toolchain the project is developed and tested with.
FROM rust:1.95.0-bookworm AS build
# libz-ng-sys (pulled in by Pingora) builds zlib-ng with cmake.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# sqlx::migrate! embeds migrations/ at compile time; Cargo reads the [[bench]] and example
# targets the manifest declares, so their sources must be present too.
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
COPY examples ./examples
# The caches keep the registry and build artefacts between builds; the binary is copied out
# because the cache mount is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin memgate \
    && cp target/release/memgate /usr/local/bin/memgate

# glibc and libgcc_s are all the binary links to dynamically (rustls, bundled SQLite, static
# zlib-ng): the cc variant has them. nonroot runs as uid 65532, as the Kubernetes manifests ask.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/memgate /usr/local/bin/memgate
# The development configuration (its embedded store and dev keys), so that `docker run` works as
# scripts/run.sh does; deployments mount their own and pass --config (k8s/base/memgate.toml).
# memgate looks for config/memgate.toml under the working directory, and creates data/ there.
WORKDIR /home/nonroot
COPY config/memgate.toml ./config/memgate.toml
USER 65532:65532
# proxy.listen, admin.listen
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/memgate"]
# A subcommand replaces it: docker run IMAGE check-config, docker run IMAGE migrate.
CMD ["serve"]
