//! PEM as users deliver it: one-line PEM (newlines stripped, as the VIC
//! appliance's OVF properties hand it over) re-wrapped, and private keys
//! in PKCS#1 (RSA) or SEC1 (EC) form turned into PKCS#8, the form berth
//! stores. An encrypted key is refused: berth cannot ask for its passphrase.

use base64::Engine as _;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("{what} is not PEM: no \"-----BEGIN …-----\" line")]
    NotPem { what: &'static str },
    #[error("{what} is not valid PEM: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("the private key is encrypted; give it decrypted (berth cannot ask for its passphrase)")]
    Encrypted,
    #[error("the private key is a {label}, which berth does not take (PKCS#8, PKCS#1 RSA or SEC1 EC keys)")]
    UnknownKey { label: String },
}

/// One PEM block: its label and DER content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub label: String,
    pub der: Vec<u8>,
}

/// Every PEM block of `text`, whether written with line breaks or on one line.
pub fn blocks(text: &str, what: &'static str) -> Result<Vec<Block>, PemError> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end =
            after.find("-----").ok_or(PemError::Invalid { what, reason: "an unterminated BEGIN line".into() })?;
        let label = after[..label_end].trim().to_owned();
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let end = body_start
            .find(&end_marker)
            .ok_or_else(|| PemError::Invalid { what, reason: format!("no END line for {label}") })?;
        let body = &body_start[..end];
        if body.contains("Proc-Type:") && body.contains("ENCRYPTED") {
            return Err(PemError::Encrypted);
        }
        // Headers (RFC 1421 style) end at an empty line; without them it is all base64.
        let payload: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(payload.as_bytes())
            .map_err(|e| PemError::Invalid { what, reason: format!("{label}: {e}") })?;
        found.push(Block { label, der });
        rest = &body_start[end + end_marker.len()..];
    }
    if found.is_empty() {
        return Err(PemError::NotPem { what });
    }
    Ok(found)
}

/// A block written as PEM with 64-character lines.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The certificates of a PEM text, as DER.
pub fn certificates(text: &str, what: &'static str) -> Result<Vec<Vec<u8>>, PemError> {
    Ok(blocks(text, what)?.into_iter().filter(|b| b.label == "CERTIFICATE").map(|b| b.der).collect())
}

/// The private key of a PEM text as PKCS#8 DER (converting PKCS#1 and SEC1).
pub fn private_key_pkcs8(text: &str) -> Result<Vec<u8>, PemError> {
    let blocks = blocks(text, "the private key")?;
    let key = blocks
        .into_iter()
        .find(|b| b.label.ends_with("PRIVATE KEY"))
        .ok_or(PemError::NotPem { what: "the private key" })?;
    match key.label.as_str() {
        "PRIVATE KEY" => Ok(key.der),
        "ENCRYPTED PRIVATE KEY" => Err(PemError::Encrypted),
        "RSA PRIVATE KEY" => Ok(pkcs8(&RSA_ALGORITHM, &key.der)),
        "EC PRIVATE KEY" => {
            let curve = sec1_curve(&key.der)
                .ok_or(PemError::Invalid { what: "the private key", reason: "an EC key without its curve".into() })?;
            let mut algorithm = der(0x06, EC_PUBLIC_KEY_OID);
            algorithm.extend(der(0x06, &curve));
            // The curve is named in the algorithm; inside, as PKCS#8 writers
            // (and ring) have it, the key goes without its `[0] parameters`.
            let inner = sec1_without_parameters(&key.der)
                .ok_or(PemError::Invalid { what: "the private key", reason: "an unreadable EC key".into() })?;
            Ok(pkcs8(&der(0x30, &algorithm), &inner))
        }
        other => Err(PemError::UnknownKey { label: other.to_owned() }),
    }
}

/// AlgorithmIdentifier { rsaEncryption, NULL }.
const RSA_ALGORITHM: [u8; 15] =
    [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
/// id-ecPublicKey (1.2.840.10045.2.1).
const EC_PUBLIC_KEY_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// A DER TLV.
fn der(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

/// PrivateKeyInfo { version 0, algorithm, privateKey OCTET STRING }.
fn pkcs8(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(algorithm);
    body.extend(der(0x04, key));
    der(0x30, &body)
}

/// Reads one TLV at the start of `input`: (tag, value, rest).
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize), &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The named curve's OID of a SEC1 ECPrivateKey (its `[0] parameters`).
fn sec1_curve(key: &[u8]) -> Option<Vec<u8>> {
    let (0x30, mut body, _) = read_tlv(key)? else { return None };
    while !body.is_empty() {
        let (tag, value, rest) = read_tlv(body)?;
        if tag == 0xa0 {
            let (0x06, oid, _) = read_tlv(value)? else { return None };
            return Some(oid.to_vec());
        }
        body = rest;
    }
    None
}

/// A SEC1 ECPrivateKey with its `[0] parameters` left out.
fn sec1_without_parameters(key: &[u8]) -> Option<Vec<u8>> {
    let (0x30, mut body, _) = read_tlv(key)? else { return None };
    let mut kept = Vec::new();
    while !body.is_empty() {
        let (tag, value, rest) = read_tlv(body)?;
        if tag != 0xa0 {
            kept.extend(der(tag, value));
        }
        body = rest;
    }
    Some(der(0x30, &kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_pem_is_read_and_encrypted_keys_refused() {
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = key.serialize_pem();
        let one_line = pem.replace('\n', "");
        assert_eq!(private_key_pkcs8(&one_line).unwrap(), key.serialize_der());
        assert_eq!(blocks(&encode("PRIVATE KEY", &key.serialize_der()), "x").unwrap()[0].der, key.serialize_der());
        assert_eq!(
            private_key_pkcs8("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----"),
            Err(PemError::Encrypted)
        );
        assert!(matches!(private_key_pkcs8("garbage"), Err(PemError::NotPem { .. })));
        assert!(matches!(
            private_key_pkcs8("-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----"),
            Err(PemError::Invalid { .. })
        ));
    }

    #[test]
    fn sec1_keys_become_pkcs8_with_their_curve() {
        // A P-256 key's PKCS#8 holds its SEC1 form: take it out, wrap it again.
        let key = rcgen::KeyPair::generate().unwrap();
        let pkcs8_der = key.serialize_der();
        let (_, body, _) = read_tlv(&pkcs8_der).unwrap();
        let (_, _version, rest) = read_tlv(body).unwrap();
        let (_, _algorithm, rest) = read_tlv(rest).unwrap();
        let (_, sec1, _) = read_tlv(rest).unwrap();
        let mut with_curve = sec1.to_vec();
        if sec1_curve(sec1).is_none() {
            // ring leaves the parameters out; add them as OpenSSL writes them.
            let (_, inner, _) = read_tlv(sec1).unwrap();
            let mut body = inner.to_vec();
            body.extend(der(0xa0, &der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07])));
            with_curve = der(0x30, &body);
        }
        let converted = private_key_pkcs8(&encode("EC PRIVATE KEY", &with_curve)).unwrap();
        let again = rcgen::KeyPair::try_from(converted.as_slice()).expect("ring takes the converted key");
        assert_eq!(rcgen::PublicKeyData::der_bytes(&again), rcgen::PublicKeyData::der_bytes(&key));
    }
}
