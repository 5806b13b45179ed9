//! Transition requests: accepted at once (202) after every check a request
//! can fail — the location, the type, the transition, the properties, an
//! instance busy with another transition — and run in their own task on the
//! journal. The request, the instance an Install reserves and the journal
//! entry are written in one transaction; the request's end, the instance's
//! new state and the response message in another. Cut short by a crash, the
//! entry is undone at the next start: what the transition made is removed,
//! and the request ends FAILED with the reason `interrupted`.

use crate::journal::Op;
use crate::resources::error::{failure, Failure, ResourceError};
use crate::resources::locations::Location;
use crate::resources::onboarding::PUBLISHED;
use crate::resources::runtime::{self, ParamsFile};
use crate::resources::{builtin, Resources};
use berth_api::{RmTransitionAccepted, RmTransitionRequest};
use berth_core::journal::{Effect, OperationKind, ResourceRecord, Subject};
use berth_core::resource::{is_builtin_operation, resolve_properties, InstanceRef, Package, PropertyDefs, Transition};
use berth_store::{now_ms, AppChange, ResourceChange, StoredInstance, StoredRequest, StoredType};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub const INSTALLING: &str = "Installing";
pub const INACTIVE: &str = "Inactive";
pub const ACTIVE: &str = "Active";
pub const STOPPED: &str = "Stopped";

/// What a request asks for, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Lifecycle(Transition),
    Operation(String),
}

impl Action {
    pub fn name(&self) -> String {
        match self {
            Action::Lifecycle(t) => t.as_str().to_owned(),
            Action::Operation(o) => o.clone(),
        }
    }
}

/// A request, checked and accepted: everything its run needs.
pub struct Accepted {
    pub op: Op,
    pub record: ResourceRecord,
    pub action: Action,
    pub package: Package,
    pub stored_type: StoredType,
    pub location: Arc<Location>,
    pub instance: StoredInstance,
    /// The properties the script gets (resolved).
    pub properties: BTreeMap<String, String>,
}

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn texts(map: &BTreeMap<String, serde_json::Value>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), text(v))).collect()
}

/// A version-4 UUID.
pub fn uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

impl Resources {
    /// Checks a request and opens its journal entry; the run is spawned.
    pub async fn accept(
        self: &Arc<Self>,
        request: RmTransitionRequest,
        tracing_headers: BTreeMap<String, String>,
    ) -> Result<RmTransitionAccepted, ResourceError> {
        let name = request
            .transition_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ResourceError::invalid("transitionName is required"))?
            .to_owned();
        // The instance: by id, or (for a later transition) by name in its location.
        let existing = match request.resource_id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => {
                let key = id.to_owned();
                Some(
                    self.db(move |s| s.resource_instance(&key))
                        .await?
                        .ok_or_else(|| ResourceError::not_found(format!("no resource instance {id}")))?,
                )
            }
            None => None,
        };
        let location_name = request
            .deployment_location
            .clone()
            .filter(|l| !l.is_empty())
            .or_else(|| existing.as_ref().map(|i| i.location.clone()))
            .ok_or_else(|| ResourceError::invalid("deploymentLocation is required"))?;
        let location = self
            .location(&location_name)
            .ok_or_else(|| ResourceError::invalid(format!("no deployment location {location_name}")))?;
        let action = match Transition::parse(&name) {
            Ok(t) => Action::Lifecycle(t),
            Err(_) => Action::Operation(name.strip_prefix("Operation::").unwrap_or(&name).to_owned()),
        };
        let existing = match existing {
            Some(i) => Some(i),
            None if action == Action::Lifecycle(Transition::Install) => None,
            None => {
                let resource_name = request.resource_name.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
                    ResourceError::invalid(format!("{name} needs resourceId (or resourceName) of an existing instance"))
                })?;
                let (l, n) = (location_name.clone(), resource_name.clone());
                Some(self.db(move |s| s.resource_instance_named(&l, &n)).await?.ok_or_else(|| {
                    ResourceError::not_found(format!(
                        "no resource instance {resource_name} in location {location_name}"
                    ))
                })?)
            }
        };
        if let Some(i) = &existing {
            if i.location != location_name {
                return Err(ResourceError::invalid(format!(
                    "resource instance {} is in location {}, not {location_name}",
                    i.id, i.location
                )));
            }
            if i.discovered {
                return Err(ResourceError::invalid(format!(
                    "resource instance {} ({}) was not made by this resource manager; its lifecycle cannot be driven",
                    i.id, i.name
                )));
            }
            if action == Action::Lifecycle(Transition::Install) {
                return Err(ResourceError::invalid(format!("resource instance {} is installed already", i.id)));
            }
        }
        let type_name = request
            .resource_type
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| existing.as_ref().map(|i| i.type_name.clone()))
            .ok_or_else(|| ResourceError::invalid("resourceType is required"))?;
        if let Some(i) = &existing {
            if i.type_name != type_name {
                return Err(ResourceError::invalid(format!(
                    "resource instance {} is of type {}, not {type_name}",
                    i.id, i.type_name
                )));
            }
        }
        let key = type_name.clone();
        let stored_type = self
            .db(move |s| s.resource_type(&key))
            .await?
            .ok_or_else(|| ResourceError::invalid(format!("no resource type {type_name}")))?;
        if existing.is_none() && stored_type.state != PUBLISHED {
            return Err(ResourceError::invalid(format!("resource type {type_name} is {}", stored_type.state)));
        }
        let package = Self::package_of(&stored_type)?;
        let descriptor = &package.descriptor;
        let defs: &PropertyDefs = match &action {
            Action::Lifecycle(t) => {
                if !descriptor.supports(*t) {
                    return Err(ResourceError::invalid(format!(
                        "{t} is not in the lifecycle of {type_name} ({})",
                        descriptor.lifecycle.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                    )));
                }
                &descriptor.properties
            }
            Action::Operation(op) => match descriptor.operation(op) {
                Some(def) => &def.properties,
                None => {
                    return Err(ResourceError::invalid(format!(
                        "{op} is neither a transition nor an operation of {type_name}"
                    )))
                }
            },
        };
        let (instance_id, resource_name) = match &existing {
            Some(i) => (i.id.clone(), i.name.clone()),
            None => {
                let n = request
                    .resource_name
                    .clone()
                    .filter(|n| !n.trim().is_empty())
                    .ok_or_else(|| ResourceError::invalid("resourceName is required for Install"))?;
                if n.len() > 253 || n.chars().any(char::is_control) {
                    return Err(ResourceError::invalid(format!(
                        "resourceName {:?} is not a usable name (at most 253 characters, no control characters)",
                        berth_api::short(&n)
                    )));
                }
                (uuid(), n)
            }
        };
        let requested = texts(&request.properties);
        let instance_ref = InstanceRef { name: resource_name.clone(), id: instance_id.clone() };
        let current = match (&action, &existing) {
            (Action::Lifecycle(_), Some(i)) => i.properties.clone(),
            _ => BTreeMap::new(),
        };
        let properties = resolve_properties(defs, &requested, &current, &instance_ref)
            .map_err(|e| ResourceError::invalid(e.to_string()))?;
        let now = now_ms();
        let request_id = uuid();
        let masked = berth_core::resource::mask_secrets(defs, &requested);
        let stored_request = StoredRequest {
            id: request_id.clone(),
            instance_id: instance_id.clone(),
            transition: action.name(),
            type_name: type_name.clone(),
            location: location_name.clone(),
            resource_name: resource_name.clone(),
            state: "PENDING".into(),
            reason: None,
            failure_code: None,
            properties: masked,
            context: texts(&request.context),
            tracing: tracing_headers.clone(),
            created_at: now,
            started_at: None,
            finished_at: None,
        };
        let instance = match existing {
            Some(i) => i,
            None => StoredInstance {
                id: instance_id.clone(),
                name: resource_name.clone(),
                type_name: type_name.clone(),
                location: location_name.clone(),
                state: INSTALLING.into(),
                properties: BTreeMap::new(),
                internal: Vec::new(),
                container: None,
                image_id: None,
                metric_key: request.metric_key.clone(),
                discovered: false,
                created_at: now,
                updated_at: now,
            },
        };
        let install = action == Action::Lifecycle(Transition::Install);
        let record = ResourceRecord {
            request_id: request_id.clone(),
            instance_id: instance_id.clone(),
            location: location_name.clone(),
            transition: action.name(),
            container: instance.container.clone(),
        };
        // Undone in reverse: an Install's instance row goes, then the
        // request ends as FAILED (with its run's reason, or `interrupted`).
        let mut undo = vec![Effect::FailResourceRequest { request_id: request_id.clone() }];
        if install {
            undo.push(Effect::DeleteResourceInstance { id: instance_id.clone() });
        }
        let change = ResourceChange::Accept {
            request: Box::new(stored_request),
            reserve: install.then(|| Box::new(instance.clone())),
        };
        let op = self
            .services
            .journal
            .begin(OperationKind::ResourceTransition, &Subject::Resource(instance_id.clone()), &record, undo, AppChange::Resource(change))
            .await
            .map_err(|e| match e {
                crate::journal::JournalError::Store(berth_store::StoreError::Busy { .. }) => ResourceError::invalid(format!(
                    "resource instance {instance_id} ({resource_name}) is busy with another transition; try again when it has finished"
                )),
                crate::journal::JournalError::Store(berth_store::StoreError::ResourceExists { name, location }) => {
                    ResourceError::invalid(format!("a resource named {name:?} already exists in location {location}"))
                }
                other => other.into(),
            })?;
        tracing::info!(
            request = %request_id, instance = %instance_id, transition = %action.name(), resource_type = %type_name,
            location = %location_name, tracing = ?tracing_headers, "transition accepted"
        );
        let accepted = Accepted { op, record, action, package, stored_type, location, instance, properties };
        let resources = self.clone();
        let running = self.running.enter();
        tokio::spawn(async move {
            let _running = running;
            resources.run_to_end(accepted).await
        });
        let mut context: BTreeMap<String, String> = texts(&request.context);
        context.insert("AsynchronousTransitionResponses".into(), self.outbox_enabled().to_string());
        Ok(RmTransitionAccepted { request_id, request_state: "PENDING".into(), resource_id: instance_id, context })
    }

    /// Runs an accepted request to its end.
    async fn run_to_end(&self, mut accepted: Accepted) {
        let request_id = accepted.record.request_id.clone();
        let started = std::time::Instant::now();
        let id = request_id.clone();
        if let Err(e) = self.db(move |s| s.start_request(&id)).await {
            tracing::error!(request = %request_id, error = %e, "cannot record the request's start");
        }
        let outcome = if accepted.package.lifecycle_scripts.is_empty() && accepted.package.operation_scripts.is_empty()
        {
            builtin::run(self, &mut accepted).await
        } else {
            self.run_scripted(&mut accepted).await
        };
        let Accepted { op, instance, location, .. } = accepted;
        let accepted_engine = location.engine.clone();
        match outcome {
            Ok(Finish::Keep(mut instance)) => {
                instance.updated_at = now_ms();
                let kept = instance.container.clone().map(|c| (c, (*instance).clone()));
                if self.complete(op, &request_id, Some(*instance), None, started).await {
                    if let Some((container, instance)) = kept {
                        let engine = accepted_engine.as_ref();
                        crate::resources::kept::keep_in_container(engine, &container, &instance).await;
                    }
                }
            }
            Ok(Finish::Delete) => {
                self.complete(op, &request_id, None, Some(instance.id.clone()), started).await;
            }
            Err(failure) if failure.halted => drop(op),
            Err(failure) => self.fail(op, &request_id, failure).await,
        }
    }

    async fn complete(
        &self,
        op: Op,
        request_id: &str,
        instance: Option<StoredInstance>,
        delete: Option<String>,
        started: std::time::Instant,
    ) -> bool {
        let id = request_id.to_owned();
        let request = match self.db(move |s| s.resource_request(&id)).await {
            Ok(Some(r)) => r,
            _ => {
                self.fail(op, request_id, Failure::internal("the request's record is gone")).await;
                return false;
            }
        };
        let descriptor = self.descriptor_of(&request.type_name).await;
        let outbox = self.topic().map(|topic| {
            let mut ended = request.clone();
            ended.state = "COMPLETED".into();
            ended.reason = Some(completed_reason(started));
            ended.finished_at = Some(now_ms());
            ended.started_at = ended.started_at.or(ended.finished_at);
            let wire = instance
                .as_ref()
                .map(|i| crate::resources::wire::instance(i, &self.settings.name, descriptor.as_ref()));
            (topic, crate::resources::wire::response_message(&ended, wire.as_ref(), &self.settings.name))
        });
        let change = ResourceChange::Complete {
            request_id: request_id.to_owned(),
            reason: completed_reason(started),
            instance: instance.map(Box::new),
            delete_instance: delete,
            outbox,
        };
        let record = op.context().clone();
        match self.services.journal.commit(&op, &record, Vec::new(), AppChange::Resource(change)).await {
            Ok(_) => {
                tracing::info!(request = %request_id, "transition completed");
                self.request_ended(&request, "COMPLETED");
                self.outbox.wake.notify_one();
                true
            }
            Err(e) if e.is_halted() => false,
            Err(e) => {
                tracing::error!(request = %request_id, error = %e, "the transition's end could not be recorded; it is undone");
                self.fail(op, request_id, Failure::internal(e.to_string())).await;
                false
            }
        }
    }

    async fn fail(&self, op: Op, request_id: &str, failure: Failure) {
        tracing::warn!(request = %request_id, reason = %failure.reason, code = failure.code, "transition failed");
        let (id, reason, code) = (request_id.to_owned(), failure.reason.clone(), failure.code);
        if let Err(e) = self.db(move |s| s.set_pending_failure(&id, &reason, code)).await {
            tracing::error!(request = %request_id, error = %e, "cannot record why the request failed");
        }
        let settled = self.services.journal.roll_back(op, &failure.reason).await;
        if !settled.is_closed() {
            tracing::warn!(request = %request_id, ?settled, "the failed transition's undo waits; it is finished later");
        }
    }

    /// A scripted type's transition or operation.
    async fn run_scripted(&self, a: &mut Accepted) -> Result<Finish, Failure> {
        let timeout = Duration::from_secs(self.settings.transition_timeout_secs);
        let engine = a.location.engine.clone();
        let mut instance = a.instance.clone();
        match a.action.clone() {
            Action::Lifecycle(Transition::Install) => {
                let container = self.create_container(a).await?;
                instance = a.instance.clone();
                instance.container = Some(container);
            }
            Action::Operation(op) if is_builtin_operation(&op) => {
                return builtin::network_operation(self, a, &op).await;
            }
            _ => {}
        }
        let container = instance
            .container
            .clone()
            .ok_or_else(|| Failure::new(failure::RESOURCE_NOT_FOUND, "the instance has no container"))?;
        let running = engine.inspect(&container).await.map_err(Failure::from)?;
        let uninstall = a.action == Action::Lifecycle(Transition::Uninstall);
        match &running {
            None if uninstall => {}
            None => {
                return Err(Failure::new(
                    failure::RESOURCE_NOT_FOUND,
                    format!("Failure from Virtual Infrastructure: container {container} of the instance is gone"),
                ))
            }
            Some(c) if !c.state.is_running() => {
                // A stopped container (a crash while supervision was off) is started for the script.
                engine.start(&c.id).await.map_err(Failure::from)?;
            }
            Some(_) => {}
        }
        // Gone only for an Uninstall, which then skips the script.
        if running.is_some() {
            let (file, script) = match &a.action {
                Action::Lifecycle(t) => (ParamsFile::Lifecycle, a.package.lifecycle_script(*t).map(str::to_owned)),
                Action::Operation(op) => (ParamsFile::Operation, a.package.operation_script(op).map(str::to_owned)),
            };
            let script = script.ok_or_else(|| Failure::internal(format!("{} has no script", a.action.name())))?;
            let what = format!("{} of {}", a.action.name(), instance.name);
            let mut after = None;
            if self.has_utility(engine.as_ref(), &container).await {
                self.step(a, "script_ran").await?;
                let e = engine.as_ref();
                after = runtime::run_in_one_exec(e, &container, file, &a.properties, &what, &script, timeout).await?;
                if after.is_none() {
                    self.forget_utility(&container);
                }
            }
            let after = match after {
                Some(after) => after,
                // An image without berth's utility (not built on the base image): three engine calls.
                None => {
                    self.step(a, "params_written").await?;
                    runtime::write_params(engine.as_ref(), &container, file, &a.properties).await?;
                    self.step(a, "script_ran").await?;
                    runtime::run_script(engine.as_ref(), &container, &what, &script, timeout).await?;
                    self.step(a, "params_read").await?;
                    runtime::read_params(engine.as_ref(), &container, file).await?
                }
            };
            let changed = runtime::changed(&a.properties, after);
            let keep = |name: &str| file == ParamsFile::Lifecycle || a.package.descriptor.property(name).is_some();
            instance.properties = a.properties.clone();
            if file == ParamsFile::Operation {
                instance.properties = a.instance.properties.clone();
            }
            for (k, v) in changed.into_iter().filter(|(k, _)| keep(k)) {
                instance.properties.insert(k, v);
            }
        }
        match &a.action {
            Action::Lifecycle(Transition::Uninstall) => {
                self.step(a, "container_removed").await?;
                self.remove_instance_container(a.location.as_ref(), &container).await?;
                Ok(Finish::Delete)
            }
            Action::Lifecycle(t) => {
                instance.state = match t {
                    Transition::Install | Transition::Configure | Transition::Reconfigure => {
                        if instance.state == ACTIVE { ACTIVE } else { INACTIVE }.into()
                    }
                    Transition::Start => ACTIVE.into(),
                    Transition::Stop => STOPPED.into(),
                    Transition::Integrity | Transition::Uninstall => instance.state.clone(),
                };
                Ok(Finish::Keep(Box::new(instance)))
            }
            Action::Operation(_) => Ok(Finish::Keep(Box::new(instance))),
        }
    }

    /// Records the next step of a transition (a crash point in tests).
    pub async fn step(&self, a: &mut Accepted, step: &str) -> Result<(), Failure> {
        self.step_with(a, step, Vec::new()).await
    }

    pub async fn step_with(&self, a: &mut Accepted, step: &str, undo: Vec<Effect>) -> Result<(), Failure> {
        let record = a.record.clone();
        self.services.journal.step(&mut a.op, step, &record, undo).await.map_err(Failure::from)
    }

    /// Makes an Install's container from the type's image, on its networks,
    /// and starts it. The container's removal is in the undo log before it exists.
    async fn create_container(&self, a: &mut Accepted) -> Result<String, Failure> {
        let location = a.location.clone();
        let image = self.image_for(&location, &a.stored_type).await.map_err(|e| match e {
            ResourceError::Engine(engine) => Failure::from(engine),
            other => Failure::internal(other.to_string()),
        })?;
        let config = crate::resources::containers::config(self, a, &image)?;
        // A volume is mounted only when it is this berth's (made by the
        // docker-volume type): never another app's or another berth's data,
        // and never one the engine would make, unlabelled, on the way.
        for mount in &config.options.mounts {
            let Some(volume) = mount.source.as_deref() else { continue };
            match location.engine.inspect_volume(volume).await.map_err(Failure::from)? {
                Some(v) if self.services.ownership.owns_labels(&v.labels) => {}
                Some(_) => {
                    return Err(Failure::new(
                        failure::RESOURCE_NOT_FOUND,
                        format!("volume {volume} was not made by this resource manager; it is not mounted"),
                    ))
                }
                None => {
                    return Err(Failure::new(
                        failure::RESOURCE_NOT_FOUND,
                        format!("no volume {volume}: install it first (resource::docker-volume::1.0)"),
                    ))
                }
            }
        }
        let name = config.name.clone().unwrap_or_default();
        a.record.container = Some(name.clone());
        let undo = vec![Effect::RemoveResourceContainer { location: location.name.clone(), container: name.clone() }];
        self.step_with(a, "container_created", undo).await?;
        let engine = location.engine.as_ref();
        let id = engine.create(&config).await.map_err(Failure::from)?;
        for network in crate::resources::containers::extra_networks(&a.properties) {
            engine.connect_network(&id, &network).await.map_err(Failure::from)?;
        }
        self.step(a, "started").await?;
        engine.start(&id).await.map_err(Failure::from)?;
        let observed = engine.inspect(&id).await.map_err(Failure::from)?.ok_or_else(|| {
            Failure::new(
                failure::INFRASTRUCTURE_ERROR,
                "Failure from Virtual Infrastructure: the new container is gone",
            )
        })?;
        crate::resources::containers::record_addresses(&mut a.properties, &observed.networks);
        a.instance.container = Some(id.clone());
        a.instance.image_id = Some(image);
        let mut network_ids = BTreeMap::new();
        for network in observed.networks.keys() {
            if let Some(found) = engine.inspect_network(network).await.map_err(Failure::from)? {
                network_ids.insert(network.clone(), found.id);
            }
        }
        a.instance.internal = crate::resources::containers::internal_resources(&observed, &network_ids);
        Ok(id)
    }

    /// Whether the container has the base image's `berth-rm` (asked once per container).
    async fn has_utility(&self, engine: &dyn berth_core::engine::Engine, container: &str) -> bool {
        if let Some(known) = crate::services::lock(&self.utilities).get(container) {
            return *known;
        }
        let found =
            matches!(engine.stat(container, runtime::UTILITY).await, Ok(Some(s)) if !s.is_dir && s.mode & 0o111 != 0);
        crate::services::lock(&self.utilities).insert(container.to_owned(), found);
        found
    }

    fn forget_utility(&self, container: &str) {
        crate::services::lock(&self.utilities).insert(container.to_owned(), false);
    }

    pub async fn remove_instance_container(&self, location: &Location, container: &str) -> Result<(), Failure> {
        let engine = location.engine.as_ref();
        match engine.inspect(container).await.map_err(Failure::from)? {
            None => Ok(()),
            Some(c) if !self.services.ownership.owns(&c) => Err(Failure::internal(format!(
                "container {container} is not this resource manager's; it is left alone"
            ))),
            Some(c) => {
                engine.stop(&c.id, self.services.config.settings.stop_timeout_secs).await.map_err(Failure::from)?;
                engine.remove(&c.id).await.map_err(Failure::from)?;
                crate::services::lock(&self.utilities).remove(&c.id);
                Ok(())
            }
        }
    }
}

/// How a run ended well.
pub enum Finish {
    /// The instance as it is now.
    Keep(Box<StoredInstance>),
    /// The instance is gone (Uninstall).
    Delete,
}

fn completed_reason(started: std::time::Instant) -> String {
    format!("Transition successfully completed in {} msecs", started.elapsed().as_millis())
}
