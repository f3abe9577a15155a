//! The firewall's routes, and reloading the configuration.

use super::handlers::Reply;
use super::{ApiRequest, ApiResponse};
use crate::driver::router::Router;

/// `GET /v1/firewall`: the rules with their hits, the default policies, counters by verdict and
/// the connection-tracking table.
pub(super) fn get_firewall(r: &mut Router, _: &ApiRequest) -> ApiResponse {
    ApiResponse::ok(r.firewall.report())
}

/// `POST /v1/reload`: reads the configuration file again (as SIGHUP does) and says what it
/// applied, or why the file was refused.
pub(super) fn api_reload(r: &mut Router, _: &ApiRequest, reply: Reply) {
    r.reload(Some(reply));
}
