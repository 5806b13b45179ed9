#!/bin/sh
# Uninstall: stops httpd and removes what Install made. berth removes the
# container afterwards.
set -e
. /opt/lifecycle/common.sh

/opt/lifecycle/stop.sh
rm -rf "$HELLO_DIR"
echo "uninstalled"
