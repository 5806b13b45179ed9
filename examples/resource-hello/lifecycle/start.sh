#!/bin/sh
# Start: runs busybox httpd in the background and records its URL.
set -e
. /opt/lifecycle/common.sh

port=$(getProperty port)
case $port in
'' | *[!0-9]*)
    echo "port must be a number, not \"$port\"" >&2
    exit 2
    ;;
esac
if pid=$(running_pid); then
    echo "httpd runs already (pid $pid)"
else
    # Start without a Configure before it: berth does not enforce an order.
    [ -f "$CONF" ] || render
    # Standard input, output and error are taken away from the script's: the
    # transition ends when the script's output stream closes, so a background
    # process that kept it open would hold the transition until its timeout.
    httpd -f -p "$port" -h "$WWW" -c "$CONF" </dev/null >/dev/null 2>&1 &
    pid=$!
    echo "$pid" > "$PIDFILE"
    tries=0
    # timeout(1), not wget -T (the wget of Debian's static busybox 1.35 crashes
    # with -T); its watcher lingers up to a second, so it gets no output stream.
    until timeout 2 wget -q -O /dev/null "http://127.0.0.1:$port/" </dev/null >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -ge 50 ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "httpd did not answer on port $port" >&2
            kill "$pid" 2>/dev/null || true
            rm -f "$PIDFILE"
            exit 1
        fi
        sleep 0.1
    done
    echo "httpd started (pid $pid)"
fi
address=$(getInterfaceIP "$(getInterfaces | head -n 1)")
# url is read-only: a request cannot set it, the script can.
setProperty url "http://$address:$port/"
echo "serving http://$address:$port/"
