use super::*;

fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn self_signed_certificates_are_made_once_and_remade_when_the_host_changes() {
    let dir = tempfile::tempdir().unwrap();
    let certs = CertsDir::new(dir.path().join("certs"));
    let made = certs.ensure("appliance", &ips(&["127.0.0.1", "10.0.0.5"])).unwrap();
    assert!(made.unwrap().contains("files are missing"));
    for name in ["cert_gen_type", "ca.crt", "ca.key", "ca.srl", "server.csr", "server.crt", "server.key", "extfile.cnf"]
    {
        assert!(certs.path(name).exists(), "{name}");
    }
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "server.key"] {
        assert_eq!(std::fs::metadata(certs.path(key)).unwrap().permissions().mode() & 0o777, 0o600, "{key}");
    }
    assert_eq!(
        std::fs::read_to_string(certs.path("extfile.cnf")).unwrap(),
        "subjectAltName = DNS:appliance,DNS:localhost,IP:10.0.0.5,IP:127.0.0.1\n"
    );
    assert_eq!(certs.ensure("appliance", &ips(&["127.0.0.1", "10.0.0.5"])).unwrap(), None, "unchanged: kept");
    let ca_before = std::fs::read(certs.path("ca.crt")).unwrap();
    assert!(certs.ensure("renamed", &ips(&["127.0.0.1", "10.0.0.5"])).unwrap().unwrap().contains("CN"));
    assert!(certs.ensure("renamed", &ips(&["127.0.0.1"])).unwrap().unwrap().contains("addresses"));
    assert_eq!(std::fs::read(certs.path("ca.crt")).unwrap(), ca_before, "the CA stays");
    let (chain, _) = certs.server().unwrap();
    let s = summary(&chain[0], "server.crt").unwrap();
    assert_eq!(s.subject, "CN=renamed");
    assert!(s.sans.contains(&"IP:127.0.0.1".to_owned()));
    assert_eq!(s.sha256.len(), 95);
}

#[test]
fn a_users_certificate_is_checked_whole_before_it_is_installed() {
    let dir = tempfile::tempdir().unwrap();
    let certs = CertsDir::new(dir.path().join("certs"));
    certs.ensure("host", &ips(&["127.0.0.1"])).unwrap();
    let before = std::fs::read(certs.path("server.crt")).unwrap();
    // A CA of the user's and a certificate it signed.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "user CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params.clone(), ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["host".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other_ca_key = rcgen::KeyPair::generate().unwrap();
    let other_ca = ca_params.self_signed(&other_ca_key).unwrap();
    let mut expired_params = rcgen::CertificateParams::new(vec!["host".to_owned()]).unwrap();
    expired_params.not_before = offset(-30);
    expired_params.not_after = offset(-1);
    let expired = expired_params.signed_by(&key, &issuer).unwrap();
    let cases: Vec<(String, String, String, &str)> = vec![
        (cert.pem(), other_key.serialize_pem(), ca.pem(), "does not match"),
        (cert.pem(), key.serialize_pem(), other_ca.pem(), "not signed by the given CA"),
        (expired.pem(), key.serialize_pem(), ca.pem(), "expired"),
        ("garbage".into(), key.serialize_pem(), ca.pem(), "not PEM"),
        (
            cert.pem(),
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n".into(),
            ca.pem(),
            "encrypted",
        ),
    ];
    for (c, k, a, message) in cases {
        let e = certs.install(&c, &k, &a).unwrap_err();
        assert!(e.to_string().contains(message), "{e} should say {message}");
        assert_eq!(std::fs::read(certs.path("server.crt")).unwrap(), before, "nothing changed");
    }
    // One-line PEM (as OVF properties deliver it) is taken.
    let installed =
        certs.install(&cert.pem().replace('\n', ""), &key.serialize_pem().replace('\n', ""), &ca.pem()).unwrap();
    assert_eq!(installed.issuer, "CN=user CA");
    assert_eq!(certs.kind().unwrap().as_deref(), Some(CUSTOM));
    assert_eq!(certs.ensure("another", &ips(&["10.1.1.1"])).unwrap(), None, "custom certificates are never replaced");
    assert!(matches!(certs.issue_client("me"), Err(CertError::NoCaKey)));
}

#[test]
fn clients_are_issued_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let certs = CertsDir::new(dir.path().join("certs"));
    certs.ensure("host", &ips(&["127.0.0.1"])).unwrap();
    let (cert, key, issued) = certs.issue_client("ops").unwrap();
    assert!(cert.contains("BEGIN CERTIFICATE") && key.contains("PRIVATE KEY"));
    assert!(matches!(certs.issue_client("ops"), Err(CertError::ClientExists(_))));
    assert!(matches!(certs.issue_client("../x"), Err(CertError::BadClientName(_))));
    assert_eq!(certs.clients().unwrap(), vec![issued.clone()]);
    assert!(certs.revoked().unwrap().is_empty());
    certs.revoke("ops").unwrap();
    assert_eq!(certs.revoked().unwrap(), [issued.sha256].into());
    assert!(matches!(certs.revoke("nobody"), Err(CertError::NoSuchClient(_))));
    let (again, _, _) = certs.issue_client("ops").unwrap();
    assert_ne!(again, cert, "a revoked name can be issued anew");
}
