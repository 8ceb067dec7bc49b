//! The webhook server's limits against clients that hold connections open: the API server is
//! the only legitimate client, but the port is reachable from every pod, and a connection that
//! never finishes its TLS handshake or its request headers would otherwise hold a task and a
//! socket for ever.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum_server::accept::{Accept, DefaultAcceptor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Longest a client may take for the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a new connection may stay without a first request.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections open at once; more are closed as they arrive (the API server retries, and
/// it keeps a handful of connections at most).
pub const MAX_CONNECTIONS: usize = 128;

/// An acceptor that admits at most a fixed number of connections at once: each holds a permit
/// until its last request handler is gone.
#[derive(Clone, Debug)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
}

impl ConnectionLimit {
    /// At most `max` connections.
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
        }
    }

    /// Connections that may still be opened.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

/// A connection's service, holding the connection's permit.
#[derive(Clone, Debug)]
pub struct Permitted<S> {
    inner: S,
    _permit: Arc<OwnedSemaphorePermit>,
}

impl<S, R> tower::Service<R> for Permitted<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.inner.call(req)
    }
}

impl<I, S> Accept<I, S> for ConnectionLimit
where
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = I;
    type Service = Permitted<S>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(I, Permitted<S>)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let permit = self.permits.clone().try_acquire_owned();
        Box::pin(async move {
            let permit = permit.map_err(|_| {
                io::Error::other(format!(
                    "more than {MAX_CONNECTIONS} connections open; closing this one"
                ))
            })?;
            let (stream, inner) = DefaultAcceptor.accept(stream, service).await?;
            Ok((
                stream,
                Permitted {
                    inner,
                    _permit: Arc::new(permit),
                },
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_beyond_the_limit_are_refused_and_a_closed_one_frees_its_place() {
        let limit = ConnectionLimit::new(2);
        let svc = tower::service_fn(|()| async { Ok::<_, io::Error>(()) });
        let a = limit.accept((), svc).await.unwrap();
        let b = limit.accept((), svc).await.unwrap();
        let refused = limit.accept((), svc).await.expect_err("third refused");
        assert!(
            refused.to_string().contains("connections open"),
            "{refused}"
        );
        // a request handler clone keeps the connection's place until the last one is gone
        let clone = a.1.clone();
        drop(a);
        assert_eq!(limit.available(), 0);
        drop(clone);
        assert_eq!(limit.available(), 1);
        drop(b);
        limit.accept((), svc).await.unwrap();
    }
}
