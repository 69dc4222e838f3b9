# oneshot: one image for the api and worker services (docker-compose.yml).
#   docker build -t oneshot .
#   docker run --rm oneshot version

# ---- build: a static binary
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=${VERSION}" -o /out/oneshot ./cmd/oneshot \
 && CGO_ENABLED=0 go build -trimpath -o /out/oneshot-runtime ./cmd/oneshot-runtime

# ---- run: Debian slim, because sandboxes bind the host's /usr read-only and
# the agent's bash tool needs bash, coreutils and the usual tools there.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      bash coreutils findutils grep sed gawk diffutils file less procps ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
# Under /usr, so a sandbox sees the runtime (oneshot-runtime) without an extra mount.
COPY --from=build /out/oneshot /usr/local/bin/oneshot
COPY --from=build /out/oneshot-runtime /usr/local/bin/oneshot-runtime
COPY --from=build --chmod=0755 /src/cmd/oneshot/worker-entrypoint.sh /usr/local/bin/oneshot-worker-entrypoint
EXPOSE 8080 9091
ENTRYPOINT ["/usr/local/bin/oneshot"]
CMD ["api"]
