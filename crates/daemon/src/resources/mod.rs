//! The resource manager: berth as an OSLM Resource Manager (the Docker RM of
//! the specification, and more). Resource types come from packages
//! ([`onboarding`], [`packages`]) or are built in ([`builtin`]); instances
//! run as containers in deployment locations ([`locations`], [`containers`]);
//! transitions run their lifecycle scripts inside them ([`transitions`],
//! [`runtime`]) on the journal, and end with a response on Kafka where it is
//! configured ([`outbox`]). [`api`] is the Resource Manager API's manager,
//! [`trace`] the trace file, [`wire`] the JSON shapes.

pub mod api;
pub mod builtin;
pub mod containers;
pub mod error;
pub mod kept;
pub mod locations;
pub mod monitor;
pub mod onboarding;
pub mod outbox;
pub mod packages;
pub mod rebuild;
pub mod runtime;
pub mod supervise;
#[cfg(test)]
mod tests;
pub mod tls;
pub mod trace;
pub mod transitions;
pub mod wire;

use crate::config::ResourceSettings;
use crate::services::Services;
use berth_core::resource::Descriptor;
use berth_store::{Store, StoreError};
use error::ResourceError;
use locations::Location;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub struct Resources {
    pub services: Arc<Services>,
    pub settings: ResourceSettings,
    locations: BTreeMap<String, Arc<Location>>,
    /// One onboarding at a time (builds share the tag namespace).
    onboarding: tokio::sync::Mutex<()>,
    base_image: tokio::sync::Mutex<()>,
    /// Packages by type name, parsed once per digest.
    packages: Mutex<BTreeMap<String, (String, berth_core::resource::Package)>>,
    /// The latest reading of each instance's metrics (seed 4.2.3).
    pub readings: monitor::Readings,
    pub outbox: outbox::Outbox,
    pub trace: trace::TraceFile,
    /// Transition runs under way.
    pub running: Arc<Running>,
    /// Container id → whether it has the base image's `berth-rm`, which runs
    /// a transition in one exec (fixed for the container's life).
    utilities: Mutex<std::collections::HashMap<String, bool>>,
}

/// Counts runs under way, and lets a caller wait until there are none.
#[derive(Debug, Default)]
pub struct Running {
    count: tokio::sync::watch::Sender<usize>,
}

/// One run under way; dropped when it ends.
pub struct RunGuard(Arc<Running>);

impl Running {
    pub fn enter(self: &Arc<Self>) -> RunGuard {
        self.count.send_modify(|c| *c += 1);
        RunGuard(self.clone())
    }

    /// Resolves when no run is under way.
    pub async fn idle(&self) {
        let mut rx = self.count.subscribe();
        let _ = rx.wait_for(|c| *c == 0).await;
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.0.count.send_modify(|c| *c = c.saturating_sub(1));
    }
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resources").field("locations", &self.locations.keys()).finish_non_exhaustive()
    }
}

impl Resources {
    pub fn new(services: Arc<Services>, locations: BTreeMap<String, Arc<Location>>) -> Self {
        let settings = services.config.settings.resource.clone();
        let trace_file =
            settings.trace_file.clone().unwrap_or_else(|| services.config.root.join("logs").join("trace.csv"));
        let trace = trace::TraceFile::new(
            settings.generate_trace_file.then_some(trace_file),
            settings.trace_max_bytes,
            services.store.clone(),
        );
        let outbox = outbox::Outbox::new(settings.kafka.clone());
        Self {
            services,
            settings,
            locations,
            onboarding: tokio::sync::Mutex::new(()),
            base_image: tokio::sync::Mutex::new(()),
            packages: Mutex::new(BTreeMap::new()),
            readings: monitor::Readings::default(),
            outbox,
            trace,
            running: Arc::default(),
            utilities: Mutex::default(),
        }
    }

    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ResourceError> {
        self.services.db::<T, ResourceError, _>("the resource manager's state", f).await
    }

    pub fn location(&self, name: &str) -> Option<Arc<Location>> {
        self.locations.get(name).cloned()
    }

    pub fn locations(&self) -> impl Iterator<Item = &Arc<Location>> {
        self.locations.values()
    }

    /// Locations whose engine answers now.
    pub async fn available_locations(&self) -> Vec<Arc<Location>> {
        let mut available = Vec::new();
        for location in self.locations.values() {
            if location.available().await {
                available.push(location.clone());
            } else {
                tracing::warn!(location = %location.name, "the location's engine does not answer");
            }
        }
        available
    }

    pub fn outbox_enabled(&self) -> bool {
        self.settings.kafka.is_some()
    }

    /// The topic responses go to, where Kafka is configured.
    pub fn topic(&self) -> Option<String> {
        self.settings.kafka.as_ref().map(|k| k.topic.clone())
    }

    /// A type's descriptor (parsed from its stored package, cached by digest).
    pub async fn descriptor_of(&self, type_name: &str) -> Option<Descriptor> {
        self.package_cached(type_name).await.map(|p| p.descriptor)
    }

    /// A type's package: descriptor and scripts (cached by digest).
    pub async fn package_cached(&self, type_name: &str) -> Option<berth_core::resource::Package> {
        let key = type_name.to_owned();
        let stored = self.db(move |s| s.resource_type(&key)).await.ok().flatten()?;
        let mut cache = crate::services::lock(&self.packages);
        if let Some((digest, package)) = cache.get(type_name) {
            if *digest == stored.digest {
                return Some(package.clone());
            }
        }
        let package = Self::package_of(&stored).ok()?;
        cache.insert(type_name.to_owned(), (stored.digest.clone(), package.clone()));
        Some(package)
    }

    /// Start-up, once the engine answers (after the journal's recovery),
    /// before the daemon says it is ready: the built-in types, the networks
    /// that exist, requests left open.
    pub async fn start(self: &Arc<Self>) {
        if !self.settings.enabled {
            return;
        }
        if let Err(e) = self.register_builtins().await {
            tracing::error!(error = %e, "cannot record the built-in resource types");
        }
        self.discover_networks().await;
        self.fail_orphans().await;
        self.start_stopped_containers().await;
    }

    /// After the daemon was down (a reboot, a crash): the containers of
    /// installed instances that should run and do not are started, as apps are.
    async fn start_stopped_containers(&self) {
        let instances = match self.db(|s| s.resource_instances(None)).await {
            Ok(instances) => instances,
            Err(e) => return tracing::error!(error = %e, "cannot list resource instances"),
        };
        for i in instances.iter().filter(|i| matches!(i.state.as_str(), transitions::ACTIVE | transitions::INACTIVE)) {
            let (Some(container), Some(location)) = (&i.container, self.location(&i.location)) else { continue };
            match location.engine.inspect(container).await {
                Ok(Some(c)) if self.services.ownership.owns(&c) && !c.state.is_running() => {
                    match location.engine.start(&c.id).await {
                        Ok(()) => {
                            tracing::info!(instance = %i.id, container = %c.name, "a resource container that stopped while berth was down is started again")
                        }
                        Err(e) => tracing::warn!(instance = %i.id, error = %e, "cannot start a resource container"),
                    }
                }
                Ok(None) => {
                    tracing::warn!(instance = %i.id, container, "the container of a resource instance is gone; uninstall and install the instance again")
                }
                Ok(Some(_)) => {}
                Err(e) => {
                    tracing::warn!(instance = %i.id, location = %i.location, error = %e, "cannot look at a resource container")
                }
            }
        }
    }

    /// The packages of the package directories, onboarded after start-up
    /// (their builds may take long; the API answers meanwhile).
    pub async fn onboard_package_dirs(self: Arc<Self>) {
        if !self.settings.enabled || self.settings.package_dirs.is_empty() {
            return;
        }
        match self.reload().await {
            Ok(types) => tracing::info!(types = types.len(), "resource packages onboarded"),
            Err(e) => tracing::error!(error = %e, "resource packages were not onboarded"),
        }
    }

    /// Requests left open without a journal entry end as interrupted.
    async fn fail_orphans(&self) {
        let orphans = match self.db(|s| s.orphaned_requests()).await {
            Ok(orphans) => orphans,
            Err(e) => return tracing::error!(error = %e, "cannot look for requests left open"),
        };
        for id in orphans {
            if let Err(e) = self.end_failed(&id, "interrupted", error::failure::INTERNAL_ERROR).await {
                tracing::error!(request = %id, error = %e, "cannot end a request left open");
            }
        }
    }

    /// Ends a request as FAILED (unless it has ended), queueing its response.
    /// A request's end is an event (`resource.request`), with the failure's
    /// reason and code where it failed.
    fn request_ended(&self, r: &berth_store::StoredRequest, state: &str) {
        let data = serde_json::json!({
            "state": state,
            "instance": r.instance_id,
            "transition": r.transition,
            "type": r.type_name,
            "reason": r.reason,
            "code": r.failure_code,
        });
        self.services.events.emit("resource.request", &r.id, data);
    }

    pub async fn end_failed(&self, request_id: &str, reason: &str, code: &str) -> Result<(), ResourceError> {
        let key = request_id.to_owned();
        let Some(request) = self.db(move |s| s.resource_request(&key)).await? else {
            return Ok(());
        };
        // The instance as it is now, read before the store's transaction
        // (whose callback must not call the store again).
        let key = request.instance_id.clone();
        let instance = self.db(move |s| s.resource_instance(&key)).await?;
        let descriptor = self.descriptor_of(&request.type_name).await;
        let name = self.settings.name.clone();
        let wire = instance.map(|i| wire::instance(&i, &name, descriptor.as_ref()));
        let topic = self.topic();
        let (id, reason, code) = (request_id.to_owned(), reason.to_owned(), code.to_owned());
        let ended = self
            .db(move |s| {
                s.fail_request(&id, &reason, &code, &|r| {
                    Some((topic.clone()?, wire::response_message(r, wire.as_ref(), &name)))
                })
            })
            .await?;
        if let Some(r) = ended {
            tracing::warn!(request = %r.id, reason = ?r.reason, "transition request ended as failed");
            self.request_ended(&r, "FAILED");
            self.outbox.wake.notify_one();
        }
        Ok(())
    }

    /// Networks that exist in a location but were not made by berth are
    /// shown as instances of the built-in network type, not driveable.
    async fn discover_networks(&self) {
        for location in self.available_locations().await {
            if let Err(e) = self.discover_in(&location).await {
                tracing::warn!(location = %location.name, error = %e, "cannot discover networks");
            }
        }
    }

    async fn discover_in(&self, location: &Location) -> Result<(), ResourceError> {
        let networks = location.engine.list_networks(&berth_core::engine::Filter::default()).await?;
        let loc = location.name.clone();
        let known = self.db(move |s| s.resource_instances(Some(&loc))).await?;
        let now = berth_store::now_ms();
        let mut seen = std::collections::HashSet::new();
        for n in networks {
            if self.services.ownership.owns_labels(&n.labels) || matches!(n.name.as_str(), "host" | "none") {
                continue;
            }
            let id = format!("{}:{}", location.name, n.id);
            seen.insert(id.clone());
            let properties = BTreeMap::from([
                ("networkname".to_owned(), n.name.clone()),
                ("networkid".to_owned(), n.id.clone()),
                ("subnet".to_owned(), n.subnets.first().cloned().unwrap_or_default()),
                ("gateway".to_owned(), n.gateways.first().cloned().unwrap_or_default()),
                ("bridgename".to_owned(), n.bridge_name.clone().unwrap_or_default()),
            ]);
            let existing = known.iter().find(|i| i.id == id);
            if existing.is_some_and(|i| i.properties == properties) {
                continue;
            }
            if existing.is_none() && known.iter().any(|i| i.name == n.name) {
                continue;
            }
            let instance = berth_store::StoredInstance {
                id,
                name: n.name.clone(),
                type_name: "resource::docker-network::1.0".into(),
                location: location.name.clone(),
                state: "Discovered".into(),
                properties,
                internal: vec![berth_store::InternalResource {
                    id: n.id.clone(),
                    name: n.name.clone(),
                    kind: "docker_network".into(),
                }],
                container: None,
                image_id: None,
                metric_key: None,
                discovered: true,
                created_at: existing.map_or(now, |i| i.created_at),
                updated_at: now,
            };
            self.db(move |s| s.put_instance(&instance)).await?;
        }
        for gone in known.into_iter().filter(|i| i.discovered && !seen.contains(&i.id)) {
            self.db(move |s| s.delete_instance(&gone.id)).await?;
        }
        Ok(())
    }
}
