//! Fetching a snapshot's files from a peer over HTTP/1.1 (hyper-util's
//! client: the hyper that axum serves with, no TLS stack). Every response
//! is untrusted: a status other than 200, a body above the caller's limit
//! or a peer slower than the timeout is an error, and the bytes are
//! verified by the caller.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{Result, ServeError};

/// An HTTP client with one connection pool.
#[derive(Clone)]
pub struct Fetcher {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl Fetcher {
    /// A client whose requests (connect, headers and body) take at most
    /// `timeout` each.
    pub fn new(timeout: Duration) -> Fetcher {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        Fetcher {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// GETs `url`, refusing a body above `limit` bytes.
    pub async fn get(&self, url: &str, limit: usize) -> Result<Bytes> {
        self.get_inner(url, limit, false)
            .await?
            .ok_or_else(|| ServeError::Fetch {
                url: url.to_string(),
                why: "status 404 Not Found".to_string(),
            })
    }

    /// The same, but a 404 is `None`: what the peer says it does not have.
    pub async fn get_if_present(&self, url: &str, limit: usize) -> Result<Option<Bytes>> {
        self.get_inner(url, limit, true).await
    }

    async fn get_inner(&self, url: &str, limit: usize, absent_ok: bool) -> Result<Option<Bytes>> {
        let err = |why: String| ServeError::Fetch {
            url: url.to_string(),
            why,
        };
        let uri: hyper::Uri = url.parse().map_err(|e| err(format!("bad URL: {e}")))?;
        let fut = async {
            let resp = self
                .client
                .get(uri)
                .await
                .map_err(|e| err(format!("{e}")))?;
            let status = resp.status();
            if absent_ok && status == hyper::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if status != hyper::StatusCode::OK {
                return Err(err(format!("status {status}")));
            }
            let body = Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|e| err(format!("body: {e}")))?;
            Ok(Some(body.to_bytes()))
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| err(format!("no complete answer within {:?}", self.timeout)))?
    }
}
