# coffer serve in a container (docs/operations.md, "Container").
#   docker build -t coffer .
#   docker run -d --name coffer -v coffer-data:/var/lib/coffer -v /etc/coffer:/etc/coffer:ro \
#     -p 50051:50051 coffer
# The default command serves TLS with bearer tokens on 0.0.0.0:50051 (anything off loopback needs
# both), from /etc/coffer/{tls.crt,tls.key,policy,tokens}, and plaintext h2c on the Unix socket
# /run/coffer/coffer.sock, where the health check asks. The store (and, unless COFFER_MASTER_KEY or
# COFFER_KEY_FILE says otherwise, its master key file) lives on the volume /var/lib/coffer.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config scdoc \
      libsodium-dev libsqlite3-dev libpq-dev libnghttp2-dev libevent-dev libprotobuf-c-dev \
      protobuf-c-compiler libssl-dev libsystemd-dev libcmocka-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build -j"$(nproc)" --target coffer_cli coffer coffer_static coffer_man \
 && DESTDIR=/stage cmake --install /build --prefix /usr --strip

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsodium23 libsqlite3-0 libpq5 libnghttp2-14 \
      libevent-2.1-7 libevent-openssl-2.1-7 libevent-pthreads-2.1-7 libprotobuf-c1 libssl3 \
      libsystemd0 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/coffer --shell /usr/sbin/nologin coffer \
 && install -d -m 0700 -o coffer -g coffer /var/lib/coffer /run/coffer
COPY --from=build /stage/usr/ /usr/
COPY dist/healthcheck.sh /usr/local/bin/coffer-healthcheck
ENV COFFER_STORE=/var/lib/coffer
VOLUME ["/var/lib/coffer"]
USER 10001:10001
EXPOSE 50051
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/coffer-healthcheck", "/run/coffer/coffer.sock"]
ENTRYPOINT ["/usr/bin/coffer", "serve"]
CMD ["--listen", "0.0.0.0:50051", "--listen", "unix:/run/coffer/coffer.sock", \
     "--tls-cert", "/etc/coffer/tls.crt", "--tls-key", "/etc/coffer/tls.key", \
     "--policy", "/etc/coffer/policy", "--tokens", "/etc/coffer/tokens"]
