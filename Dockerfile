# syntax=docker/dockerfile:1
# capt-status: the capt-host operator with the default capt-status policy.
#
#   docker build -t capt-status:dev .
#
# Four stages. `chef` holds the pinned toolchain and cargo-chef; `planner` reduces the workspace
# to its dependency recipe; `builder` compiles the dependencies first (their own layer, rebuilt
# only when Cargo.toml or Cargo.lock change) and then the workspace; `runtime` is distroless.
# capt-host is built without its default `demo` feature, so the image carries neither the
# in-process API server (a test double) nor the simulated CAPT world (host/cli/tests/all/layers.rs
# checks this line). Its build script builds the capt-status guest component
# (wasm32-unknown-unknown) and embeds it: with no module mounted (the ConfigMap capt-status-policy
# is optional) the operator runs that default policy with its default settings.

# The toolchain pinned in rust-toolchain.toml (a test keeps the two equal).
ARG RUST_VERSION=1.95.0
ARG CARGO_CHEF_VERSION=0.1.78

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS chef
ARG CARGO_CHEF_VERSION
WORKDIR /src
# rustup does not add a toolchain file's targets to a toolchain that is already installed.
COPY rust-toolchain.toml ./
RUN rustup toolchain install \
 && rustup target add wasm32-unknown-unknown \
 && cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}" \
 && rustc --version

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo chef cook --profile dist -p capt-host --no-default-features --locked --recipe-path recipe.json
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --profile dist -p capt-host --locked --no-default-features \
 && mkdir -p /out \
 && cp target/dist/capt-host /out/capt-host

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="capt-status" \
      org.opencontainers.image.description="CAPT status engine: capt-host running the capt-status wasm policy" \
      org.opencontainers.image.source="https://github.com/appthrust/capt-status" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/capt-host /usr/local/bin/capt-host
COPY LICENSE /usr/share/doc/capt-status/LICENSE
USER 65532:65532
ENTRYPOINT ["capt-host"]
CMD ["run"]
