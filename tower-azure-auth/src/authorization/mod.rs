//! Authorization policies (placeholder while the module is written).
