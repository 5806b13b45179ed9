//! Serving a router over TLS connections (the resource manager's listener,
//! the mutual-TLS remote API): the accept loop, a bounded handshake, hyper.

use axum::Router;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Accepts TLS connections until shutdown; each is served by hyper.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "a TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "a TLS handshake timed out"),
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "a connection ended with an error");
            }
        });
    }
}
