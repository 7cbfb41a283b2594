//! The generator as an HTTP service, for use outside Maelstrom:
//!
//! * `POST /api/v1/gift-id/generate` with an optional JSON body
//!   `{"gift_type": "toy"|"coal", "count": 1..=1000}` answers `{"id": …}`, or `{"ids": […]}`
//!   when a count was given;
//! * `GET /api/v1/gift-id/{id}/decode` answers the ID's parts;
//! * `GET /api/v1/gift-id/health` answers the generator's state.
//!
//! Bad input gets a 4xx status with `{"error": "…"}`; a generator out of capacity for a
//! whole second answers 503 with `Retry-After`. The high-water mark is written to the state
//! directory (atomically, fsynced) before any ID that needed it is returned.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use maelstrom_core::{DirStorage, Storage};
use serde::Deserialize;
use serde_json::json;

use crate::generator::{Exhausted, Flaw, Generator, Now};
use crate::layout::{self, GiftType};
use crate::node::{parse_mark, MARK_FILE, MAX_BATCH};

/// One generator shared by all connections.
#[derive(Debug)]
pub struct Service {
    generator: Mutex<Generator>,
    storage: Mutex<DirStorage>,
    started: Instant,
}

/// Why the service could not start.
#[derive(Debug)]
pub enum StartError {
    Io(std::io::Error),
    CorruptMark(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Io(e) => write!(f, "cannot read the state directory: {e}"),
            StartError::CorruptMark(text) => write!(f, "{MARK_FILE} is corrupt: {text:?}"),
        }
    }
}

impl std::error::Error for StartError {}

impl Service {
    /// A service for `workshop`, resuming above the mark kept in `state_dir`.
    pub fn open(workshop: u16, state_dir: PathBuf) -> Result<Service, StartError> {
        std::fs::create_dir_all(&state_dir).map_err(StartError::Io)?;
        let storage = DirStorage::new(state_dir);
        let mark = match storage.load(MARK_FILE).map_err(StartError::Io)? {
            None => None,
            Some(bytes) => Some(parse_mark(&bytes).map_err(StartError::CorruptMark)?),
        };
        let started = Instant::now();
        let generator = Generator::new(workshop, mark, clocks(started), Flaw::None);
        Ok(Service {
            generator: Mutex::new(generator),
            storage: Mutex::new(storage),
            started,
        })
    }
}

fn clocks(started: Instant) -> Now {
    Now {
        wall_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        mono_ms: started.elapsed().as_millis() as u64,
    }
}

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/api/v1/gift-id/generate", post(generate))
        .route("/api/v1/gift-id/{id}/decode", get(decode))
        .route("/api/v1/gift-id/health", get(health))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .with_state(service)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateRequest {
    #[serde(default)]
    gift_type: Option<GiftType>,
    #[serde(default)]
    count: Option<usize>,
}

async fn generate(State(service): State<Arc<Service>>, body: Bytes) -> Response {
    let request: GenerateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        GenerateRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                let text = format!(
                    "bad request body ({e}); expected {{\"gift_type\": \"toy\"|\"coal\", \"count\": 1..={MAX_BATCH}}}, both optional"
                );
                return error(StatusCode::BAD_REQUEST, text);
            }
        }
    };
    if let Some(count) = request.count {
        if !(1..=MAX_BATCH).contains(&count) {
            let text = format!("count must be 1 to {MAX_BATCH}, got {count}");
            return error(StatusCode::UNPROCESSABLE_ENTITY, text);
        }
    }
    let gift_type = request.gift_type.unwrap_or_default();
    let mut generator = service.generator.lock().unwrap_or_else(|p| p.into_inner());
    let now = clocks(service.started);
    let issued = match request.count {
        None => generator.next(now, gift_type).map(|id| json!({ "id": id })),
        Some(count) => generator
            .next_batch(now, count, gift_type)
            .map(|ids| json!({ "ids": ids })),
    };
    let body = match issued {
        Ok(body) => body,
        Err(Exhausted::Lead { retry_in_ms }) => {
            let secs = retry_in_ms.div_ceil(1000).max(1).to_string();
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{}", Exhausted::Lead { retry_in_ms }),
            );
            if let Ok(value) = secs.parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Err(e @ Exhausted::OutOfRange) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
    };
    if let Some(mark) = generator.take_mark() {
        let mut storage = service.storage.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = storage.store(MARK_FILE, mark.to_string().as_bytes()) {
            // Without a durable mark these IDs could repeat after a restart: withhold them.
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot persist the high-water mark: {e}"),
            );
        }
    }
    (StatusCode::OK, Json(body)).into_response()
}

async fn decode(Path(id): Path<String>) -> Response {
    let parsed = id
        .parse::<i64>()
        .map_err(|_| format!("{id:?} is not a gift ID: gift IDs are positive 64-bit integers"))
        .and_then(|n| layout::decode(n).map_err(|e| e.to_string()).map(|p| (n, p)));
    match parsed {
        Ok((n, p)) => Json(json!({
            "id": n,
            "timestamp_ms": p.unix_ms(),
            "workshop": p.workshop,
            "sequence": p.sequence,
            "gift_type": p.gift_type,
        }))
        .into_response(),
        Err(text) => error(StatusCode::BAD_REQUEST, text),
    }
}

async fn health(State(service): State<Arc<Service>>) -> Response {
    let generator = service.generator.lock().unwrap_or_else(|p| p.into_inner());
    let health = generator.health(clocks(service.started));
    Json(json!({ "status": "ok", "generator": health })).into_response()
}

/// Serves on `addr` until the process ends.
pub async fn serve(addr: std::net::SocketAddr, service: Arc<Service>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!(
        "giftid-node serving on http://{}/api/v1/gift-id/",
        listener.local_addr()?
    );
    axum::serve(listener, router(service)).await
}
