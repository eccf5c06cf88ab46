//! The prometheus plugin (being written).
