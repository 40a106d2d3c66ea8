//! Replay of long-link sessions.
