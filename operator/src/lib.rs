//! The cluster controller and the node agent.
