pub mod auth;
pub mod transport;
