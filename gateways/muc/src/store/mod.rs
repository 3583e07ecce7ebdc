//! Room storage: what survives a restart.
