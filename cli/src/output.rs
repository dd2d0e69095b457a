//! Rendering results for people (tables) and programs (`--output json`).
