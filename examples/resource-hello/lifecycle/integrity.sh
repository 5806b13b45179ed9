#!/bin/sh
# Integrity: httpd runs and serves the page with the current greeting.
set -e
. /opt/lifecycle/common.sh

if ! pid=$(running_pid); then
    echo "httpd is not running" >&2
    exit 1
fi
port=$(getProperty port)
page_file=$(mktemp)
trap 'rm -f "$page_file"' EXIT
# timeout(1), as in start.sh, with no output stream.
if ! timeout 5 wget -q -O "$page_file" "http://127.0.0.1:$port/" </dev/null >/dev/null 2>&1; then
    echo "httpd (pid $pid) does not answer on port $port" >&2
    exit 1
fi
page=$(cat "$page_file")
greeting=$(html "$(getProperty greeting)")
case $page in
*"<h1>$greeting,"*) ;;
*)
    echo "the page does not carry the greeting \"$greeting\"" >&2
    exit 1
    ;;
esac
echo "ok: httpd (pid $pid) serves the page on port $port"
