//! `berth doctor --rebuild` for the resource manager: the types from the
//! packages berth saved when it onboarded them, then the instances from the
//! records kept with what berth made for them (see [`super::kept`]) in every
//! location that answers. What the database knows is left as it is; the
//! history of transition requests is not kept with the containers and is
//! not rebuilt.

use super::containers::LABEL_RESOURCE;
use super::error::ResourceError;
use super::locations::Location;
use super::{kept, packages, Resources};
use berth_api::RebuildItem;
use berth_core::kept::{decode, LABEL_KEPT};
use berth_store::{InternalResource, StoredInstance};
use bytes::Bytes;

const TYPE: &str = "resource_type";
const INSTANCE: &str = "resource_instance";

impl Resources {
    pub async fn rebuild(&self) -> Result<Vec<RebuildItem>, ResourceError> {
        if !self.settings.enabled {
            return Ok(Vec::new());
        }
        let mut items = self.rebuild_types().await?;
        for location in self.available_locations().await {
            items.extend(self.rebuild_instances(&location).await?);
        }
        Ok(items)
    }

    async fn rebuild_types(&self) -> Result<Vec<RebuildItem>, ResourceError> {
        let dir = self.packages_dir();
        let files = crate::fs::blocking("listing the saved packages", move || {
            let mut files = Vec::new();
            match std::fs::read_dir(&dir) {
                Ok(entries) => {
                    for entry in entries.flatten() {
                        let path = entry.path();
                        if path.extension().is_some_and(|e| e == "tar") {
                            files.push((path.display().to_string(), std::fs::read(&path)));
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ResourceError::Internal(format!("cannot list {}: {e}", dir.display()))),
            }
            files.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(files)
        })
        .await?;
        let mut items = Vec::new();
        for (path, bytes) in files {
            let bytes = match bytes {
                Ok(bytes) => Bytes::from(bytes),
                Err(e) => {
                    items.push(RebuildItem::new(TYPE, &path, "skipped", format!("cannot read {path}: {e}")));
                    continue;
                }
            };
            let archive = bytes.clone();
            let checked = crate::fs::blocking("reading a saved package", move || {
                packages::read_archive(&archive).and_then(packages::check)
            })
            .await;
            let name = match checked {
                Ok(checked) => checked.package.descriptor.name.to_string(),
                Err(e) => {
                    items.push(RebuildItem::new(TYPE, &path, "skipped", format!("the saved package {path}: {e}")));
                    continue;
                }
            };
            let key = name.clone();
            if self.db(move |s| s.resource_type(&key)).await?.is_some() {
                items.push(RebuildItem::new(TYPE, &name, "recorded", "the database knows it; left as it is"));
                continue;
            }
            // Its image is still in the engine with the package's digest: not built again.
            match self.onboard_archive(bytes).await {
                Ok(stored) => items.push(RebuildItem::new(
                    TYPE,
                    &name,
                    "restored",
                    format!("from its saved package (digest {})", &stored.digest[..stored.digest.len().min(12)]),
                )),
                Err(e) => {
                    items.push(RebuildItem::new(TYPE, &name, "skipped", format!("cannot be onboarded again: {e}")))
                }
            }
        }
        Ok(items)
    }

    async fn rebuild_instances(&self, location: &Location) -> Result<Vec<RebuildItem>, ResourceError> {
        let engine = location.engine.as_ref();
        let ours = self.services.ownership.filter().has_label(LABEL_RESOURCE);
        let mut found: Vec<(String, Result<StoredInstance, String>)> = Vec::new();
        for c in engine.list(&ours).await? {
            found.push((format!("container {}", c.name), kept::read_from_container(engine, &c.id).await));
        }
        for n in engine.list_networks(&ours).await? {
            let record = kept_label(&n.labels).map(|mut i| {
                i.properties.insert("networkname".into(), n.name.clone());
                i.properties.insert("networkid".into(), n.id.clone());
                if let Some(bridge) = &n.bridge_name {
                    i.properties.insert("bridgename".into(), bridge.clone());
                }
                i.internal =
                    vec![InternalResource { id: n.id.clone(), name: n.name.clone(), kind: "docker_network".into() }];
                i
            });
            found.push((format!("network {}", n.name), record));
        }
        for v in engine.list_volumes(&ours).await? {
            let record = kept_label(&v.labels).map(|mut i| {
                i.properties.insert("volumename".into(), v.name.clone());
                i.properties.insert("volumeid".into(), v.name.clone());
                i.internal =
                    vec![InternalResource { id: v.name.clone(), name: v.name.clone(), kind: "docker_volume".into() }];
                i
            });
            found.push((format!("volume {}", v.name), record));
        }
        let mut items = Vec::new();
        for (what, record) in found {
            let instance = match record {
                Ok(instance) if instance.location == location.name => instance,
                Ok(instance) => {
                    items.push(RebuildItem::new(
                        INSTANCE,
                        &instance.name,
                        "skipped",
                        format!(
                            "{what} in location {} keeps the record of an instance of location {}",
                            location.name, instance.location
                        ),
                    ));
                    continue;
                }
                Err(e) => {
                    items.push(RebuildItem::new(INSTANCE, &what, "skipped", format!("{what} keeps no usable record ({e}); uninstall it with docker and install the instance again")));
                    continue;
                }
            };
            let name = instance.name.clone();
            let row = instance.clone();
            let recorded = self
                .db(move |s| {
                    if s.resource_instance(&row.id)?.is_some()
                        || s.resource_instance_named(&row.location, &row.name)?.is_some()
                    {
                        return Ok(false);
                    }
                    s.put_instance(&row).map(|()| true)
                })
                .await?;
            if recorded {
                tracing::info!(instance = %instance.id, %what, "resource instance rebuilt from its kept record");
                items.push(RebuildItem::new(
                    INSTANCE,
                    &name,
                    "restored",
                    format!(
                        "{} in location {}, {} (from {what})",
                        instance.type_name, instance.location, instance.state
                    ),
                ));
            } else {
                items.push(RebuildItem::new(INSTANCE, &name, "recorded", "the database knows it; left as it is"));
            }
        }
        Ok(items)
    }
}

fn kept_label(labels: &std::collections::BTreeMap<String, String>) -> Result<StoredInstance, String> {
    let label = labels.get(LABEL_KEPT).ok_or_else(|| format!("no label {LABEL_KEPT}"))?;
    decode(label).map_err(|e| e.to_string())
}
