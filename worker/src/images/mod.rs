//! Images: the layer store that containers' root filesystems are stacked from.

pub mod unpack;
