//! The node's HTTP API (axum). Everything it holds is public: snapshots are
//! signed, so serving them needs no authentication.
//!
//! | route                         | answer                                               |
//! |-------------------------------|------------------------------------------------------|
//! | `GET /snapshot/latest`        | the latest held header as JSON (with `epoch`)        |
//! | `GET /snapshot/{epoch}/header`| `header.bin`, the signed header bytes                |
//! | `GET /snapshot/{epoch}/body`  | `body.parquet`                                       |
//! | `GET /score/{agent}`          | score, rank and Merkle inclusion proof (404 with an absence proof) |
//! | `GET /snapshot/{epoch}/mechanism`, `/mechanism.sig` | the mechanism posted beside it and its signature |
//! | `GET /mechanism/latest`       | the latest snapshot's mechanism (JSON; signature in `x-trustmesh-signature`), 404 without one |
//! | `GET /healthz`                | `{"status":"ok", ...}` with the epochs held          |
//! | `GET /metrics`                | Prometheus text                                      |
//!
//! A node following several publishers needs `?publisher=HEX` on the
//! snapshot and score routes; with one, it may be left out. Every error is
//! a 4xx (or 5xx for the node's own failures) with `{"error": "..."}`; no
//! request can panic a handler (paths and queries are parsed by hand, not
//! by extractors whose rejections are plain text).
//!
//! Cost per request: a body is streamed from its file in chunks (never
//! read whole into memory); the score route reads and checks the body once
//! per held (publisher, epoch), on first use, and keeps the decoded leaves
//! and their Merkle tree's stored subtrees in an `Arc` ([`ProofCache`]), so
//! a request costs a binary search and O(log n) hashes (about 4 bytes per
//! agent beside the leaf hashes). Both are "heavy": at most [`MAX_HEAVY`] run at once, beyond that
//! the answer is 503 with a JSON error, so a flood cannot exhaust memory
//! or the blocking pool.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::mechanism::{MECHANISM_FILE, MECHANISM_SIG_FILE};
use super::node::{HeldSnapshot, Shared};
use crate::snapshot::dir::BodyScores;
use crate::snapshot::header::Header;
use crate::snapshot::merkle::MerkleTree;
use crate::snapshot::proof::{check_leaves, prove_in};
use crate::snapshot::{Proof, BODY_FILE, HEADER_FILE};

/// The longest agent id looked up.
const MAX_AGENT_BYTES: usize = 4096;
/// Heavy requests (bodies, scores) served at once.
pub const MAX_HEAVY: usize = 32;
/// Bytes read from a body file per chunk sent.
const CHUNK_BYTES: usize = 64 << 10;

/// A held snapshot's body, decoded and checked against its header once:
/// the scores in leaf order and their Merkle tree.
type ProofData = Arc<(BodyScores, MerkleTree)>;
/// One publisher's cached epoch and its leaves, built once.
type CachedEpoch = (u64, Arc<tokio::sync::OnceCell<ProofData>>);

/// What the HTTP routes keep between requests: the decoded leaves of the
/// latest held epoch per publisher (built on first use; an older epoch's
/// entry is replaced when a newer one is asked for), and the permits of
/// heavy requests.
pub struct ProofCache {
    leaves: Mutex<BTreeMap<[u8; 32], CachedEpoch>>,
    heavy: Arc<tokio::sync::Semaphore>,
}

impl Default for ProofCache {
    fn default() -> Self {
        ProofCache {
            leaves: Mutex::default(),
            heavy: Arc::new(tokio::sync::Semaphore::new(MAX_HEAVY)),
        }
    }
}

impl ProofCache {
    /// A permit for one heavy request, or the 503 answer.
    fn heavy(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Box<Response>> {
        self.heavy.clone().try_acquire_owned().map_err(|_| {
            Box::new(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many requests for bodies and scores in flight; retry shortly",
            ))
        })
    }

    /// The decoded leaves of `held`, read and checked on first use.
    async fn leaves(&self, held: &HeldSnapshot) -> Result<ProofData, String> {
        let (publisher, epoch) = (held.header.publisher, held.header.epoch);
        let cell = {
            let mut m = self.leaves.lock().map_err(|_| "cache lock poisoned")?;
            let e = m
                .entry(publisher)
                .or_insert_with(|| (epoch, Default::default()));
            if e.0 != epoch {
                *e = (epoch, Default::default());
            }
            e.1.clone()
        };
        cell.get_or_try_init(|| async {
            let (dir, header) = (held.dir.clone(), held.header.clone());
            // Reading and checking the whole body: off the async workers.
            tokio::task::spawn_blocking(move || {
                let (d, leaves) = crate::snapshot::dir::checked_body(&dir, &header)?;
                let tree = MerkleTree::new(leaves);
                // The tree's root from its stored subtrees: O(log n).
                let (n, root) = (tree.leaves().len(), tree.root());
                check_leaves(&header, &d.agents, &d.scores, &d.ranks, n, root)?;
                Ok::<_, crate::Error>(Arc::new((d, tree)))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
        })
        .await
        .cloned()
    }
}

/// The router over a node's shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/snapshot/latest", get(latest))
        .route("/snapshot/{epoch}/{file}", get(snapshot_file))
        .route("/score/{agent}", get(score))
        .route("/mechanism/latest", get(mechanism))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "only GET is served")
        })
        .with_state(shared)
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{v}\n"),
    )
        .into_response()
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    json_response(status, &json!({ "error": message.to_string() }))
}

/// A refused request: its status and message ([`error`] makes the answer).
type Refusal = (StatusCode, String);

/// The held snapshot a request is about: `?publisher=HEX`, or the only one.
fn pick(shared: &Shared, query: Option<&str>) -> Result<HeldSnapshot, Refusal> {
    let wanted = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("publisher=")));
    match wanted {
        Some(h) => {
            let key: [u8; 32] = hex::decode(h)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| {
                    (
                        StatusCode::BAD_REQUEST,
                        "publisher: expected 64 hex characters".to_string(),
                    )
                })?;
            shared.held(&key).ok_or_else(|| {
                (
                    StatusCode::NOT_FOUND,
                    format!("no snapshot of publisher {h} here"),
                )
            })
        }
        None => {
            let mut all = shared.all_held();
            match all.len() {
                0 => Err((StatusCode::NOT_FOUND, "no snapshot yet".to_string())),
                1 => Ok(all.remove(0)),
                n => Err((
                    StatusCode::BAD_REQUEST,
                    format!("this node holds snapshots of {n} publishers: add ?publisher=HEX"),
                )),
            }
        }
    }
}

/// A header as JSON: every field, hashes and keys in hex.
pub fn header_json(h: &Header, header_hash: &[u8; 32]) -> Value {
    let parameters: Value =
        serde_json::from_str(&h.parameters).unwrap_or(Value::String(h.parameters.clone()));
    json!({
        "network": h.network,
        "epoch": h.epoch,
        "publisher": hex::encode(h.publisher),
        "header_hash": hex::encode(header_hash),
        "prev_header_hash": hex::encode(h.prev_header_hash),
        "created": h.created,
        "expires": h.expires,
        "agent_count": h.agent_count,
        "merkle_root": hex::encode(h.merkle_root),
        "body_size": h.body_size,
        "body_sha256": hex::encode(h.body_sha256),
        "iterations": h.iterations,
        "residual": h.residual,
        "error_bound": h.error_bound,
        "device": h.device,
        "precision": h.precision,
        "parameters": parameters,
        "inputs": h.inputs.iter().map(|i| json!({
            "name": i.name,
            "size": i.size,
            "sha256": hex::encode(i.sha256),
        })).collect::<Vec<_>>(),
        "header_url": format!("/snapshot/{}/header", h.epoch),
        "body_url": format!("/snapshot/{}/body", h.epoch),
    })
}

async fn latest(State(shared): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    match pick(&shared, q.as_deref()) {
        Ok(h) => json_response(StatusCode::OK, &header_json(&h.header, &h.header_hash)),
        Err((status, m)) => error(status, m),
    }
}

async fn snapshot_file(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Response {
    let Ok(Path((epoch, file))) = path else {
        return error(StatusCode::BAD_REQUEST, "malformed path");
    };
    let name = match file.as_str() {
        "header" => HEADER_FILE,
        "body" => BODY_FILE,
        "mechanism" => MECHANISM_FILE,
        "mechanism.sig" => MECHANISM_SIG_FILE,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "expected /snapshot/{epoch}/header, /body, /mechanism or /mechanism.sig",
            )
        }
    };
    let Ok(epoch) = epoch.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("epoch {epoch:?} is not a number"),
        );
    };
    let held = match pick(&shared, q.as_deref()) {
        Ok(h) => h,
        Err((status, m)) => return error(status, m),
    };
    // Only committed epochs up to the one the state names: a directory
    // above it was never accepted (a crash between commit and state).
    if epoch > held.header.epoch {
        return error(
            StatusCode::NOT_FOUND,
            format!("epoch {epoch} is not held (latest {})", held.header.epoch),
        );
    }
    let p = shared
        .store
        .epoch_dir(&held.header.publisher, epoch)
        .join(name);
    let permit = if name == BODY_FILE {
        match shared.http_cache.heavy() {
            Ok(p) => Some(p),
            Err(r) => return *r,
        }
    } else {
        None
    };
    let file = match tokio::fs::File::open(&p).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let what = match name {
                MECHANISM_FILE | MECHANISM_SIG_FILE => "has no mechanism here",
                _ => "is not held",
            };
            return error(StatusCode::NOT_FOUND, format!("epoch {epoch} {what}"));
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading: {e}")),
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading: {e}")),
    };
    // Chunks read as the client takes them; the permit lives as long as
    // the stream.
    let chunks = futures::stream::unfold((file, permit), |(mut f, permit)| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; CHUNK_BYTES];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), (f, permit)))
            }
            Err(e) => Some((Err(e), (f, permit))),
        }
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response()
}

async fn score(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Response {
    let Ok(Path(agent)) = path else {
        return error(StatusCode::BAD_REQUEST, "malformed agent id in the path");
    };
    if agent.is_empty() || agent.len() > MAX_AGENT_BYTES {
        return error(
            StatusCode::BAD_REQUEST,
            format!("agent id: expected 1 to {MAX_AGENT_BYTES} bytes"),
        );
    }
    let held = match pick(&shared, q.as_deref()) {
        Ok(h) => h,
        Err((status, m)) => return error(status, m),
    };
    let _permit = match shared.http_cache.heavy() {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let data = match shared.http_cache.leaves(&held).await {
        Ok(d) => d,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    // O(log n) hashes from the stored tree: on the async worker.
    let (d, tree) = &*data;
    let proof = match prove_in(&held.header, &d.agents, &d.scores, &d.ranks, tree, &agent) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let proof_json: Value = serde_json::from_str(&proof.to_json()).unwrap_or(Value::Null);
    let h = &held.header;
    match proof {
        Proof::Inclusion(p) => json_response(
            StatusCode::OK,
            &json!({
                "agent": agent,
                "score": p.score,
                "rank": p.rank,
                "network": h.network,
                "epoch": h.epoch,
                "publisher": hex::encode(h.publisher),
                "header_hash": hex::encode(held.header_hash),
                "merkle_root": hex::encode(h.merkle_root),
                "proof": proof_json,
            }),
        ),
        Proof::Absence(_) => json_response(
            StatusCode::NOT_FOUND,
            &json!({
                "error": format!("agent {agent:?} is not in epoch {}", h.epoch),
                "epoch": h.epoch,
                "publisher": hex::encode(h.publisher),
                "header_hash": hex::encode(held.header_hash),
                "proof": proof_json,
            }),
        ),
    }
}

async fn mechanism(State(shared): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let held = match pick(&shared, q.as_deref()) {
        Ok(h) => h,
        Err((status, m)) => return error(status, m),
    };
    let (file, sig) = (
        tokio::fs::read(held.dir.join(MECHANISM_FILE)).await,
        tokio::fs::read(held.dir.join(MECHANISM_SIG_FILE)).await,
    );
    match (file, sig) {
        (Ok(file), Ok(sig)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (
                    header::HeaderName::from_static("x-trustmesh-signature"),
                    hex::encode(sig),
                ),
            ],
            file,
        )
            .into_response(),
        (Err(e), _) | (_, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => error(
            StatusCode::NOT_FOUND,
            format!(
                "epoch {} of publisher {} has no mechanism here (a publisher posts one with \
                 --mechanism-agents; docs/serve.md)",
                held.header.epoch,
                hex::encode(held.header.publisher)
            ),
        ),
        (Err(e), _) | (_, Err(e)) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading: {e}"))
        }
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let held: Vec<Value> = shared
        .all_held()
        .iter()
        .map(|h| json!({ "publisher": hex::encode(h.header.publisher), "epoch": h.header.epoch }))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "node": hex::encode(shared.node_key),
            "network": shared.network,
            "http": shared.http.to_string(),
            "held": held,
        }),
    )
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(&shared.held_gauges()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At most MAX_HEAVY body and score requests run at once; the next one
    /// is answered 503 with a JSON error at once, and a finished request's
    /// permit serves the next.
    #[test]
    fn heavy_requests_beyond_the_cap_get_503() {
        let cache = ProofCache::default();
        let mut held: Vec<_> = (0..MAX_HEAVY).map(|_| cache.heavy().unwrap()).collect();
        let refused = cache.heavy().unwrap_err();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::CONTENT_TYPE], "application/json");
        held.pop();
        held.push(cache.heavy().unwrap());
        assert!(cache.heavy().is_err());
    }
}
