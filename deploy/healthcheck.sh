#!/bin/sh
# The image's HEALTHCHECK (deploy/Containerfile); exits 0 when healthy.
# A container whose command is `tfq coordinator ...` is healthy while its
# coordinator answers `tfq status` on its own port within tfq's 10 s; any
# other container (a worker, a client) passes: it has no port to ask, and a
# worker that dies ends its container.
#
# TFQ_PROBE_CONNECT  the coordinator's address (default tcp://127.0.0.1:5555)
# TFQ_PROBE_CURVE_KEY, TFQ_PROBE_SERVER_KEY  a client key allowed by the
#                    coordinator (its --allow-clients list) and the
#                    coordinator's public key: needed when it speaks CURVE
# TFQ_PROBE_PID      the process whose command line says what runs (default 1)
# TFQ                the tfq to run (default: tfq on PATH)
pid=${TFQ_PROBE_PID:-1}
cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline") || {
    echo "healthcheck: cannot read the command line of process $pid" >&2
    exit 1
}
case " $cmd" in
*" tfq coordinator "* | *"/tfq coordinator "*) ;;
*) exit 0 ;;
esac
# The coordinator's own key options or environment are not the probe's.
unset TFQ_CURVE_KEY TFQ_SERVER_KEY
if [ -n "${TFQ_PROBE_CURVE_KEY:-}" ]; then
    export TFQ_CURVE_KEY="$TFQ_PROBE_CURVE_KEY" TFQ_SERVER_KEY="${TFQ_PROBE_SERVER_KEY:?healthcheck: TFQ_PROBE_CURVE_KEY without TFQ_PROBE_SERVER_KEY}"
fi
exec "${TFQ:-tfq}" status --connect "${TFQ_PROBE_CONNECT:-tcp://127.0.0.1:5555}" >/dev/null
