//! Networks: made, inspected, joined and left over the Engine API.

use crate::convert::{label_filters, network_from_inspect, network_from_summary, BRIDGE_NAME_OPTION};
use crate::docker::DockerEngine;
use berth_core::engine::{EngineError, Filter, NetworkConfig, NetworkInfo};
use bollard::models::{Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};
use bollard::query_parameters::{InspectNetworkOptions, ListNetworksOptions};
use std::collections::HashMap;

fn network(name: &str) -> String {
    format!("network {name}")
}

/// The engine refuses to remove a network in use with 403 ("has active
/// endpoints"), and to join a container twice with 403 too: both are conflicts.
fn forbidden_is_conflict(result: Result<(), EngineError>, what: &str) -> Result<(), EngineError> {
    match result {
        Err(EngineError::Rejected { status: 403, message }) => {
            Err(EngineError::Conflict { what: format!("{what} ({message})") })
        }
        other => other,
    }
}

impl DockerEngine {
    pub(crate) async fn inspect_network_by(&self, name: &str) -> Result<Option<NetworkInfo>, EngineError> {
        let docker = self.connection.docker().await?;
        let inspect = docker.inspect_network(name, None::<InspectNetworkOptions>);
        match self.connection.control("inspect", &network(name), inspect).await {
            Ok(found) => Ok(Some(network_from_inspect(found))),
            Err(EngineError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn list_networks_by(&self, filter: &Filter) -> Result<Vec<NetworkInfo>, EngineError> {
        let docker = self.connection.docker().await?;
        let options = ListNetworksOptions { filters: Some(label_filters(filter)).filter(|f| !f.is_empty()) };
        let list = self.connection.control("list", "networks", docker.list_networks(Some(options))).await?;
        Ok(list.into_iter().map(network_from_summary).collect())
    }

    pub(crate) async fn create_network_from(&self, config: &NetworkConfig) -> Result<String, EngineError> {
        let docker = self.connection.docker().await?;
        // Older engines create a second network of the same name; only one
        // that was not there is berth's to make.
        if self.inspect_network_by(&config.name).await?.is_some() {
            return Err(EngineError::Conflict { what: network(&config.name) });
        }
        let ipam = (config.subnet.is_some() || config.gateway.is_some()).then(|| Ipam {
            driver: Some("default".to_owned()),
            config: Some(vec![IpamConfig {
                subnet: config.subnet.clone(),
                gateway: config.gateway.clone(),
                ..Default::default()
            }]),
            options: None,
        });
        let options: HashMap<String, String> =
            config.bridge_name.iter().map(|b| (BRIDGE_NAME_OPTION.to_owned(), b.clone())).collect();
        let request = NetworkCreateRequest {
            name: config.name.clone(),
            driver: Some("bridge".to_owned()),
            ipam,
            options: Some(options).filter(|o| !o.is_empty()),
            labels: Some(config.labels.clone().into_iter().collect::<HashMap<_, _>>()),
            ..Default::default()
        };
        let created =
            self.connection.control("creation", &network(&config.name), docker.create_network(request)).await?;
        Ok(created.id)
    }

    pub(crate) async fn remove_network_by(&self, name: &str) -> Result<(), EngineError> {
        let docker = self.connection.docker().await?;
        let what = network(name);
        match self.connection.control("removal", &what, docker.remove_network(name)).await {
            Err(EngineError::NotFound { .. }) => Ok(()),
            other => forbidden_is_conflict(other, &what),
        }
    }

    pub(crate) async fn connect_network_to(&self, container: &str, name: &str) -> Result<(), EngineError> {
        let docker = self.connection.docker().await?;
        let request = NetworkConnectRequest { container: container.to_owned(), endpoint_config: None };
        let what = format!("container {container} on {}", network(name));
        let result = self.connection.control("connection", &what, docker.connect_network(name, request)).await;
        forbidden_is_conflict(result, &what)
    }

    pub(crate) async fn disconnect_network_from(&self, container: &str, name: &str) -> Result<(), EngineError> {
        let docker = self.connection.docker().await?;
        let request = NetworkDisconnectRequest { container: container.to_owned(), force: Some(false) };
        let what = format!("container {container} on {}", network(name));
        match self.connection.control("disconnection", &what, docker.disconnect_network(name, request)).await {
            Err(EngineError::NotFound { .. }) => Ok(()),
            // "container … is not connected to network …"
            Err(EngineError::Rejected { message, .. }) if message.contains("is not connected") => Ok(()),
            other => other,
        }
    }
}
