# syntax=docker/dockerfile:1
# Image of kaddons-metrics-server, the metrics.k8s.io server the metrics-server addon deploys.
#
# Build stage: a release build of only the server binary (the kaddons CLI is not built). The
# cargo registry and target directory live in BuildKit cache mounts, so rebuilds after a code
# change only recompile the crate itself.
ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
# The library embeds addons/ and templates/; Cargo.toml names the bench and test targets, so
# their files must exist for the manifest to load.
COPY Cargo.toml Cargo.lock ./
COPY addons ./addons
COPY templates ./templates
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kaddons-metrics-server \
    && install -D -m 0755 target/release/kaddons-metrics-server /out/kaddons-metrics-server

# Runtime stage: distroless "cc" is the static image plus glibc and libgcc, which a
# glibc-linked Rust binary needs; no shell, no package manager, CA certificates included.
# It runs as uid/gid 65532 and writes nothing outside --cert-dir (default under /tmp), so it
# works with readOnlyRootFilesystem and an emptyDir on /tmp.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/kaddons-metrics-server /usr/local/bin/kaddons-metrics-server
USER 65532:65532
EXPOSE 10250
ENTRYPOINT ["/usr/local/bin/kaddons-metrics-server"]
