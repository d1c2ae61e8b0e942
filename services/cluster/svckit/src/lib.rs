//! What the cluster's services share: Prometheus text exposition (`expo`), a `/metrics` HTTP
//! server (`http`), command-line flags (`cli`) and atomic file writes (`files`). Std only.

pub mod cli;
pub mod expo;
pub mod files;
pub mod http;
