#!/bin/sh
# Operation greet: appends "<greeting>, <name>!" to /greetings.txt of the page.
# Its own properties are in /opt/opparams (getOperationProperty); the
# instance's, as the last transition left them, in /opt/rmparams (getProperty).
set -e
. /opt/lifecycle/common.sh

name=$(getOperationProperty name)
times=$(getOperationProperty times)
case $times in
'' | *[!0-9]*)
    echo "times must be a whole number, not \"$times\"" >&2
    exit 2
    ;;
esac
greeting=$(getProperty greeting)
mkdir -p "$WWW"
i=0
while [ "$i" -lt "$times" ]; do
    echo "$greeting, $name!" >> "$WWW/greetings.txt"
    i=$((i + 1))
done
echo "greeted $name $times time(s)"
# last_greeted is a property of the resource, so the change is stored on the
# instance; changes to other names in /opt/opparams are not.
setOperationProperty last_greeted "$name"
