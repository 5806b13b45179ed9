//! The Resource Manager API's manager: the daemon's answers to every route
//! of `berth_api::routes::resources`.

use crate::resources::error::ResourceError;
use crate::resources::{wire, Resources};
use async_trait::async_trait;
use berth_api::routes::resources::{ResourceManager, TraceRecord};
use berth_api::{
    RmBaseImage, RmConfiguration, RmDeploymentLocation, RmError, RmInstanceQuery, RmOutboxState, RmResourceInstance,
    RmResourceType, RmTransitionAccepted, RmTransitionRequest, RmTransitionStatus,
};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct ResourcesApi(pub Arc<Resources>);

impl ResourcesApi {
    fn ready(&self) -> Result<(), RmError> {
        if !self.0.settings.enabled {
            return Err(RmError::not_found("the resource manager is not enabled ([resource] enabled = false)"));
        }
        self.0.services.require_ready().map_err(|e| RmError::unavailable(e.to_string()))
    }

    async fn instance_wire(&self, i: &berth_store::StoredInstance) -> RmResourceInstance {
        let descriptor = self.0.descriptor_of(&i.type_name).await;
        wire::instance(i, &self.0.settings.name, descriptor.as_ref())
    }

    async fn location_wire(&self, location: &crate::resources::locations::Location) -> RmDeploymentLocation {
        let status = if location.available().await { "available" } else { "unavailable" };
        RmDeploymentLocation {
            name: location.name.clone(),
            kind: location.kind.clone(),
            properties: BTreeMap::from([
                ("description".to_owned(), location.description.clone()),
                ("engine".to_owned(), location.engine.endpoint()),
                ("status".to_owned(), status.to_owned()),
            ]),
        }
    }
}

fn err(e: ResourceError) -> RmError {
    e.into()
}

#[async_trait]
impl ResourceManager for ResourcesApi {
    async fn configuration(&self) -> Result<RmConfiguration, RmError> {
        if !self.0.settings.enabled {
            return Err(RmError::not_found("the resource manager is not enabled ([resource] enabled = false)"));
        }
        let settings = &self.0.settings;
        let mut properties = BTreeMap::new();
        if let Some(kafka) = &settings.kafka {
            properties.insert("responseKafkaConnectionUrl".to_owned(), kafka.bootstrap_servers.join(","));
            properties.insert("responseKafkaTopicName".to_owned(), kafka.topic.clone());
        }
        Ok(RmConfiguration {
            name: settings.name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            supported_api_versions: vec!["1.0".into()],
            supported_features: BTreeMap::from([(
                "AsynchronousTransitionResponses".to_owned(),
                self.0.outbox_enabled().to_string(),
            )]),
            properties,
        })
    }

    async fn types(&self) -> Result<Vec<RmResourceType>, RmError> {
        self.ready()?;
        let types = self.0.db(|s| s.resource_types()).await.map_err(err)?;
        Ok(types.iter().map(|t| wire::resource_type(t, false)).collect())
    }

    async fn resource_type(&self, name: &str) -> Result<RmResourceType, RmError> {
        self.ready()?;
        let key = name.to_owned();
        match self.0.db(move |s| s.resource_type(&key)).await.map_err(err)? {
            Some(t) => Ok(wire::resource_type(&t, true)),
            None => Err(RmError::not_found(format!("no resource type {}", berth_api::short(name)))),
        }
    }

    async fn onboard(&self, archive: Bytes) -> Result<RmResourceType, RmError> {
        self.ready()?;
        let stored = self.0.onboard_archive(archive).await.map_err(err)?;
        Ok(wire::resource_type(&stored, true))
    }

    async fn remove_type(&self, name: &str) -> Result<RmResourceType, RmError> {
        self.ready()?;
        let stored = self.0.remove_type(name).await.map_err(err)?;
        Ok(wire::resource_type(&stored, false))
    }

    async fn reload(&self) -> Result<Vec<RmResourceType>, RmError> {
        self.ready()?;
        self.0.reload().await.map_err(err)?;
        self.types().await
    }

    async fn locations(&self) -> Result<Vec<RmDeploymentLocation>, RmError> {
        self.ready()?;
        let mut all = Vec::new();
        for location in self.0.locations() {
            all.push(self.location_wire(location).await);
        }
        Ok(all)
    }

    async fn location(&self, name: &str) -> Result<RmDeploymentLocation, RmError> {
        self.ready()?;
        match self.0.location(name) {
            Some(location) => Ok(self.location_wire(&location).await),
            None => Err(RmError::not_found(format!("no deployment location {}", berth_api::short(name)))),
        }
    }

    async fn instances(&self, location: &str, query: RmInstanceQuery) -> Result<Vec<RmResourceInstance>, RmError> {
        self.ready()?;
        if self.0.location(location).is_none() {
            return Err(RmError::not_found(format!("no deployment location {}", berth_api::short(location))));
        }
        let key = location.to_owned();
        let instances = self.0.db(move |s| s.resource_instances(Some(&key))).await.map_err(err)?;
        let mut found = Vec::new();
        for i in instances
            .iter()
            .filter(|i| query.instance_type.as_deref().is_none_or(|t| i.type_name == t))
            .filter(|i| query.instance_name.as_deref().is_none_or(|n| i.name.contains(n)))
        {
            found.push(self.instance_wire(i).await);
        }
        Ok(found)
    }

    async fn instance(&self, id: &str) -> Result<RmResourceInstance, RmError> {
        self.ready()?;
        let key = id.to_owned();
        match self.0.db(move |s| s.resource_instance(&key)).await.map_err(err)? {
            Some(i) => Ok(self.instance_wire(&i).await),
            None => Err(RmError::not_found(format!("no resource instance {}", berth_api::short(id)))),
        }
    }

    async fn requests_of(&self, id: &str) -> Result<Vec<RmTransitionStatus>, RmError> {
        self.ready()?;
        let key = id.to_owned();
        let requests = self.0.db(move |s| s.requests_of(&key)).await.map_err(err)?;
        if requests.is_empty() {
            self.instance(id).await?;
        }
        Ok(requests.iter().map(wire::status).collect())
    }

    async fn transition(
        &self,
        request: RmTransitionRequest,
        tracing: BTreeMap<String, String>,
    ) -> Result<RmTransitionAccepted, RmError> {
        self.ready()?;
        self.0.accept(request, tracing).await.map_err(err)
    }

    async fn status(&self, request_id: &str) -> Result<RmTransitionStatus, RmError> {
        self.ready()?;
        let key = request_id.to_owned();
        match self.0.db(move |s| s.resource_request(&key)).await.map_err(err)? {
            Some(r) => Ok(wire::status(&r)),
            None => Err(RmError::not_found(format!("no transition request {}", berth_api::short(request_id)))),
        }
    }

    async fn outbox(&self) -> Result<RmOutboxState, RmError> {
        let (depth, last_error) = self.0.db(|s| s.outbox_depth()).await.map_err(err)?;
        Ok(RmOutboxState { enabled: self.0.outbox_enabled(), depth, last_error })
    }

    async fn base_image(&self) -> Result<RmBaseImage, RmError> {
        self.ready()?;
        let mut images = BTreeMap::new();
        for location in self.0.available_locations().await {
            let id = self.0.ensure_base_image(&location).await.map_err(err)?;
            images.insert(location.name.clone(), id);
        }
        Ok(RmBaseImage { tag: berth_baseimage::TAG.into(), images })
    }

    fn trace(&self, record: TraceRecord) {
        self.0.trace.record(record);
    }
}
