//! One typed method per route of the HTTP API (docs/contracts.md).

use super::{Client, ClientError, Method};
use crate::api::types::{
    branch_path, encode_path_segment, Branch, BranchList, ConnectionString, CreateBranchRequest,
    CreateBranchResponse, RenameBranchRequest, ResetBranchRequest, Status, API_PREFIX,
};

const NO_BODY: Option<&()> = None;

impl Client {
    /// `GET /v1/status`.
    pub fn status(&self) -> Result<Status, ClientError> {
        self.call(Method::Get, &format!("{API_PREFIX}/status"), NO_BODY)
    }

    /// `GET /v1/branches`.
    pub fn list_branches(&self) -> Result<BranchList, ClientError> {
        self.call(Method::Get, &format!("{API_PREFIX}/branches"), NO_BODY)
    }

    /// `POST /v1/branches`: `created` is false when it already existed with the same parent.
    pub fn create_branch(
        &self,
        request: &CreateBranchRequest,
    ) -> Result<CreateBranchResponse, ClientError> {
        self.call(
            Method::Post,
            &format!("{API_PREFIX}/branches"),
            Some(request),
        )
    }

    /// `GET /v1/branches/{name}`.
    pub fn branch(&self, name: &str) -> Result<Branch, ClientError> {
        self.call(Method::Get, &branch_path(name), NO_BODY)
    }

    /// `DELETE /v1/branches/{name}`: the branch as it was.
    pub fn delete_branch(&self, name: &str) -> Result<Branch, ClientError> {
        self.call(Method::Delete, &branch_path(name), NO_BODY)
    }

    /// `POST /v1/branches/{name}/reset`.
    pub fn reset_branch(&self, name: &str, parent: Option<&str>) -> Result<Branch, ClientError> {
        let body = ResetBranchRequest {
            parent: parent.map(str::to_string),
        };
        let path = format!("{}/reset", branch_path(name));
        self.call(Method::Post, &path, Some(&body))
    }

    /// `POST /v1/branches/{name}/rename`.
    pub fn rename_branch(&self, name: &str, new_name: &str) -> Result<Branch, ClientError> {
        let body = RenameBranchRequest {
            new_name: new_name.to_string(),
        };
        let path = format!("{}/rename", branch_path(name));
        self.call(Method::Post, &path, Some(&body))
    }

    /// `POST /v1/branches/{name}/protect` or `…/unprotect`.
    pub fn set_protected(&self, name: &str, protected: bool) -> Result<Branch, ClientError> {
        let action = if protected { "protect" } else { "unprotect" };
        let path = format!("{}/{action}", branch_path(name));
        self.call(Method::Post, &path, NO_BODY)
    }

    /// `GET /v1/branches/{name}/connection-string[?database=DB]`.
    pub fn connection_string(
        &self,
        name: &str,
        database: Option<&str>,
    ) -> Result<ConnectionString, ClientError> {
        let mut path = format!("{}/connection-string", branch_path(name));
        if let Some(db) = database {
            path.push_str("?database=");
            path.push_str(&encode_path_segment(db));
        }
        self.call(Method::Get, &path, NO_BODY)
    }
}
