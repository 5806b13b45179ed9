//! The certificates' manager: `/v1/certs`.

use super::{summary, verify::Revoked, CertError, CertsDir, IssuedClient};
use async_trait::async_trait;
use berth_api::routes::certs::CertsManager;
use berth_api::{ApiError, CertInfo, CertsView, ClientBundle, ClientCertInfo, ClientCertRequest, InstallCertRequest};
use std::sync::Arc;

pub struct CertsApi {
    pub certs: Arc<CertsDir>,
    pub revoked: Revoked,
    /// The remote API's listeners, given the new certificate on install.
    pub remote_tls: Arc<std::sync::OnceLock<crate::tls::SharedAcceptor>>,
    pub listen: Vec<String>,
}

fn api(e: CertError) -> ApiError {
    ApiError::new(e.kind(), e.to_string())
}

impl From<crate::fs::TaskFailed> for CertError {
    fn from(e: crate::fs::TaskFailed) -> Self {
        CertError::Generate(e.to_string())
    }
}

fn info(der: &[u8], what: &'static str) -> Result<CertInfo, CertError> {
    let s = summary(der, what)?;
    Ok(CertInfo {
        days_left: (s.not_after - super::now_secs()).div_euclid(86_400),
        subject: s.subject,
        issuer: s.issuer,
        sans: s.sans,
        not_before: s.not_before,
        not_after: s.not_after,
        sha256: s.sha256,
        sha1: s.sha1,
    })
}

fn client(c: IssuedClient) -> ClientCertInfo {
    ClientCertInfo { name: c.name, sha256: c.sha256, not_after: c.not_after, revoked: c.revoked }
}

impl CertsApi {
    /// Runs certificate work (files, key generation) on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&CertsDir) -> Result<T, CertError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let certs = self.certs.clone();
        crate::fs::blocking("certificate work", move || f(&certs)).await.map_err(api)
    }

    fn reload_revoked(&self) -> Result<(), ApiError> {
        let revoked = self.certs.revoked().map_err(api)?;
        *self.revoked.write().unwrap_or_else(|e| e.into_inner()) = revoked;
        Ok(())
    }
}

/// What `show` answers.
pub fn view(certs: &CertsDir, listen: &[String]) -> Result<CertsView, CertError> {
    let (chain, _) = certs.server()?;
    let server = info(chain.first().map(Vec::as_slice).unwrap_or_default(), "server.crt")?;
    let ca = info(certs.ca()?.first().map(Vec::as_slice).unwrap_or_default(), "ca.crt")?;
    Ok(CertsView {
        kind: certs.kind()?.unwrap_or_default(),
        dir: certs.dir.display().to_string(),
        server,
        ca,
        listen: listen.to_vec(),
        clients: certs.clients()?.into_iter().map(client).collect(),
    })
}

#[async_trait]
impl CertsManager for CertsApi {
    async fn show(&self) -> Result<CertsView, ApiError> {
        let listen = self.listen.clone();
        self.with(move |c| view(c, &listen)).await
    }

    async fn install(&self, r: InstallCertRequest) -> Result<CertsView, ApiError> {
        let listen = self.listen.clone();
        let revoked = self.revoked.clone();
        let (view, config) = self
            .with(move |c| {
                c.install(&r.cert_pem, &r.key_pem, &r.ca_pem)?;
                Ok((view(c, &listen)?, super::verify::server_config(c, revoked)?))
            })
            .await?;
        // The listeners take it now: new connections see the new certificate
        // and are checked against the new CA.
        if let Some(acceptor) = self.remote_tls.get() {
            acceptor.replace(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
        }
        tracing::info!(subject = %view.server.subject, "a custom server certificate was installed and is served");
        Ok(view)
    }

    async fn issue_client(&self, request: ClientCertRequest) -> Result<ClientBundle, ApiError> {
        let listen = self.listen.clone();
        let bundle = self
            .with(move |c| {
                let (cert_pem, key_pem, issued) = c.issue_client(&request.name)?;
                Ok(ClientBundle { client: client(issued), ca_pem: c.ca_pem()?, cert_pem, key_pem, listen })
            })
            .await?;
        self.reload_revoked()?;
        tracing::info!(client = %bundle.client.name, "a client certificate was issued");
        Ok(bundle)
    }

    async fn clients(&self) -> Result<Vec<ClientCertInfo>, ApiError> {
        self.with(|c| Ok(c.clients()?.into_iter().map(client).collect())).await
    }

    async fn revoke(&self, name: &str) -> Result<ClientCertInfo, ApiError> {
        let key = name.to_owned();
        let revoked = self.with(move |c| c.revoke(&key)).await?;
        self.reload_revoked()?;
        tracing::info!(client = %revoked.name, "a client certificate was revoked");
        Ok(client(revoked))
    }
}
