//! Request bodies: read within the 64 KiB limit (413 beyond it), parsed as
//! JSON into types that reject unknown fields (400 with serde's message,
//! which names the field and the position).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::{ApiError, MAX_BODY_BYTES};
use crate::api::types::ErrorCode;

/// Parses a JSON body. `empty_default` lets routes whose fields are all
/// optional accept an empty body.
pub fn parse<T: DeserializeOwned + Default>(
    body: Result<Bytes, BytesRejection>,
    empty_default: bool,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::Invalid,
                format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::bad_request(format!("cannot read request body: {rejection}"))
        }
    })?;
    if empty_default && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::CreateBranchRequest;

    #[test]
    fn unknown_fields_and_bad_json_are_400_with_the_reason() {
        let err =
            parse::<CreateBranchRequest>(Ok(Bytes::from_static(br#"{"name":"a","x":1}"#)), false)
                .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("unknown field `x`"), "{}", err.message);
        let err = parse::<CreateBranchRequest>(Ok(Bytes::from_static(b"{")), false).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let empty = parse::<CreateBranchRequest>(Ok(Bytes::new()), true).unwrap();
        assert_eq!(empty, CreateBranchRequest::default());
        assert!(parse::<CreateBranchRequest>(Ok(Bytes::new()), false).is_err());
    }
}
