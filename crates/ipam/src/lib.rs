//! IP address management: ranges, the host-local store, result building
