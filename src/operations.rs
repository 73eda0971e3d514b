//! Save, list, delete and prune as one service.
