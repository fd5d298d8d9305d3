pub mod ipam;
pub mod state;
pub mod store;
