//! The daemon run by `offshoot up`: owns the store, the mounts, the computes, the proxy and the API server.
