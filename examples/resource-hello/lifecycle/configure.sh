#!/bin/sh
# Configure: writes the page and httpd's configuration from the properties.
set -e
. /opt/lifecycle/common.sh

render
echo "configured: $(getProperty greeting), $(getProperty audience)!"
