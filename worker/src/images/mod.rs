//! Images: the layer store that containers' root filesystems are stacked from.

pub mod load;
pub mod reference;
pub mod store;
pub mod unpack;
