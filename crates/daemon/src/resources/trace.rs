//! The trace file (Docker RM guide 5.1): every request and response of the
//! Resource Manager API appended to a CSV file — time, method, path, status,
//! duration, the tracing headers, both bodies — quoted by RFC 4180 and
//! rotated by size (to `<file>.1`). Values of `password` properties never
//! reach it: request bodies have them masked before they are written.
//! Records are masked and written by one thread of their own, so a slow
//! disk (or the store read that masking needs) never holds a request.

use berth_api::routes::resources::TraceRecord;
use berth_core::resource::Transition;
use berth_store::Store;
use std::io::Write;
use std::path::PathBuf;
use tokio::sync::mpsc;

pub const HEADER: &str = "time,method,path,status,duration_ms,transaction_id,process_id,request,response\n";
/// Records waiting for the writer; beyond, new ones are dropped (and counted in the log).
const QUEUE: usize = 4096;

pub struct TraceFile {
    sender: Option<mpsc::Sender<TraceRecord>>,
}

/// One CSV field: quoted when it holds a comma, a quote or a line break.
pub fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

pub fn line(r: &TraceRecord) -> String {
    let time = super::wire::time(r.at_ms);
    let get = |h: &str| r.tracing.get(h).cloned().unwrap_or_default();
    [
        time,
        r.method.clone(),
        r.path.clone(),
        r.status.to_string(),
        r.duration_ms.to_string(),
        get("X-Tracectx-TransactionId"),
        get("X-Tracectx-ProcessId"),
        r.request_body.clone(),
        r.response_body.clone(),
    ]
    .iter()
    .map(|f| field(f))
    .collect::<Vec<_>>()
    .join(",")
        + "\n"
}

impl TraceFile {
    pub fn new(path: Option<PathBuf>, max_bytes: u64, store: Store) -> Self {
        let Some(path) = path else {
            return Self { sender: None };
        };
        let (sender, mut receiver) = mpsc::channel::<TraceRecord>(QUEUE);
        std::thread::Builder::new()
            .name("berth-trace".into())
            .spawn(move || {
                while let Some(mut record) = receiver.blocking_recv() {
                    if record.method == "POST" && record.path.ends_with("/lifecycle/transitions") {
                        record.request_body = masked_request(&store, &record.request_body);
                    }
                    if let Err(e) = append(&path, &line(&record), max_bytes) {
                        tracing::error!(file = %path.display(), error = %e, "cannot write the trace file");
                    }
                }
            })
            .ok();
        Self { sender: Some(sender) }
    }

    pub fn record(&self, record: TraceRecord) {
        if let Some(sender) = &self.sender {
            if sender.try_send(record).is_err() {
                tracing::warn!("the trace file is behind; a record was dropped");
            }
        }
    }
}

/// A transition request's body with the values of its type's `password`
/// properties (or its operation's) masked. A body that cannot be read is
/// kept whole only when it names no known type; otherwise it is dropped.
pub fn masked_request(store: &Store, body: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(body) else {
        return "<not JSON>".to_owned();
    };
    let type_name = value.get("resourceType").and_then(|t| t.as_str()).map(str::to_owned).or_else(|| {
        let id = value.get("resourceId")?.as_str()?;
        store.resource_instance(id).ok().flatten().map(|i| i.type_name)
    });
    let package = type_name
        .and_then(|t| store.resource_type(&t).ok().flatten())
        .and_then(|t| super::Resources::package_of(&t).ok());
    let Some(package) = package else {
        return value.to_string();
    };
    let descriptor = package.descriptor;
    let transition = value.get("transitionName").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
    let defs = match Transition::parse(&transition) {
        Ok(_) => Some(&descriptor.properties),
        Err(_) => {
            descriptor.operation(transition.strip_prefix("Operation::").unwrap_or(&transition)).map(|o| &o.properties)
        }
    };
    if let (Some(defs), Some(props)) = (defs, value.get_mut("properties").and_then(|p| p.as_object_mut())) {
        for (name, v) in props.iter_mut() {
            if defs.is_secret(name) {
                *v = serde_json::Value::String(berth_core::resource::SECRET_MASK.into());
            }
        }
    }
    value.to_string()
}

fn append(path: &PathBuf, line: &str, max_bytes: u64) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > 0 && size + line.len() as u64 > max_bytes {
        let mut rotated = path.clone().into_os_string();
        rotated.push(".1");
        std::fs::rename(path, rotated)?;
    }
    let fresh = !path.exists();
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    if fresh {
        file.write_all(HEADER.as_bytes())?;
    }
    file.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_as_csv_wants() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\"\nthere"), "\"say \"\"hi\"\"\nthere\"");
    }

    #[test]
    fn the_file_rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.csv");
        for _ in 0..10 {
            append(&path, &"x".repeat(100), 500).unwrap();
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 600);
        assert!(dir.path().join("trace.csv.1").exists());
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(HEADER));
    }
}
