//! The node's HTTP API (axum). Everything it holds is public: snapshots are
//! signed, so serving them needs no authentication.
//!
//! | route                         | answer                                               |
//! |-------------------------------|------------------------------------------------------|
//! | `GET /snapshot/latest`        | the latest held header as JSON (with `epoch`)        |
//! | `GET /snapshot/{epoch}/header`| `header.bin`, the signed header bytes                |
//! | `GET /snapshot/{epoch}/body`  | `body.parquet`                                       |
//! | `GET /score/{agent}`          | score, rank and Merkle inclusion proof (404 with an absence proof) |
//! | `GET /mechanism/latest`       | 404: no mechanism is published by `serve` yet       |
//! | `GET /healthz`                | `{"status":"ok", ...}` with the epochs held          |
//! | `GET /metrics`                | Prometheus text                                      |
//!
//! A node following several publishers needs `?publisher=HEX` on the
//! snapshot and score routes; with one, it may be left out. Every error is
//! a 4xx (or 5xx for the node's own failures) with `{"error": "..."}`; no
//! request can panic a handler (paths and queries are parsed by hand, not
//! by extractors whose rejections are plain text).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::node::{HeldSnapshot, Shared};
use crate::snapshot::header::Header;
use crate::snapshot::{Proof, BODY_FILE, HEADER_FILE};

/// The longest agent id looked up.
const MAX_AGENT_BYTES: usize = 4096;

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
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "expected /snapshot/{epoch}/header or /body",
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
    match tokio::fs::read(&p).await {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            error(StatusCode::NOT_FOUND, format!("epoch {epoch} is not held"))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading: {e}")),
    }
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
    let dir = held.dir.clone();
    let a = agent.clone();
    // Proving reads and checks the whole body: off the async workers.
    let proof =
        tokio::task::spawn_blocking(move || crate::snapshot::dir::prove_agent(&dir, &a)).await;
    let proof = match proof {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
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

async fn mechanism() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no mechanism configured: `serve` publishes scores only (docs/serve.md)",
    )
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
