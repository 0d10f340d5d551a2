# syntax=docker/dockerfile:1

# openwaba container images: one shared build stage compiles every binary,
# then one small final stage per service. Pick the service with --target:
#
#   docker build --target webapp  -t openwaba/webapp  .
#   docker build --target coreapp -t openwaba/coreapp .
#   docker build --target chatd   -t openwaba/chatd   .
#   docker build --target waphone -t openwaba/waphone .
#
# docker-compose.yml builds all four (the build stage runs once and is shared);
# docs/deployment.md explains the stack, deploy/check-compose.sh checks it.
# BuildKit is required (cache mounts); it is the default builder of Docker 23+.

# go.work and every go.mod say "go 1.26.8", and the golang images set
# GOTOOLCHAIN=local, so the image must be at least that patch release.
ARG GO_VERSION=1.26.8
# The final stages are busybox, not distroless: the binaries are static, and
# busybox adds, in about 1 MB, a shell plus `nc -z` and `wget` for container
# health checks (no binary has a health subcommand, see docs/deployment.md).
ARG BUSYBOX_IMAGE=busybox:stable-musl

# ---------------------------------------------------------------------------
# build: the whole workspace (go.work needs every module), all four binaries.
# It runs on the build machine's platform and cross-compiles (pure Go).
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags='-s -w' -o /out/ \
        ./webapp/cmd/webapp \
        ./coreapp/cmd/coreapp \
        ./chatd/cmd/chatd \
        ./chatd/cmd/waphone

# ---------------------------------------------------------------------------
# runtime: what every final stage shares. CA certificates (coreapp posts
# webhooks over HTTPS), an unprivileged user, JSON logs.
FROM ${BUSYBOX_IMAGE} AS runtime
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# uid/gid 10001, used by number below so that runAsNonRoot-style checks work.
RUN echo 'openwaba:x:10001:10001:openwaba:/nonexistent:/bin/false' >> /etc/passwd \
 && echo 'openwaba:x:10001:' >> /etc/group
ENV WA_LOG_FORMAT=json

# ---------------------------------------------------------------------------
# webapp: the REST API over HTTPS. Its default port is 9090; the compose file
# sets WA_WEB_PORT=443 and publishes 9090:443 like the on-prem layout.
# Port 443 as a non-root user: see the chatd stage.
FROM runtime AS webapp
COPY --from=build /out/webapp /usr/local/bin/webapp
USER 10001:10001
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/webapp"]

# ---------------------------------------------------------------------------
# coreapp: gRPC for the webapps on 6250. /usr/local/wamedia is the shared
# media volume of the on-prem layout, WA_DATA_DIR the node's own data
# directory; both belong to the service user so that a fresh named volume
# mounted there is writable. /var/lib/chatd-pub is where compose mounts
# chatd's data directory read-only (WA_CHAT_ROOT_KEY_FILE); it belongs to the
# service user too, so the volume is chatd's to write whichever container
# mounts it first.
FROM runtime AS coreapp
RUN mkdir -p /usr/local/wamedia /var/lib/openwaba /var/lib/chatd-pub \
 && chown 10001:10001 /usr/local/wamedia /var/lib/openwaba /var/lib/chatd-pub
COPY --from=build /out/coreapp /usr/local/bin/coreapp
ENV WA_DATA_DIR=/var/lib/openwaba WA_MEDIA_DIR=/usr/local/wamedia
USER 10001:10001
EXPOSE 6250
ENTRYPOINT ["/usr/local/bin/coreapp"]

# ---------------------------------------------------------------------------
# chatd: the chat protocol on 5222 and 443 (fallback; each raw or inside
# TLS), the media server (HTTPS) on 5281, the sandbox admin API on 5280
# (loopback inside the container unless WA_CHATD_ADMIN_ADDR says otherwise).
# /var/lib/chatd/media (the media blobs) belongs to the service user so that a
# fresh named volume mounted there is writable.
#
# Port 443 without root: chatd runs as uid 10001 with no capabilities at all.
# A non-root process may bind ports below 1024 when the network namespace's
# net.ipv4.ip_unprivileged_port_start is 0. Docker (20.10+) and Podman set it
# to 0 in every container with its own network namespace, and
# docker-compose.yml sets it explicitly (sysctls) so it never depends on the
# engine's default; in Kubernetes it is a "safe" sysctl (securityContext).
# cap_add NET_BIND_SERVICE would not help here: Docker does not give added
# capabilities to a non-root user (no ambient capabilities), and file
# capabilities need setcap, which this image does not have. With host
# networking none of this applies: use a fallback port >= 1024, or 0 (off).
FROM runtime AS chatd
RUN mkdir -p /var/lib/chatd/media && chown 10001:10001 /var/lib/chatd /var/lib/chatd/media
COPY --from=build /out/chatd /usr/local/bin/chatd
# chatd writes the network root public key here (chat-root.pub) at start, and
# keeps media blobs in media/.
ENV WA_DATA_DIR=/var/lib/chatd
USER 10001:10001
EXPOSE 5222 443 5280 5281
ENTRYPOINT ["/usr/local/bin/chatd"]

# ---------------------------------------------------------------------------
# waphone: the simulated customer phone (a CLI tool, not a service). Phone
# homes are directories under the working directory, /var/lib/waphone
# (`--home alice` is /var/lib/waphone/alice); mount a volume there to keep them.
FROM runtime AS waphone
RUN mkdir -p /var/lib/waphone /var/lib/chatd-pub && chown 10001:10001 /var/lib/waphone /var/lib/chatd-pub
COPY --from=build /out/waphone /usr/local/bin/waphone
WORKDIR /var/lib/waphone
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/waphone"]
