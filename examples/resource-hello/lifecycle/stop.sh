#!/bin/sh
# Stop: stops httpd. The container keeps running; only the software stops.
set -e
. /opt/lifecycle/common.sh

if pid=$(running_pid); then
    kill "$pid" 2>/dev/null || true
    tries=0
    while kill -0 "$pid" 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -eq 50 ]; then
            kill -9 "$pid" 2>/dev/null || true
        elif [ "$tries" -ge 100 ]; then
            echo "httpd (pid $pid) does not stop" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "httpd (pid $pid) stopped"
else
    echo "httpd was not running"
fi
rm -f "$PIDFILE"
