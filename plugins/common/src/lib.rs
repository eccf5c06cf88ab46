//! Code shared by tfo-agent plugins (see DESIGN.md §1).
