//! The web UI's way in, against a real daemon: the administrator account
//! (`berth web passwd`), sign-in with its cookie, CSRF and same-origin
//! checks, the sign-in rate limit, sign-out, and a changed password
//! signing everyone out. The browser itself is driven in web_ui.rs.

use crate::bin;
use berth_testkit::harness::{TestDaemon, TEST_SETTINGS};
use berth_testkit::http::{request_tcp, Response};
use serde_json::json;

const PASSWORD: &str = "a long enough passphrase";

struct Web {
    daemon: TestDaemon,
    address: String,
}

impl Web {
    fn start() -> Self {
        let address = format!("127.0.0.1:{}", crate::free_port());
        let daemon = TestDaemon::start_with_args(bin(), TEST_SETTINGS, &["--web", &address]);
        Self { daemon, address }
    }

    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        request_tcp(&self.address, method, path, headers, body.as_bytes()).unwrap()
    }

    fn login(&self, user: &str, password: &str) -> Response {
        self.call("POST", "/ui/login", &[], &json!({ "user": user, "password": password }).to_string())
    }

    /// Signs in; the cookie header and the CSRF token.
    fn session(&self) -> (String, String) {
        let answer = self.login("admin", PASSWORD);
        assert_eq!(answer.status, 200, "{}", answer.text());
        let cookie = answer.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
        (cookie, answer.json()["csrf"].as_str().unwrap().to_owned())
    }
}

#[test]
fn sign_in_sessions_csrf_and_sign_out() {
    let web = Web::start();
    let daemon = &web.daemon;

    // No account yet: the page loads, everything else wants a sign-in.
    let page = web.call("GET", "/", &[], "");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"), "{:?}", page.headers);
    assert!(page.header("content-security-policy").unwrap().contains("default-src 'self'"));
    let session = web.call("GET", "/ui/session", &[], "");
    assert_eq!(session.status, 401);
    assert!(session.text().contains("berth web passwd"), "{}", session.text());
    let apps = web.call("GET", "/v1/apps", &[], "");
    assert_eq!(apps.status, 401, "{}", apps.text());
    assert_eq!(apps.json()["code"], "unauthenticated");
    assert_eq!(web.call("GET", "/metrics", &[], "").status, 401);

    // Bad passwords are refused and change nothing.
    let short = daemon.berth_stdin(&["web", "passwd", "--password-stdin"], b"short\n");
    assert_eq!(short.code, 2, "{short:?}");
    assert!(short.stderr.contains("at least 12 characters"), "{short:?}");
    let bad_user =
        daemon.berth_stdin(&["web", "passwd", "--user", "ad min", "--password-stdin"], b"long enough pass\n");
    assert_eq!(bad_user.code, 2, "{bad_user:?}");
    assert!(!daemon.root().join("web-admin.json").exists());
    let no_tty = daemon.berth(&["web", "passwd"]);
    assert_eq!(no_tty.code, 8, "without a terminal and --password-stdin nothing is guessed: {no_tty:?}");

    let set = daemon.berth_stdin(&["web", "passwd", "--password-stdin"], format!("{PASSWORD}\n").as_bytes());
    assert_eq!(set.code, 0, "{set:?}");
    let status = daemon.berth(&["web", "status", "-o", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["admin"], "admin");
    assert_eq!(status["urls"], json!([format!("http://{}", web.address)]));
    let stored = std::fs::read_to_string(daemon.root().join("web-admin.json")).unwrap();
    assert!(stored.contains("$argon2id$") && !stored.contains(PASSWORD), "{stored}");

    // A wrong password, a wrong name, a malformed sign-in.
    let wrong = web.login("admin", "not the passphrase");
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["message"], "wrong user name or password");
    assert_eq!(web.login("root", PASSWORD).status, 401);
    let malformed = web.call("POST", "/ui/login", &[], "{\"user\":\"admin\"}");
    assert_eq!(malformed.status, 400, "{}", malformed.text());

    // The right one: a cookie the page's script cannot read, sent only to this site over TLS.
    let answer = web.login("admin", PASSWORD);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let set_cookie = answer.header("set-cookie").unwrap().to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert_eq!(answer.json()["method"], "password");
    let (cookie, csrf) = web.session();

    let listed = web.call("GET", "/v1/apps", &[("Cookie", &cookie)], "");
    assert_eq!(listed.status, 200, "{}", listed.text());
    let me = web.call("GET", "/ui/session", &[("Cookie", &cookie)], "");
    assert_eq!(me.json()["user"], "admin");
    assert_eq!(me.json()["csrf"], csrf.as_str());

    // A change needs the session's CSRF token, and must come from this origin.
    let no_token = web.call("POST", "/v1/apps/nothing-here/stop", &[("Cookie", &cookie)], "");
    assert_eq!(no_token.status, 401);
    assert!(no_token.text().contains("X-Berth-CSRF"), "{}", no_token.text());
    let wrong_token =
        web.call("POST", "/v1/apps/nothing-here/stop", &[("Cookie", &cookie), ("X-Berth-CSRF", "forged")], "");
    assert_eq!(wrong_token.status, 401);
    let passed = web.call("POST", "/v1/apps/nothing-here/stop", &[("Cookie", &cookie), ("X-Berth-CSRF", &csrf)], "");
    assert_eq!(passed.status, 404, "past the guard, the API answers: {}", passed.text());
    let cross = web.call(
        "POST",
        "/v1/apps/nothing-here/stop",
        &[("Cookie", &cookie), ("X-Berth-CSRF", &csrf), ("Origin", "https://elsewhere.example")],
        "",
    );
    assert_eq!(cross.status, 401);
    assert!(cross.text().contains("another origin"), "{}", cross.text());
    let same = web.call(
        "POST",
        "/v1/apps/nothing-here/stop",
        &[("Cookie", &cookie), ("X-Berth-CSRF", &csrf), ("Origin", "http://localhost")],
        "",
    );
    assert_eq!(same.status, 404, "{}", same.text());
    let forged = web.call("GET", "/v1/apps", &[("Cookie", "berth_session=forged")], "");
    assert_eq!(forged.status, 401);

    // Sign-out ends the session.
    let (other, other_csrf) = web.session();
    let out = web.call("POST", "/ui/logout", &[("Cookie", &other), ("X-Berth-CSRF", &other_csrf)], "");
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(web.call("GET", "/v1/apps", &[("Cookie", &other)], "").status, 401);
    assert_eq!(web.call("GET", "/v1/apps", &[("Cookie", &cookie)], "").status, 200, "other sessions stay");

    // A new password signs everyone out.
    let again = daemon.berth_stdin(&["web", "passwd", "--password-stdin"], format!("{PASSWORD}\n").as_bytes());
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(web.call("GET", "/v1/apps", &[("Cookie", &cookie)], "").status, 401);

    // Removing the account leaves certificates only.
    let (cookie, _) = web.session();
    let removed = daemon.berth(&["web", "remove-admin"]);
    assert_eq!(removed.code, 0, "{removed:?}");
    assert_eq!(web.call("GET", "/v1/apps", &[("Cookie", &cookie)], "").status, 401);
    assert_eq!(web.login("admin", PASSWORD).status, 401);

    let log = daemon.log();
    assert!(!log.contains(PASSWORD), "the password is never logged");
    assert!(log.contains("a web UI sign-in failed"), "failed sign-ins are logged");
}

#[test]
fn the_front_end_is_served_from_the_binary() {
    let web = Web::start();
    let page = web.call("GET", "/", &[], "");
    let html = page.text();
    assert!(html.contains("id=\"app\""), "the UI is not built in (scripts/build-web.sh before cargo build): {html}");
    assert_eq!(page.header("cache-control"), Some("no-cache"), "the page is revalidated: an upgrade shows at once");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let script = html.split("src=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a script");
    assert!(script.starts_with("/assets/"), "{script}");

    let plain = web.call("GET", script, &[], "");
    assert_eq!(plain.status, 200);
    assert!(plain.header("content-type").unwrap().contains("javascript"), "{:?}", plain.headers);
    assert_eq!(plain.header("cache-control"), Some("public, max-age=31536000, immutable"));
    let gzipped = web.call("GET", script, &[("Accept-Encoding", "gzip, br")], "");
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzipped.body[..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, plain.body, "the gzip is of the same file");
    assert!(gzipped.body.len() * 2 < plain.body.len(), "{} of {}", gzipped.body.len(), plain.body.len());
    let etag = plain.header("etag").unwrap().to_owned();
    let again = web.call("GET", script, &[("If-None-Match", &etag)], "");
    assert_eq!(again.status, 304);
    assert_eq!(web.call("GET", "/assets/nothing.js", &[], "").status, 404);
    assert_eq!(web.call("GET", "/assets/../berth.db", &[], "").status, 404);
}

#[test]
fn failed_sign_ins_are_rate_limited() {
    let web = Web::start();
    let set = web.daemon.berth_stdin(&["web", "passwd", "--password-stdin"], format!("{PASSWORD}\n").as_bytes());
    assert_eq!(set.code, 0, "{set:?}");
    let (cookie, _) = web.session();
    for attempt in 1..=5 {
        assert_eq!(web.login("admin", "guess guess guess").status, 401, "attempt {attempt}");
    }
    let held = web.login("admin", PASSWORD);
    assert_eq!(held.status, 429, "even the right password waits: {}", held.text());
    assert_eq!(held.json()["code"], "rate_limited");
    let wait: u64 = held.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(
        web.call("GET", "/v1/apps", &[("Cookie", &cookie)], "").status,
        200,
        "a signed-in browser is not held off"
    );
}

#[test]
fn plain_http_is_for_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(bin())
        .args(["--socket", &dir.path().join("s.sock").to_string_lossy(), "daemon", "--root"])
        .arg(dir.path().join("root"))
        .args(["--unit-dir", &dir.path().join("units").to_string_lossy(), "--web", "0.0.0.0:8470"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(78), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(!dir.path().join("root").exists(), "a refused start changes nothing");
}
