# syntax=docker/dockerfile:1
# capt-status: the capt-host operator with the default capt-status policy.
#
#   docker build -t capt-status:dev .
#
# The builder compiles capt-host without its default `demo` feature, so the image carries
# neither the in-process API server (a test double) nor the simulated CAPT world
# (host/cli/tests/all/layers.rs checks this line); its build script builds the capt-status
# guest component (wasm32-unknown-unknown) and embeds it. The same component is also shipped as a file, the
# default /etc/capt/policy/policy.wasm, which deploy/ replaces with the ConfigMap
# capt-status-policy.

# The toolchain pinned in rust-toolchain.toml (a test keeps the two equal).
ARG RUST_VERSION=1.95.0

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# rustup does not add a toolchain file's targets to a toolchain that is already installed.
COPY rust-toolchain.toml ./
RUN rustup toolchain install \
 && rustup target add wasm32-unknown-unknown \
 && rustc --version
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release -p capt-host --locked --no-default-features \
 && mkdir -p /out \
 && cp target/release/capt-host /out/capt-host \
 && set -- target/release/build/capt-host-*/out/default-policy.wasm \
 && test "$#" -eq 1 \
 && test -f "$1" \
 && cp "$1" /out/policy.wasm

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="capt-status" \
      org.opencontainers.image.description="CAPT status engine: capt-host running the capt-status wasm policy" \
      org.opencontainers.image.source="https://github.com/appthrust/capt-status" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/capt-host /usr/local/bin/capt-host
COPY --from=builder /out/policy.wasm /etc/capt/policy/policy.wasm
COPY policies/capt-status/settings.yaml /etc/capt/policy/settings.yaml
USER 65532:65532
ENTRYPOINT ["capt-host"]
CMD ["run"]
