#!/bin/sh
# Install: runs once the container exists and runs. Prepares the page.
set -e
. /opt/lifecycle/common.sh

mkdir -p "$HELLO_DIR"
render
# RM_PROP_<name> holds each property as it was when the container was made
# (at Install); getProperty gives the current value.
echo "installed $(getProperty site_name) for ${RM_PROP_audience-} in $(hostname)"
