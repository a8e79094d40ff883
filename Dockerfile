# packetless container image: `packetless run` as the entrypoint.
#
#   docker build -t packetless .
#   docker run -d --name packetless --pid=host --network=host \
#     --cap-drop=ALL --cap-add=BPF --cap-add=PERFMON --cap-add=NET_ADMIN \
#     --cap-add=SYS_PTRACE --cap-add=DAC_READ_SEARCH \
#     -v /sys/kernel/btf:/sys/kernel/btf:ro -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
#     -v /sys/kernel/tracing:/sys/kernel/tracing:ro -v /var/run/docker.sock:/var/run/docker.sock:ro \
#     packetless --zmq tcp://ntopng.example:5556c --output none
#
# Docker engines older than 23.0 (Debian 12's docker.io among them) do not know BPF
# and PERFMON: give SYS_ADMIN in their place.
#
# The bases are build arguments, for hosts without a registry: any Debian 12 based
# image with a Rust toolchain (1.85 or later) for BUILDER, any Debian 12 based image
# for RUNTIME.
ARG BUILDER=rust:1-bookworm
ARG RUNTIME=debian:bookworm-slim

FROM ${BUILDER} AS build
# clang compiles the eBPF programs; libbpf-dev and linux-libc-dev give their headers;
# gcc links; libzmq3-dev is the exporter's library.
RUN command -v clang >/dev/null && command -v cc >/dev/null \
    && dpkg -s libbpf-dev libzmq3-dev pkg-config ca-certificates >/dev/null 2>&1 \
    || (apt-get update && apt-get install -y --no-install-recommends clang gcc libc6-dev libbpf-dev \
        linux-libc-dev libzmq3-dev pkg-config ca-certificates && rm -rf /var/lib/apt/lists/*)
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p packetless \
    && install -m 0755 target/release/packetless /usr/local/bin/packetless

FROM ${RUNTIME}
RUN dpkg -s libzmq5 libcap2-bin >/dev/null 2>&1 \
    || (apt-get update && apt-get install -y --no-install-recommends libzmq5 libcap2-bin \
        && rm -rf /var/lib/apt/lists/*)
COPY --from=build /usr/local/bin/packetless /usr/local/bin/packetless
# File capabilities let the unprivileged user below trace. They are permitted only
# (+p; the probe makes them effective itself), so the binary starts whatever subset
# the container grants: --cap-add bounds what it really gets. SYS_ADMIN is listed for
# engines that know no BPF and PERFMON and grant SYS_ADMIN in their place.
RUN setcap cap_bpf,cap_perfmon,cap_sys_admin,cap_net_admin,cap_sys_ptrace,cap_dac_read_search+p \
    /usr/local/bin/packetless
# nobody. To follow Docker, add the socket's group: --group-add $(stat -c %g /var/run/docker.sock).
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/packetless", "run"]
CMD ["--output", "json"]
