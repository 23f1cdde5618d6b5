# reverie: the operator, the dream and memory-apply Jobs it runs (same binary), and kubectl-dream.
# Build (see docs/image.md):
#   docker build -t ghcr.io/reverie-dev/reverie:0.1.0 .

# --- build ------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p reverie --bin reverie --bin kubectl-dream

# --- runtime ----------------------------------------------------------------------------------
# Debian slim rather than distroless: a dream Job with GitOps output runs the `git` program
# (and ssh for ssh:// remotes) to push its proposal (docs/gitops.md).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nonroot
COPY --from=build /src/target/release/reverie /usr/local/bin/reverie
COPY --from=build /src/target/release/kubectl-dream /usr/local/bin/kubectl-dream
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/reverie"]
