//! The one error type of the client.

use crate::types::ValidationError;

/// Why a Daraja call failed. None of the variants carries a credential: the Daraja
/// envelope and HTTP errors hold only codes, messages and URLs (tokens travel in headers),
/// and a reply body is quoted only when it cannot hold a token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Daraja's own error envelope (`requestId`, `errorCode`, `errorMessage`), or a
    /// non-zero `ResponseCode` in an otherwise normal reply.
    #[error("Daraja answered HTTP {http_status} {error_code}: {error_message}")]
    Daraja {
        http_status: u16,
        error_code: String,
        error_message: String,
        request_id: Option<String>,
    },
    /// The request did not complete: connect, TLS, timeout, or the reply was cut off.
    #[error("request to Daraja failed: {0}")]
    Http(#[from] reqwest::Error),
    /// Refused before sending: bad input or configuration.
    #[error("invalid Daraja request: {0}")]
    Invalid(String),
    /// A reply that is neither the expected JSON nor Daraja's error envelope (e.g. an HTML
    /// page from a gateway).
    #[error("unexpected reply from Daraja (HTTP {http_status}): {detail}")]
    Unexpected { http_status: u16, detail: String },
}

impl From<ValidationError> for Error {
    fn from(e: ValidationError) -> Self {
        Error::Invalid(e.0)
    }
}

impl Error {
    /// The Daraja error code, if Daraja answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Daraja { error_code, .. } => Some(error_code),
            _ => None,
        }
    }

    /// Worth trying again later with back-off: spike arrest (`500.003.02`), quota
    /// (`500.003.03`), a network failure, or a gateway error page.
    ///
    /// For an STK Push a network failure (timeout) leaves it unknown whether the prompt
    /// was sent; resending may prompt the customer twice, so check with STK Query or wait
    /// for the callback first.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Daraja { error_code, .. } => {
                matches!(error_code.as_str(), "500.003.02" | "500.003.03")
            }
            Error::Http(_) => true,
            Error::Unexpected { http_status, .. } => matches!(http_status, 502..=504),
            Error::Invalid(_) => false,
        }
    }

    /// Daraja refused the access token. The client already refreshes the token and retries
    /// once, so callers see this only if the fresh token was refused too.
    pub fn is_invalid_token(&self) -> bool {
        match self {
            Error::Daraja {
                http_status,
                error_code,
                ..
            } => {
                *http_status == 401
                    || matches!(
                        error_code.as_str(),
                        "404.001.03" | "400.003.01" | "401.002.01"
                    )
            }
            Error::Unexpected { http_status, .. } => *http_status == 401,
            _ => false,
        }
    }

    /// `500.001.1001 Unable to lock subscriber`: a push to this phone is still open; wait
    /// about a minute before another.
    pub fn is_subscriber_locked(&self) -> bool {
        matches!(self, Error::Daraja { error_code, error_message, .. }
            if error_code == "500.001.1001"
                && error_message.to_ascii_lowercase().contains("lock subscriber"))
    }

    /// C2B URLs are registered already (production allows it once; change them in the
    /// Daraja self-service portal).
    pub fn is_already_registered(&self) -> bool {
        matches!(self, Error::Daraja { error_message, .. }
            if error_message.to_ascii_lowercase().contains("already registered"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daraja(status: u16, code: &str, message: &str) -> Error {
        Error::Daraja {
            http_status: status,
            error_code: code.into(),
            error_message: message.into(),
            request_id: Some("r".into()),
        }
    }

    #[test]
    fn classification() {
        assert!(daraja(500, "500.003.02", "Spike Arrest Violation").is_retryable());
        assert!(daraja(500, "500.003.03", "Quota Violation").is_retryable());
        assert!(!daraja(400, "400.002.02", "Bad Request - Invalid Amount").is_retryable());
        assert!(!Error::Invalid("x".into()).is_retryable());
        let gateway = Error::Unexpected {
            http_status: 503,
            detail: "<html>".into(),
        };
        assert!(gateway.is_retryable());
        assert!(daraja(404, "404.001.03", "Invalid Access Token").is_invalid_token());
        assert!(
            daraja(401, "401.002.01", "Error Occurred - Invalid Access Token").is_invalid_token()
        );
        assert!(!daraja(400, "400.002.02", "Invalid").is_invalid_token());
        let locked = daraja(
            500,
            "500.001.1001",
            "Unable to lock subscriber, a transaction is already in process for the current subscriber",
        );
        assert!(locked.is_subscriber_locked());
        assert!(!daraja(500, "500.001.1001", "Wrong credentials").is_subscriber_locked());
        assert!(daraja(500, "500.003.1001", "Urls are already registered").is_already_registered());
        assert_eq!(locked.code(), Some("500.001.1001"));
        assert!(locked.to_string().contains("Unable to lock subscriber"));
    }
}
