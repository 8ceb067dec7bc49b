//! OVS and tc programming, capability probing and the hardware/software offload decision.
