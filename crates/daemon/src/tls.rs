//! Serving a router over TCP connections (the resource manager's listener,
//! the mutual-TLS remote API, the web UI's loopback listener): the accept
//! loop, a bounded handshake, hyper. Every request carries the [`Peer`] it
//! came from, for the web UI's guard.

use axum::Router;
use berth_web::Peer;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// A listener's TLS acceptor, replaceable while it serves: after `berth
/// certs install` new connections get the new certificate and CA; open ones
/// keep theirs.
#[derive(Clone)]
pub struct SharedAcceptor(Arc<RwLock<TlsAcceptor>>);

impl SharedAcceptor {
    pub fn new(acceptor: TlsAcceptor) -> Self {
        Self(Arc::new(RwLock::new(acceptor)))
    }

    pub fn current(&self) -> TlsAcceptor {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, acceptor: TlsAcceptor) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = acceptor;
    }
}

/// Accepts TLS connections until shutdown; each is served by hyper.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: SharedAcceptor,
    router: Router,
    shutdown: CancellationToken,
) {
    accept_until(listener, shutdown, move |stream, peer| {
        let (acceptor, router) = (acceptor.current(), router.clone());
        async move {
            let stream = match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "a TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "a TLS handshake timed out"),
            };
            // The handshake verified any certificate presented against the CA.
            let certificate = stream.get_ref().1.peer_certificates().is_some_and(|chain| !chain.is_empty());
            serve_connection(stream, Peer { address: peer, certificate }, router).await;
        }
    })
    .await
}

/// Accepts plain TCP connections until shutdown (the web UI's loopback
/// listener: its guard asks every request to sign in).
pub async fn serve_plain(listener: tokio::net::TcpListener, router: Router, shutdown: CancellationToken) {
    accept_until(listener, shutdown, move |stream, peer| {
        serve_connection(stream, Peer { address: peer, certificate: false }, router.clone())
    })
    .await
}

/// The accept loop: each connection is handled in a task of its own.
async fn accept_until<F, Fut>(listener: tokio::net::TcpListener, shutdown: CancellationToken, handle: F)
where
    F: Fn(tokio::net::TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
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
        tokio::spawn(handle(stream, peer));
    }
}

async fn serve_connection<S>(stream: S, peer: Peer, router: Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt;
    let address: SocketAddr = peer.address;
    let router = router.map_request(move |mut request: axum::http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(peer);
        request
    });
    let service = hyper_util::service::TowerToHyperService::new(router);
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(peer = %address, error = %e, "a connection ended with an error");
    }
}
