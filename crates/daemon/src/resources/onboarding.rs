//! Resource types: the built-in ones (docker networks and volumes), packages
//! onboarded from an upload, and the packages of the configured package
//! directories (at start and on `PUT /onboarding`). A package is checked
//! whole before anything changes; its image is then built through the
//! Engine API in every location that answers, tagged `dockerrm_<name>` and
//! labelled with the package's digest, so an unchanged package is not
//! rebuilt. Builds are offline: `dockerrm_baseimage` is built by berth.

use crate::resources::error::ResourceError;
use crate::resources::locations::Location;
use crate::resources::packages::{self, CheckedPackage};
use crate::resources::Resources;
use berth_core::engine::{Engine, ProgressSink};
use berth_core::resource::{builtin_packages, Package, TypeName};
use berth_core::spec::LABEL_INSTANCE;
use berth_store::{now_ms, StoredType};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Labels of an image berth built for a type.
pub const LABEL_TYPE: &str = "berth.resource.type";
pub const LABEL_DIGEST: &str = "berth.resource.digest";
pub const PUBLISHED: &str = "PUBLISHED";

fn quiet() -> ProgressSink {
    Arc::new(|p| tracing::debug!(phase = %p.phase, "build"))
}

impl Resources {
    /// Where onboarded packages are saved (a rebuild of the database reads them).
    pub fn packages_dir(&self) -> PathBuf {
        self.services.config.root.join("resources").join("packages")
    }

    fn package_file(&self, name: &TypeName) -> PathBuf {
        self.packages_dir().join(format!("{}.tar", packages::image_tag(name)))
    }

    /// The package a stored type was onboarded from.
    pub fn package_of(stored: &StoredType) -> Result<Package, ResourceError> {
        serde_json::from_value(stored.package.clone())
            .map_err(|e| ResourceError::Internal(format!("stored resource type {} is unreadable: {e}", stored.name)))
    }

    /// Records the built-in types (their descriptors are berth's own).
    pub async fn register_builtins(&self) -> Result<(), ResourceError> {
        for package in builtin_packages() {
            let name = package.descriptor.name.to_string();
            let existing = self.db(move |s| s.resource_type(&name)).await?;
            let text = match package.descriptor.name.name() {
                "docker-network" => berth_core::resource::DOCKER_NETWORK_DESCRIPTOR,
                _ => berth_core::resource::DOCKER_VOLUME_DESCRIPTOR,
            };
            let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
            if existing.as_ref().is_some_and(|t| t.digest == digest) {
                continue;
            }
            let now = now_ms();
            let stored = StoredType {
                name: package.descriptor.name.to_string(),
                descriptor: text.to_owned(),
                state: PUBLISHED.into(),
                digest,
                image: String::new(),
                package: serde_json::to_value(&package).unwrap_or_default(),
                created_at: existing.map_or(now, |t| t.created_at),
                updated_at: now,
            };
            self.db(move |s| s.put_type(&stored)).await?;
        }
        Ok(())
    }

    /// Onboards one checked package in `locations` (the ones that answer;
    /// the caller holds the onboarding lock).
    async fn onboard_checked(
        &self,
        checked: CheckedPackage,
        locations: &[Arc<Location>],
    ) -> Result<StoredType, ResourceError> {
        let name = checked.package.descriptor.name.clone();
        if berth_core::resource::builtin_package(&name).is_some() {
            return Err(ResourceError::invalid(format!("{name} is a built-in type and cannot be replaced")));
        }
        let key = name.to_string();
        let existing = self.db(move |s| s.resource_type(&key)).await?;
        let context = checked.tree.to_tar().map_err(|e| ResourceError::Internal(e.to_string()))?;
        for location in locations {
            self.ensure_image(location, &name, &checked.digest, &context).await?;
        }
        let file = self.package_file(&name);
        let bytes = context.clone();
        file_task("saving the package", move || {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            crate::fs::atomic_write(&file, &bytes).map_err(std::io::Error::other)
        })
        .await?;
        let now = now_ms();
        let stored = StoredType {
            name: name.to_string(),
            descriptor: checked.descriptor_text.clone(),
            state: PUBLISHED.into(),
            digest: checked.digest.clone(),
            image: packages::image_tag(&name),
            package: serde_json::to_value(&checked.package).unwrap_or_default(),
            created_at: existing.as_ref().map_or(now, |t| t.created_at),
            updated_at: if existing.as_ref().is_some_and(|t| t.digest == checked.digest) {
                existing.as_ref().map_or(now, |t| t.updated_at)
            } else {
                now
            },
        };
        let row = stored.clone();
        self.db(move |s| s.put_type(&row)).await?;
        tracing::info!(resource_type = %name, digest = %checked.digest, "resource type onboarded");
        // Onboarding the same package again changes nothing, and is no event.
        if existing.as_ref().is_none_or(|t| t.digest != checked.digest) {
            let data = serde_json::json!({ "state": "onboarded", "digest": checked.digest, "image": stored.image });
            self.services.events.emit("resource.type", &name.to_string(), data);
        }
        Ok(stored)
    }

    /// `POST /types`: an uploaded archive of a package directory.
    pub async fn onboard_archive(&self, archive: Bytes) -> Result<StoredType, ResourceError> {
        let checked = crate::fs::blocking("reading a package", move || {
            packages::read_archive(&archive).and_then(packages::check)
        })
        .await?;
        let _one = self.onboarding.lock().await;
        let locations = self.available_locations().await;
        self.onboard_checked(checked, &locations).await
    }

    /// Onboards every package of the package directories; all are checked
    /// before any is built, and one that fails refuses the whole reload.
    pub async fn reload(&self) -> Result<Vec<StoredType>, ResourceError> {
        let dirs = self.settings.package_dirs.clone();
        let checked = crate::fs::blocking("reading the package directories", move || {
            let mut checked = Vec::new();
            let mut problems = Vec::new();
            for dir in &dirs {
                let listing = match std::fs::read_dir(dir) {
                    Ok(listing) => listing,
                    Err(e) => {
                        problems.push(format!("{}: {e}", dir.display()));
                        continue;
                    }
                };
                let mut paths: Vec<PathBuf> = listing.filter_map(|e| e.ok().map(|e| e.path())).collect();
                paths.sort();
                for path in paths.into_iter().filter(|p| p.is_dir()) {
                    match packages::read_dir(&path).and_then(packages::check) {
                        Ok(package) => checked.push(package),
                        Err(e) => problems.push(format!("{}: {e}", path.display())),
                    }
                }
            }
            if problems.is_empty() {
                Ok(checked)
            } else {
                Err(ResourceError::invalid(format!("packages refused: {}", problems.join("; "))))
            }
        })
        .await?;
        let _one = self.onboarding.lock().await;
        // Asked once for the whole reload, not once per package.
        let locations = self.available_locations().await;
        let mut onboarded = Vec::new();
        for package in checked {
            onboarded.push(self.onboard_checked(package, &locations).await?);
        }
        Ok(onboarded)
    }

    /// Removes a type (refused while it has instances) and its images.
    pub async fn remove_type(&self, name: &str) -> Result<StoredType, ResourceError> {
        let type_name =
            TypeName::parse(name).map_err(|e| ResourceError::not_found(format!("no resource type {name}: {e}")))?;
        if berth_core::resource::builtin_package(&type_name).is_some() {
            return Err(ResourceError::invalid(format!("{name} is a built-in type and cannot be removed")));
        }
        let _one = self.onboarding.lock().await;
        let key = name.to_owned();
        let stored = self
            .db(move |s| s.resource_type(&key))
            .await?
            .ok_or_else(|| ResourceError::not_found(format!("no resource type {name}")))?;
        let key = name.to_owned();
        self.db(move |s| s.delete_type(&key)).await?;
        self.services.events.emit("resource.type", name, serde_json::json!({ "state": "removed" }));
        for location in self.available_locations().await {
            if let Err(e) = location.engine.remove_image(&stored.image).await {
                tracing::warn!(location = %location.name, image = %stored.image, error = %e, "the type's image is kept");
            }
        }
        let file = self.package_file(&type_name);
        let _ = file_task("removing the package", move || crate::fs::remove_tree(&file).map_err(std::io::Error::other))
            .await;
        Ok(StoredType { state: "DELETED".into(), updated_at: now_ms(), ..stored })
    }

    /// The type's image in `location`, built there from the saved package
    /// when it is missing or was built from another version of it.
    pub async fn image_for(&self, location: &Location, stored: &StoredType) -> Result<String, ResourceError> {
        let name = TypeName::parse(&stored.name).map_err(|e| ResourceError::Internal(e.to_string()))?;
        if let Some(image) = self.current_image(location.engine.as_ref(), &stored.image, &stored.digest).await? {
            return Ok(image);
        }
        let file = self.package_file(&name);
        let context = file_task("reading the saved package", move || std::fs::read(&file)).await?;
        self.ensure_image(location, &name, &stored.digest, &context).await
    }

    async fn current_image(
        &self,
        engine: &dyn Engine,
        tag: &str,
        digest: &str,
    ) -> Result<Option<String>, ResourceError> {
        Ok(engine
            .inspect_image(tag)
            .await?
            .filter(|i| i.labels.get(LABEL_DIGEST).map(String::as_str) == Some(digest))
            .map(|i| i.id))
    }

    async fn ensure_image(
        &self,
        location: &Location,
        name: &TypeName,
        digest: &str,
        context: &[u8],
    ) -> Result<String, ResourceError> {
        let engine = location.engine.as_ref();
        let tag = packages::image_tag(name);
        if let Some(id) = self.current_image(engine, &tag, digest).await? {
            return Ok(id);
        }
        let base = dockerfile_base(context);
        match base.as_deref() {
            Some(berth_baseimage::TAG) => {
                self.ensure_base_image(location).await?;
            }
            Some("scratch") | None => {}
            Some(other) => {
                if engine.inspect_image(other).await?.is_none() {
                    return Err(ResourceError::invalid(format!(
                        "the Dockerfile of {name} builds on {other}, which is not in location {}'s engine (builds are offline)",
                        location.name
                    )));
                }
            }
        }
        let mut labels =
            BTreeMap::from([(LABEL_TYPE.to_owned(), name.to_string()), (LABEL_DIGEST.to_owned(), digest.to_owned())]);
        labels.insert(LABEL_INSTANCE.to_owned(), self.services.ownership.instance().to_owned());
        tracing::info!(resource_type = %name, location = %location.name, %tag, "building the type's image");
        Ok(engine.build_image(Bytes::copy_from_slice(context), &tag, &labels, quiet()).await?)
    }

    /// `dockerrm_baseimage` in a location, built when missing or out of date.
    pub async fn ensure_base_image(&self, location: &Location) -> Result<String, ResourceError> {
        let _one = self.base_image.lock().await;
        let path = self.settings.busybox.clone();
        let context = crate::fs::blocking("reading busybox", move || {
            berth_baseimage::read_busybox(&path)
                .and_then(|b| berth_baseimage::build_context(&b))
                .map_err(|e| ResourceError::invalid(format!("the base image cannot be built: {e}")))
        })
        .await?;
        let engine = location.engine.as_ref();
        if let Some(image) = engine.inspect_image(berth_baseimage::TAG).await? {
            if image.labels.get(berth_baseimage::DIGEST_LABEL) == Some(&context.digest) {
                return Ok(image.id);
            }
        }
        // Shared by every berth on the engine (and by resource developers'
        // own builds): it carries its digest, not one instance's label.
        let labels = BTreeMap::new();
        tracing::info!(location = %location.name, "building {}", berth_baseimage::TAG);
        Ok(engine.build_image(Bytes::from(context.tar), berth_baseimage::TAG, &labels, quiet()).await?)
    }
}

/// File work on the blocking pool; failures are internal errors naming `what`.
async fn file_task<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, ResourceError> {
    crate::fs::blocking(what, move || work().map_err(|e| ResourceError::Internal(format!("{what}: {e}")))).await
}

/// The first `FROM` of the Dockerfile in a build context.
fn dockerfile_base(context: &[u8]) -> Option<String> {
    let mut archive = tar::Archive::new(context);
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry.path().ok()?.to_string_lossy() == "Dockerfile" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).ok()?;
            return packages::base_of(&text);
        }
    }
    None
}
