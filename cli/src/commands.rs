//! One module per command of the `offshoot` binary.
