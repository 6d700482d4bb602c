//! Images: the layer store that containers' root filesystems are stacked from.

pub mod auth;
pub mod load;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;
