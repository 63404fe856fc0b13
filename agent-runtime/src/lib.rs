//! The inft agent runtime.
