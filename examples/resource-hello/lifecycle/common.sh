# Shared by the scripts of resource-hello; sourced (`. /opt/lifecycle/common.sh`),
# not mapped to a transition. busybox ash: POSIX sh, no bash arrays.

HELLO_DIR=/opt/hello
WWW="$HELLO_DIR/www"
CONF="$HELLO_DIR/httpd.conf"
PIDFILE="$HELLO_DIR/httpd.pid"

# A property that may be unset: getProperty exits 1 (and says so on stderr)
# for a property that is not in /opt/rmparams.
optional_property() {
    getProperty "$1" 2>/dev/null || true
}

# Text made safe for HTML.
html() {
    printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'
}

# Prints the pid of the httpd this package started, if it runs; fails otherwise.
# The pid file outlives a restart of the container (its file system stays),
# so the pid is checked to be an httpd.
running_pid() {
    [ -f "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE")
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = httpd ] || return 1
    echo "$pid"
}

# Writes the page and httpd's configuration from the properties of the
# current transition (/opt/rmparams).
render() {
    greeting=$(getProperty greeting)
    audience=$(getProperty audience)
    site=$(getProperty site_name)
    password=$(optional_property admin_password)
    mkdir -p "$WWW/private"
    cat > "$WWW/index.html" <<EOF
<!doctype html>
<title>$(html "$site")</title>
<h1>$(html "$greeting"), $(html "$audience")!</h1>
<p><a href="greetings.txt">greetings</a> <a href="private/">private</a></p>
EOF
    touch "$WWW/greetings.txt"
    echo "only for admin" > "$WWW/private/index.html"
    case $password in
    *'
'*)
        echo "admin_password must be one line" >&2
        return 1
        ;;
    esac
    if [ -n "$password" ]; then
        # busybox httpd: /path:user:password protects /path with basic auth.
        printf '/private:admin:%s\n' "$password" > "$CONF"
    else
        : > "$CONF"
    fi
    chmod 600 "$CONF"
}
