//! The daemon's side of the API: every call goes to the install operation or
//! to the app's own task.

use crate::actor::{Command, Reply};
use crate::error::OpError;
use crate::install;
use crate::registry::Inner;
use async_trait::async_trait;
use berth_api::{
    ApiError, AppView, DaemonInfo, InstallRequest, LoginRequest, Manager, MigrationStatus, ProgressSender,
    SraConfigCopyRequest, SraConfigState, SraExecRequest, SraExecResult, SraImage, SraLoadRequest, SraProgressSender,
    SraRunRequest, Uninstalled, UpgradeRequest,
};
use berth_core::engine::EngineError;
use berth_core::AppName;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use std::sync::Arc;
use tokio::sync::oneshot;

pub struct DaemonManager {
    pub inner: Arc<Inner>,
}

impl DaemonManager {
    /// Sends a command to the app's task and waits for its answer.
    async fn ask<T>(&self, name: &str, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, ApiError> {
        AppName::parse(name).map_err(OpError::from)?;
        let sender = self.inner.commands(name)?;
        let (reply, answer) = oneshot::channel();
        sender.send(command(reply)).await.map_err(|_| OpError::NotFound { name: name.to_owned() })?;
        Ok(answer.await.map_err(|_| OpError::NotFound { name: name.to_owned() })??)
    }
}

#[async_trait]
impl Manager for DaemonManager {
    async fn info(&self) -> Result<DaemonInfo, ApiError> {
        let engine_version = crate::registry::lock(&self.inner.engine_version).clone();
        Ok(DaemonInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            ready: self.inner.recovered.load(std::sync::atomic::Ordering::Acquire),
            instance: self.inner.instance.clone(),
            root: self.inner.config.root.display().to_string(),
            data_root: self.inner.config.data_root.display().to_string(),
            engine_endpoint: self.inner.engine.endpoint(),
            engine_version,
            default_cpus: self.inner.default_cpus(),
            apps: self.inner.apps.read().unwrap_or_else(|e| e.into_inner()).len(),
        })
    }

    async fn list(&self) -> Result<Vec<AppView>, ApiError> {
        Ok(self.inner.views())
    }

    async fn show(&self, name: &str) -> Result<AppView, ApiError> {
        Ok(self.inner.view(name)?)
    }

    async fn install(&self, request: InstallRequest, progress: ProgressSender) -> Result<AppView, ApiError> {
        Ok(install::install(&self.inner, request, progress).await?)
    }

    async fn uninstall(&self, name: &str, keep_data: bool) -> Result<Uninstalled, ApiError> {
        self.ask(name, |reply| Command::Uninstall { keep_data, reply }).await
    }

    async fn upgrade(
        &self,
        name: &str,
        request: UpgradeRequest,
        progress: ProgressSender,
    ) -> Result<AppView, ApiError> {
        self.ask(name, |reply| Command::Upgrade { request: Box::new(request), progress, reply }).await
    }

    async fn rollback(&self, name: &str, progress: ProgressSender) -> Result<AppView, ApiError> {
        self.ask(name, |reply| Command::Rollback { progress, reply }).await
    }

    async fn migrate_export(&self) -> Result<MigrationStatus, ApiError> {
        Ok(crate::migrate::export(&self.inner).await?)
    }

    async fn migrate_import(&self) -> Result<MigrationStatus, ApiError> {
        Ok(crate::migrate::import(&self.inner).await?)
    }

    async fn migrate_status(&self) -> Result<MigrationStatus, ApiError> {
        Ok(crate::migrate::status(&self.inner)?)
    }

    async fn sra_load(&self, request: SraLoadRequest) -> Result<SraImage, ApiError> {
        Ok(crate::sra::load(&self.inner, &request.path).await?)
    }

    async fn sra_list(&self) -> Result<Vec<SraImage>, ApiError> {
        Ok(crate::sra::list(&self.inner).await?)
    }

    async fn sra_remove(&self, image: &str) -> Result<SraImage, ApiError> {
        Ok(crate::sra::remove(&self.inner, image).await?)
    }

    async fn sra_exec(&self, request: SraExecRequest, progress: SraProgressSender) -> Result<SraExecResult, ApiError> {
        Ok(crate::sra::exec::exec(&self.inner, request, progress).await?)
    }

    async fn sra_run(&self, request: SraRunRequest, progress: SraProgressSender) -> Result<SraExecResult, ApiError> {
        Ok(crate::sra::exec::run(&self.inner, request, progress).await?)
    }

    async fn sra_config_download(&self, image: &str) -> Result<Vec<u8>, ApiError> {
        Ok(crate::sra::conf::download(&self.inner, image).await?)
    }

    async fn sra_config_upload(&self, image: &str, archive: Bytes) -> Result<SraConfigState, ApiError> {
        Ok(crate::sra::conf::upload(&self.inner, image, archive).await?)
    }

    async fn sra_config_copy(&self, request: SraConfigCopyRequest) -> Result<SraConfigState, ApiError> {
        Ok(crate::sra::conf::copy(&self.inner, &request.from, &request.to).await?)
    }

    async fn sra_config_reset(&self, image: &str) -> Result<SraConfigState, ApiError> {
        Ok(crate::sra::conf::reset(&self.inner, image).await?)
    }

    async fn login(&self, request: LoginRequest) -> Result<(), ApiError> {
        crate::registries::validate_registry(&request.registry)?;
        if request.username.is_empty() || request.password.is_empty() {
            return Err(OpError::InvalidValue {
                what: "login",
                reason: "username and password must not be empty".into(),
            }
            .into());
        }
        let login = berth_core::engine::RegistryCredentials { username: request.username, password: request.password };
        crate::registries::store(&self.inner.config.root, &request.registry, Some(login))?;
        Ok(())
    }

    async fn logout(&self, registry: &str) -> Result<bool, ApiError> {
        crate::registries::validate_registry(registry)?;
        Ok(crate::registries::store(&self.inner.config.root, registry, None)?)
    }

    async fn start(&self, name: &str) -> Result<AppView, ApiError> {
        self.ask(name, Command::Start).await
    }

    async fn stop(&self, name: &str) -> Result<AppView, ApiError> {
        self.ask(name, Command::Stop).await
    }

    async fn restart(&self, name: &str) -> Result<AppView, ApiError> {
        self.ask(name, Command::Restart).await
    }

    async fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, ApiError>>, ApiError> {
        self.inner.view(name)?;
        let stream = self.inner.engine.logs(name, follow, tail);
        Ok(stream.map(|chunk| chunk.map_err(|e: EngineError| ApiError::from(OpError::from(e)))).boxed())
    }
}
