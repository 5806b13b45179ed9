#!/bin/sh
# Reconfigure: writes the page and configuration again from the properties
# (the request's, over the instance's) and restarts httpd if it runs, so that
# a new port or password takes effect.
set -e
. /opt/lifecycle/common.sh

render
if running_pid >/dev/null; then
    /opt/lifecycle/stop.sh
    /opt/lifecycle/start.sh
fi
echo "reconfigured: $(getProperty greeting), $(getProperty audience)!"
