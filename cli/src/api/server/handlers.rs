//! One handler per route: parse, call the control plane, answer JSON.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{body, ApiError, ApiState, OPENAPI_JSON};
use crate::api::types::{
    Branch, BranchList, ConnectionString, CreateBranchRequest, CreateBranchResponse, ErrorCode,
    RenameBranchRequest, ResetBranchRequest, Status,
};
use crate::daemon::disk_space;

type ApiResult<T> = Result<T, ApiError>;

fn name_of(path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    path.map(|Path(name)| name)
        .map_err(|e| ApiError::bad_request(format!("bad branch name in path: {e}")))
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route {}; see GET /v1/openapi.json", uri.path()))
}

/// A known path with a method it does not answer (axum adds `Allow`).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Invalid,
        format!(
            "{method} is not allowed on {}; see GET /v1/openapi.json",
            uri.path()
        ),
    )
}

pub async fn status(State(state): State<Arc<ApiState>>) -> Json<Status> {
    let control = &state.control;
    let store = control.store();
    Json(Status {
        version: state.info.version.clone(),
        home: control.home().root().display().to_string(),
        proxy_addr: state.info.proxy_addr.to_string(),
        api_addr: state.info.api_addr.to_string(),
        postgres_version: state.postgres_version.clone(),
        branches: store.branches().len() as u64,
        computes_running: control.runtime().running_count() as u64,
        storage_bytes: store.usage().total_bytes,
        disk_free_bytes: disk_space::free_bytes(&control.home().store_dir()).ok(),
    })
}

pub async fn list_branches(State(state): State<Arc<ApiState>>) -> Json<BranchList> {
    Json(BranchList {
        branches: state.control.list(),
    })
}

pub async fn create_branch(
    State(state): State<Arc<ApiState>>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<CreateBranchResponse>)> {
    let req: CreateBranchRequest = body::parse(raw, false)?;
    let (branch, created) = state.control.create(&req).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(CreateBranchResponse { branch, created })))
}

pub async fn show_branch(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Branch>> {
    Ok(Json(state.control.show(&name_of(path)?)?))
}

pub async fn delete_branch(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Branch>> {
    Ok(Json(state.control.delete(&name_of(path)?).await?))
}

pub async fn reset_branch(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Branch>> {
    let name = name_of(path)?;
    let req: ResetBranchRequest = body::parse(raw, true)?;
    Ok(Json(
        state.control.reset(&name, req.parent.as_deref()).await?,
    ))
}

pub async fn rename_branch(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Branch>> {
    let name = name_of(path)?;
    let req: RenameBranchRequest = body::parse(raw, false)?;
    Ok(Json(state.control.rename(&name, &req.new_name).await?))
}

pub async fn protect_branch(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Branch>> {
    Ok(Json(
        state.control.set_protected(&name_of(path)?, true).await?,
    ))
}

pub async fn unprotect_branch(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Branch>> {
    Ok(Json(
        state.control.set_protected(&name_of(path)?, false).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionQuery {
    database: Option<String>,
}

pub async fn connection_string(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ConnectionQuery>, QueryRejection>,
) -> ApiResult<Json<ConnectionString>> {
    let name = name_of(path)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    if query.database.as_deref() == Some("") {
        return Err(ApiError::bad_request("database must not be empty"));
    }
    let uri = state
        .control
        .connection_string(&name, query.database.as_deref())?;
    Ok(Json(ConnectionString { uri }))
}
