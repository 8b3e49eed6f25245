//! placeholder (helper fills in)
