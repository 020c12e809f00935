# The rolecall manager: controllers, admission webhooks and the redemption server.
#
#   docker build -t rolecall/manager:latest .

# Build stage. The module download is its own layer, so that changing the code does not
# download every dependency again.
FROM golang:1.26 AS builder
WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
# A static binary (no cgo) runs on the distroless base; -trimpath keeps the build
# machine's paths out of it, and -s -w drop the symbol table and debug information.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /manager ./cmd/manager

# Run stage: no shell, no package manager, a non-root user.
FROM gcr.io/distroless/static:nonroot
COPY --from=builder /manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
