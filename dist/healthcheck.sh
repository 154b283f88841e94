#!/bin/sh
# Exit 0 when `coffer serve` answers grpc.health.v1.Health/Check SERVING on its Unix socket
# listener (plaintext h2c), else 1. The container's HEALTHCHECK; usable by any supervisor.
# The request is an empty HealthCheckRequest (service "": the server as a whole) in a gRPC frame
# (no compression, length 0); SERVING is the frame 00 00000002 08 01 (field 1 = 1).
# usage: healthcheck.sh [SOCKET]   (default /run/coffer/coffer.sock)
sock=${1:-/run/coffer/coffer.sock}
out=$(printf '\000\000\000\000\000' |
	curl -sS --max-time 5 --http2-prior-knowledge --unix-socket "$sock" \
		-H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- \
		http://localhost/grpc.health.v1.Health/Check | od -An -tx1 | tr -d ' \n')
[ "$out" = 00000000020801 ]
