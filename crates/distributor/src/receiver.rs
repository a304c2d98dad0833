//! Receivers: the protocols spans arrive in. Each decodes, finds the tenant, and calls
//! [`crate::Distributor::push`]; errors map to the protocol through [`vivace_common::StatusCode`].

pub mod grpc;
pub mod http;
pub mod jaeger;
pub mod opencensus;
mod plain;
pub mod zipkin;

use vivace_common::{Status, StatusCode, TenantId};

/// The tenant of a request: `single-tenant` unless multitenancy is on, then `X-Scope-OrgID`
/// (HTTP header or gRPC metadata `x-scope-orgid`), which must be present and valid.
pub(crate) fn tenant_of(multitenancy: bool, header: Option<&[u8]>) -> Result<TenantId, Status> {
    if !multitenancy {
        return Ok(TenantId::single());
    }
    let Some(raw) = header else {
        return Err(Status::new(
            StatusCode::Unauthorized,
            "no org id: multitenancy is enabled and the request has no X-Scope-OrgID header (gRPC: x-scope-orgid metadata)",
        ));
    };
    let s = std::str::from_utf8(raw)
        .map_err(|_| Status::bad_request("X-Scope-OrgID is not valid UTF-8"))?;
    TenantId::new(s.trim()).map_err(|e| Status::bad_request(format!("invalid X-Scope-OrgID: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_header_forms() {
        assert_eq!(
            tenant_of(false, Some(b"x|y")).unwrap().as_str(),
            "single-tenant"
        );
        assert_eq!(
            tenant_of(true, None).unwrap_err().code,
            StatusCode::Unauthorized
        );
        assert_eq!(
            tenant_of(true, Some(b"")).unwrap_err().code,
            StatusCode::BadRequest
        );
        assert_eq!(
            tenant_of(true, Some(b"a|b")).unwrap_err().code,
            StatusCode::BadRequest
        );
        assert_eq!(
            tenant_of(true, Some(b"..")).unwrap_err().code,
            StatusCode::BadRequest
        );
        assert_eq!(
            tenant_of(true, Some(&[0xff, 0xfe])).unwrap_err().code,
            StatusCode::BadRequest
        );
        assert_eq!(tenant_of(true, Some(b"team-1")).unwrap().as_str(), "team-1");
    }
}
