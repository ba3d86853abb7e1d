//! The operators' HTTP port (`--metrics-port`): `GET /metrics` (OpenMetrics text),
//! `GET /livez` (200 while the process serves) and `GET /readyz` (200 when ready, else 503
//! and why; see [`super::ready`]). HTTP/1.1 through hyper; a scrape is encoded off the
//! tokio workers (it walks the keyspace for models and scripts).

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, sync::watch};
use tracing::{debug, warn};

use crate::state::Shared;

/// OpenMetrics' content type.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a request gets.
struct Endpoint {
    shared: Arc<Shared>,
    registry: Arc<Registry>,
    /// One scrape or readiness check at a time: each walks the keyspace.
    busy: tokio::sync::Semaphore,
}

/// Serves `listener` until `stop` changes.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let ep = Arc::new(Endpoint {
        registry: Arc::new(super::metrics::registry(&shared)),
        shared,
        busy: tokio::sync::Semaphore::new(1),
    });
    loop {
        let (sock, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "metrics port: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let ep = ep.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let ep = ep.clone();
                async move { Ok::<_, Infallible>(respond(&ep, req).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .keep_alive(true)
                .serve_connection(TokioIo::new(sock), svc)
                .await;
            if let Err(e) = served {
                debug!(%peer, error = %e, "metrics port: connection ended");
            }
        });
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn respond(ep: &Arc<Endpoint>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let _turn = ep.busy.acquire().await;
            let e = ep.clone();
            match tokio::task::spawn_blocking(move || super::metrics::encode(&e.registry)).await {
                Ok(body) => {
                    let mut r = text(StatusCode::OK, body);
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static(OPENMETRICS),
                    );
                    r
                }
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
            }
        }
        "/livez" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            let _turn = ep.busy.acquire().await;
            let e = ep.clone();
            let check =
                tokio::task::spawn_blocking(move || e.shared.ops.readiness.check(&e.shared))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
            match check {
                Ok(()) => text(StatusCode::OK, "ready\n".into()),
                Err(why) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                ),
            }
        }
        "/" => text(
            StatusCode::OK,
            "shardai: /metrics (Prometheus), /livez, /readyz\n".into(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /livez or /readyz\n".into(),
        ),
    }
}
