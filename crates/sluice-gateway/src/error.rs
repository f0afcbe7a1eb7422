//! Service and storage errors as S3 error codes. Client faults are 4xx with S3's code;
//! only real server trouble is a 5xx, and its details stay in the log.

use s3s::{S3Error, S3ErrorCode};
use sluice_service::ServiceError;
use sluice_storage::StorageError;

/// A service-layer error as the S3 error a client expects.
pub fn to_s3_error(e: ServiceError) -> S3Error {
    use S3ErrorCode as C;
    let (code, msg) = match e {
        ServiceError::Unauthorized(_) => (
            C::InvalidAccessKeyId,
            "The AWS Access Key Id you provided does not exist in our records.".to_string(),
        ),
        ServiceError::Forbidden(_) => (C::AccessDenied, "Access Denied".to_string()),
        ServiceError::NoSuchWarehouse(_) => (
            C::NoSuchBucket,
            "The specified bucket does not exist".to_string(),
        ),
        ServiceError::NotFound(_) => (C::NoSuchKey, "The specified key does not exist.".into()),
        ServiceError::BadRequest(m) | ServiceError::Unprocessable(m) => (C::InvalidArgument, m),
        ServiceError::Conflict(m) => (C::PreconditionFailed, m),
        ServiceError::Unsupported(m) => (C::NotImplemented, m),
        ServiceError::Unavailable(m) => (C::ServiceUnavailable, m),
        other => {
            tracing::error!(error = %other, "S3 gateway: internal error");
            (
                C::InternalError,
                "We encountered an internal error. Please try again.".into(),
            )
        }
    };
    S3Error::with_message(code, msg)
}

/// A storage error of an object operation as the S3 error a client expects.
pub(crate) fn storage_error(e: StorageError) -> S3Error {
    use S3ErrorCode as C;
    match e {
        StorageError::NotFound(_) => {
            S3Error::with_message(C::NoSuchKey, "The specified key does not exist.")
        }
        // The message would name the warehouse's storage location: not the caller's business.
        StorageError::Invalid(_) | StorageError::NotInWarehouse(_) => S3Error::with_message(
            C::InvalidArgument,
            "invalid object key (empty, '.' or '..' segments, or outside the bucket)",
        ),
        StorageError::AlreadyExists(_) | StorageError::PreconditionFailed(_) => {
            S3Error::with_message(
                C::PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold",
            )
        }
        StorageError::NotModified(_) => S3Error::new(C::NotModified),
        StorageError::InvalidRange(_) => {
            S3Error::with_message(C::InvalidRange, "The requested range is not satisfiable")
        }
        other => {
            tracing::warn!(error = %other, "S3 gateway: storage error");
            S3Error::with_message(
                C::InternalError,
                "We encountered an internal error. Please try again.",
            )
        }
    }
}
