//! State kept with the containers (seed 004: the container host keeps what it
//! knows of a container with the container). Every app container carries, in
//! the label [`LABEL_KEPT`], what berth needs to rebuild its record of the app
//! after the database was lost: the spec (image, options, limits), the
//! version an upgrade replaced, and when the app was installed. Resource
//! containers keep their instance's record in a file (see the daemon's
//! resources capability), since a transition changes it after the container
//! is made and labels cannot change.
//!
//! The encoding is versioned and compact: `k1.` and the URL-safe base64 of
//! the DEFLATE-compressed JSON. A later berth reads every version it wrote;
//! a version it does not know is refused by name, never guessed at.

use crate::spec::AppSpec;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// The label holding a container's kept record.
pub const LABEL_KEPT: &str = "berth.kept";
/// The encoding written now.
pub const KEPT_VERSION: &str = "k1";
/// A decoded record larger than this is refused (a label is not a bomb).
const MAX_DECODED_BYTES: u64 = 1 << 20;

/// What an app container keeps of its app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptApp {
    pub spec: AppSpec,
    /// The version the last upgrade replaced, for rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<AppSpec>,
    /// When the app was installed (seconds since the epoch).
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeptError {
    #[error("the record is written in encoding {found:?}, which this berth does not know (it reads {KEPT_VERSION})")]
    UnknownVersion { found: String },
    #[error("the record is not valid base64")]
    NotBase64,
    #[error("the record does not decompress: {0}")]
    Compression(String),
    #[error("the record is larger than {MAX_DECODED_BYTES} bytes")]
    TooLarge,
    #[error("the record does not describe what it should: {0}")]
    Json(String),
}

/// Encodes `value` as a label value.
pub fn encode<T: Serialize>(value: &T) -> String {
    // Serialising plain data into memory cannot fail.
    let json = serde_json::to_vec(value).unwrap_or_default();
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = deflate.write_all(&json);
    let compressed = deflate.finish().unwrap_or_default();
    format!("{KEPT_VERSION}.{}", URL_SAFE_NO_PAD.encode(compressed))
}

/// Decodes a label value written by [`encode`].
pub fn decode<T: DeserializeOwned>(label: &str) -> Result<T, KeptError> {
    let (version, body) = label.split_once('.').unwrap_or((label, ""));
    if version != KEPT_VERSION {
        return Err(KeptError::UnknownVersion { found: version.chars().take(16).collect() });
    }
    let compressed = URL_SAFE_NO_PAD.decode(body.trim()).map_err(|_| KeptError::NotBase64)?;
    let mut json = Vec::new();
    flate2::read::DeflateDecoder::new(compressed.as_slice())
        .take(MAX_DECODED_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| KeptError::Compression(e.to_string()))?;
    if json.len() as u64 > MAX_DECODED_BYTES {
        return Err(KeptError::TooLarge);
    }
    serde_json::from_slice(&json).map_err(|e| KeptError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_args::RunOptions;
    use crate::source::Source;
    use crate::AppName;

    fn app(name: &str, image: &str) -> AppSpec {
        AppSpec {
            name: AppName::parse(name).unwrap(),
            source: Source::Url { url: format!("http://example.test/{image}.tar") },
            image_ref: format!("{image}:1.0"),
            image_id: format!("sha256:{}", "a".repeat(64)),
            args: "-e A=1 -p 8080:80".into(),
            options: RunOptions { env: vec!["A=1".into()], ..Default::default() },
            cpus: 0.4,
            memory: Some(64 << 20),
        }
    }

    #[test]
    fn an_app_round_trips_compactly() {
        let kept = KeptApp { spec: app("web", "vendor/web"), previous: Some(app("web", "vendor/old")), created_at: 7 };
        let label = encode(&kept);
        assert!(label.starts_with("k1."), "{label}");
        assert!(label.len() < serde_json::to_string(&kept).unwrap().len(), "compressed: {label}");
        assert_eq!(decode::<KeptApp>(&label).unwrap(), kept);
    }

    #[test]
    fn an_unknown_version_is_refused_by_name() {
        let label = encode(&1).replacen("k1", "k9", 1);
        assert_eq!(decode::<i32>(&label), Err(KeptError::UnknownVersion { found: "k9".into() }));
        assert_eq!(decode::<i32>("v2-abc"), Err(KeptError::UnknownVersion { found: "v2-abc".into() }));
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        assert_eq!(decode::<i32>("k1.***"), Err(KeptError::NotBase64));
        assert!(matches!(decode::<i32>("k1.AAAA"), Err(KeptError::Compression(_) | KeptError::Json(_))));
        assert!(matches!(decode::<KeptApp>(&encode(&"text")), Err(KeptError::Json(_))));
        // A small label that inflates past the limit.
        let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        deflate.write_all(&vec![b' '; 2 << 20]).unwrap();
        let bomb = format!("k1.{}", URL_SAFE_NO_PAD.encode(deflate.finish().unwrap()));
        assert_eq!(decode::<i32>(&bomb), Err(KeptError::TooLarge));
    }
}
